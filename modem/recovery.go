package modem

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// climb moves up the ladder to the next step, at least to min, and
// reports the step: event, log, counter.
func (s *Session) climb(min int, why error) int {
	next := max(s.level+1, min)
	if next > levelFailed {
		next = levelFailed
	}
	s.update(func(st *gw.Status) {
		if why != nil {
			st.Recovery.LastError = why.Error()
		}
	})
	if next == s.level {
		s.log.Warn("modem still not healthy", "step", levelNames[next], "err", why)
		return next
	}
	s.level = next
	if next > levelReset {
		s.resetting = false
	}
	var typ, msg string
	switch next {
	case levelProbe:
		typ, msg = gw.EventRecoveryProbe, fmt.Sprintf("the modem did not answer (%v); probing it with AT", why)
		s.update(func(st *gw.Status) { st.Recovery.Probes++ })
	case levelReinit:
		typ, msg = gw.EventRecoveryReinit, fmt.Sprintf("the modem is not healthy (%v); initialising it again", why)
		s.update(func(st *gw.Status) { st.Recovery.Reinits++ })
	case levelReset:
		typ, msg = gw.EventRecoveryReset, fmt.Sprintf("initialising did not help (%v); resetting the module (%s)", why, s.resetCmd())
		s.update(func(st *gw.Status) { st.Recovery.Resets++ })
	case levelReopen:
		typ, msg = gw.EventRecoveryReopen, fmt.Sprintf("the port or module failed (%v); closing and reopening %s", why, s.cfg.Port)
		s.reopenSince = time.Now()
		s.update(func(st *gw.Status) { st.Recovery.Reopens++ })
	case levelFailed:
		typ, msg = gw.EventRecoveryFailed, fmt.Sprintf("the modem could not be recovered (%v); reporting unhealthy so the service manager restarts simgate, and still trying", why)
		s.mu.Lock()
		s.failed = fmt.Errorf("%w: %w", errGaveUp, why)
		s.mu.Unlock()
	}
	if next == levelFailed {
		s.log.Error(msg)
	} else {
		s.log.Warn(msg)
	}
	s.event(typ, msg, map[string]any{"step": levelNames[next]})
	return next
}

// recovered ends a recovery once a poll has passed.
func (s *Session) recovered() {
	s.healthyAt = time.Now()
	if s.level == levelOK {
		return
	}
	step := levelNames[s.level]
	// The state first: whoever hears the event sees it.
	s.level = levelOK
	s.resetting = false
	s.mu.Lock()
	s.failed = nil
	s.mu.Unlock()
	msg := fmt.Sprintf("the modem is healthy again (after the %s step)", step)
	s.log.Info(msg)
	s.event(gw.EventRecoveryDone, msg, map[string]any{"step": step})
}

// stepDelay is the pause before a step: jittered, doubling with the step.
func (s *Session) stepDelay(level int) time.Duration {
	d := s.cfg.RetryMin
	for i := levelProbe; i < level && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return jitter(min(d, s.cfg.RetryMax))
}

func (s *Session) resetCmd() string {
	if s.prof.Reset == "" {
		return "AT+CFUN=1,1"
	}
	return s.prof.Reset
}

// recoverOnPort takes the ladder's steps that need the port after serve or
// initialise failed with err. It returns the step reached: levelProbe when
// the probe was answered (serve again), levelReinit or levelReset when the
// modem should be initialised again, levelReopen when the port must be
// reopened (also for levelFailed).
func (s *Session) recoverOnPort(ctx context.Context, eng *at.Engine, err error, initFailed bool) (int, error) {
	least := levelProbe
	if initFailed {
		least = levelReinit
	}
	level := s.climb(least, err)
	if level == levelProbe {
		perr := s.probe(ctx, eng)
		if perr == nil {
			s.log.Info("the modem answered the probe; serving it again")
			return levelProbe, err
		}
		if ctx.Err() != nil || gone(eng) {
			return levelReopen, perr
		}
		err = perr
		level = s.climb(levelReinit, fmt.Errorf("probe: %w", perr))
	}
	if level >= levelReopen {
		return levelReopen, err
	}
	if serr := sleep(ctx, s.stepDelay(level)); serr != nil {
		return levelReopen, serr
	}
	if level == levelReset {
		if rerr := s.resetModule(ctx, eng); rerr != nil {
			if ctx.Err() != nil || gone(eng) {
				return levelReopen, rerr
			}
			s.climb(levelReopen, rerr)
			return levelReopen, rerr
		}
	}
	return level, err
}

