// Package mmbackend is the ModemManager backend: on boards where
// ModemManager owns the modem (Raspberry Pi OS with NetworkManager), simgate
// talks to ModemManager over D-Bus and ModemManager talks to the modem. It
// is the second implementation of the device the relay uses (transport.Device,
// with the session's Run, Status and Healthy), beside the AT session of
// package modem, and hands SMS to the same gw.Sink with the same ids,
// order, allowlist and events.
//
// What it follows: the modem (modem.modemmanager.device or the only one),
// its state, identity, SIM, registration, signal and access technology.
// SMS: Messaging.List at start and whenever ModemManager (re)appears, the
// Added signal afterwards; an SMS is read once ModemManager has it whole
// (State received: a concatenated SMS completes there), handed to the sink
// durably and only then deleted with Messaging.Delete. Sending is
// Messaging.Create and Sms.Send.
package mmbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem"
)

// Defaults of Config.
const (
	// DefaultSweep is how often the modem and its SMS list are read again
	// without a signal: signals can be lost (a bus restart, a full queue),
	// a sweep cannot.
	DefaultSweep = 5 * time.Second
	// DefaultGoneLimit is how long ModemManager or the modem may be away
	// before Healthy reports it (a restart or USB re-enumeration takes
	// seconds; the unit's watchdog must still have time to act).
	DefaultGoneLimit = 90 * time.Second
	// DefaultDeleteQuiet is how long no new SMS must have arrived before
	// the SMS already handed off are deleted. ModemManager 1.20 holds a
	// lock on the SMS storage while it deletes, and a +CMTI that arrives
	// meanwhile is dropped: that SMS stays on the SIM, unseen until
	// ModemManager next enables the modem. Deleting between bursts, not
	// during them, keeps that window away from the SMS of a burst. A stream
	// with no pause fills the SIM at worst; the network then holds new SMS,
	// the pause comes, and the deletes make room.
	DefaultDeleteQuiet = 2 * time.Second
	// callTimeout bounds one D-Bus call other than Send.
	callTimeout = 20 * time.Second
)

// Config configures a Backend.
type Config struct {
	// Bus is "system" (default) or "session" (ModemManager --test-session).
	Bus string
	// Device picks the modem: its DeviceIdentifier, EquipmentIdentifier
	// (IMEI) or D-Bus object path; "" takes the only one.
	Device string
	// SMS enables receiving and sending SMS Commands.
	SMS bool
	// AllowedSenders as in modem.Config.
	AllowedSenders []string
	// Sweep, GoneLimit and DeleteQuiet: zero takes the defaults above.
	Sweep       time.Duration
	GoneLimit   time.Duration
	DeleteQuiet time.Duration
	// OnEvent and OnStatus are called from Run's goroutine, in order. They
	// must not block for long (the gateway's hub does not).
	OnEvent  func(gw.Event)
	OnStatus func(gw.Status)
	Logger   *slog.Logger
	// Connect opens the bus; nil is godbus' system or session bus (tests
	// may pass a private bus).
	Connect func() (*dbus.Conn, error)
}

// Backend is one modem reached through ModemManager. Run does the work; the
// other methods may be called from any goroutine.
type Backend struct {
	cfg  Config
	sink gw.Sink
	log  *slog.Logger

	mu       sync.Mutex
	conn     *dbus.Conn      // nil while the bus is not connected
	path     dbus.ObjectPath // the modem in use; "" while none
	status   gw.Status
	goneAt   time.Time // when the modem was last lost (zero: present)
	lastErr  string
	everSeen bool

	// Run's goroutine only.
	enabled      map[dbus.ObjectPath]bool // Enable(true) asked once per modem object
	storeFailing bool
	// handed holds the SMS the sink has (or that were rejected) and that
	// wait to be deleted, by object path, with their message id: a path
	// ModemManager reuses for another SMS after a restart has another id.
	handed map[dbus.ObjectPath]string
	// lastArrival is when a new SMS (or part) last showed up.
	lastArrival time.Time
	choiceMsg   string // the last "which modem" complaint, logged once
}

