package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"time"

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
)

// Config configures a Session. Zero durations take the defaults above.
type Config struct {
	// Port is the serial device, preferably /dev/serial/by-id/...; it is
	// opened by name again after the module re-enumerates.
	Port string
	Baud int
	// Profile is auto (or empty), generic, quectel, simcom or ublox.
	Profile string
	// Init are extra AT commands sent after the standard initialisation;
	// one that fails is reported as an event and skipped.
	Init []string
	// SMS enables receiving and sending SMS Commands.
	SMS bool
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
	// RetryMin and RetryMax bound the jittered, doubling delay between
	// attempts to reopen the port.
	RetryMin, RetryMax time.Duration

	// IP Commands over module sockets (issue 6); only IPMode is used yet.
	IPMode string
	IPPort int
	APN    string
	Cloud  string

	// OnEvent and OnStatus are called from a goroutine of the session's own,
	// in order; they may block without stalling the modem. Nil is fine.
	OnEvent  func(Event)
	OnStatus func(Status)
	Logger   *slog.Logger
	// Open opens the port; nil means go.bug.st/serial. Tests inject fakes.
	Open func(port string, baud int) (io.ReadWriteCloser, error)
}

// Session is one modem: it owns the serial port, keeps the modem
// initialised, hands received SMS to the Sink and sends what the relay asks.
// Run does the work; the other methods may be called from any goroutine.
type Session struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
	note *notifier

	mu      sync.Mutex
	eng     *at.Engine // nil while not connected and initialised
	status  Status
	lastErr error

	// Run's goroutine only.
	pending   map[string]*pendingSet
	restored  bool
	needDrain bool // drain the SIM now (start, SMS DONE, unreadable +CMTI)
	// retryDrain: an SMS is still on the SIM because the sink or CMGD
	// failed. New +CMTIs wait, so nothing overtakes it; the next poll drains.
	retryDrain   bool
	skipped      int
	storageAlarm string
	prof         profile
	echoBase     int64
	regs         map[string]registration
	storeFailing bool

	// tick replaces the poll ticker in tests, which poll when they choose;
	// handled, when set, is told each URC the worker has acted on.
	tick    <-chan time.Time
	handled func(at.URC)
	// cmdTimeout, when set, replaces every command's timeout (tests).
	cmdTimeout time.Duration
}

// pendingSet is a concatenated SMS waiting for its other parts.
type pendingSet struct {
	first    time.Time // monotonic; when the first part was seen (or restored)
	complete bool      // every part is held but Assemble failed; retry
}

// NewSession returns a session on the modem cfg describes; Run starts it.
func NewSession(cfg Config, sink Sink) *Session {
	if cfg.Baud <= 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.ReassemblyTimeout <= 0 {
		cfg.ReassemblyTimeout = DefaultReassemblyTimeout
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
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
		cfg:     cfg,
		sink:    sink,
		log:     log,
		note:    newNotifier(cfg.OnEvent, cfg.OnStatus, log),
		pending: map[string]*pendingSet{},
		regs:    map[string]registration{},
	}
	s.status.Data.Mode = cfg.IPMode
	s.status.Network.Registration = "unknown"
	return s
}