// probe sends AT until the modem answers anything, a few times.
func (s *Session) probe(ctx context.Context, eng *at.Engine) error {
	timeout := s.cfg.ProbeTimeout
	if s.cmdTimeout > 0 {
		timeout = s.cmdTimeout
	}
	var err error
	for range 3 {
		_, err = eng.Do(ctx, at.Cmd{Line: "AT", Timeout: timeout})
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
func (s *Session) resetModule(ctx context.Context, eng *at.Engine) error {
	// A module that stopped answering answers no resynchronisation probe
	// either; the reset must be written regardless.
	c := at.Cmd{Line: s.resetCmd(), SkipSync: true}
	if _, err := s.do(ctx, eng, "reset the module", c); err != nil {
		return err
	}
	s.resetting, s.resetAt = true, time.Now()
	return nil
}

// portDown decides the ladder step after the port was closed: attempt
// returned err.
func (s *Session) portDown(err error) {
	switch {
	case s.resetting && time.Since(s.resetAt) <= s.cfg.PortGoneLimit:
		// The reset asked for this: the module re-enumerates, and its node
		// may be away for a while. Waiting for it is part of the step.
		s.log.Info("waiting for the port to come back after the module reset", "err", err)
	case s.level >= levelReopen:
		// Still waiting for the node, or it failed again before a poll
		// passed: give up (report) only once the port has been away for
		// longer than a re-enumeration takes.
		if s.level == levelReopen && time.Since(s.reopenSince) > s.cfg.PortGoneLimit {
			s.climb(levelFailed, fmt.Errorf("no working port for over %s: %w", s.cfg.PortGoneLimit, err))
		}
	case !s.opened && !s.ready():
		// Start-up: the port is not there yet. Healthy says not ready.
	default:
		s.climb(levelReopen, err)
	}
}

// ready reports whether the modem was ever initialised.
func (s *Session) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.everReady
}

// pollChecked polls and, when the poll passes, counts the modem healthy
// and reads the socket in case a datagram's notification was lost.
func (s *Session) pollChecked(ctx context.Context, eng *at.Engine) error {
	if err := s.poll(ctx, eng); err != nil {
		return err
	}
	s.recovered()
	return s.sweepSocket(ctx, eng)
}

// Healthy reports whether the session is doing its job; it gates the
// systemd watchdog, so it errs only when restarting the process could help.
// The rule, in order:
//
//  1. error while the recovery ladder is on its last step
//     ("recovery_failed"), until a poll passes again;
//  2. error (ErrNotReady) until the modem has been initialised once;
//  3. while the port is closed (vanished, being reopened): nil for up to
//     Config.PortGoneLimit since it closed, error after;
//  4. while it is open: nil when the modem ended a command with a final
//     result (OK, ERROR, ...) within the last 2*PollInterval+30s, or a
//     command is running and has not reached its timeout; error otherwise.
//
// Every step of the ladder is bounded in time, so an unhealthy modem
// reaches rule 1 or 4.
func (s *Session) Healthy() error {
	s.mu.Lock()
	failed, live, lostAt, prev, everReady, lastErr := s.failed, s.live, s.lostAt, s.prevAnswer, s.everReady, s.lastErr
	s.mu.Unlock()
	switch {
	case failed != nil:
		return failed
	case !everReady:
		if lastErr != nil {
			return fmt.Errorf("%w (last error: %v)", ErrNotReady, lastErr)
		}
		return ErrNotReady
	case live == nil:
		if gone := time.Since(lostAt); gone > s.cfg.PortGoneLimit {
			return fmt.Errorf("the modem port has been gone for %s (last error: %v)", gone.Round(time.Second), lastErr)
		}
		return nil
	}
	if deadline, busy := live.Busy(); busy && time.Now().Before(deadline) {
		return nil
	}
	window := 2*s.cfg.PollInterval + 30*time.Second
	last := live.LastAnswer()
	if prev.After(last) {
		last = prev
	}
	if !last.IsZero() && time.Since(last) <= window {
		return nil
	}
	return fmt.Errorf("the modem has not answered for over %s", window)
}
