package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simgate/simgate/internal/ring"
)

// Config configures an Engine. The zero value works.
type Config struct {
	// URCs is the URC table; nil means DefaultURCs().
	URCs []URCSpec
	// OnURC receives every URC in arrival order, from a goroutine of its
	// own: it may block or issue commands without stalling the port. URCs
	// queue meanwhile, up to MaxQueuedURCs and MaxQueuedURCBytes; beyond
	// that the oldest are dropped and logged. Nil drops URCs after logging
	// them, unless PullURCs is set.
	OnURC func(URC)
	// PullURCs keeps URCs queued (within the same bounds) for NextURC
	// instead of handing them to OnURC. The caller then sees every URC
	// that arrived before a command's reply as soon as Do returns.
	PullURCs bool
	// Timeout overrides DefaultTimeout for commands without their own.
	Timeout time.Duration
	// ProbeTimeout bounds the resynchronisation probe; 0 means 5 s.
	ProbeTimeout time.Duration
	// IsReset recognises a URC with which the module announces a boot; a
	// command running when one arrives fails at once with ErrReset instead
	// of waiting out its timeout (up to minutes) for an answer that will
	// never come. Nil means DefaultIsReset.
	IsReset func(line string) bool
	// Logger receives the engine's log lines; nil discards them.
	Logger *slog.Logger
	// Trace logs every read from and write to the port on Logger at debug
	// level, one line each (through github.com/warthog618/modem/trace):
	// text as it is and other bytes in hex, at most 128 bytes of them with
	// the rest counted, and the PINs and passwords of the commands that
	// carry them (AT+CPIN, AT+CGAUTH, AT+QICSGP, ...) replaced by "***".
	// It costs nothing when Logger does not log debug lines.
	Trace bool
}

// DefaultIsReset recognises "RDY", the first thing Quectel and SIMCom
// modules say when they boot.
func DefaultIsReset(line string) bool { return line == "RDY" }

// MaxQueuedURCs and MaxQueuedURCBytes bound the URCs waiting for OnURC or
// NextURC, in number and in bytes (text and framed data): a module pushing
// framed data of up to 64 KiB each while its reader is busy must not grow
// memory by hundreds of megabytes. A dropped +CMTI loses no SMS: it stays
// on the SIM and the next drain (AT+CMGL) finds it.
const (
	MaxQueuedURCs     = 4096
	MaxQueuedURCBytes = 1 << 20
)

// urcOverhead is what a queued URC costs besides its text and data.
const urcOverhead = 64

// Size is what u costs queued, as counted against MaxQueuedURCBytes.
func (u URC) Size() int {
	n := urcOverhead + len(u.Line) + len(u.Data)
	for _, x := range u.Extra {
		n += len(x)
	}
	return n
}

// probeLine is sent to resynchronise after an abandoned command. Its
// information line "+CMEE: <n>" cannot be the answer to anything the engine
// was waiting for, so the first final result after that line is the probe's
// own. Before that line, a final result is an abandoned command's leftover
// while one is owed, and the probe's own otherwise (a module may answer
// ERROR to it); see machine.owed.
const probeLine = "AT+CMEE?"

// Engine owns one port: a single goroutine writes commands and sorts what
// the modem sends into replies and URCs. It never closes the port; whoever
// opened it does, which also ends the engine.
type Engine struct {
	port io.ReadWriter
	cfg  Config
	log  *slog.Logger
	m    *machine
	reqs chan *request
	quit chan struct{}
	done chan struct{} // closed when the owner goroutine has returned
	// dispatched is closed when the dispatch goroutine has returned (at
	// once with PullURCs, which starts none); readDone when the reading
	// goroutine has.
	dispatched chan struct{}
	readDone   chan struct{}
	once       sync.Once
	epoch      time.Time

	errMu sync.Mutex
	err   error

	lastAnswer atomic.Int64 // ns since epoch of the last final result; 0 = none yet
	lastRead   atomic.Int64 // ns since epoch of the last bytes read; 0 = none yet
	deadline   atomic.Int64 // ns since epoch when the running command times out; 0 = idle
	echoes     atomic.Int64
	closing    atomic.Bool // the owner is closing the port: read errors are expected

	urcMu   sync.Mutex
	urcQ    *ring.Queue[URC] // bounded by MaxQueuedURCs and MaxQueuedURCBytes
	urcWake chan struct{}
	dropped int

	// owner goroutine state
	needSync bool
	cur      *request // the caller's request being served (or waiting for a probe)
	curProbe bool     // the running command is the probe for cur
	timer    *time.Timer
	// abandoned is the request running when the engine stopped, failed
	// with abandonedErr once Done is closed.
	abandoned    *request
	abandonedErr error
}

type request struct {
	ctx context.Context
	cmd Cmd
	res chan result
}

