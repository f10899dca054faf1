package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ring"
	"github.com/simgate/simgate/modem/at"
	"go.bug.st/serial"
)

// Defaults of Config.
const (
	DefaultBaud         = 115200
	DefaultPollInterval = 30 * time.Second
	DefaultBootTimeout  = 60 * time.Second
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 60 * time.Second
	// DefaultReassemblyTimeout is how long the parts of a concatenated SMS
	// are held for the missing ones. The Super SIM cloud retries an SMS for
	// up to 24 hours, so a part may legitimately arrive a day late; giving
	// up sooner would split one message into two partial ones.
	DefaultReassemblyTimeout = 24 * time.Hour
	// DefaultProbeTimeout bounds the answer to the AT probe sent when the
	// modem went silent; a live module answers AT within milliseconds.
	DefaultProbeTimeout = 2 * time.Second
	// DefaultIdleProbe is how long the line may be silent before an AT
	// checks the modem; short enough to notice a hang of seconds.
	DefaultIdleProbe = 5 * time.Second
	// DefaultPortGoneLimit is how long the port may stay gone before
	// Healthy reports it: USB re-enumeration takes seconds, and the unit's
	// watchdog (3 minutes) must still have time to restart the process.
	DefaultPortGoneLimit = 90 * time.Second
	// DefaultIPPort, DefaultAPN and DefaultCloud are the Super SIM values.
	DefaultIPPort = gw.IPCommandsPort
	DefaultAPN    = gw.APN
	DefaultCloud  = gw.IPCommandsCloud
)

// Config configures a Session. Zero durations take the defaults above.
type Config struct {
	// Port is the serial device, preferably /dev/serial/by-id/...; it is
	// opened by name again after the module re-enumerates.
	Port string
	Baud int
	// Profile is auto (or empty), generic, quectel, simcom, sim7080 or ublox.
	Profile string
	// Init are extra AT commands sent after the standard initialisation;
	// one that fails is reported as an event and skipped.
	Init []string
	// SMS enables receiving and sending SMS Commands.
	SMS bool
	// DeliveryReports sends each SMS with a status report requested and
	// hands the reports to a Sink that is a ReportSink (report.go).
	DeliveryReports bool
	// AllowedSenders are the senders whose SMS are accepted ("000" for
	// Super SIM); empty accepts any. A leading + is ignored when comparing.
	AllowedSenders    []string
	ReassemblyTimeout time.Duration
	// PollInterval is how often signal, registration and SMS storage are
	// polled; it also bounds how long a silent modem goes unnoticed.
	PollInterval time.Duration
	// BootTimeout bounds the wait for the modem to answer, the SIM to be
	// ready and SMS to be usable after the port opens.
	BootTimeout time.Duration
	// RetryMin and RetryMax bound the jittered, doubling delays between
	// recovery steps, attempts to reopen the port and to re-open the data
	// session.
	RetryMin, RetryMax time.Duration
	// ProbeTimeout bounds the answer to the AT probe, the first recovery
	// step when the modem stops answering.
	ProbeTimeout time.Duration
	// IdleProbe is how long the modem may say nothing at all before an AT
	// checks that it still answers. A hung module is silent, and so is a
	// healthy idle one; without asking, a hang would go unnoticed (and
	// SMS unannounced) until the next poll. Default 5 s.
	IdleProbe time.Duration
	// PortGoneLimit is how long the port may stay gone (USB re-enumeration)
	// before Healthy reports an error and the recovery gives up.
	PortGoneLimit time.Duration

	// IPMode is modem (IP Commands through the module's own UDP socket),
	// os or off; only "modem" makes the session open a socket.
	IPMode string
	// IPPort is the device port IP Commands arrive on (default 6969).
	IPPort int
	// APN is the data session's access point (default "super").
	APN string
	// Cloud is where SendUDP sends, "IP:PORT" (default 100.64.0.1:6969).
	Cloud string
	// AllowedSources are the networks IP Commands are accepted from; a
	// datagram from elsewhere is dropped with a "source_rejected" event.
	// Empty accepts any.
	AllowedSources []netip.Prefix
	// IPDirectPush opens the Quectel socket in direct push mode (the data
	// comes in the +QIURC "recv" URC) instead of buffer mode (the module
	// keeps datagrams until AT+QIRD). Buffer mode, the default, leaves
	// datagrams in the module while the host cannot store them.
	IPDirectPush bool
	// SIM7080Socket chooses the SIM7080's socket: "server" (AT+CASERVER on
	// IPPort), "client" (AT+CAOPEN to Cloud, on a local port the module
	// picks) or "" for a server, and a client where the firmware refuses.
	SIM7080Socket string

	// OnEvent and OnStatus are called from a goroutine of the session's own,
	// in order; they may block without stalling the modem. Nil is fine.
	OnEvent  func(gw.Event)
	OnStatus func(gw.Status)
	Logger   *slog.Logger
	// Open opens the port; nil means go.bug.st/serial. Tests inject fakes.
	Open func(port string, baud int) (io.ReadWriteCloser, error)
}

