package modem

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// network follows the modem's signal, network registration and operator
// into Status.Network, and reports registration lost and regained. It runs
// on the session's goroutine.
type network struct {
	log *slog.Logger
	ev  eventer
	// status changes Status.Network; back runs when the registration is
	// regained.
	status func(func(*gw.NetworkInfo))
	back   func()

	regs   map[string]registration // by "+CEREG", "+CGREG", "+CREG"
	regWas string                  // "" until known, then "yes" or "no"
}

func newNetwork(log *slog.Logger, ev eventer, status func(func(*gw.NetworkInfo)), back func()) *network {
	return &network{log: log, ev: ev, status: status, back: back, regs: map[string]registration{}}
}

// poll refreshes signal, registration and operator. Errors other than a
// silent or vanished modem are logged: not every module knows every
// command.
func (n *network) poll(ctx context.Context, c commander) error {
	if r, err := c.do(ctx, "read signal", at.Cmd{Line: "AT+CSQ"}); err != nil {
		if isFatal(err) {
			return err
		}
		n.log.Debug("signal query failed", "err", err)
	} else if len(r.Lines) > 0 {
		if dbm, err := parseCSQ(r.Lines[0]); err == nil {
			n.status(func(ni *gw.NetworkInfo) { ni.SignalDBm = dbm })
		}
	}
	for _, q := range []string{"AT+CEREG?", "AT+CGREG?", "AT+CREG?"} {
		r, err := c.do(ctx, "read registration", at.Cmd{Line: q})
		if err != nil {
			if isFatal(err) {
				return err
			}
			continue
		}
		for _, l := range r.Lines {
			if reg, err := parseRegistration(l, true); err == nil {
				n.regs[q[2:len(q)-1]] = reg // "AT+CEREG?" -> "+CEREG"
			}
		}
		if registered(n.registrationName()) {
			break // LTE registration answers it; the older ones need not be asked
		}
	}
	n.applyRegistration()
	if r, err := c.do(ctx, "read operator", at.Cmd{Line: "AT+COPS?"}); err != nil {
		if isFatal(err) {
			return err
		}
	} else if len(r.Lines) > 0 {
		if op, act, err := parseCOPS(r.Lines[0]); err == nil {
			n.status(func(ni *gw.NetworkInfo) {
				ni.Operator = op
				if t := technologyName(act); t != "" {
					ni.Technology = t
				}
			})
		}
	}
	return nil
}

// registrationName combines +CEREG, +CGREG and +CREG: registered on any of
// them is registered (a module may be on 2G with LTE searching).
func (n *network) registrationName() string {
	best := ""
	for _, p := range []string{"+CEREG", "+CGREG", "+CREG"} {
		r, ok := n.regs[p]
		if !ok {
			continue
		}
		name := registrationName(r.Stat)
		if registered(name) {
			return name
		}
		if best == "" {
			best = name
		}
	}
	if best == "" {
		return "unknown"
	}
	return best
}

func (n *network) applyRegistration() {
	name := n.registrationName()
	tech := ""
	for _, p := range []string{"+CEREG", "+CGREG", "+CREG"} {
		if r, ok := n.regs[p]; ok && registered(registrationName(r.Stat)) {
			tech = technologyName(r.Act)
			break
		}
	}
	n.status(func(ni *gw.NetworkInfo) {
		ni.Registration = name
		if tech != "" {
			ni.Technology = tech
		}
		if !registered(name) {
			ni.Operator = ""
		}
	})
	n.registrationChanged(name)
}

// registrationChanged reports a registration lost or regained. Losing it
// stops nothing: SMS wait in the network, and the polls notice its return.
// Regained, back runs (a data session waiting to re-open is tried at
// once).
func (n *network) registrationChanged(name string) {
	if name == "unknown" {
		return
	}
	now := "no"
	if registered(name) {
		now = "yes"
	}
	was := n.regWas
	n.regWas = now
	switch {
	case was == "yes" && now == "no":
		msg := fmt.Sprintf("network registration lost (%s); SMS and IP Commands wait until it is back", name)
		n.log.Warn(msg)
		n.ev.event(gw.EventRegistrationLost, msg, map[string]any{"registration": name})
	case was == "no" && now == "yes":
		msg := fmt.Sprintf("network registration back (%s)", name)
		n.log.Info(msg)
		n.ev.event(gw.EventRegistrationBack, msg, map[string]any{"registration": name})
		n.back()
	}
}

