package transport

import (
	"context"

	"github.com/simgate/simgate/internal/gw"
)

// Device is what the relay needs from the device (the AT session in package modem, or the ModemManager backend): sending commands and
// a status snapshot. It never exposes AT commands.
type Device interface {
	// SendSMS sends one SMS and returns its message reference.
	SendSMS(ctx context.Context, to string, payload []byte, binary bool) (reference int, err error)
	// SendUDP sends one datagram to the configured cloud address.
	SendUDP(ctx context.Context, payload []byte) error
	// Status returns the current snapshot.
	Status() gw.Status
}
