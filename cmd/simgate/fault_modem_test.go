package main

// The daemon-level fault suite: the real daemon, during a burst of SMS,
// against the faults real modules show (FACTS.md), a full SIM, a broker
// restart and a late duplicate from the network. Every case counts every
// message: all arrive, in order, exactly once unless a broker or daemon
// restart excuses a repeat (same id). SIGKILL mid-burst is
// TestE2ESIGKILLMidBurst.

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// recoveryLost are the event types that report a modem session ending or
// a self-repair step starting.
var recoveryLost = []string{"modem_lost", "modem_restarted", "recovery_probe", "recovery_reinit", "recovery_reset", "recovery_reopen"}

// TestFaultModem runs a burst of 40 SMS through the daemon while the
// simulated module misbehaves, and checks that every SMS arrives once, in
// order, that nothing is left on the SIM, that the recovery shows on
// P/events, and that sending still works afterwards.
func TestFaultModem(t *testing.T) {
	t.Parallel()
	garbage := []byte("\x00\x00\xff\xfe garbage \x00\r\n\x00\x1b[0m\x7f\x00\r\x00")
	cases := []struct {
		name string
		// before applies line faults for the whole burst; during runs once
		// 10 SMS have been relayed.
		before func(*rig)
		during func(*rig)
		// restarts is whether the session must be seen to end and come
		// back on P/events.
		restarts bool
	}{
		{name: "unplug 3s", during: func(r *rig) { r.sim.Unplug(3 * time.Second) }, restarts: true},
		// Mid-command: the gateway is waiting for an answer when the module
		// falls silent. A hang while the gateway is idle, which loses the
		// +CMTI of what arrives meanwhile, is TestFaultLostIndications.
		{name: "hang 10s", during: func(r *rig) { hangMidCommand(r, 10*time.Second) }, restarts: true},
		{name: "garbage and NUL mid-reply", during: func(r *rig) {
			for range 20 {
				r.sim.Garbage(garbage)
				time.Sleep(15 * time.Millisecond)
			}
		}},
		{name: "chunked writes", before: func(r *rig) { r.sim.SetFaults(modemsim.Faults{Chunked: true}) }},
		{name: "URC noise", before: func(r *rig) { r.sim.SetFaults(modemsim.Faults{URCNoise: 0.5}) }},
		{name: "boot URC storm", during: func(r *rig) { r.sim.BootStorm(3) }, restarts: true},
		{name: "module reset, echo back on", during: func(r *rig) { r.sim.Reset() }, restarts: true},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			r.waitReady()
			if c.before != nil {
				c.before(r)
			}
			msgs, want := burst("fault", 40, sentAtBase())
			in := r.injectPaced(msgs, 20*time.Millisecond)
			if c.during != nil {
				r.waitSeen(10)
				c.during(r)
			}
			in.wait(t)
			r.waitSMS(want, false, 2*e2eWait)
			if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
				t.Errorf("SMS left behind after delivery; %s", r.simSummary())
			}
			evs := r.obs.events()
			if c.restarts {
				// The event that says the modem is back follows the poll
				// that passes after the drain, so it may still be on its way.
				waitUntil(e2eWait, func() bool {
					evs = r.obs.events()
					return hasEvent(evs, recoveryLost...) && (countEvents(evs, "modem_connected") >= 2 || hasEvent(evs, "recovery_done"))
				})
			}
			t.Logf("events: %v", eventTypes(evs))
			if c.restarts {
				if !hasEvent(evs, recoveryLost...) {
					t.Errorf("no event on P/events reports the modem failing (one of %v); events: %v", recoveryLost, eventTypes(evs))
				}
				// Back: initialised again, or repaired in place.
				if countEvents(evs, "modem_connected") < 2 && !hasEvent(evs, "recovery_done") {
					t.Errorf("no event reports the modem back (a second modem_connected or recovery_done); events: %v", eventTypes(evs))
				}
			}
			// Sending works again on the repaired session.
			r.sim.SetFaults(modemsim.Faults{})
			checkSendAfter(t, r, "after-"+strings.ReplaceAll(c.name, " ", "-"))
		})
	}
}