// Session is one modem: it owns the serial port, keeps the modem
// initialised, hands received SMS and datagrams to the Sink and sends what
// the relay asks. Run does the work; the other methods may be called from
// any goroutine.
//
// The session owns the engine, the URC routing and the poll; the rest is
// done by parts that get only what they need (a commander or a narrower
// wire on the current engine, an eventer, their settings): SMS receive
// (smsReceiver, sms.go), the recovery ladder (recovery.go), the data path
// (data.go) with one socketFamily per module family (sock_*.go) and the
// inbox of received datagrams (inbox.go), health and network (status.go)
// and the initialisation's commands (bringUp, init.go).
type Session struct {
	cfg  Config
	sink gw.Sink
	log  *slog.Logger
	note *notifier

	mu     sync.Mutex // guards status
	status gw.Status
	health *health // for Healthy and senders (status.go)

	// Run's goroutine only.
	sms      *smsReceiver
	prof     profile
	echoBase int64

	urcs *at.Engine // the engine whose URCs are being taken
	// backlog holds URCs put aside while waiting for a particular one;
	// bounded in bytes like the engine's queue, the oldest go first.
	backlog *ring.Queue[at.URC]
	pollDue bool
	// idle fires when the line has been silent for Config.IdleProbe;
	// idleAt is when the last idle probe was due, so a busy engine defers
	// it rather than spinning.
	idle   *time.Timer
	idleAt time.Time

	dp *dataPath // ip.mode "modem" (data.go)
	in *inbox    // datagrams on their way to the Sink (inbox.go)

	rec    *ladder  // the recovery ladder (recovery.go)
	net    *network // signal and registration (status.go)
	opened bool     // the current attempt opened the port
}

// NewSession returns a session on the modem cfg describes; Run starts it.
func NewSession(cfg Config, sink gw.Sink) *Session {
	orDefault(&cfg.Baud, DefaultBaud)
	orDefault(&cfg.PollInterval, DefaultPollInterval)
	orDefault(&cfg.BootTimeout, DefaultBootTimeout)
	orDefault(&cfg.ReassemblyTimeout, DefaultReassemblyTimeout)
	orDefault(&cfg.RetryMin, DefaultRetryMin)
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	orDefault(&cfg.ProbeTimeout, DefaultProbeTimeout)
	orDefault(&cfg.IdleProbe, DefaultIdleProbe)
	orDefault(&cfg.PortGoneLimit, DefaultPortGoneLimit)
	orDefault(&cfg.IPPort, DefaultIPPort)
	if cfg.APN == "" {
		cfg.APN = DefaultAPN
	}
	if cfg.Cloud == "" {
		cfg.Cloud = DefaultCloud
	}
	if cfg.Open == nil {
		cfg.Open = openSerial
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "modem", "port", cfg.Port)
	s := &Session{
		cfg:  cfg,
		sink: sink,
		log:  log,
		note: newNotifier(cfg.OnEvent, cfg.OnStatus, log),
		backlog: ring.New(ring.Bounds[at.URC]{
			Cost: at.MaxQueuedURCBytes, CostOf: at.URC.Size, KeepLast: true,
		}),
		health: newHealth(),
	}
	s.sms = newSMSReceiver(smsSettings{SMS: cfg.SMS, AllowedSenders: cfg.AllowedSenders, ReassemblyTimeout: cfg.ReassemblyTimeout},
		sink, log, s, s, func(u gw.StoreUse) { s.update(func(st *gw.Status) { st.SMSStore = u }) })
	s.in = newInbox(cfg.IPPort, cfg.AllowedSources, cfg.RetryMin, cfg.RetryMax, log, s, sink)
	s.dp = newDataPath(dataSettings{
		mode: cfg.IPMode, port: cfg.IPPort, apn: cfg.APN, cloud: cfg.Cloud,
		retryMin: cfg.RetryMin, retryMax: cfg.RetryMax,
	}, log, s, s.in, func(d gw.DataInfo) { s.update(func(st *gw.Status) { st.Data = d }) })
	s.net = newNetwork(log, s, func(f func(*gw.NetworkInfo)) { s.update(func(st *gw.Status) { f(&st.Network) }) }, s.dp.registrationBack)
	s.rec = newLadder(ladderSettings{port: cfg.Port, retryMin: cfg.RetryMin, retryMax: cfg.RetryMax, portGone: cfg.PortGoneLimit},
		log, s, func(f func(*gw.Recovery)) { s.update(func(st *gw.Status) { f(&st.Recovery) }) })
	s.status.Data.Mode = cfg.IPMode
	if s.dp.wanted() {
		s.status.Data.State = DataDown
	}
	s.status.Network.Registration = "unknown"
	return s
}