type result struct {
	reply Reply
	err   error
}

// New starts an engine on port.
func New(port io.ReadWriter, cfg Config) *Engine {
	if cfg.URCs == nil {
		cfg.URCs = DefaultURCs()
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 5 * time.Second
	}
	if cfg.IsReset == nil {
		cfg.IsReset = DefaultIsReset
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Trace && log.Enabled(context.Background(), slog.LevelDebug) {
		port = traced(port, log)
	}
	e := &Engine{
		port:       port,
		cfg:        cfg,
		log:        log,
		m:          newMachine(cfg.URCs),
		reqs:       make(chan *request),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		dispatched: make(chan struct{}),
		readDone:   make(chan struct{}),
		epoch:      time.Now(),
		urcWake:    make(chan struct{}, 1),
		urcQ: ring.New(ring.Bounds[URC]{
			Len: MaxQueuedURCs, Cost: MaxQueuedURCBytes, CostOf: URC.Size,
		}),
	}
	reads := make(chan []byte)
	readErr := make(chan error, 1)
	go e.read(reads, readErr)
	if cfg.PullURCs {
		close(e.dispatched)
	} else {
		go e.dispatch()
	}
	go e.run(reads, readErr)
	return e
}

// Do runs one command and returns its reply. It returns a *CMEError,
// *CMSError or *ResultError for an error final result, ErrTimeout (wrapped)
// when no final result came in time, ctx's error when ctx ended first, and
// ErrClosed (wrapped) when the engine stopped.
func (e *Engine) Do(ctx context.Context, c Cmd) (Reply, error) {
	if c.Line == "" || strings.ContainsAny(c.Line, "\r\n\x1a\x1b") {
		return Reply{}, fmt.Errorf("invalid command line %q", c.Line)
	}
	req := &request{ctx: ctx, cmd: c, res: make(chan result, 1)}
	select {
	case e.reqs <- req:
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	case <-e.done:
		return Reply{}, e.closedErr()
	}
	// Once accepted, the owner always answers: it watches ctx itself so it
	// knows when a command was abandoned.
	select {
	case r := <-req.res:
		return r.reply, r.err
	case <-e.done:
		select {
		case r := <-req.res:
			return r.reply, r.err
		default:
			return Reply{}, e.closedErr()
		}
	}
}

// Command runs a command whose information lines carry its prefix (or none)
// and returns them.
func (e *Engine) Command(ctx context.Context, line string) ([]string, error) {
	r, err := e.Do(ctx, Cmd{Line: line})
	return r.Lines, err
}

// Close stops the engine and waits for the goroutines it started: the owner
// goroutine, the one calling OnURC (a call in progress finishes first, so
// OnURC must not call Close) and, when Closing was called, the one reading
// the port. It does not close the port: the engine never owns it. Without
// Closing, the reading goroutine is not waited for, as only the port's
// owner can end a Read; once the port is closed it returns without
// handing on what it read.
func (e *Engine) Close() error {
	e.once.Do(func() { close(e.quit) })
	<-e.done
	<-e.dispatched
	if e.closing.Load() {
		<-e.readDone
	}
	return nil
}

// Closing tells the engine that its owner is about to close the port (to
// unblock a write stuck on a dead device, or a read) before calling Close,
// so the read error that follows is not reported as a fault, and so Close
// waits for the reading goroutine, which the port's closing ends.
func (e *Engine) Closing() { e.closing.Store(true) }

// Done is closed when the engine has stopped: Close was called or the port
// failed.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err is why the engine stopped on its own (a read or write error); nil
// while it runs and after Close.
func (e *Engine) Err() error {
	e.errMu.Lock()
	defer e.errMu.Unlock()
	return e.err
}

// LastAnswer is when the modem last ended a command with a final result;
// the zero time when it has not yet.
func (e *Engine) LastAnswer() time.Time {
	ns := e.lastAnswer.Load()
	if ns == 0 {
		return time.Time{}
	}
	return e.epoch.Add(time.Duration(ns))
}

// LastRead is when the modem last sent anything (a reply, a URC, noise);
// the time the engine started when it has not yet. A live module that has
// been silent for long is worth probing.
func (e *Engine) LastRead() time.Time {
	return e.epoch.Add(time.Duration(e.lastRead.Load()))
}

// Echoes counts the command lines the modem echoed back. Echo is on after
// every module reset (ATE is not saved), so a count that grows after ATE0
// means the module reset without the port going away.
func (e *Engine) Echoes() int64 { return e.echoes.Load() }

// Busy reports whether a command is running, and when it times out.
func (e *Engine) Busy() (deadline time.Time, busy bool) {
	ns := e.deadline.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return e.epoch.Add(time.Duration(ns)), true
}

func (e *Engine) closedErr() error {
	if err := e.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// read is the only goroutine blocked in port.Read; it hands bytes to the
// owner and never interprets them.
func (e *Engine) read(out chan<- []byte, errc chan<- error) {
	defer close(e.readDone)
	buf := make([]byte, 4096)
	empty := 0
	for {
		n, err := e.port.Read(buf)
		if n > 0 {
			empty = 0
			b := append([]byte(nil), buf[:n]...)
			select {
			case out <- b:
			case <-e.quit:
				return
			}
		}
		if err != nil {
			errc <- err
			return
		}
		if n == 0 {
			// A port with a read timeout returns (0, nil); do not spin.
			if empty++; empty > 10 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// run is the owner goroutine: the only one that writes to the port or
// touches the machine.
func (e *Engine) run(reads <-chan []byte, readErr <-chan error) {
	defer func() {
		// Done closes before the running command fails, so a caller that
		// gets ErrClosed finds Done closed and takes the port for gone.
		close(e.done)
		if r := e.abandoned; r != nil {
			r.res <- result{err: e.abandonedErr}
		}
	}()
	for {
		var reqs chan *request
		if e.cur == nil {
			reqs = e.reqs
		}
		var ctxDone <-chan struct{}
		if e.cur != nil {
			ctxDone = e.cur.ctx.Done()
		}
		var timeout <-chan time.Time
		if e.timer != nil {
			timeout = e.timer.C
		}
		select {
		case <-e.quit:
			e.stop(nil)
			return
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			e.stop(fmt.Errorf("read from modem: %w", err))
			return
		case b := <-reads:
			e.lastRead.Store(int64(time.Since(e.epoch)))
			e.m.feed(b)
			if !e.settle() {
				return
			}
		case req := <-reqs:
			if err := req.ctx.Err(); err != nil {
				req.res <- result{err: err}
				continue
			}
			e.cur = req
			if !e.startNext() {
				return
			}
		case <-timeout:
			e.timer = nil
			if e.curProbe && e.m.cur != nil && e.m.cur.staleSeen {
				// The modem answered (a final result the probe took as an
				// abandoned command's, so maybe the probe's own) and has
				// been silent for a whole probe timeout since: nothing is
				// in flight, the line is in step.
				e.log.Debug("resynchronised: the modem answered and then stayed silent", "probe", probeLine)
				e.m.cur = nil
				e.m.forgetOwed()
				if !e.inStep() {
					return
				}
				continue
			}
			e.give(fmt.Errorf("%s: %w", e.timeoutOf(), ErrTimeout))
		case <-ctxDone:
			e.give(e.cur.ctx.Err())
		}
	}
}

// startNext writes the probe when the engine is out of step, else the
// caller's command. It returns false when the engine stopped.
func (e *Engine) startNext() bool {
	c, timeout := e.cur.cmd, e.timeoutFor(e.cur.cmd)
	e.curProbe = e.needSync && !c.SkipSync
	if e.curProbe {
		c, timeout = Cmd{Line: probeLine}, e.cfg.ProbeTimeout
	}
	e.m.begin(c, e.curProbe)
	e.timer = time.NewTimer(timeout)
	e.deadline.Store(int64(time.Since(e.epoch) + timeout))
	if err := e.write([]byte(c.Line + "\r")); err != nil {
		e.stop(err)
		return false
	}
	return true
}

// settle acts on what the machine produced: bytes to write, URCs, a
// finished command. It returns false when the engine stopped.
func (e *Engine) settle() bool {
	e.echoes.Store(e.m.echoes)
	for _, l := range e.m.stale {
		e.log.Debug("dropped stale modem output", "line", redactLine(l))
	}
	e.m.stale = e.m.stale[:0]
	if len(e.m.write) > 0 {
		w := e.m.write
		e.m.write = nil
		if d := e.m.writeDelay; d > 0 {
			e.m.writeDelay = 0
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-e.quit:
				t.Stop()
				e.stop(nil)
				return false
			}
		}
		if err := e.write(w); err != nil {
			e.stop(err)
			return false
		}
	}
	if len(e.m.out) > 0 {
		// Only a command still waiting is interrupted: one that got its
		// final result in the same read is answered normally.
		booted := slices.ContainsFunc(e.m.out, func(u URC) bool { return e.cfg.IsReset(u.Line) })
		reset := booted && e.cur != nil && e.m.cur != nil
		if booted {
			// Nothing written before the boot is answered; the command
			// running now is counted again when it is given up below, as
			// it may have been written just after the boot.
			e.m.forgetOwed()
		}
		e.queueURCs(e.m.out)
		e.m.out = nil
		if reset {
			e.give(fmt.Errorf("%s: %w", e.cur.cmd.Line, ErrReset))
			return true
		}
	}
	if e.cur == nil || e.m.cur != nil {
		return true
	}
	// The machine finished the running command.
	a := e.finished()
	e.lastAnswer.Store(int64(time.Since(e.epoch)))
	if e.curProbe {
		// Any final result to the probe proves the line is in step, an
		// error included: some modules answer ERROR to AT+CMEE?.
		if a.err != nil {
			e.log.Debug("the modem refused the resynchronisation probe; in step all the same", "probe", probeLine, "answer", a.reply.Final)
		}
		return e.inStep()
	}
	e.stopTimer()
	e.cur.res <- result{reply: a.reply, err: a.err}
	e.cur = nil
	return true
}

// inStep ends a resynchronisation and writes the caller's command. It
// returns false when the engine stopped.
func (e *Engine) inStep() bool {
	e.needSync = false
	e.stopTimer()
	if err := e.cur.ctx.Err(); err != nil {
		e.cur.res <- result{err: err}
		e.cur = nil
		return true
	}
	return e.startNext()
}

// finished returns the command the machine just completed.
func (e *Engine) finished() *active { return e.m.lastDone }

// give abandons the running command (or probe) with err; the engine must
// resynchronise before the next command.
func (e *Engine) give(err error) {
	e.m.abandon()
	e.needSync = true
	e.stopTimer()
	e.cur.res <- result{err: err}
	e.cur = nil
}

func (e *Engine) stopTimer() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.deadline.Store(0)
}

func (e *Engine) timeoutFor(c Cmd) time.Duration {
	switch {
	case c.Timeout > 0:
		return c.Timeout
	case e.cfg.Timeout > 0:
		return e.cfg.Timeout
	}
	return DefaultTimeout(c.Line)
}

func (e *Engine) timeoutOf() string {
	if e.curProbe {
		return fmt.Sprintf("resynchronise with the modem: probe %s got no answer within %s", probeLine, e.cfg.ProbeTimeout)
	}
	return fmt.Sprintf("no final result within %s", e.timeoutFor(e.cur.cmd))
}

func (e *Engine) write(b []byte) error {
	if _, err := e.port.Write(b); err != nil {
		return fmt.Errorf("write to modem: %w", err)
	}
	return nil
}

// stop ends the engine: the running command fails and err (nil after Close)
// is kept for Err.
func (e *Engine) stop(err error) {
	// A read error after Close is the port being closed under the reader
	// on purpose, not a fault.
	closing := e.closing.Load()
	select {
	case <-e.quit:
		closing = true
	default:
	}
	e.errMu.Lock()
	e.err = err
	e.errMu.Unlock()
	e.once.Do(func() { close(e.quit) })
	e.stopTimer()
	if e.cur != nil {
		// run fails it once Done is closed.
		e.abandoned, e.abandonedErr = e.cur, error(ErrClosed)
		if err != nil {
			e.abandonedErr = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		e.cur = nil
	}
	switch {
	case err != nil && closing:
		e.log.Debug("AT engine closed", "err", err)
	case err != nil:
		e.log.Warn("AT engine stopped", "err", err)
	}
}

func (e *Engine) queueURCs(us []URC) {
	e.urcMu.Lock()
	for _, u := range us {
		e.dropped += e.urcQ.Push(u)
	}
	e.urcMu.Unlock()
	select {
	case e.urcWake <- struct{}{}:
	default:
	}
}

// popURC takes the oldest queued URC.
func (e *Engine) popURC() (URC, bool) {
	e.urcMu.Lock()
	dropped := e.dropped
	e.dropped = 0
	u, ok := e.urcQ.Pop()
	e.urcMu.Unlock()
	if dropped > 0 {
		e.log.Warn("URC queue full, dropped the oldest", "dropped", dropped,
			"limit_urcs", MaxQueuedURCs, "limit_bytes", MaxQueuedURCBytes)
	}
	return u, ok
}

// NextURC returns the oldest URC waiting (Config.PullURCs), if any. Every
// URC that arrived before a command's final result is waiting by the time
// Do returns.
func (e *Engine) NextURC() (URC, bool) { return e.popURC() }

// URCReady receives a value after URCs were queued (Config.PullURCs); a
// value may be left over from URCs already taken with NextURC.
func (e *Engine) URCReady() <-chan struct{} { return e.urcWake }

// dispatch hands URCs to OnURC in order, off the owner goroutine. It takes
// them one at a time, so what waits stays within the queue's bounds.
func (e *Engine) dispatch() {
	defer close(e.dispatched)
	for {
		select {
		case <-e.quit:
			return
		case <-e.urcWake:
		}
		for {
			u, ok := e.popURC()
			if !ok {
				break
			}
			select {
			case <-e.quit:
				return
			default:
			}
			if e.cfg.OnURC == nil {
				e.log.Debug("URC", "line", redactLine(u.Line), "known", u.Known)
				continue
			}
			e.cfg.OnURC(u)
		}
	}
}
