package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// The recovery ladder. Each step is taken only when the one before did not
// make the modem healthy again; a poll that passes after any step brings the
// session back to levelOK ("recovery_done"):
//
//	levelProbe   AT with a short timeout: a modem that answers only lost a
//	             command; serving resumes.
//	levelReinit  the standard initialisation again on the same port.
//	levelReset   a module reset (Profile.Reset), then initialisation. A USB
//	             module re-enumerates; reopening the port for it is part of
//	             this step.
//	levelReopen  close the port and reopen it by name, with jittered
//	             backoff, waiting for the device node to come back.
//	levelFailed  Healthy reports an error, so the service manager restarts
//	             the process; the session keeps reopening meanwhile.
//
// A failure enters the ladder at the lowest step that can help: silence at
// the probe, a failed initialisation at the re-init, a failed port at the
// reopen.
const (
	levelOK = iota
	levelProbe
	levelReinit
	levelReset
	levelReopen
	levelFailed
)

var levelNames = [...]string{"ok", "probe", "re-init", "reset", "reopen", "failed"}

// errGaveUp marks the error with which the ladder reached levelFailed.
var errGaveUp = errors.New("recovery failed")

// ladderSettings are the Config values the ladder uses.
type ladderSettings struct {
	port string // Config.Port, for the reopen step's message
	// retryMin and retryMax bound the jittered, doubling pause before a
	// step.
	retryMin, retryMax time.Duration
	// portGone is how long the port may stay away before the ladder gives
	// up (Config.PortGoneLimit).
	portGone time.Duration
}

// ladderWire is the open port as the ladder's steps use it: commands (the
// reset), the engine's own Do for the probe, whose errors are the engine's
// bare ones, and Done, closed when the port failed.
type ladderWire interface {
	commander
	Do(ctx context.Context, c at.Cmd) (at.Reply, error)
	Done() <-chan struct{}
}

// ladder is the recovery ladder: which step the session is on and what the
// steps need to remember. It runs on the session's goroutine; failure may
// be read from any.
type ladder struct {
	set ladderSettings
	log *slog.Logger
	ev  eventer
	// recovery changes Status.Recovery.
	recovery func(func(*gw.Recovery))
	// probeTimeout bounds each probe's answer; the session sets it for each
	// opening of the port. reset is the module profile's reset command, ""
	// for AT+CFUN=1,1.
	probeTimeout time.Duration
	reset        string

	level       int
	resetting   bool // a reset was sent; its port may vanish for a while
	resetAt     time.Time
	reopenSince time.Time
	healthyAt   time.Time

	mu     sync.Mutex
	failed error // why the ladder reached levelFailed; nil otherwise
}

func newLadder(set ladderSettings, log *slog.Logger, ev eventer, recovery func(func(*gw.Recovery))) *ladder {
	return &ladder{set: set, log: log, ev: ev, recovery: recovery}
}

// failure is why the ladder gave up (levelFailed), or nil.
func (l *ladder) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// recovering reports whether a step has been taken that no passed poll
// has ended yet.
func (l *ladder) recovering() bool { return l.level > levelOK }

// initialised runs when an initialisation succeeded: a reset it followed
// is over.
func (l *ladder) initialised() { l.resetting = false }

// healthySince reports whether a poll passed after t.
func (l *ladder) healthySince(t time.Time) bool { return l.healthyAt.After(t) }

// climb moves up the ladder to the next step, at least to min, and
// reports the step: event, log, counter.
func (l *ladder) climb(min int, why error) int {
	next := max(l.level+1, min)
	if next > levelFailed {
		next = levelFailed
	}
	l.recovery(func(r *gw.Recovery) {
		if why != nil {
			r.LastError = why.Error()
		}
	})
	if next == l.level {
		l.log.Warn("modem still not healthy", "step", levelNames[next], "err", why)
		return next
	}
	l.level = next
	if next > levelReset {
		l.resetting = false
	}
	var typ, msg string
	switch next {
	case levelProbe:
		typ, msg = gw.EventRecoveryProbe, fmt.Sprintf("the modem did not answer (%v); probing it with AT", why)
		l.recovery(func(r *gw.Recovery) { r.Probes++ })
	case levelReinit:
		typ, msg = gw.EventRecoveryReinit, fmt.Sprintf("the modem is not healthy (%v); initialising it again", why)
		l.recovery(func(r *gw.Recovery) { r.Reinits++ })
	case levelReset:
		typ, msg = gw.EventRecoveryReset, fmt.Sprintf("initialising did not help (%v); resetting the module (%s)", why, l.resetCmd())
		l.recovery(func(r *gw.Recovery) { r.Resets++ })
	case levelReopen:
		typ, msg = gw.EventRecoveryReopen, fmt.Sprintf("the port or module failed (%v); closing and reopening %s", why, l.set.port)
		l.reopenSince = time.Now()
		l.recovery(func(r *gw.Recovery) { r.Reopens++ })
	case levelFailed:
		typ, msg = gw.EventRecoveryFailed, fmt.Sprintf("the modem could not be recovered (%v); reporting unhealthy so the service manager restarts simgate, and still trying", why)
		l.mu.Lock()
		l.failed = fmt.Errorf("%w: %w", errGaveUp, why)
		l.mu.Unlock()
	}
	if next == levelFailed {
		l.log.Error(msg)
	} else {
		l.log.Warn(msg)
	}
	l.ev.event(typ, msg, map[string]any{"step": levelNames[next]})
	return next
}