func openSerial(path string, baud int) (io.ReadWriteCloser, error) {
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Run opens the port, initialises the modem and serves it until ctx ends,
// reopening the port with jittered backoff whenever the session fails (the
// port vanished, the modem stopped answering or reset). It returns nil when
// ctx is cancelled, and an error only for a configuration it cannot use.
func (s *Session) Run(ctx context.Context) error {
	if s.cfg.Port == "" {
		return errors.New("modem: no serial port configured (modem.port)")
	}
	if s.sink == nil {
		return errors.New("modem: no sink to hand messages to")
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
	delay := s.cfg.RetryMin
	for {
		started := time.Now()
		err := s.attempt(ctx)
		s.disconnected(err)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > 2*s.cfg.RetryMax {
			delay = s.cfg.RetryMin // it ran well for a while: start over
		}
		wait := jitter(delay)
		s.log.Warn("modem session ended; reopening", "err", err, "retry_in", wait)
		s.event(EventModemLost, fmt.Sprintf("modem session ended (%v); reopening in %s", err, wait.Round(time.Millisecond)), nil)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(2*delay, s.cfg.RetryMax)
		s.update(func(st *Status) { st.Recovery.Reopens++ })
	}
}

// jitter spreads d by ±25% so gateways restarted together do not retry in
// step.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// errRestarted ends an attempt when the module reset under a live port.
var errRestarted = errors.New("the modem restarted")

// attempt is one session: open, initialise, serve. The port is closed
// when it returns.
func (s *Session) attempt(ctx context.Context) error {
	if !s.restored {
		s.restore(ctx)
	}
	port, err := s.cfg.Open(s.cfg.Port, s.cfg.Baud)
	if err != nil {
		return &OpError{Op: "open " + s.cfg.Port, Err: err}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	urcs := make(chan at.URC, 64)
	// A live module answers the resynchronisation probe at once; a short
	// wait lets a silent one be noticed (and the port reopened) sooner.
	probe := 2 * time.Second
	if s.cmdTimeout > 0 {
		probe = s.cmdTimeout
	}
	eng := at.New(port, at.Config{
		Logger:       s.log,
		Timeout:      s.cmdTimeout,
		ProbeTimeout: probe,
		OnURC: func(u at.URC) {
			select {
			case urcs <- u:
			case <-ctx.Done():
			}
		},
	})
	defer func() {
		// Closing the port first unblocks a write stuck on a dead device.
		if err := port.Close(); err != nil {
			s.log.Debug("close port", "err", err)
		}
		eng.Close()
	}()
	if err := s.initialise(ctx, eng); err != nil {
		return err
	}
	s.skipBootURCs(urcs)
	s.mu.Lock()
	s.eng = eng
	s.lastErr = nil
	s.mu.Unlock()
	s.update(func(st *Status) { st.Ready = true })
	st := s.Status()
	s.event(EventModemConnected, fmt.Sprintf("modem %s %s ready on %s", st.Modem.Manufacturer, st.Modem.Model, s.cfg.Port), nil)
	if s.cfg.SMS {
		s.needDrain = true
	}
	return s.serve(ctx, eng, urcs)
}

// skipBootURCs drops the URCs that arrived while the modem was being
// initialised: its boot announcements (RDY, SMS DONE) describe the boot
// that initialise just handled, and the drain that follows finds any SMS
// a +CMTI announced. Registration reports still count.
func (s *Session) skipBootURCs(urcs <-chan at.URC) {
	for {
		select {
		case u := <-urcs:
			if strings.HasPrefix(u.Line, "+CEREG:") || strings.HasPrefix(u.Line, "+CGREG:") || strings.HasPrefix(u.Line, "+CREG:") {
				s.registrationURC(u.Line)
			} else {
				s.log.Debug("URC during initialisation", "line", u.Line)
			}
		default:
			return
		}
	}
}

// serve handles URCs and polls until the session fails.
func (s *Session) serve(ctx context.Context, eng *at.Engine, urcs <-chan at.URC) error {
	pollC := s.tick
	if pollC == nil {
		poll := time.NewTicker(s.cfg.PollInterval)
		defer poll.Stop()
		pollC = poll.C
	}
	failures := 0
	for {
		var err error
		if s.needDrain {
			err = s.drain(ctx, eng)
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-eng.Done():
				if err := eng.Err(); err != nil {
					return err
				}
				return at.ErrClosed
			case u := <-urcs:
				err = s.handleURC(ctx, eng, u)
				if s.handled != nil {
					s.handled(u)
				}
			case <-pollC:
				err = s.poll(ctx, eng)
			}
		}
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, errRestarted):
			s.event(EventModemRestarted, "the modem restarted; initialising it again", nil)
			s.update(func(st *Status) { st.Recovery.Reinits++ })
			return err
		case errors.Is(err, errStore):
			// The sink refused a message: it stays on the SIM, and the next
			// poll tries again. Not the modem's fault.
		case errors.Is(err, at.ErrClosed), ctx.Err() != nil:
			return err
		case errors.Is(err, at.ErrTimeout):
			if failures++; failures >= 3 {
				return fmt.Errorf("the modem stopped answering: %w", err)
			}
			s.log.Warn("modem command timed out", "err", err, "consecutive", failures)
		default:
			s.log.Warn("modem command failed", "err", err)
		}
	}
}

// disconnected records why the session ended.
func (s *Session) disconnected(err error) {
	s.mu.Lock()
	s.eng = nil
	s.lastErr = err
	s.mu.Unlock()
	s.update(func(st *Status) {
		st.Ready = false
		if err != nil && !errors.Is(err, context.Canceled) {
			st.Recovery.LastError = err.Error()
		}
	})
}

// engine returns the engine of a connected, initialised session.
func (s *Session) engine() (*at.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eng == nil {
		if s.lastErr != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ErrNotReady, s.lastErr)
		}
		return nil, ErrNotReady
	}
	return s.eng, nil
}

// Status returns the current snapshot.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Healthy returns nil while the modem answers: it answered a command
// within two poll intervals (plus slack), or a command is running and has
// not yet timed out. It is the probe that gates the systemd watchdog.
func (s *Session) Healthy() error {
	eng, err := s.engine()
	if err != nil {
		return err
	}
	if deadline, busy := eng.Busy(); busy && time.Now().Before(deadline) {
		return nil
	}
	window := 2*s.cfg.PollInterval + 30*time.Second
	last := eng.LastAnswer()
	if last.IsZero() || time.Since(last) > window {
		return fmt.Errorf("the modem has not answered for over %s", window)
	}
	return nil
}

// update changes the status and reports it when it changed.
func (s *Session) update(f func(*Status)) {
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
	s.note.event(Event{Type: typ, Message: msg, Time: time.Now().UTC(), Fields: fields})
}

// do runs one command, naming the operation in its error.
func (s *Session) do(ctx context.Context, eng *at.Engine, op string, c at.Cmd) (at.Reply, error) {
	r, err := eng.Do(ctx, c)
	if err != nil {
		return r, &OpError{Op: op + " " + strings.TrimPrefix(c.Line, "AT"), Err: err}
	}
	return r, nil
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

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
