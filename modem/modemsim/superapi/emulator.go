package superapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// Options configures an emulator. Only Modem is required.
type Options struct {
	// Addr is the TCP address the API listens on; default 127.0.0.1:0 (a
	// free port, see Emulator.URL).
	Addr string
	// AccountSID and AuthToken are the account's credentials for HTTP Basic
	// auth; the defaults are generated (AC and 32 hex digits, 32 hex
	// digits). With Signing "twilio" AuthToken also signs the webhooks.
	AccountSID, AuthToken string
	// APIKeys are API Key SIDs (SK and 32 hex digits) and their secrets,
	// accepted for HTTP Basic auth like the Account SID and auth token.
	APIKeys map[string]string
	// Signing is how webhooks and callbacks are signed: "twilio"
	// (X-Twilio-Signature) or "kore" (kore-signature). Default "twilio".
	Signing string
	// SigningSecret is KORE's webhook secret; with Signing "kore" and no
	// secret the kore-signature header is empty, as KORE sends it.
	SigningSecret string
	// ClientID and ClientSecret are the OAuth2 client credentials the token
	// endpoint accepts (KORE); default AccountSID and AuthToken.
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of an issued access token; default 1h.
	TokenTTL time.Duration
	// Modem is the simulated modem whose SIM is the account's Sim.
	Modem *modemsim.Sim
	// DeviceMode says how the device receives IP Commands: "modem" (through
	// the module's socket) or "os" (a UDP socket of the host, reached at
	// 127.0.0.1:DevicePort). Default "modem".
	DeviceMode string
	// CloudUDP is the UDP address of the emulator's own socket, which sends
	// IP Commands to an os-mode device and receives its datagrams (the
	// device's ip.cloud); default 127.0.0.1:0.
	CloudUDP string
	// CommandTTL is how long a to_sim command the SIM cannot take yet is
	// kept queued before it fails; default 24h, as the service retries.
	CommandTTL time.Duration
	// RetryInterval is how often queued commands are tried; default 200ms.
	RetryInterval time.Duration
	// StatusDelay is how long an asynchronous Sim status change takes;
	// default 200ms.
	StatusDelay time.Duration
	// WebhookAttempts bounds the attempts per webhook or callback; default 8.
	WebhookAttempts int
	// WebhookBackoff is the wait after the first failed attempt, doubled
	// after each further one up to 30s; default 500ms.
	WebhookBackoff time.Duration
	// WebhookTimeout bounds one attempt; default 10s.
	WebhookTimeout time.Duration
	// Logger receives the emulator's logs; nil discards.
	Logger *slog.Logger
}

// Device modes.
const (
	ModeModem = "modem"
	ModeOS    = "os"
)

// Signing schemes.
const (
	SigningTwilio = "twilio"
	SigningKore   = "kore"
)

// CommandsAddress is where Super SIM IP Commands come from and where a
// device sends its own; SMS Commands use the number SMSNumber.
const (
	CommandsAddress = "100.64.0.1:6969"
	SMSNumber       = "000"
)

// StateOp is the modemsim control operation that answers State.
const StateOp = "api-state"

