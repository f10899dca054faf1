package modem

import (
	"errors"

	"github.com/simgate/simgate/modem/at"
)

// OpError is an error from one operation on the modem; its message starts
// with the operation ("read +CMGR=5: +CMS ERROR: 321 (invalid memory
// index)"). It is the AT engine's type, so errors.As works on either name.
type OpError = at.OpError

// CMSError is a "+CMS ERROR: <n>" answer, with its readable reason.
type CMSError = at.CMSError

// CMEError is a "+CME ERROR: <n>" answer, with its readable reason.
type CMEError = at.CMEError

// Errors a Session returns to the relay.
var (
	// ErrNotReady means the modem is not connected and initialised yet (or
	// is being reconnected); the request may succeed later.
	ErrNotReady = errors.New("modem not ready")
	// ErrSMSDisabled means sms.enabled is false.
	ErrSMSDisabled = errors.New("SMS is disabled (sms.enabled: false)")
	// ErrIPUnavailable means the session does not send IP Commands itself:
	// ip.mode is not "modem".
	ErrIPUnavailable = errors.New(`IP Commands go through the modem only with ip.mode "modem"`)
)