// New returns a backend; Run starts it.
func New(cfg Config, sink gw.Sink) *Backend {
	if cfg.Bus == "" {
		cfg.Bus = "system"
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.GoneLimit <= 0 {
		cfg.GoneLimit = DefaultGoneLimit
	}
	if cfg.DeleteQuiet <= 0 {
		cfg.DeleteQuiet = DefaultDeleteQuiet
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{cfg: cfg, sink: sink, log: cfg.Logger.With("component", "modemmanager"), enabled: map[dbus.ObjectPath]bool{}, handed: map[dbus.ObjectPath]string{}}
	b.status.Network.Registration = "unknown"
	b.goneAt = time.Now()
	return b
}

// Status returns the current snapshot.
func (b *Backend) Status() gw.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// Healthy reports an error once ModemManager, or the modem it holds, has
// been away for longer than GoneLimit.
func (b *Backend) Healthy() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.goneAt.IsZero() || time.Since(b.goneAt) < b.cfg.GoneLimit {
		return nil
	}
	why := b.lastErr
	if why == "" {
		why = "no modem"
	}
	return fmt.Errorf("ModemManager has had no usable modem for %s: %s", time.Since(b.goneAt).Round(time.Second), why)
}

// Run follows ModemManager until ctx ends. A bus that cannot be reached or
// goes away is retried with backoff; only ctx ends Run.
func (b *Backend) Run(ctx context.Context) error {
	// Jitter only lengthens the wait: the bus is never asked again sooner
	// than the step.
	bo := backoff.New(time.Second, 30*time.Second, backoff.Above)
	for ctx.Err() == nil {
		started := time.Now()
		err := b.runConn(ctx)
		if ctx.Err() != nil {
			break
		}
		b.setGone(err)
		if time.Since(started) > time.Minute {
			bo.Reset() // it ran well for a while: start over
		}
		d := bo.Next()
		b.log.Warn("D-Bus connection ended; reconnecting", "bus", b.cfg.Bus, "err", err, "in", d.Round(time.Millisecond))
		if backoff.Sleep(ctx, d) != nil {
			break
		}
	}
	b.mu.Lock()
	b.conn = nil
	b.mu.Unlock()
	return nil
}

func (b *Backend) connect() (*dbus.Conn, error) {
	if b.cfg.Connect != nil {
		return b.cfg.Connect()
	}
	if b.cfg.Bus == "session" {
		return dbus.ConnectSessionBus()
	}
	return dbus.ConnectSystemBus()
}

// runConn serves one bus connection: every signal from ModemManager (and
// its name changing owner) makes it read the modem and the SMS list again,
// coalesced, and so does the sweep timer.
func (b *Backend) runConn(ctx context.Context) error {
	conn, err := b.connect()
	if err != nil {
		return fmt.Errorf("connect to the %s bus: %w", b.cfg.Bus, err)
	}
	defer conn.Close()
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, mmService)},
		{dbus.WithMatchSender(mmService)},
	}
	for _, m := range matches {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			return fmt.Errorf("subscribe to ModemManager's signals: %w", err)
		}
	}
	sig := make(chan *dbus.Signal, 1024)
	conn.Signal(sig)
	defer conn.RemoveSignal(sig)
	b.mu.Lock()
	b.conn = conn
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.conn = nil
		b.mu.Unlock()
	}()
	b.log.Info("connected to D-Bus", "bus", b.cfg.Bus)

	tick := time.NewTicker(b.cfg.Sweep)
	defer tick.Stop()
	for {
		b.sweep(ctx, conn)
		// Deletes that wait for a quiet moment get a sweep of their own
		// when it comes.
		var deleteDue <-chan time.Time
		var dt *time.Timer
		if len(b.handed) > 0 {
			dt = time.NewTimer(max(0, time.Until(b.lastArrival.Add(b.cfg.DeleteQuiet))) + 10*time.Millisecond)
			deleteDue = dt.C
		}
		err := b.wait(ctx, sig, tick.C, deleteDue)
		if dt != nil {
			dt.Stop()
		}
		if err != nil || ctx.Err() != nil {
			return err
		}
		if !conn.Connected() {
			return errors.New("the bus connection was lost")
		}
	}
}

// wait waits for a signal (taking every one already queued with it, so a
// burst makes one sweep), the sweep tick or a due delete.
func (b *Backend) wait(ctx context.Context, sig chan *dbus.Signal, tick, deleteDue <-chan time.Time) error {
	select {
	case <-deleteDue:
	case <-ctx.Done():
	case <-tick:
	case s, ok := <-sig:
		if !ok {
			return errors.New("the bus closed the connection")
		}
		b.signal(s)
		for {
			select {
			case s, ok := <-sig:
				if !ok {
					return errors.New("the bus closed the connection")
				}
				b.signal(s)
			default:
				return nil
			}
		}
	}
	return nil
}

// signal logs what arrived; the sweep that follows does the work.
func (b *Backend) signal(s *dbus.Signal) {
	if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 {
		// A new ModemManager numbers its modems afresh: the same object
		// path is a new modem, disabled again.
		clear(b.enabled)
		if owner, _ := s.Body[2].(string); owner == "" {
			b.log.Warn("ModemManager left the bus")
		} else {
			b.log.Info("ModemManager is on the bus", "owner", owner)
		}
		return
	}
	if s.Name == ifMessaging+".Added" || (s.Name == ifProps+".PropertiesChanged" && strings.Contains(string(s.Path), "/SMS/")) {
		b.lastArrival = time.Now()
	}
	b.log.Debug("signal", "name", s.Name, "path", s.Path)
}

