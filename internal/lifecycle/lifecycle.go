// Package lifecycle starts a daemon's parts in a written order and stops
// them in the reverse one. The order is the wiring's most important fact
// (what must still run while another part finishes its work), so it is
// said once, in one list, instead of in the order of deferred calls.
//
// Each stop is bounded: a part that does not stop in time is reported by
// name and left behind, so one wedged part cannot keep the others (the
// durable queue above all) from closing before the service manager's stop
// timeout kills the process.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultStopWithin bounds each Part's Stop unless the Part or the List
// says otherwise. It is well above what the gateway's parts need (the
// relay's own shutdown grace is a few seconds) and well below the unit's
// TimeoutStopSec.
const DefaultStopWithin = 15 * time.Second

// ErrStopTimeout is wrapped in the error of a Stop that did not return
// within its bound.
var ErrStopTimeout = errors.New("did not stop in time")

// Part is one piece of a daemon.
type Part struct {
	// Name names the part in logs and errors.
	Name string
	// Start brings the part up and returns once it runs; nil when there
	// is nothing to start. ctx is the List's: a part that runs on after
	// it ends derives its own with context.WithoutCancel.
	Start func(ctx context.Context) error
	// Stop brings the part down; nil when there is nothing to stop. Its
	// ctx ends when the bound is over; Stop should return then, and the
	// List does not wait for it longer in any case.
	Stop func(ctx context.Context) error
	// StopWithin overrides the List's bound for this part's Stop.
	StopWithin time.Duration
	// LogOnly marks a part whose stop errors are logged but not returned
	// by List.Stop: its work is over by then, so its failure to tidy up
	// does not make the run a failure.
	LogOnly bool
}

// List is an ordered list of parts. It is not safe for concurrent use.
type List struct {
	// Log receives a line for each part started and stopped, and every
	// stop error with the part's name. Nil discards.
	Log *slog.Logger
	// StopWithin bounds each Stop; zero is DefaultStopWithin.
	StopWithin time.Duration

	parts   []Part
	started int // parts[:started] are running
}

// Add appends parts to the list, in the order they are to start.
func (l *List) Add(parts ...Part) { l.parts = append(l.parts, parts...) }

func (l *List) log() *slog.Logger {
	if l.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l.Log
}

// Start starts the parts not yet started, in order. When one fails, the
// parts already started are stopped in reverse order and a *StartError
// is returned.
func (l *List) Start(ctx context.Context) error {
	for l.started < len(l.parts) {
		p := l.parts[l.started]
		if p.Start != nil {
			if err := p.Start(ctx); err != nil {
				l.log().Debug("part did not start", "component", p.Name, "err", err)
				return &StartError{Part: p.Name, Err: err, Stop: l.Stop()}
			}
		}
		l.log().Debug("part started", "component", p.Name)
		l.started++
	}
	return nil
}

// StartError is a failed Start: the error of the part that did not start,
// and those of stopping the parts started before it. Its message is the
// part's own error (which says what failed), followed by the stop errors
// if any; errors.Is and errors.As see both.
type StartError struct {
	Part string // the part that did not start
	Err  error  // its error
	Stop error  // what stopping the others returned, nil if all stopped
}

func (e *StartError) Error() string {
	if e.Stop == nil {
		return e.Err.Error()
	}
	return e.Err.Error() + "\n" + e.Stop.Error()
}

// Unwrap returns the start error and, if any, the stop errors.
func (e *StartError) Unwrap() []error {
	if e.Stop == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Stop}
}

// Stop stops the started parts in reverse order, each within its bound,
// and returns their errors joined (but for LogOnly parts), each prefixed
// with the part's name. Every error is also logged. A part whose Stop
// overruns is reported with ErrStopTimeout and left running. Stop may be
// called again: only parts started since are stopped then.
func (l *List) Stop() error {
	var errs []error
	for l.started > 0 {
		l.started--
		p := l.parts[l.started]
		if p.Stop == nil {
			continue
		}
		within := cmpOr(p.StopWithin, l.StopWithin, DefaultStopWithin)
		err := stopWithin(p.Stop, within)
		if err == nil {
			l.log().Debug("part stopped", "component", p.Name)
			continue
		}
		l.log().Warn("stopping "+p.Name, "component", p.Name, "err", err)
		if !p.LogOnly {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func cmpOr(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

// stopWithin runs stop, and gives up waiting for it after d.
func stopWithin(stop func(context.Context) error, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1) // buffered: an overrunning stop still ends
	go func() { done <- stop(ctx) }()
	timeout := fmt.Errorf("%w (waited %s)", ErrStopTimeout, d)
	select {
	case err := <-done:
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return timeout // the stop gave up on its ctx, as asked
		}
		return err
	case <-ctx.Done():
		return timeout
	}
}

// Task runs one long-lived function (a serve loop) on a context of its
// own, so that a Part can start it and stop it, and the daemon can notice
// when it ends by itself.
type Task struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	taken  atomic.Bool
}

// Go runs run in a goroutine on a context derived from parent, which the
// Task's Stop cancels.
func Go(parent context.Context, run func(ctx context.Context) error) *Task {
	ctx, cancel := context.WithCancel(parent)
	t := &Task{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = run(ctx)
	}()
	return t
}

// Done is closed when run has returned.
func (t *Task) Done() <-chan struct{} { return t.done }

// Take waits for run to return and returns its error, which Stop then no
// longer returns: whoever takes an error reports it, once.
func (t *Task) Take() error {
	<-t.done
	t.taken.Store(true)
	return t.err
}

// Stop cancels run's context and waits for it to return, or for ctx to
// end. It returns run's error unless Take took it.
func (t *Task) Stop(ctx context.Context) error {
	t.cancel()
	select {
	case <-t.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.taken.Load() {
		return nil
	}
	return t.err
}