// hangMidCommand makes the module hang just after it has answered a read
// of the SIM (AT+CMGR or AT+CMGL), so that the gateway's next command
// (deleting what it read) goes unanswered.
func hangMidCommand(r *rig, d time.Duration) {
	r.t.Helper()
	reads := func() int {
		c := r.sim.State().Counters
		return c[modemsim.CounterCMGR] + c[modemsim.CounterCMGL]
	}
	before := reads()
	if !waitUntilFast(e2eWait, func() bool { return reads() > before }) {
		r.t.Fatalf("the gateway read no SMS to hang in the middle of; %s", r.simSummary())
	}
	r.sim.Hang(d)
}

// waitUntilFast is waitUntil without the pause, for catching a moment.
func waitUntilFast(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// checkSendAfter publishes one request on P/sms/out and checks it reaches
// the network with a "sent" result.
func checkSendAfter(t *testing.T, r *rig, id string) {
	t.Helper()
	before := len(r.sim.State().SentSMS)
	publish(t, r.url, r.prefix+"/sms/out", []byte(fmt.Sprintf(`{"id":%q,"payload":"still sending"}`, id)))
	var res []result
	if !waitUntil(e2eWait, func() bool {
		res = nil
		for _, x := range r.obs.results("sms/out/result") {
			if x.ID == id {
				res = append(res, x)
			}
		}
		return len(res) > 0
	}) {
		t.Fatalf("no result for %s", id)
	}
	if res[0].Status != "sent" {
		t.Errorf("request %s after the fault: %+v", id, res[0])
	}
	if sent := r.sim.State().SentSMS; len(sent) != before+1 || sent[len(sent)-1].Text != "still sending" {
		t.Errorf("after the fault the network received %+v, want one more \"still sending\"", sent[before:])
	}
}

// The SIM is full before the daemon starts and the network holds more SMS
// than it has slots: the daemon drains the SIM, the network delivers the
// overflow into the freed slots, and every SMS arrives once, in order.
func TestFaultStoreFullBeforeStart(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Sim: modemsim.Options{Capacity: 5}, Stopped: true})
	if !waitUntil(e2eWait, func() bool { return r.sim.State().SMSReady }) {
		t.Fatalf("modemsim did not boot; %s", r.simSummary())
	}
	msgs, want := burst("full", 12, sentAtBase())
	segments := 0
	for _, m := range msgs {
		r.inject(m)
		segments += max(m.Parts, 1)
	}
	if stored, network := r.onSIM(); stored != 5 || network != segments-5 {
		t.Fatalf("setup: SIM holds %d and the network %d, want 5 and %d", stored, network, segments-5)
	}
	r.start()
	r.waitSMS(want, false, e2eWait)
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Errorf("SMS left behind after delivery; %s", r.simSummary())
	}
	// A full store refuses SMS silently; the user should hear that it was.
	if evs := r.obs.events(); !hasEvent(evs, "sms_storage_full") {
		t.Errorf("no sms_storage_full event although the SIM was full at start; events: %v", eventTypes(evs))
	}
}

// The broker restarts in the middle of a burst: every SMS arrives, in
// order of first delivery; a repeat (same id) is allowed.
func TestFaultBrokerRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	msgs, want := burst("broker", 60, sentAtBase())
	in := r.injectPaced(msgs, 20*time.Millisecond)
	r.waitSeen(10)
	r.mq.stop(syscall.SIGTERM)
	time.Sleep(time.Second) // an outage, not a measurement
	r.mq.start()
	in.wait(t)
	dups := r.waitSMS(want, true, e2eWait)
	t.Logf("%d SMS delivered twice (same id) across the broker restart", dups)
}

