package main

// Hardware-in-loop tests of the delivery promise across a broker outage
// and a daemon killed with SIGKILL.

import (
	"syscall"
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// With the broker stopped, 50 SMS arrive; the daemon takes them off the
// SIM into its durable queue, and once the broker is back all 50 are
// delivered, in order, each exactly once (none was published before).
//
// That no SMS is deleted from the SIM before it is durably stored is
// checked where it could fail: the daemon is killed with SIGKILL twice
// while the broker is down, once mid-burst and once after the SIM is
// empty, and each time what its queue holds on disk plus what the SIM and
// the network still hold must cover all 50. A daemon that deleted before
// committing, or kept messages only in memory, would come up short.
func TestE2EBrokerOutage50SMS(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	r.mq.stop(syscall.SIGTERM)

	msgs, want := burst("outage", 50, sentAtBase())
	for _, m := range msgs {
		r.inject(m)
	}
	// Mid-burst: about half have left the SIM (30 slots; the network holds
	// the rest until slots are freed).
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n <= 25 }) {
		t.Fatalf("the daemon does not take SMS off the SIM while the broker is down; %s", r.simSummary())
	}
	r.gw.kill()
	stored, network := r.onSIM()
	held := r.heldByDaemon()
	if held.Inbound+stored+network < len(msgs) {
		t.Errorf("killed mid-burst: queue %d + SIM %d + network %d = %d < %d injected: an SMS left the SIM before it was stored",
			held.Inbound, stored, network, held.Inbound+stored+network, len(msgs))
	}
	if held.Inbound > len(msgs) {
		t.Errorf("killed mid-burst: the queue holds %d messages, more than the %d injected", held.Inbound, len(msgs))
	}

	// Restarted with the broker still down, it empties the SIM.
	r.gw.start()
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Fatalf("the restarted daemon does not empty the SIM; %s", r.simSummary())
	}
	r.gw.kill()
	held = r.heldByDaemon()
	if held.Inbound != len(msgs) || held.Segments != 0 {
		t.Errorf("the SIM is empty but the queue on disk holds %d messages and %d segments, want %d and 0", held.Inbound, held.Segments, len(msgs))
	}

	// Daemon first, then the broker: everything flows, in order, once.
	r.gw.start()
	r.mq.start()
	r.waitSMS(want, false, e2eWait)
}

// The daemon is killed with SIGKILL in the middle of a burst of 100 SMS,
// twice, and restarted each time: every SMS is delivered at least once, a
// redelivered one with the same id and content, and first deliveries keep
// arrival order. At each kill, what was delivered, what the queue holds on
// disk and what the SIM and network hold must cover everything injected.
func TestE2ESIGKILLMidBurst(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	msgs, want := burst("kill", 100, sentAtBase())
	// All at once: the SIM's 30 slots fill and the network holds the rest,
	// so each kill finds messages on the SIM, in the queue and in flight.
	in := r.injectPaced(msgs, 0)
	for _, killAt := range []int{30, 60} {
		r.waitSeen(killAt)
		r.gw.kill()
		injected := int(in.n.Load())
		delivered := len(r.obs.smsIDs())
		stored, network := r.onSIM()
		held := r.heldByDaemon()
		if sum := delivered + held.Inbound + stored + network; sum < injected {
			t.Errorf("killed after %d delivered: delivered %d + queue %d + SIM %d + network %d = %d < %d injected: something was lost",
				killAt, delivered, held.Inbound, stored, network, sum, injected)
		}
		t.Logf("killed after %d of %d injected: %d delivered, %d queued on disk, %d on the SIM, %d in the network",
			injected, len(msgs), delivered, held.Inbound, stored, network)
		r.gw.start()
	}
	in.wait(t)
	dups := r.waitSMS(want, true, e2eWait)
	t.Logf("%d SMS delivered twice (same id) across the kills", dups)
}

// SIGTERM while the broker is away stops the daemon cleanly (exit 0, not
// stuck on publishing) and loses nothing: what it took off the SIM is
// delivered once after it and the broker are back.
func TestE2EStopWhileBrokerDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	r.mq.stop(syscall.SIGTERM)
	msgs, want := burst("stopped", 10, sentAtBase())
	for _, m := range msgs {
		r.inject(m)
	}
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Fatalf("the daemon does not take SMS off the SIM while the broker is down; %s", r.simSummary())
	}
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM with the broker down = %d, want 0", code)
	}
	if held := r.heldByDaemon(); held.Inbound != len(msgs) {
		t.Errorf("after a clean stop the queue holds %d messages, want %d", held.Inbound, len(msgs))
	}
	r.mq.start()
	r.gw.start()
	r.waitSMS(want, false, e2eWait)
}

// SIGTERM arrives while the modem is still sending an SMS (a slow network,
// slower than the relay's 5 s shutdown grace): the daemon still stops
// cleanly (exit 0), the request stays queued, and after the restart it is
// sent again, once the modem is ready, and gets its "sent" result: at
// least once, never lost, and not failed for arriving before the modem
// was initialised.
func TestE2EStopDuringSend(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Sim: modemsim.Options{SendDelay: 6 * time.Second}})
	r.waitReady()
	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"slow-1","payload":"sent on a slow network"}`))
	if !waitUntil(e2eWait, func() bool { return len(r.sim.State().SentSMS) == 1 }) {
		t.Fatalf("the request never reached the modem; %s", r.simSummary())
	}
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM during a send = %d, want 0", code)
	}
	if res := r.obs.results("sms/out/result"); len(res) != 0 {
		t.Fatalf("a result before the send finished: %+v", res)
	}
	r.gw.start()
	if !waitUntil(e2eWait, func() bool { return len(r.obs.results("sms/out/result")) > 0 }) {
		t.Fatalf("no result after the restart; %s", r.simSummary())
	}
	res := r.obs.results("sms/out/result")
	sent := r.sim.State().SentSMS
	if len(res) != 1 || res[0].ID != "slow-1" || res[0].Status != "sent" || res[0].Reference == nil || *res[0].Reference != sent[len(sent)-1].Reference {
		t.Errorf("results %+v; the network received %+v", res, sent)
	}
	if len(sent) != 2 {
		t.Errorf("the network received %d copies, want 2 (the interrupted send and the one after the restart)", len(sent))
	}
}
