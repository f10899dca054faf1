package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// States of the data session, as in Status.Data.State.
const (
	DataUp      = "up"      // the socket is open: IP Commands arrive and can be sent
	DataDown    = "down"    // no data session; it is being re-opened
	DataOpening = "opening" // the data session and socket are being opened
	// DataUnsupported: ip.mode is "modem" but the module's profile has no
	// sockets simgate can drive (the generic profile).
	DataUnsupported = "unsupported"
)

// dataSettings are the Config values the data path uses.
type dataSettings struct {
	mode  string // Config.IPMode; only "modem" runs the module's socket
	port  int    // Config.IPPort
	apn   string
	cloud string
	// retryMin and retryMax bound the jittered, doubling delays between
	// re-opens.
	retryMin, retryMax time.Duration
}

// dataWire is the current engine as the data path uses it: commands, and
// waiting for the URC that completes one.
type dataWire interface {
	commander
	urcWaiter
}

// dataPath runs ip.mode "modem": the module's data session and UDP
// socket, reading what arrives on it into the inbox, and what SendUDP
// needs. Its methods run on the session's goroutine, except sendUDP.
type dataPath struct {
	set dataSettings
	log *slog.Logger
	ev  eventer
	// status reports the state as Status.Data.
	status func(gw.DataInfo)

	fam   socketFamily
	sock  int // the socket in use; -1 for none yet
	state string
	why   string // why it is down, for errors and events

	fresh bool // the next open tears the old session down first
	due   bool // open now
	timer *time.Timer
	delay *backoff.Backoff // between re-opens

	from netip.AddrPort // SIM7600: sender of the next pushed datagram
	// lastFail is the last open failure reported as an event; the same
	// failure again (no network for an hour) is only logged.
	lastFail string

	// in holds the datagrams read that the Sink has not taken yet; stash
	// are reads put off until it has.
	in    *inbox
	stash []sockEvent

	mu   sync.Mutex
	send sendPath
}

// sendPath is what SendUDP needs, mirrored under dataPath.mu.
type sendPath struct {
	fam  socketFamily
	sock int
	up   bool
	why  string
	// unsupported: the detected profile has no sockets. Before the modem
	// is initialised fam is nil too, but the profile is not known yet.
	unsupported bool
}

func newDataPath(set dataSettings, log *slog.Logger, ev eventer, in *inbox, status func(gw.DataInfo)) *dataPath {
	d := &dataPath{
		set: set, log: log, ev: ev, in: in, status: status, sock: -1,
		delay: backoff.New(set.retryMin, set.retryMax, backoff.Around),
	}
	if d.wanted() {
		d.send.why = "the modem is not initialised yet"
	}
	return d
}

// timerC is t's channel; nil, which a select never takes, for no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// wanted reports whether the session runs the module's socket.
func (d *dataPath) wanted() bool { return d.set.mode == "modem" }

// link is what the socket family is given for one open or read.
func (d *dataPath) link(w dataWire) sockLink { return sockLink{cmd: w, urcs: w, log: d.log} }

// start runs when the session starts serving an initialised modem with
// profile p: the socket is (re)opened at once. A module that reset or
// re-enumerated has lost it; after a re-init without reset, open keeps it.
func (d *dataPath) start(p profile) {
	if !d.wanted() {
		return
	}
	d.fam = p.Sockets
	if d.fam == nil {
		msg := fmt.Sprintf(`ip.mode "modem" needs the module's own UDP sockets, which the %q profile does not drive; IP Commands are unavailable (SMS keep working). Set modem.profile to quectel, simcom, sim7080 or ublox, or use ip.mode "os"`, p.Name)
		told := d.state == DataUnsupported
		d.setState(DataUnsupported, "", "the module profile has no sockets")
		if !told {
			d.log.Error(msg)
			d.ev.event(gw.EventDataUnsupported, msg, map[string]any{"profile": p.Name})
		}
		return
	}
	d.stopTimer()
	// Reads put off for an earlier module session are void: the open that
	// follows reads what a kept socket holds.
	d.stash = nil
	d.due = true
	d.delay.Reset()
}

// stop runs when the session stops serving (port lost, recovery).
func (d *dataPath) stop(why string, stopping bool) {
	if !d.wanted() || d.fam == nil {
		return
	}
	d.stopTimer()
	d.due = false
	wasUp := d.state == DataUp
	d.setState(DataDown, "", why)
	if wasUp {
		msg := fmt.Sprintf("data session down: %s; it is re-opened when the modem is back", why)
		if stopping {
			d.log.Info(msg)
		} else {
			d.log.Warn(msg)
		}
		d.ev.event(gw.EventDataDown, msg, map[string]any{"reason": why})
	}
}