func (o *Options) applyDefaults() error {
	if o.Modem == nil {
		return errors.New("Options.Modem is required")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.AccountSID == "" {
		o.AccountSID = newSid("AC")
	}
	if !isSid(o.AccountSID, "AC") {
		return fmt.Errorf("account SID %q: want AC and 32 hex digits", o.AccountSID)
	}
	if o.AuthToken == "" {
		o.AuthToken = randomHex(16)
	}
	for _, c := range o.AuthToken {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			// twilio-go refuses credentials with other characters.
			return errors.New("auth token: want letters and digits only")
		}
	}
	for sid, secret := range o.APIKeys {
		if !isSid(sid, "SK") || secret == "" {
			return fmt.Errorf("API key %q: want SK and 32 hex digits, with a secret", sid)
		}
	}
	switch o.Signing {
	case "":
		o.Signing = SigningTwilio
	case SigningTwilio, SigningKore:
	default:
		return fmt.Errorf("signing %q: want twilio or kore", o.Signing)
	}
	if o.ClientID == "" {
		o.ClientID = o.AccountSID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = o.AuthToken
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	switch o.DeviceMode {
	case "":
		o.DeviceMode = ModeModem
	case ModeModem, ModeOS:
	default:
		return fmt.Errorf("device mode %q: want modem or os", o.DeviceMode)
	}
	if o.CloudUDP == "" {
		o.CloudUDP = "127.0.0.1:0"
	}
	if o.CommandTTL <= 0 {
		o.CommandTTL = 24 * time.Hour
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 200 * time.Millisecond
	}
	if o.StatusDelay <= 0 {
		o.StatusDelay = 200 * time.Millisecond
	}
	if o.WebhookAttempts <= 0 {
		o.WebhookAttempts = 8
	}
	if o.WebhookBackoff <= 0 {
		o.WebhookBackoff = 500 * time.Millisecond
	}
	if o.WebhookTimeout <= 0 {
		o.WebhookTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("superapi: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// Emulator is a running emulated Super SIM API. Its methods are safe for
// concurrent use.
type Emulator struct {
	opts  Options
	log   *slog.Logger
	modem *modemsim.Sim
	ln    net.Listener
	srv   *http.Server
	udp   *net.UDPConn
	base  string
	start time.Time
	http  *http.Client

	mu       sync.Mutex
	closed   bool
	sims     []*simRec
	fleets   []*Fleet
	naps     []*NetworkAccessProfile
	networks []*Network
	sms      []*smsRec // creation order
	ip       []*ipRec
	usage    []usageEvent
	tokens   map[string]time.Time
	concat   map[concatKey][]modemsim.SentSMS
	hooks    *hookQueue
	webhooks *webhooks
	faults   []fault

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// simRec is a Sim with what the API does not show.
type simRec struct {
	Sim
	pendingStatus string // an accepted status change not yet done
}

type smsRec struct {
	SmsCommand
	callbackURL    *string
	callbackMethod string
	expires        time.Time
}

type ipRec struct {
	IpCommand
	data           []byte
	callbackURL    *string
	callbackMethod string
	expires        time.Time
}

type usageEvent struct {
	at               time.Time
	sim, fleet, net  string
	country          string
	upload, download int64
}

type concatKey struct{ ref, total int }

// Start builds the account around opts.Modem (one Sim with the modem's
// ICCID, active, in one Fleet with SMS Commands and data enabled, on one
// Network Access Profile and Network), listens and serves until Close.
func Start(opts Options) (*Emulator, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, fmt.Errorf("superapi: %w", err)
	}
	e := &Emulator{
		opts:   opts,
		log:    opts.Logger.With("component", "superapi"),
		modem:  opts.Modem,
		start:  now(),
		http:   &http.Client{Timeout: opts.WebhookTimeout},
		tokens: map[string]time.Time{},
		concat: map[concatKey][]modemsim.SentSMS{},
		hooks:  newHookQueue(),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("superapi: listen: %w", err)
	}
	e.ln = ln
	e.base = "http://" + ln.Addr().String()
	ua, err := net.ResolveUDPAddr("udp", opts.CloudUDP)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("superapi: cloud UDP %q: %w", opts.CloudUDP, err), ln.Close())
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("superapi: cloud UDP: %w", err), ln.Close())
	}
	e.udp = udp
	e.webhooks = newWebhooks(e)
	e.seed()
	if err := e.modem.HandleOp(StateOp, func() (any, error) { return e.State(), nil }); err != nil {
		return nil, errors.Join(fmt.Errorf("superapi: %w", err), ln.Close(), udp.Close())
	}
	e.modem.SetHooks(modemsim.Hooks{SMS: e.hooks.sms, UDP: e.hooks.udp})
	e.srv = &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	e.wg.Add(3)
	go func() {
		defer e.wg.Done()
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serve", "err", err)
		}
	}()
	go func() {
		defer e.wg.Done()
		e.pump()
	}()
	go func() {
		defer e.wg.Done()
		e.readUDP()
	}()
	e.log.Info("Super SIM API emulator ready", "url", e.base, "account_sid", opts.AccountSID,
		"signing", opts.Signing, "device_mode", opts.DeviceMode, "cloud_udp", udp.LocalAddr().String())
	return e, nil
}