// urc takes a +CEREG/+CREG/+CGREG URC.
func (n *network) urc(line string) {
	prefix, _, _ := strings.Cut(line, ":")
	reg, err := parseRegistration(line, false)
	if err != nil {
		n.log.Debug("unreadable registration URC", "line", line, "err", err)
		return
	}
	n.regs[prefix] = reg
	n.applyRegistration()
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
	return s.health.check(s.rec.failure(), s.cfg.PortGoneLimit, 2*s.cfg.PollInterval+30*time.Second)
}

// health is what Healthy judges and senders need, shared between Run's
// goroutine and callers under its own lock.
type health struct {
	mu      sync.Mutex
	eng     *at.Engine // the engine serving an initialised modem; nil otherwise
	lastErr error      // why the modem is not served, or nil
	// live is the engine of the open port (also while initialising or
	// recovering); lostAt is when the port was lost, prevAnswer the last
	// answer of an earlier engine, everReady whether the modem was ever
	// initialised.
	live       *at.Engine
	lostAt     time.Time
	prevAnswer time.Time
	everReady  bool
}

func newHealth() *health { return &health{lostAt: time.Now()} }

// opened records the engine of a newly opened port.
func (h *health) opened(eng *at.Engine) {
	h.mu.Lock()
	h.live = eng
	h.mu.Unlock()
}

// serving records that eng serves an initialised modem.
func (h *health) serving(eng *at.Engine) {
	h.mu.Lock()
	h.eng = eng
	h.lastErr = nil
	h.everReady = true
	h.mu.Unlock()
}

// stopped records that the modem is no longer served, because of err.
func (h *health) stopped(err error) {
	h.mu.Lock()
	h.eng = nil
	h.lastErr = err
	h.mu.Unlock()
}

// closed records that the port was closed because of err.
func (h *health) closed(err error) {
	h.mu.Lock()
	if h.live != nil {
		if a := h.live.LastAnswer(); a.After(h.prevAnswer) {
			h.prevAnswer = a
		}
		h.lostAt = time.Now()
	}
	h.live = nil
	h.eng = nil
	h.lastErr = err
	h.mu.Unlock()
}

// engine returns the engine of a connected, initialised modem.
func (h *health) engine() (*at.Engine, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.eng == nil {
		if h.lastErr != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ErrNotReady, h.lastErr)
		}
		return nil, ErrNotReady
	}
	return h.eng, nil
}

// ready reports whether the modem was ever initialised.
func (h *health) ready() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.everReady
}

// check is Healthy's rule; failed is why the recovery gave up (nil unless
// it did), portGone how long the port may be away, window how long the
// modem may go without answering.
func (h *health) check(failed error, portGone, window time.Duration) error {
	h.mu.Lock()
	live, lostAt, prev, everReady, lastErr := h.live, h.lostAt, h.prevAnswer, h.everReady, h.lastErr
	h.mu.Unlock()
	switch {
	case failed != nil:
		return failed
	case !everReady:
		if lastErr != nil {
			return fmt.Errorf("%w (last error: %v)", ErrNotReady, lastErr)
		}
		return ErrNotReady
	case live == nil:
		if gone := time.Since(lostAt); gone > portGone {
			return fmt.Errorf("the modem port has been gone for %s (last error: %v)", gone.Round(time.Second), lastErr)
		}
		return nil
	}
	if deadline, busy := live.Busy(); busy && time.Now().Before(deadline) {
		return nil
	}
	last := live.LastAnswer()
	if prev.After(last) {
		last = prev
	}
	if !last.IsZero() && time.Since(last) <= window {
		return nil
	}
	return fmt.Errorf("the modem has not answered for over %s", window)
}