func (d *dataPath) stopTimer() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// setState records the data session's state for Status and SendUDP.
func (d *dataPath) setState(state, ip, why string) {
	d.state, d.why = state, why
	d.mu.Lock()
	d.send = sendPath{fam: d.fam, sock: d.sock, up: state == DataUp, why: why}
	if state == DataUnsupported {
		d.send.fam, d.send.unsupported = nil, true
	}
	d.mu.Unlock()
	d.status(gw.DataInfo{Mode: d.set.mode, State: state, IP: ip})
}

// hasWork reports whether work waits that work does: an open that is
// due, or a read put off while the Sink refused and taken it since.
func (d *dataPath) hasWork() bool {
	return d.due || (!d.in.holding() && len(d.stash) > 0)
}

// work does the waiting piece of work hasWork reported.
func (d *dataPath) work(ctx context.Context, w dataWire) error {
	if d.due {
		return d.open(ctx, w)
	}
	ev := d.stash[0]
	d.stash = d.stash[1:]
	return d.read(ctx, w, ev)
}

// retryC fires when the re-open delay is over; retryDue acts on it.
func (d *dataPath) retryC() <-chan time.Time { return timerC(d.timer) }

func (d *dataPath) retryDue() {
	d.timer = nil
	d.due = true
}

// registrationBack runs when the network registration is regained: a data
// session waiting to re-open is tried at once.
func (d *dataPath) registrationBack() {
	if d.state == DataDown && d.fam != nil && d.timer != nil {
		d.stopTimer()
		d.due = true
		d.delay.Reset()
	}
}

