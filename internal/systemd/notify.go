package systemd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/daemon"
)

// MaxStatusLen bounds a STATUS= line, in bytes. `systemctl status` shows it on one
// line, and part of it (the operator name) comes from the network, so its
// length is not ours to trust.
const MaxStatusLen = 200

// Notifier sends sd_notify messages to the service manager. Its methods are
// safe for concurrent use, and every one of them is a no-op returning nil
// when NOTIFY_SOCKET is unset, i.e. when simgate does not run under systemd.
type Notifier struct {
	log *slog.Logger

	mu         sync.Mutex
	ready      bool   // READY=1 has been delivered (or there is no manager)
	lastStatus string // the last STATUS= line delivered
}

// New returns a Notifier that logs to log (nil: discard). It reads
// NOTIFY_SOCKET on every send rather than once, so it never holds a stale
// copy of the environment.
func New(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Notifier{log: log}
}

// Enabled reports whether a service manager is listening for notifications.
func (n *Notifier) Enabled() bool {
	return os.Getenv("NOTIFY_SOCKET") != ""
}

// Ready sends READY=1. Only the first successful call sends anything, so the
// daemon may call it on every status change once it is ready; a failed send
// is reported and the next call tries again.
func (n *Notifier) Ready() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready {
		return nil
	}
	if err := n.send(daemon.SdNotifyReady); err != nil {
		return err
	}
	n.ready = true
	n.log.Debug("systemd: ready")
	return nil
}

// Status sends STATUS=line, shown by `systemctl status simgate`. Control
// characters (newlines above all, which would let text from the modem or the
// network smuggle in other assignments such as READY=1) become spaces, and
// the line is cut to a sane length. A line equal to the last one delivered is
// not sent again, so the daemon can call Status on every poll.
func (n *Notifier) Status(line string) error {
	line = SanitizeStatus(line)
	n.mu.Lock()
	defer n.mu.Unlock()
	if line == n.lastStatus {
		return nil
	}
	if err := n.send("STATUS=" + line); err != nil {
		return err
	}
	n.lastStatus = line
	return nil
}

// Stopping sends STOPPING=1, so that systemd shows the unit as deactivating
// while the daemon flushes its queue instead of treating the silence as a
// hang.
func (n *Notifier) Stopping() error {
	return n.send(daemon.SdNotifyStopping)
}

// Watchdog keeps the systemd watchdog fed until ctx ends. Every half
// WATCHDOG_USEC it calls probe and sends WATCHDOG=1 only when probe returns
// nil, so a daemon that is running but no longer doing its job is restarted
// by systemd. A probe that blocks withholds keep-alives for as long as it
// blocks, which is what a wedged daemon should get. Withheld keep-alives are
// logged when the probe starts failing, when its error changes and about once
// a minute while it keeps failing.
//
// probe must not be nil.
//
// Watchdog returns at once when the watchdog is not enabled for this process
// (NOTIFY_SOCKET or WATCHDOG_USEC unset, or WATCHDOG_PID naming another
// process), so it is safe to start unconditionally.
func (n *Notifier) Watchdog(ctx context.Context, probe func() error) {
	if !n.Enabled() {
		return
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Error("systemd watchdog disabled: bad watchdog environment", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	// Half the interval is what sd_watchdog_enabled(3) recommends: one late
	// or withheld keep-alive alone never gets the daemon killed.
	period := max(interval/2, time.Millisecond)
	n.log.Debug("systemd watchdog enabled", "interval", interval, "probe_every", period)
	t := time.NewTicker(period)
	defer t.Stop()
	lim := withholdLog{every: max(1, int(time.Minute/period))}
	for {
		if ctx.Err() != nil {
			return
		}
		n.tick(probe, &lim)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick runs one probe and sends at most one keep-alive.
func (n *Notifier) tick(probe func() error, lim *withholdLog) {
	if err := probe(); err != nil {
		if lim.fail(err) {
			n.log.Warn("systemd watchdog: health probe failing, withholding keep-alive",
				"err", err, "consecutive", lim.failures)
		}
		return
	}
	if failures := lim.pass(); failures > 0 {
		n.log.Info("systemd watchdog: health probe passing again", "withheld", failures)
	}
	if err := n.send(daemon.SdNotifyWatchdog); err != nil {
		if lim.sendFail() {
			n.log.Error("systemd watchdog: cannot send keep-alive", "err", err)
		}
		return
	}
	lim.sendOK()
}

// send delivers one notification; it is a no-op without a service manager.
func (n *Notifier) send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %s: %w", label(state), err)
	}
	return nil
}

// label is the assignment's name, so errors do not repeat a whole status
// line.
func label(state string) string {
	if i := strings.IndexByte(state, '='); i >= 0 {
		return state[:i]
	}
	return state
}

// withholdLog decides when a failing probe is worth a log line: the first
// failure, a failure with a different error, and then one in every `every`
// consecutive failures, so a long outage neither floods the journal nor goes
// quiet.
type withholdLog struct {
	every     int
	failures  int    // consecutive failed probes
	sinceLog  int    // failed probes since the last log line
	lastErr   string // error text of the last logged failure
	sendError bool   // the last keep-alive could not be sent
}

// fail records a failed probe and reports whether to log it.
func (w *withholdLog) fail(err error) bool {
	w.failures++
	w.sinceLog++
	msg := err.Error()
	if w.failures == 1 || msg != w.lastErr || w.sinceLog >= w.every {
		w.lastErr = msg
		w.sinceLog = 0
		return true
	}
	return false
}

// pass records a passing probe and returns how many failed before it.
func (w *withholdLog) pass() int {
	f := w.failures
	w.failures, w.sinceLog, w.lastErr = 0, 0, ""
	return f
}

// sendFail reports whether a failed keep-alive send is the first in a row.
func (w *withholdLog) sendFail() bool {
	first := !w.sendError
	w.sendError = true
	return first
}

func (w *withholdLog) sendOK() { w.sendError = false }

// SanitizeStatus makes s safe and readable as one STATUS= line: invalid
// UTF-8 and control characters become spaces, runs of spaces collapse, and
// the result is at most 200 bytes, cut at a character boundary.
func SanitizeStatus(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, " ") {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		if b.Len()+utf8.RuneLen(r) > MaxStatusLen {
			break
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimRight(b.String(), " ")
}