// now is the API's clock: UTC, whole seconds, as the API shows times.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// seed creates the account's resources.
func (e *Emulator) seed() {
	mo := e.modem.Options()
	t := now()
	nap := &NetworkAccessProfile{
		Sid: newSid("HA"), UniqueName: ptr("default"), AccountSid: e.opts.AccountSID,
		DateCreated: t, DateUpdated: t,
	}
	nap.URL = e.base + "/v1/NetworkAccessProfiles/" + nap.Sid
	nap.Links = map[string]string{"networks": nap.URL + "/Networks"}
	e.naps = append(e.naps, nap)
	mcc, mnc := "001", "01"
	if len(mo.IMSI) >= 5 {
		mcc, mnc = mo.IMSI[:3], mo.IMSI[3:5]
	}
	nw := &Network{Sid: newSid("HW"), FriendlyName: mo.Operator, IsoCountry: countryOf(mcc),
		Identifiers: []Identifier{{Mcc: mcc, Mnc: mnc}}}
	nw.URL = e.base + "/v1/Networks/" + nw.Sid
	e.networks = append(e.networks, nw)
	f := &Fleet{
		AccountSid: e.opts.AccountSID, Sid: newSid("HF"), UniqueName: ptr("default"),
		DateCreated: t, DateUpdated: t, DataEnabled: true, DataLimit: 1000, DataMetering: "payg",
		SmsCommandsEnabled: true, SmsCommandsMethod: http.MethodPost,
		NetworkAccessProfileSid: nap.Sid, IPCommandsMethod: http.MethodPost,
	}
	f.URL = e.base + "/v1/Fleets/" + f.Sid
	e.fleets = append(e.fleets, f)
	s := &simRec{Sim: Sim{
		Sid: newSid("HS"), AccountSid: e.opts.AccountSID, Iccid: mo.ICCID, Status: SimActive,
		FleetSid: ptr(f.Sid), DateCreated: t, DateUpdated: t,
	}}
	s.URL = e.base + "/v1/Sims/" + s.Sid
	s.Links = map[string]string{"billing_periods": s.URL + "/BillingPeriods", "ip_addresses": s.URL + "/IpAddresses"}
	e.sims = append(e.sims, s)
}

// countryOf names the country of a few MCCs; others are "ZZ" (unknown).
func countryOf(mcc string) string {
	switch mcc {
	case "732":
		return "CO"
	case "234", "235":
		return "GB"
	case "310", "311", "312", "313":
		return "US"
	case "262":
		return "DE"
	case "208":
		return "FR"
	case "204":
		return "NL"
	}
	return "ZZ"
}

// URL is the API's base URL, e.g. http://127.0.0.1:41234; resources are
// under URL()+"/v1/".
func (e *Emulator) URL() string { return e.base }

// CloudUDP is the address of the emulator's UDP socket: an os-mode device
// sends its IP Commands there (its ip.cloud).
func (e *Emulator) CloudUDP() string { return e.udp.LocalAddr().String() }

// AccountSID and AuthToken return the account's credentials.
func (e *Emulator) AccountSID() string { return e.opts.AccountSID }

// AuthToken returns the account's auth token.
func (e *Emulator) AuthToken() string { return e.opts.AuthToken }

// SimSid returns the SID of the account's Sim (the modem's SIM).
func (e *Emulator) SimSid() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sims[0].Sid
}

// FleetSid returns the SID of the Fleet the emulator created.
func (e *Emulator) FleetSid() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fleets[0].Sid
}

// Close stops serving, abandons webhooks not yet delivered and unhooks the
// modem.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	e.mu.Unlock()
	e.modem.SetHooks(modemsim.Hooks{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if err := e.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("superapi: shutdown: %w", err))
	}
	if err := e.udp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("superapi: close UDP: %w", err))
	}
	e.webhooks.close()
	e.wg.Wait()
	return errors.Join(errs...)
}