// open opens the data session and socket. Failures the modem answered
// are retried with a jittered, doubling delay; a silent or vanished modem
// is returned to serve, whose recovery takes over.
func (d *dataPath) open(ctx context.Context, w dataWire) error {
	d.due = false
	fresh := d.fresh
	d.setState(DataOpening, "", "opening")
	// QIACT and QIOPEN may each take 150 s; nothing legitimate takes longer.
	octx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	info, err := d.fam.open(octx, d.link(w), sockOpen{APN: d.set.apn, Port: d.set.port, Cloud: d.set.cloud, Fresh: fresh, Known: d.sock})
	cancel()
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, at.ErrClosed) || errors.Is(err, at.ErrTimeout) {
			d.fresh = true
			d.setState(DataDown, "", err.Error())
			return err
		}
		why := fmt.Sprintf("could not open it: %v", err)
		typ := gw.EventDataOpenFailed
		if why == d.lastFail {
			typ = "" // reported already
		}
		d.lastFail = why
		d.schedule(why, typ, fresh)
		return nil
	}
	d.lastFail = ""
	d.fresh = false
	d.sock = info.ID
	d.delay.Reset()
	d.setState(DataUp, info.IP, "")
	how := "opened"
	if info.Kept {
		how = "still open"
	}
	msg := fmt.Sprintf("data session up: UDP socket %d %s on port %d, device address %s", info.ID, how, d.set.port, orUnknown(info.IP))
	d.log.Info(msg)
	d.ev.event(gw.EventDataUp, msg, map[string]any{"socket": info.ID, "port": d.set.port, "ip": info.IP})
	if info.Kept {
		// Datagrams may have arrived while nobody listened (their URC went
		// to an earlier session): read what the module holds.
		return d.read(ctx, w, sockEvent{kind: sockReadable, id: info.ID, n: info.Pending})
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// schedule marks the data session down and re-opens it after a
// jittered, doubling delay. fresh asks the next open to tear down first;
// eventType "" only logs.
func (d *dataPath) schedule(why, eventType string, fresh bool) {
	d.fresh = d.fresh || fresh
	if d.timer != nil && d.state == DataDown {
		return // already waiting to re-open
	}
	wait := d.delay.Next()
	d.stopTimer()
	d.timer = time.NewTimer(wait)
	// The state first: whoever hears the event sees it.
	d.setState(DataDown, "", why)
	msg := fmt.Sprintf("data session down: %s; re-opening in %s", why, wait.Round(time.Millisecond))
	d.log.Warn(msg)
	if eventType != "" {
		d.ev.event(eventType, msg, map[string]any{"reason": why})
	}
}

// onURC acts on a socket URC; it reports false for other URCs.
func (d *dataPath) onURC(ctx context.Context, w dataWire, u at.URC) (bool, error) {
	if !d.wanted() || d.fam == nil {
		return false, nil
	}
	ev := d.fam.urc(u)
	switch ev.kind {
	case sockNone:
		return false, nil
	case sockInfoURC:
		d.log.Debug("socket URC", "line", u.Line)
	case sockBad:
		d.log.Warn("unreadable socket URC; reading the socket in case it announced data", "line", u.Line, "err", ev.err)
		return true, d.read(ctx, w, sockEvent{kind: sockReadable, id: d.sock, n: ubloxMaxIO})
	case sockSource:
		d.from = ev.from
	case sockData:
		from := ev.from
		if !from.IsValid() {
			from = d.from
		}
		d.from = netip.AddrPort{}
		d.in.take(ctx, from, ev.data)
	case sockReadable:
		return true, d.read(ctx, w, ev)
	case sockClosed:
		if ev.id != d.sock || d.state != DataUp {
			d.log.Debug("close of a socket not in use", "line", u.Line)
			return true, nil
		}
		d.schedule(fmt.Sprintf("the network closed socket %d (%s)", ev.id, u.Line), gw.EventDataDown, false)
	case sockDeact:
		d.schedule(fmt.Sprintf("the network ended the data session (%s)", u.Line), gw.EventDataDown, true)
	}
	return true, nil
}

// read reads the datagrams a URC announced, handing each to the Sink
// before reading the next. While the Sink refuses, the read is put off and
// the datagrams stay in the module's buffer, where they are safer than in
// this process's memory.
func (d *dataPath) read(ctx context.Context, w dataWire, ev sockEvent) error {
	if ev.id < 0 {
		ev.id = d.sock
	}
	if ev.id < 0 {
		return nil
	}
	for {
		if d.in.holding() {
			d.stashRead(ev)
			return nil
		}
		dgs, more, err := d.fam.read(ctx, d.link(w), &ev)
		for _, g := range dgs {
			d.in.take(ctx, g.from, g.data)
		}
		if err != nil || !more {
			return err
		}
	}
}

// sweep reads the open socket without being told to, on every poll that
// passes. A module that hung (or glitched) while a datagram arrived lost
// its notification, and a Quectel module in buffer mode announces nothing
// more until a read has found its buffer empty: without this, the
// datagrams would wait until a recovery reopened the socket. A module that
// pushes every datagram holds none; its read does nothing.
func (d *dataPath) sweep(ctx context.Context, w dataWire) error {
	if !d.wanted() || d.fam == nil || d.state != DataUp || d.sock < 0 {
		return nil
	}
	return d.read(ctx, w, sockEvent{kind: sockReadable, id: d.sock})
}

// stashRead keeps a put-off read, merged with one for the same socket.
func (d *dataPath) stashRead(ev sockEvent) {
	for i := range d.stash {
		if d.stash[i].id == ev.id {
			d.stash[i].n += ev.n
			return
		}
	}
	d.stash = append(d.stash, ev)
}

// cloudAddr splits Config.Cloud into the host and port AT send commands
// take.
func cloudAddr(cloud string) (string, int, error) {
	host, p, err := net.SplitHostPort(cloud)
	if err != nil {
		return "", 0, fmt.Errorf("ip.cloud %q: %w", cloud, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("ip.cloud %q: bad port", cloud)
	}
	if host == "" {
		return "", 0, fmt.Errorf("ip.cloud %q: no host", cloud)
	}
	return host, port, nil
}

// sendUDP sends one datagram through the module's socket on the engine
// engine returns; profile names the module profile for the error when it
// has no sockets.
func (d *dataPath) sendUDP(ctx context.Context, op string, payload []byte, engine func() (*at.Engine, error), profile func() string) error {
	d.mu.Lock()
	sp := d.send
	d.mu.Unlock()
	if sp.unsupported {
		return &OpError{Op: op, Err: fmt.Errorf("data session down: the %q module profile has no sockets (ip.mode modem needs quectel, simcom, sim7080 or ublox)", profile())}
	}
	if !sp.up || sp.fam == nil {
		why := sp.why
		if why == "" {
			why = "not open yet"
		}
		return &OpError{Op: op, Err: fmt.Errorf("data session down: %s", why)}
	}
	if len(payload) == 0 {
		return &OpError{Op: op, Err: errors.New("an empty datagram cannot be sent through a module socket")}
	}
	if n := sp.fam.maxSend(); len(payload) > n {
		return &OpError{Op: op, Err: fmt.Errorf("payload is %d bytes; this module's socket sends at most %d bytes per datagram", len(payload), n)}
	}
	host, port, err := cloudAddr(d.set.cloud)
	if err != nil {
		return &OpError{Op: op, Err: err}
	}
	eng, err := engine()
	if err != nil {
		return &OpError{Op: op, Err: fmt.Errorf("data session down: %w", err)}
	}
	c := sp.fam.sendCmd(sp.sock, host, port, payload)
	if _, err := eng.Do(ctx, c); err != nil {
		return &OpError{Op: fmt.Sprintf("%s to %s (%s)", op, d.set.cloud, cmdName(c.Line)), Err: err}
	}
	d.log.Info("IP Command sent", "to", d.set.cloud, "bytes", len(payload))
	return nil
}

// cmdName is "+QISEND" for "AT+QISEND=0,5,...".
func cmdName(line string) string {
	p := derivePrefixName(line)
	if p == "" {
		return line
	}
	return p
}

func derivePrefixName(line string) string {
	for i := 2; i < len(line); i++ {
		if line[i] == '=' || line[i] == '?' {
			return line[2:i]
		}
	}
	if len(line) > 2 {
		return line[2:]
	}
	return ""
}
