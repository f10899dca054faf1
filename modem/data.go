package modem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

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

// maxHeldDatagrams bounds the datagrams kept in memory while the Sink
// refuses them. A module pushes datagrams whether or not the host can store
// them; beyond this bound the oldest are dropped, loudly.
const maxHeldDatagrams = 1000

// dataPath is the state of ip.mode "modem" (Run's goroutine only, except
// what setData mirrors under mu for SendUDP and Status).
type dataPath struct {
	fam   socketFamily
	sock  int // the socket in use; -1 for none yet
	state string
	why   string // why it is down, for errors and events

	fresh bool // the next open tears the old session down first
	due   bool // open now
	timer *time.Timer
	delay time.Duration

	from netip.AddrPort // SIM7600: sender of the next pushed datagram
	// lastFail is the last open failure reported as an event; the same
	// failure again (no network for an hour) is only logged.
	lastFail string

	// held are datagrams read from the module that the Sink has not taken
	// yet, in arrival order; stash are reads put off until it does.
	held         []gw.Inbound
	heldTimer    *time.Timer
	heldDelay    time.Duration
	storeFailing bool
	stash        []sockEvent
}

// sendPath is what SendUDP needs, mirrored under Session.mu.
type sendPath struct {
	fam  socketFamily
	sock int
	up   bool
	why  string
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// wantData reports whether the session runs the module's socket.
func (s *Session) wantData() bool { return s.cfg.IPMode == "modem" }

// dataStart runs when the session starts serving an initialised modem:
// the socket is (re)opened at once. A module that reset or re-enumerated
// has lost it; after a re-init without reset, open keeps it.
func (s *Session) dataStart() {
	if !s.wantData() {
		return
	}
	s.dp.fam = s.prof.Sockets
	if s.dp.fam == nil {
		msg := fmt.Sprintf(`ip.mode "modem" needs the module's own UDP sockets, which the %q profile does not drive; IP Commands are unavailable (SMS keep working). Set modem.profile to quectel, simcom, sim7080 or ublox, or use ip.mode "os"`, s.prof.Name)
		told := s.dp.state == DataUnsupported
		s.setData(DataUnsupported, "", "the module profile has no sockets")
		if !told {
			s.log.Error(msg)
			s.event(gw.EventDataUnsupported, msg, map[string]any{"profile": s.prof.Name})
		}
		return
	}
	s.stopDataTimer()
	// Reads put off for an earlier module session are void: the open that
	// follows reads what a kept socket holds.
	s.dp.stash = nil
	s.dp.due = true
	s.dp.delay = s.cfg.RetryMin
}

// dataStop runs when the session stops serving (port lost, recovery).
func (s *Session) dataStop(why string, stopping bool) {
	if !s.wantData() || s.dp.fam == nil {
		return
	}
	s.stopDataTimer()
	s.dp.due = false
	wasUp := s.dp.state == DataUp
	s.setData(DataDown, "", why)
	if wasUp {
		msg := fmt.Sprintf("data session down: %s; it is re-opened when the modem is back", why)
		if stopping {
			s.log.Info(msg)
		} else {
			s.log.Warn(msg)
		}
		s.event(gw.EventDataDown, msg, map[string]any{"reason": why})
	}
}

func (s *Session) stopDataTimer() {
	if s.dp.timer != nil {
		s.dp.timer.Stop()
		s.dp.timer = nil
	}
}

// setData records the data session's state for Status and SendUDP.
func (s *Session) setData(state, ip, why string) {
	s.dp.state, s.dp.why = state, why
	s.mu.Lock()
	s.send = sendPath{fam: s.dp.fam, sock: s.dp.sock, up: state == DataUp, why: why}
	if state == DataUnsupported {
		s.send.fam = nil
	}
	s.mu.Unlock()
	s.update(func(st *gw.Status) { st.Data = gw.DataInfo{Mode: s.cfg.IPMode, State: state, IP: ip} })
}

// openData opens the data session and socket. Failures the modem answered
// are retried with a jittered, doubling delay; a silent or vanished modem
// is returned to serve, whose recovery takes over.
func (s *Session) openData(ctx context.Context, eng *at.Engine) error {
	s.dp.due = false
	fresh := s.dp.fresh
	s.setData(DataOpening, "", "opening")
	// QIACT and QIOPEN may each take 150 s; nothing legitimate takes longer.
	octx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	info, err := s.dp.fam.open(octx, sockLink{s: s, eng: eng}, fresh)
	cancel()
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, at.ErrClosed) || errors.Is(err, at.ErrTimeout) {
			s.dp.fresh = true
			s.setData(DataDown, "", err.Error())
			return err
		}
		why := fmt.Sprintf("could not open it: %v", err)
		typ := gw.EventDataOpenFailed
		if why == s.dp.lastFail {
			typ = "" // reported already
		}
		s.dp.lastFail = why
		s.scheduleData(why, typ, fresh)
		return nil
	}
	s.dp.lastFail = ""
	s.dp.fresh = false
	s.dp.sock = info.ID
	s.dp.delay = s.cfg.RetryMin
	s.setData(DataUp, info.IP, "")
	how := "opened"
	if info.Kept {
		how = "still open"
	}
	msg := fmt.Sprintf("data session up: UDP socket %d %s on port %d, device address %s", info.ID, how, s.cfg.IPPort, orUnknown(info.IP))
	s.log.Info(msg)
	s.event(gw.EventDataUp, msg, map[string]any{"socket": info.ID, "port": s.cfg.IPPort, "ip": info.IP})
	if info.Kept {
		// Datagrams may have arrived while nobody listened (their URC went
		// to an earlier session): read what the module holds.
		return s.readSocket(ctx, eng, sockEvent{kind: sockReadable, id: info.ID, n: info.Pending})
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// scheduleData marks the data session down and re-opens it after a
// jittered, doubling delay. fresh asks the next open to tear down first;
// eventType "" only logs.
func (s *Session) scheduleData(why, eventType string, fresh bool) {
	s.dp.fresh = s.dp.fresh || fresh
	if s.dp.timer != nil && s.dp.state == DataDown {
		return // already waiting to re-open
	}
	wait := jitter(s.dp.delay)
	s.dp.delay = min(2*s.dp.delay, s.cfg.RetryMax)
	s.stopDataTimer()
	s.dp.timer = time.NewTimer(wait)
	// The state first: whoever hears the event sees it.
	s.setData(DataDown, "", why)
	msg := fmt.Sprintf("data session down: %s; re-opening in %s", why, wait.Round(time.Millisecond))
	s.log.Warn(msg)
	if eventType != "" {
		s.event(eventType, msg, map[string]any{"reason": why})
	}
}

// dataTimer runs when the re-open delay is over.
func (s *Session) dataTimer() {
	s.dp.timer = nil
	s.dp.due = true
}

// dataURC acts on a socket URC; it reports false for other URCs.
func (s *Session) dataURC(ctx context.Context, eng *at.Engine, u at.URC) (bool, error) {
	if !s.wantData() || s.dp.fam == nil {
		return false, nil
	}
	ev := s.dp.fam.urc(u)
	switch ev.kind {
	case sockNone:
		return false, nil
	case sockInfoURC:
		s.log.Debug("socket URC", "line", u.Line)
	case sockBad:
		s.log.Warn("unreadable socket URC; reading the socket in case it announced data", "line", u.Line, "err", ev.err)
		return true, s.readSocket(ctx, eng, sockEvent{kind: sockReadable, id: s.dp.sock, n: ubloxMaxIO})
	case sockSource:
		s.dp.from = ev.from
	case sockData:
		from := ev.from
		if !from.IsValid() {
			from = s.dp.from
		}
		s.dp.from = netip.AddrPort{}
		s.datagram(ctx, from, ev.data)
	case sockReadable:
		return true, s.readSocket(ctx, eng, ev)
	case sockClosed:
		if ev.id != s.dp.sock || s.dp.state != DataUp {
			s.log.Debug("close of a socket not in use", "line", u.Line)
			return true, nil
		}
		s.scheduleData(fmt.Sprintf("the network closed socket %d (%s)", ev.id, u.Line), gw.EventDataDown, false)
	case sockDeact:
		s.scheduleData(fmt.Sprintf("the network ended the data session (%s)", u.Line), gw.EventDataDown, true)
	}
	return true, nil
}

// readSocket reads the datagrams a URC announced, handing each to the
// Sink before reading the next. While the Sink refuses, the read is put off
// and the datagrams stay in the module's buffer, where they are safer than
// in this process's memory.
func (s *Session) readSocket(ctx context.Context, eng *at.Engine, ev sockEvent) error {
	if ev.id < 0 {
		ev.id = s.dp.sock
	}
	if ev.id < 0 {
		return nil
	}
	for {
		if len(s.dp.held) > 0 {
			s.stashRead(ev)
			return nil
		}
		dgs, more, err := s.dp.fam.read(ctx, sockLink{s: s, eng: eng}, &ev)
		for _, d := range dgs {
			s.datagram(ctx, d.from, d.data)
		}
		if err != nil || !more {
			return err
		}
	}
}

// sweepSocket reads the open socket without being told to, on every poll
// that passes. A module that hung (or glitched) while a datagram arrived
// lost its notification, and a Quectel module in buffer mode announces
// nothing more until a read has found its buffer empty: without this, the
// datagrams would wait until a recovery reopened the socket. A module that
// pushes every datagram holds none; its read does nothing.
func (s *Session) sweepSocket(ctx context.Context, eng *at.Engine) error {
	if !s.wantData() || s.dp.fam == nil || s.dp.state != DataUp || s.dp.sock < 0 {
		return nil
	}
	return s.readSocket(ctx, eng, sockEvent{kind: sockReadable, id: s.dp.sock})
}

// stashRead keeps a put-off read, merged with one for the same socket.
func (s *Session) stashRead(ev sockEvent) {
	for i := range s.dp.stash {
		if s.dp.stash[i].id == ev.id {
			s.dp.stash[i].n += ev.n
			return
		}
	}
	s.dp.stash = append(s.dp.stash, ev)
}

// allowedSource reports whether ip.allowed_sources lets from through.
func (s *Session) allowedSource(from netip.AddrPort) bool {
	if len(s.cfg.AllowedSources) == 0 {
		return true
	}
	if !from.IsValid() {
		return false
	}
	a := from.Addr().Unmap()
	for _, p := range s.cfg.AllowedSources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// datagram takes one received datagram: checked against the allowlist,
// then handed to the Sink before anything else happens to it.
func (s *Session) datagram(ctx context.Context, from netip.AddrPort, data []byte) {
	src := ""
	if from.IsValid() {
		src = from.String()
	}
	if !s.allowedSource(from) {
		msg := fmt.Sprintf("IP Command from %s dropped: source not in ip.allowed_sources", orUnknown(src))
		s.log.Warn(msg, "bytes", len(data))
		s.event(gw.EventSourceRejected, msg, map[string]any{"from": src, "bytes": len(data)})
		return
	}
	if len(data) > gw.MaxUDPPayload {
		// The same rule as ip.mode os: an IP Command holds at most 1300
		// bytes, and a module reads up to 1500 (a framed push up to 64 KiB).
		msg := fmt.Sprintf("IP Command from %s dropped: it is %d bytes, one IP Command holds at most %d", orUnknown(src), len(data), gw.MaxUDPPayload)
		s.log.Warn(msg)
		s.event(gw.EventIPOversize, msg, map[string]any{"from": src, "port": s.cfg.IPPort, "size": len(data)})
		return
	}
	m := gw.Inbound{Channel: gw.ChannelIP, From: src, Port: s.cfg.IPPort, Payload: data, Binary: !gw.IsText(data), ReceivedAt: time.Now().UTC()}
	m.ID = gw.MessageID(m)
	s.dp.held = append(s.dp.held, m)
	if over := len(s.dp.held) - maxHeldDatagrams; over > 0 {
		for _, d := range s.dp.held[:over] {
			msg := fmt.Sprintf("IP Command %s from %s lost: the store refused it and %d more are waiting in memory", d.ID, d.From, maxHeldDatagrams)
			s.log.Error(msg)
			s.event(gw.EventIPDropped, msg, map[string]any{"id": d.ID, "from": d.From})
		}
		s.dp.held = append([]gw.Inbound(nil), s.dp.held[over:]...)
	}
	if len(s.dp.held) == 1 {
		s.flushHeld(ctx)
	}
}

// flushHeld hands held datagrams to the Sink in order. A refusal keeps
// them and retries after a jittered, doubling delay.
func (s *Session) flushHeld(ctx context.Context) {
	if s.dp.heldTimer != nil {
		s.dp.heldTimer.Stop()
		s.dp.heldTimer = nil
	}
	for len(s.dp.held) > 0 {
		m := s.dp.held[0]
		if err := s.sink.Put(ctx, m); err != nil {
			if ctx.Err() != nil {
				return
			}
			if s.dp.heldDelay <= 0 {
				s.dp.heldDelay = s.cfg.RetryMin
			}
			wait := jitter(s.dp.heldDelay)
			s.dp.heldDelay = min(2*s.dp.heldDelay, s.cfg.RetryMax)
			s.dp.heldTimer = time.NewTimer(wait)
			s.log.Warn("could not store an IP Command; keeping it and retrying", "id", m.ID, "held", len(s.dp.held), "retry_in", wait, "err", err)
			if !s.dp.storeFailing {
				s.dp.storeFailing = true
				msg := fmt.Sprintf("could not store the IP Command from %s (%d bytes); it is kept in memory and retried: %v", m.From, len(m.Payload), err)
				s.event(gw.EventIPStoreFailed, msg, map[string]any{"id": m.ID, "from": m.From})
			}
			return
		}
		s.log.Info("IP Command received", "id", m.ID, "from", m.From, "bytes", len(m.Payload))
		s.dp.held[0] = gw.Inbound{}
		s.dp.held = s.dp.held[1:]
	}
	s.dp.held = nil
	s.dp.storeFailing = false
	s.dp.heldDelay = s.cfg.RetryMin
}

// flushHeldAtExit gives datagrams still held a last chance when Run ends:
// they exist nowhere else.
func (s *Session) flushHeldAtExit() {
	if len(s.dp.held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.flushHeld(ctx)
	for _, m := range s.dp.held {
		s.log.Error("IP Command lost at shutdown: the store refused it", "id", m.ID, "from", m.From, "bytes", len(m.Payload))
	}
	s.dp.held = nil
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

// sendUDPModem sends one datagram through the module's socket.
func (s *Session) sendUDPModem(ctx context.Context, op string, payload []byte) error {
	s.mu.Lock()
	sp := s.send
	s.mu.Unlock()
	if sp.fam == nil {
		return &OpError{Op: op, Err: fmt.Errorf("data session down: the %q module profile has no sockets (ip.mode modem needs quectel, simcom, sim7080 or ublox)", s.Status().Modem.Profile)}
	}
	if !sp.up {
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
	host, port, err := cloudAddr(s.cfg.Cloud)
	if err != nil {
		return &OpError{Op: op, Err: err}
	}
	eng, err := s.engine()
	if err != nil {
		return &OpError{Op: op, Err: fmt.Errorf("data session down: %w", err)}
	}
	c := sp.fam.sendCmd(sp.sock, host, port, payload)
	if _, err := eng.Do(ctx, c); err != nil {
		return &OpError{Op: fmt.Sprintf("%s to %s (%s)", op, s.cfg.Cloud, cmdName(c.Line)), Err: err}
	}
	s.log.Info("IP Command sent", "to", s.cfg.Cloud, "bytes", len(payload))
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