// fault is one answer InjectErrors queued.
type fault struct {
	status     int
	retryAfter time.Duration
}

// InjectErrors makes the next n authenticated API requests fail with the
// HTTP status (429, 500, 502, 503 or 504), in the error shape, with a
// Retry-After header of retryAfter when it is positive, and change
// nothing: for testing a client's retries, as the real service sometimes
// answers this way.
func (e *Emulator) InjectErrors(status, n int, retryAfter time.Duration) error {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return fmt.Errorf("inject errors: status %d: want 429, 500, 502, 503 or 504", status)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.faults = append(e.faults, fault{status, retryAfter})
	}
	return nil
}

// takeFault returns the next injected fault, if any.
func (e *Emulator) takeFault() (fault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.faults) == 0 {
		return fault{}, false
	}
	f := e.faults[0]
	e.faults = e.faults[1:]
	return f, true
}

// wake makes the pump look at the queued commands now.
func (e *Emulator) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// State is a snapshot of the emulator, for tests and the control socket.
type State struct {
	URL         string       `json:"url"`
	AccountSid  string       `json:"account_sid"`
	Signing     string       `json:"signing"`
	DeviceMode  string       `json:"device_mode"`
	CloudUDP    string       `json:"cloud_udp"`
	Sims        []Sim        `json:"sims"`
	Fleets      []Fleet      `json:"fleets"`
	SmsCommands []SmsCommand `json:"sms_commands"`
	IpCommands  []IpCommand  `json:"ip_commands"`
	// Deliveries are the webhooks and status callbacks, in the order they
	// were made, with every attempt.
	Deliveries []Delivery `json:"deliveries"`
}

// State returns a snapshot of the emulator.
func (e *Emulator) State() State {
	e.mu.Lock()
	st := State{
		URL: e.base, AccountSid: e.opts.AccountSID, Signing: e.opts.Signing,
		DeviceMode: e.opts.DeviceMode, CloudUDP: e.udp.LocalAddr().String(),
		Sims: []Sim{}, Fleets: []Fleet{}, SmsCommands: []SmsCommand{}, IpCommands: []IpCommand{},
	}
	for _, s := range e.sims {
		st.Sims = append(st.Sims, s.Sim)
	}
	for _, f := range e.fleets {
		st.Fleets = append(st.Fleets, *f)
	}
	for _, c := range e.sms {
		st.SmsCommands = append(st.SmsCommands, c.SmsCommand)
	}
	for _, c := range e.ip {
		st.IpCommands = append(st.IpCommands, c.IpCommand)
	}
	e.mu.Unlock()
	st.Deliveries = e.webhooks.snapshot()
	return st
}

// Lookups; the caller holds mu.

func (e *Emulator) simByRef(ref string) *simRec {
	for _, s := range e.sims {
		if s.Sid == ref || (s.UniqueName != nil && *s.UniqueName == ref) {
			return s
		}
	}
	return nil
}

func (e *Emulator) simBySid(sid string) *simRec {
	for _, s := range e.sims {
		if s.Sid == sid {
			return s
		}
	}
	return nil
}

func (e *Emulator) fleetByRef(ref string) *Fleet {
	for _, f := range e.fleets {
		if f.Sid == ref || (f.UniqueName != nil && *f.UniqueName == ref) {
			return f
		}
	}
	return nil
}

func (e *Emulator) fleetOf(s *simRec) *Fleet {
	if s.FleetSid == nil {
		return nil
	}
	return e.fleetByRef(*s.FleetSid)
}

func (e *Emulator) napByRef(ref string) *NetworkAccessProfile {
	for _, n := range e.naps {
		if n.Sid == ref || (n.UniqueName != nil && *n.UniqueName == ref) {
			return n
		}
	}
	return nil
}

// canCommand tells whether a Sim may exchange commands: it is active or
// ready (the service refuses others).
func canCommand(s *simRec) bool { return s.Status == SimActive || s.Status == SimReady }

func normalizeNumber(n string) string { return strings.TrimPrefix(n, "+") }