// sweep reads the modem and, when it is usable, its SMS.
func (b *Backend) sweep(ctx context.Context, conn *dbus.Conn) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	objs, err := getManaged(cctx, conn)
	if err != nil {
		b.setGone(err)
		return
	}
	path, props, why := b.choose(objs)
	if path == "" {
		b.setGone(errors.New(why))
		return
	}
	if ready := b.update(ctx, conn, path, props); !ready || !b.cfg.SMS {
		return
	}
	if _, ok := props[ifMessaging]; !ok {
		return
	}
	b.receive(ctx, conn, path)
}

// choose picks the modem of modem.modemmanager.device, or the only one.
func (b *Backend) choose(objs managedObjects) (dbus.ObjectPath, map[string]map[string]dbus.Variant, string) {
	var all []dbus.ObjectPath
	for p, ifs := range objs {
		if _, ok := ifs[ifModem]; ok {
			all = append(all, p)
		}
	}
	want := b.cfg.Device
	var pick dbus.ObjectPath
	why := ""
	switch {
	case len(all) == 0:
		why = "ModemManager has no modem"
	case want == "" && len(all) == 1:
		pick = all[0]
	case want == "":
		why = fmt.Sprintf("ModemManager has %d modems; set modem.modemmanager.device to one's DeviceIdentifier, IMEI or path", len(all))
	default:
		for _, p := range all {
			m := objs[p][ifModem]
			if string(p) == want || str(m, "DeviceIdentifier") == want || str(m, "EquipmentIdentifier") == want {
				pick = p
			}
		}
		if pick == "" {
			why = fmt.Sprintf("ModemManager has no modem %q (modem.modemmanager.device)", want)
		}
	}
	if why != "" && why != b.choiceMsg {
		b.log.Warn(why)
	}
	b.choiceMsg = why
	if pick == "" {
		return "", nil, why
	}
	return pick, objs[pick], ""
}

// setGone marks the modem unusable, with why, and reports it lost once.
func (b *Backend) setGone(err error) {
	b.mu.Lock()
	was := b.path
	b.path = ""
	if b.goneAt.IsZero() {
		b.goneAt = time.Now()
	}
	b.lastErr = err.Error()
	st := b.status
	st.Ready = false
	st.Recovery.LastError = b.lastErr
	changed := st != b.status
	b.status = st
	b.mu.Unlock()
	// A modem that comes back (re-enumerated, or a new ModemManager) is
	// enabled again if it needs to be.
	clear(b.enabled)
	if was != "" {
		msg := fmt.Sprintf("the modem went away from ModemManager (%v); waiting for it to come back", err)
		b.log.Warn(msg)
		b.event(gw.EventModemLost, msg, map[string]any{"path": string(was)})
		b.count(func(r *gw.Recovery) { r.Reopens++ })
		changed = true
	}
	if changed {
		b.notifyStatus()
	}
}

func (b *Backend) count(f func(*gw.Recovery)) {
	b.mu.Lock()
	f(&b.status.Recovery)
	b.mu.Unlock()
}