// The network delivers an SMS again a day later (Super SIM retries for 24
// hours): same sender, text and service centre timestamp. It has the same
// id and is not published again, even across a daemon restart (by SIGINT,
// which stops it as cleanly as SIGTERM) in between.
func TestFaultLateDuplicate(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	sentAt := time.Now().UTC().Truncate(time.Second).Add(-24*time.Hour - time.Minute)
	orig := modemsim.SMS{From: "000", Text: "reboot at 10:00 {once}", SentAt: sentAt}
	first := wantText("000", orig.Text, 1, sentAt)
	r.inject(orig)
	r.waitSMS([]smsIn{first}, false, e2eWait)

	if code := r.gw.stop(syscall.SIGINT); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0", code)
	}
	r.gw.start()
	r.inject(orig) // the network's late copy
	// Arrival order means the copy was handled before this one arrives.
	next := modemsim.SMS{From: "000", Text: "a new command", SentAt: time.Now().UTC().Truncate(time.Second)}
	r.inject(next)
	r.waitSMS([]smsIn{first, wantText("000", next.Text, 1, next.SentAt)}, false, e2eWait)
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Errorf("the late copy was left on the SIM; %s", r.simSummary())
	}
}

// The module hangs while the gateway is idle, so the +CMTI of the SMS that
// arrive meanwhile are lost: those SMS sit on the SIM unannounced. SMS that
// arrive after the hang are announced as usual. Every SMS must still be
// delivered once and in arrival order: the ones stored silently must not
// be overtaken by the ones announced later. A short hang ends before the
// gateway's idle probe notices anything; a long one is noticed and
// repaired by the probe.
func TestFaultLostIndications(t *testing.T) {
	t.Parallel()
	// The long hang outlasts the daemon's idle probe (5 s) but stays
	// short of the 10 s case in TestFaultModem, to keep the suite quick.
	for _, hang := range []time.Duration{2 * time.Second, 7 * time.Second} {
		t.Run(hang.String(), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{})
			r.waitReady()
			msgs, want := burst("silent", 6, sentAtBase())
			r.sim.Hang(hang)
			for _, m := range msgs[:3] {
				r.inject(m)
			}
			if !waitUntil(e2eWait, func() bool { return !r.sim.State().Hung }) {
				t.Fatal("modemsim still hung")
			}
			for _, m := range msgs[3:] {
				r.inject(m)
			}
			r.waitSMS(want, false, e2eWait)
			t.Logf("events: %v", eventTypes(r.obs.events()))
		})
	}
}

// The modem is missing when the daemon starts (the module is still
// enumerating) and appears a few seconds later: the daemon keeps trying
// the port, and the SMS the network held meanwhile are delivered once, in
// order.
func TestFaultModemAbsentAtStart(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Stopped: true})
	r.sim.Unplug(2 * time.Second)
	r.start()
	msgs, want := burst("absent", 10, sentAtBase())
	for _, m := range msgs {
		r.inject(m)
	}
	r.waitSMS(want, false, e2eWait)
	r.waitReady()
	checkSendAfter(t, r, "after-absent")
	t.Logf("events: %v", eventTypes(r.obs.events()))
}

// store.max_messages is reached while the broker is away: the queue
// refuses what does not fit, which stays on the SIM (the safest place)
// with a queue_full event, and once the broker is back and the queue has
// room every SMS is delivered once, in order.
func TestFaultQueueFull(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{MaxMessages: 5})
	r.waitReady()
	r.mq.stop(syscall.SIGTERM)
	msgs, want := burst("bounded", 8, sentAtBase())
	for _, m := range msgs[:6] { // the eighth is in three parts: keep the count simple
		r.inject(m)
	}
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 1 }) {
		t.Fatalf("with room for 5 in the queue, the SIM should keep 1 of 6; %s", r.simSummary())
	}
	for _, m := range msgs[6:] {
		r.inject(m)
	}
	r.mq.start()
	r.waitSMS(want, false, 2*e2eWait)
	if evs := r.obs.events(); !hasEvent(evs, "queue_full") {
		t.Errorf("no queue_full event; events: %v", eventTypes(evs))
	}
}