// orDefault sets *v to d when it is zero or less: unset in Config.
func orDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func openSerial(path string, baud int) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Run opens the port, initialises the modem and serves it until ctx ends,
// climbing the recovery ladder (recovery.go) whenever the modem stops
// answering or the port fails. It returns nil when ctx is cancelled, and an
// error only for a configuration it cannot use.
func (s *Session) Run(ctx context.Context) error {
	if s.cfg.Port == "" {
		return errors.New("modem: no serial port configured (modem.port)")
	}
	if s.sink == nil {
		return errors.New("modem: no sink to hand messages to")
	}
	if s.dp.wanted() {
		if _, _, err := cloudAddr(s.cfg.Cloud); err != nil {
			s.log.Error("IP Commands cannot be sent until ip.cloud is fixed", "err", err)
		}
	}
	nctx, stopNotes := context.WithCancel(context.Background())
	notesDone := make(chan struct{})
	go func() {
		s.note.run(nctx)
		close(notesDone)
	}()
	defer func() {
		stopNotes()
		// Deliver what is queued, but do not hang on a callback that never
		// returns.
		select {
		case <-notesDone:
		case <-time.After(2 * time.Second):
			s.log.Warn("event or status callback still busy at shutdown")
		}
	}()
	defer s.in.flushAtExit()
	// Between openings of the port: jittered, so gateways restarted
	// together do not retry in step, and doubling.
	reopen := backoff.New(s.cfg.RetryMin, s.cfg.RetryMax, backoff.Around)
	for {
		started := time.Now()
		s.opened = false
		err := s.attempt(ctx)
		s.disconnected(err)
		if ctx.Err() != nil {
			return nil
		}
		s.rec.portDown(err, s.opened, s.health.ready())
		if s.rec.healthySince(started) || time.Since(started) > 2*s.cfg.RetryMax {
			reopen.Reset() // it ran well for a while: start over
		}
		wait := reopen.Next()
		if s.opened {
			s.log.Warn("modem session ended; reopening the port", "err", err, "retry_in", wait)
			s.event(gw.EventModemLost, fmt.Sprintf("modem session ended (%v); reopening in %s", err, wait.Round(time.Millisecond)), nil)
		} else {
			s.log.Info("modem port not available yet", "err", err, "retry_in", wait)
		}
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// errRestarted ends an attempt when the module reset under a live port.
var errRestarted = errors.New("the modem restarted")

// attempt is one opening of the port: initialise, serve, and climb the
// ladder's steps that need the port (probe, re-init, reset). It returns
// when the port failed or the ladder reached the step that reopens it; the
// port is closed then.
func (s *Session) attempt(ctx context.Context) error {
	s.sms.restoreOnce(ctx)
	port, err := s.cfg.Open(s.cfg.Port, s.cfg.Baud)
	if err != nil {
		return &OpError{Op: "open " + s.cfg.Port, Err: err}
	}
	s.opened = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.backlog.Clear()
	// A live module answers the resynchronisation probe at once; a short
	// wait lets a silent one be noticed (and the ladder climbed) sooner.
	probe := s.probeTimeout()
	s.rec.probeTimeout = probe
	// URCs are pulled rather than pushed: the drain sees every +CMTI that
	// arrived before its AT+CMGL answer, and what waits is bounded in bytes
	// by the engine's queue alone.
	eng := at.New(port, at.Config{
		Logger:       s.log,
		Timeout:      testTimeout(s),
		ProbeTimeout: probe,
		PullURCs:     true,
		Trace:        true, // the wire at log.level: debug
	})
	s.urcs = eng
	s.health.opened(eng)
	defer func() {
		// Closing the port first unblocks a write stuck on a dead device.
		eng.Closing()
		if err := port.Close(); err != nil {
			s.log.Debug("close port", "err", err)
		}
		eng.Close()
	}()
	initNow := true
	for {
		var err error
		if initNow {
			if err = s.initialise(ctx, eng); err == nil {
				initNow = false
				s.rec.initialised()
				s.afterInit()
				st := s.Status()
				s.event(gw.EventModemConnected, fmt.Sprintf("modem %s %s ready on %s", st.Modem.Manufacturer, st.Modem.Model, s.cfg.Port), nil)
				s.sms.requestDrain()
			}
		}
		if err == nil {
			err = s.serve(ctx, eng)
		}
		s.stopServing(ctx, err)
		if ctx.Err() != nil || gone(eng) {
			return err
		}
		if errors.Is(err, errRestarted) || errors.Is(err, at.ErrReset) {
			// The module reset by itself (brown-out, its own watchdog): it
			// answers, it only needs initialising again.
			s.event(gw.EventModemRestarted, "the modem restarted; initialising it again", nil)
			s.update(func(st *gw.Status) {
				st.Recovery.Reinits++
				st.Recovery.LastError = err.Error()
			})
			initNow = true
			continue
		}
		next, err := s.rec.onPort(ctx, onEngine{s, eng}, err, initNow)
		if next == levelReopen || ctx.Err() != nil || gone(eng) {
			return err
		}
		initNow = next != levelProbe
	}
}

// gone reports whether the engine stopped because the port failed.
func gone(eng interface{ Done() <-chan struct{} }) bool {
	select {
	case <-eng.Done():
		return true
	default:
		return false
	}
}

// serve handles URCs, polls and the data session until the session fails.
func (s *Session) serve(ctx context.Context, eng *at.Engine) error {
	pollC := pollTicks(s)
	if pollC == nil {
		poll := time.NewTicker(s.cfg.PollInterval)
		defer poll.Stop()
		pollC = poll.C
	}
	s.health.serving(eng)
	s.update(func(st *gw.Status) { st.Ready = true })
	s.dp.start(s.prof)
	if s.rec.recovering() {
		s.pollDue = true // prove the recovery worked
		// SMS that reached a silent module went unannounced; drain them
		// before later ones, in the order they were sent.
		s.sms.requestDrain()
	}
	s.idle = time.NewTimer(s.cfg.IdleProbe)
	defer s.idle.Stop()
	s.idleAt = time.Now()
	for {
		err := s.step(ctx, eng, pollC)
		switch {
		case err == nil:
		case errors.Is(err, errRestarted), errors.Is(err, at.ErrReset):
			return err
		case errors.Is(err, errStore):
			// The sink refused a message: it stays on the SIM, and the next
			// poll tries again. Not the modem's fault.
		case errors.Is(err, at.ErrClosed), ctx.Err() != nil:
			return err
		case errors.Is(err, at.ErrTimeout):
			return fmt.Errorf("the modem stopped answering: %w", err)
		default:
			s.log.Warn("modem command failed", "err", err)
		}
	}
}

// step does one piece of work. Work already waiting goes first, URCs before
// the rest, so a URC that arrived before a timer fired is acted on first.
func (s *Session) step(ctx context.Context, eng *at.Engine, pollC <-chan time.Time) error {
	if u, ok := s.nextURC(); ok {
		return s.onURC(ctx, eng, u)
	}
	switch {
	case s.sms.drainDue():
		return s.sms.drain(ctx, onEngine{s, eng})
	case s.pollDue:
		s.pollDue = false
		return s.pollChecked(ctx, eng)
	case s.dp.hasWork():
		return s.dp.work(ctx, onEngine{s, eng})
	}
	s.idle.Reset(s.idleWait(eng))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-eng.Done():
		if err := eng.Err(); err != nil {
			return fmt.Errorf("%w: %w", at.ErrClosed, err)
		}
		return at.ErrClosed
	case <-s.idle.C:
		return s.idleCheck(ctx, eng)
	case <-eng.URCReady():
		// Taken by nextURC at the next step.
	case <-pollC:
		return s.pollChecked(ctx, eng)
	case <-s.dp.retryC():
		s.dp.retryDue()
	case <-s.in.retryC():
		s.in.retry(ctx)
	}
	return nil
}

// idleWait is how long until the line has been silent for IdleProbe.
func (s *Session) idleWait(eng *at.Engine) time.Duration {
	last := eng.LastRead()
	if s.idleAt.After(last) {
		last = s.idleAt
	}
	return max(s.cfg.IdleProbe-time.Since(last), 0)
}

// idleCheck asks a silent modem whether it still answers. Silence is
// normal for an idle module, so an answer is not news; no answer within
// ProbeTimeout is a timeout like any other, and the ladder starts.
func (s *Session) idleCheck(ctx context.Context, eng *at.Engine) error {
	s.idleAt = time.Now()
	if _, busy := eng.Busy(); busy {
		return nil // a command is running; its own timeout watches the modem
	}
	_, err := s.do(ctx, eng, "check the silent modem", at.Cmd{Line: "AT", Timeout: s.probeTimeout()})
	if err != nil && !isFatal(err) {
		return nil // it answered, if only with an error
	}
	return err
}

// Seams for this package's tests (export_test.go sets them): they poll
// when they choose, wait until a URC has been acted on, and shorten every
// command's timeout. In production they change nothing.
var (
	pollTicks   = func(*Session) <-chan time.Time { return nil }
	urcHandled  = func(*Session, at.URC) {}
	testTimeout = func(*Session) time.Duration { return 0 }
)

// probeTimeout bounds the answer to a probe (AT) of the modem.
func (s *Session) probeTimeout() time.Duration {
	if t := testTimeout(s); t > 0 {
		return t
	}
	return s.cfg.ProbeTimeout
}

// stopServing runs when serve or initialise returned: senders get "not
// ready" and the data session is down until the modem is served again.
func (s *Session) stopServing(ctx context.Context, err error) {
	s.health.stopped(err)
	s.update(func(st *gw.Status) { st.Ready = false })
	switch {
	case ctx.Err() != nil:
		s.dp.stop("the modem session is stopping", true)
	case err != nil:
		s.dp.stop(fmt.Sprintf("the modem is being recovered (%v)", err), false)
	default:
		s.dp.stop("the modem is being recovered", false)
	}
}

// disconnected records why the port was closed.
func (s *Session) disconnected(err error) {
	s.health.closed(err)
	s.update(func(st *gw.Status) {
		st.Ready = false
		if err != nil && !errors.Is(err, context.Canceled) {
			st.Recovery.LastError = err.Error()
		}
	})
	if !errors.Is(err, context.Canceled) {
		s.dp.stop(fmt.Sprintf("the modem port closed (%v)", err), false)
	}
}

// Status returns the current snapshot.
func (s *Session) Status() gw.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// update changes the status and reports it when it changed.
func (s *Session) update(f func(*gw.Status)) {
	s.mu.Lock()
	old := s.status
	f(&s.status)
	changed := !reflect.DeepEqual(old, s.status)
	snap := s.status
	s.mu.Unlock()
	if changed {
		s.note.statusChanged(snap)
	}
}

func (s *Session) event(typ, msg string, fields map[string]any) {
	s.note.event(gw.Event{Type: typ, Message: msg, Time: time.Now().UTC(), Fields: fields})
}

// do runs one command, naming the operation in its error.
func (s *Session) do(ctx context.Context, eng *at.Engine, op string, c at.Cmd) (at.Reply, error) {
	r, err := eng.Do(ctx, c)
	if err != nil {
		return r, &OpError{Op: op + " " + strings.TrimPrefix(c.Line, "AT"), Err: err}
	}
	return r, nil
}

// onEngine is an engine as the session's parts use it: commands named in
// their errors (do), waiting for a URC with the others kept in the backlog
// (awaitURC), and the engine's own methods.
type onEngine struct {
	s *Session
	*at.Engine
}

func (o onEngine) do(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	return o.s.do(ctx, o.Engine, op, c)
}

func (o onEngine) awaitURC(ctx context.Context, what string, timeout time.Duration, match func(at.URC) bool) (at.URC, error) {
	return o.s.awaitURC(ctx, o.Engine, what, timeout, match)
}

// cmeCode and cmsCode return the code of a +CME/+CMS ERROR, or -1.
func cmeCode(err error) int {
	var e *at.CMEError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

func cmsCode(err error) int {
	var e *at.CMSError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}