// update reads the modem's state, identity, SIM and network into the
// status; it reports whether the modem is ready for SMS. A disabled modem
// is enabled: nothing else (NetworkManager with no connection configured)
// may do it, and a disabled modem receives no SMS.
func (b *Backend) update(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, props map[string]map[string]dbus.Variant) bool {
	m := props[ifModem]
	state := i32(m, "State")
	if state == stateDisabled && !b.enabled[path] {
		b.enabled[path] = true
		b.log.Info("enabling the modem in ModemManager", "path", path)
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := conn.Object(mmService, path).CallWithContext(cctx, ifModem+".Enable", 0, true).Err
		cancel()
		if err != nil {
			b.log.Warn("could not enable the modem", "path", path, "err", err)
		}
	}
	st := gw.Status{}
	b.mu.Lock()
	st.Recovery = b.status.Recovery
	b.mu.Unlock()
	st.Modem = gw.ModemInfo{
		Manufacturer: str(m, "Manufacturer"),
		Model:        str(m, "Model"),
		Revision:     str(m, "Revision"),
		IMEI:         str(m, "EquipmentIdentifier"),
		Profile:      "modemmanager",
	}
	if g, ok := props[ifModem3gpp]; ok {
		if imei := str(g, "Imei"); imei != "" {
			st.Modem.IMEI = imei
		}
		st.Network.Registration = registrationName(u32(g, "RegistrationState"))
		if modem.Registered(st.Network.Registration) {
			st.Network.Operator = str(g, "OperatorName")
		}
	} else {
		st.Network.Registration = "unknown"
	}
	st.Network.Technology = technologyName(u32(m, "AccessTechnologies"))
	if pct, recent := signalPercent(m); recent {
		st.Network.SignalDBm = percentToDBm(pct)
	}
	if simPath := objPath(m, "Sim"); simPath != "" && simPath != "/" {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		sim, err := getAll(cctx, conn, simPath, ifSim)
		cancel()
		if err == nil {
			st.SIM = gw.SIMInfo{ICCID: str(sim, "SimIdentifier"), IMSI: str(sim, "Imsi")}
		} else {
			b.log.Debug("SIM not readable", "err", err)
		}
	}
	_, hasMessaging := props[ifMessaging]
	usable := state >= stateEnabled && (hasMessaging || !b.cfg.SMS)
	st.Ready = usable

	b.mu.Lock()
	prev, was := b.status, b.path
	if !usable {
		b.lastErr = fmt.Sprintf("modem %s is %s", path, stateName(state))
		st.Recovery.LastError = b.lastErr
		if b.goneAt.IsZero() {
			b.goneAt = time.Now()
		}
		b.path = ""
	} else {
		b.path, b.goneAt = path, time.Time{}
	}
	first := usable && was != path
	if first {
		b.everSeen = true
	}
	b.status = st
	b.mu.Unlock()
	if first {
		msg := fmt.Sprintf("modem %s %s (IMEI %s) ready through ModemManager", st.Modem.Manufacturer, st.Modem.Model, st.Modem.IMEI)
		b.log.Info(msg, "path", path, "iccid", st.SIM.ICCID)
		b.event(gw.EventModemConnected, msg, map[string]any{"path": string(path)})
	}
	if was != "" && !usable {
		msg := fmt.Sprintf("the modem in ModemManager is %s; waiting for it to be enabled", stateName(state))
		b.log.Warn(msg)
		b.event(gw.EventModemLost, msg, map[string]any{"path": string(path)})
	}
	if statusChanged(prev, st) {
		b.notifyStatus()
	}
	return usable
}

// statusChanged compares snapshots (SignalDBm by value).
func statusChanged(a, b gw.Status) bool {
	sa, sb := a.Network.SignalDBm, b.Network.SignalDBm
	a.Network.SignalDBm, b.Network.SignalDBm = nil, nil
	if a != b {
		return true
	}
	if (sa == nil) != (sb == nil) {
		return true
	}
	return sa != nil && *sa != *sb
}

func (b *Backend) notifyStatus() {
	if b.cfg.OnStatus != nil {
		b.cfg.OnStatus(b.Status())
	}
}

func (b *Backend) event(typ, msg string, f map[string]any) {
	if b.cfg.OnEvent != nil {
		b.cfg.OnEvent(gw.Event{Type: typ, Message: msg, Time: time.Now().UTC(), Fields: f})
	}
}

// current returns the connection and modem to send through.
func (b *Backend) current() (*dbus.Conn, dbus.ObjectPath) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn, b.path
}

func stateName(s int32) string {
	switch s {
	case stateFailed:
		return "failed"
	case 0:
		return "in an unknown state"
	case 1:
		return "initializing"
	case stateLocked:
		return "locked (SIM PIN)"
	case stateDisabled:
		return "disabled"
	case 4:
		return "disabling"
	case stateEnabling:
		return "enabling"
	}
	return fmt.Sprintf("in state %d", s)
}

// registrationName maps MMModem3gppRegistrationState to the names of
// gw.NetworkInfo.Registration; its values are 27.007's <stat>, which the
// modem package names (a value past int32 on a 32-bit host wraps negative:
// "unknown" too).
func registrationName(s uint32) string { return modem.RegistrationName(int(s)) }

// technologyName maps the MMModemAccessTechnology bitmask to the names
// the AT backend reports, the most capable first.
func technologyName(mask uint32) string {
	switch {
	case mask&(1<<15) != 0:
		return "5g"
	case mask&(1<<17) != 0:
		return "nb-iot"
	case mask&(1<<16) != 0:
		return "lte-m"
	case mask&(1<<14) != 0:
		return "lte"
	case mask&(0x1f<<5) != 0: // UMTS, HSDPA, HSUPA, HSPA, HSPA+
		return "umts"
	case mask&(0xf<<1) != 0: // GSM, GSM compact, GPRS, EDGE
		return "gsm"
	}
	return ""
}

// percentToDBm turns ModemManager's signal quality back into the dBm of
// the +CSQ it came from (ModemManager scales rssi 0..31 to 0..100 %): the
// AT backend reports -113 + 2*rssi, so both read alike.
func percentToDBm(pct uint32) *int {
	if pct > 100 {
		return nil
	}
	rssi := (int(pct)*31 + 50) / 100
	dbm := -113 + 2*rssi
	return &dbm
}