// recovered ends a recovery once a poll has passed.
func (l *ladder) recovered() {
	l.healthyAt = time.Now()
	if l.level == levelOK {
		return
	}
	step := levelNames[l.level]
	// The state first: whoever hears the event sees it.
	l.level = levelOK
	l.resetting = false
	l.mu.Lock()
	l.failed = nil
	l.mu.Unlock()
	msg := fmt.Sprintf("the modem is healthy again (after the %s step)", step)
	l.log.Info(msg)
	l.ev.event(gw.EventRecoveryDone, msg, map[string]any{"step": step})
}

// stepDelay is the pause before a step: jittered, doubling with the step.
func (l *ladder) stepDelay(level int) time.Duration {
	return backoff.Jitter(backoff.Double(l.set.retryMin, l.set.retryMax, level-levelProbe), backoff.Around)
}

func (l *ladder) resetCmd() string {
	if l.reset == "" {
		return "AT+CFUN=1,1"
	}
	return l.reset
}

// onPort takes the ladder's steps that need the port after serve or
// initialise failed with err. It returns the step reached: levelProbe when
// the probe was answered (serve again), levelReinit or levelReset when the
// modem should be initialised again, levelReopen when the port must be
// reopened (also for levelFailed).
func (l *ladder) onPort(ctx context.Context, w ladderWire, err error, initFailed bool) (int, error) {
	least := levelProbe
	if initFailed {
		least = levelReinit
	}
	level := l.climb(least, err)
	if level == levelProbe {
		perr := l.probe(ctx, w)
		if perr == nil {
			l.log.Info("the modem answered the probe; serving it again")
			return levelProbe, err
		}
		if ctx.Err() != nil || gone(w) {
			return levelReopen, perr
		}
		err = perr
		level = l.climb(levelReinit, fmt.Errorf("probe: %w", perr))
	}
	if level >= levelReopen {
		return levelReopen, err
	}
	if serr := backoff.Sleep(ctx, l.stepDelay(level)); serr != nil {
		return levelReopen, serr
	}
	if level == levelReset {
		if rerr := l.resetModule(ctx, w); rerr != nil {
			if ctx.Err() != nil || gone(w) {
				return levelReopen, rerr
			}
			l.climb(levelReopen, rerr)
			return levelReopen, rerr
		}
	}
	return level, err
}

// probe sends AT until the modem answers anything, a few times.
func (l *ladder) probe(ctx context.Context, w ladderWire) error {
	var err error
	for range 3 {
		_, err = w.Do(ctx, at.Cmd{Line: "AT", Timeout: l.probeTimeout})
		if !isFatal(err) {
			return nil // OK or an error result: it answers
		}
		if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			break
		}
	}
	return &OpError{Op: "probe with AT", Err: err}
}

// resetModule restarts the module with its profile's command. The module
// answers OK, then reboots: a USB module's port vanishes (reopening it is
// part of this step), a UART module's stays and announces its boot.
func (l *ladder) resetModule(ctx context.Context, w ladderWire) error {
	// A module that stopped answering answers no resynchronisation probe
	// either; the reset must be written regardless.
	c := at.Cmd{Line: l.resetCmd(), SkipSync: true}
	if _, err := w.do(ctx, "reset the module", c); err != nil {
		return err
	}
	l.resetting, l.resetAt = true, time.Now()
	return nil
}

// portDown decides the ladder step after the port was closed: the
// attempt returned err; opened tells whether it opened the port, and
// everReady whether the modem was ever initialised.
func (l *ladder) portDown(err error, opened, everReady bool) {
	switch {
	case l.resetting && time.Since(l.resetAt) <= l.set.portGone:
		// The reset asked for this: the module re-enumerates, and its node
		// may be away for a while. Waiting for it is part of the step.
		l.log.Info("waiting for the port to come back after the module reset", "err", err)
	case l.level >= levelReopen:
		// Still waiting for the node, or it failed again before a poll
		// passed: give up (report) only once the port has been away for
		// longer than a re-enumeration takes.
		if l.level == levelReopen && time.Since(l.reopenSince) > l.set.portGone {
			l.climb(levelFailed, fmt.Errorf("no working port for over %s: %w", l.set.portGone, err))
		}
	case !opened && !everReady:
		// Start-up: the port is not there yet. Healthy says not ready.
	default:
		l.climb(levelReopen, err)
	}
}

// pollChecked polls and, when the poll passes, counts the modem healthy
// and reads the socket in case a datagram's notification was lost.
func (s *Session) pollChecked(ctx context.Context, eng *at.Engine) error {
	if err := s.poll(ctx, eng); err != nil {
		return err
	}
	s.rec.recovered()
	return s.dp.sweep(ctx, onEngine{s, eng})
}
