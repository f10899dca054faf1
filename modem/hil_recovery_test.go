package modem

// Hardware-in-loop tests of self-repair: the real session over a pty
// against modemsim's faults. Every case counts every message: nothing may
// be lost, and nothing stored twice under different ids (the same id again
// is the allowed redelivery). Skipped with -short.

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemtest"
)

// countingSink is a MemorySink that also records every Put, so a test sees
// a message stored twice under two ids.
type countingSink struct {
	*modemtest.MemorySink
	mu   sync.Mutex
	puts map[string]map[string]bool // payload -> ids
}

func newCountingSink() *countingSink {
	return &countingSink{MemorySink: modemtest.NewMemorySink(), puts: map[string]map[string]bool{}}
}

func (c *countingSink) Put(ctx context.Context, m gw.Inbound) error {
	// Recorded under the lock held while storing: a test that saw the
	// message stored and then checks must find it recorded.
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.MemorySink.Put(ctx, m); err != nil {
		return err
	}
	c.record(m)
	return nil
}

func (c *countingSink) record(m gw.Inbound) {
	key := m.Channel + ":" + string(m.Payload)
	if c.puts[key] == nil {
		c.puts[key] = map[string]bool{}
	}
	c.puts[key][m.ID] = true
}

func (c *countingSink) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.MemorySink.PutSIM(ctx, items, j)
	for _, it := range items[:n] {
		if m := it.Message; m != nil {
			c.record(*m)
		}
	}
	return n, err
}

// check fails the test unless exactly want (channel:payload) were stored,
// each under one id.
func (c *countingSink) check(t *testing.T, want []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var got []string
	for k, ids := range c.puts {
		got = append(got, k)
		if len(ids) != 1 {
			t.Errorf("%q stored under %d ids: a duplicate", k, len(ids))
		}
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored messages (-want +got):\n%s", diff)
	}
}

// runCounting starts a session like runHIL, with a counting sink.
func runCounting(t *testing.T, sim *modemsim.Sim, tweak func(*Config), cmdTimeout time.Duration) (*hil, *countingSink) {
	t.Helper()
	cs := newCountingSink()
	return runHILSink(t, sim, cs, cs.MemorySink, tweak, cmdTimeout), cs
}

// waitBooted waits until the simulated module has finished booting, so
// SMS injected go to its SIM rather than wait in the network.
func waitBooted(t *testing.T, sim *modemsim.Sim) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !sim.State().BootDone {
		if time.Now().After(deadline) {
			t.Fatal("modemsim did not boot")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// injectAll injects SMS "<prefix> i" for i in [from, to), one at a time.
func (h *hil) injectAll(prefix string, from, to int) []string {
	h.t.Helper()
	var want []string
	for i := from; i < to; i++ {
		text := fmt.Sprintf("%s %d", prefix, i)
		// The network holds what a module that is off, booting or full
		// cannot take, so an error here would be a test bug.
		if _, err := h.sim.InjectSMS(modemsim.SMS{Text: text}); err != nil {
			h.t.Fatalf("InjectSMS: %v", err)
		}
		want = append(want, "sms:"+text)
	}
	return want
}

// recoveryEvents waits for each event type in order (others are skipped).
func (h *hil) recoveryEvents(types ...string) {
	h.t.Helper()
	for _, typ := range types {
		h.event(typ)
	}
}

// The link vanishes for 3 s in the middle of a burst of SMS (USB
// re-enumeration): the port is reopened by name and every SMS arrives once.
func TestHILUnplugMidBurst(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h, cs := runCounting(t, sim, ipModem(nil), 0)
	h.ready()
	h.dataUp()
	want := h.injectAll("before", 0, 10)
	sim.Unplug(3 * time.Second)
	want = append(want, h.injectAll("during", 0, 10)...)
	h.recoveryEvents(gw.EventRecoveryReopen, gw.EventModemConnected, gw.EventRecoveryDone)
	want = append(want, h.injectAll("after", 0, 5)...)
	// The module re-enumerated without its socket: the data session is
	// opened again.
	h.dataUp()
	h.injectUDP("100.64.0.1:6969", []byte("datagram after the unplug"))
	want = append(want, "ip:datagram after the unplug")
	h.messages(len(want))
	h.waitSIMEmpty()
	cs.check(t, want)
	st := h.s.Status()
	if st.Recovery.Reopens < 1 || st.Recovery.LastError == "" {
		t.Errorf("recovery %+v, want a reopen and the error that caused it", st.Recovery)
	}
	if err := h.s.Healthy(); err != nil {
		t.Errorf("Healthy() after recovery = %v", err)
	}
}

// A module that hangs for 10 s (no answer, no URC) is probed, then
// initialised again once it answers; SMS that arrived meanwhile are drained.
func TestHILHang10s(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	// Short command timeouts make the probe fail well within the hang, so
	// the re-init is what waits it out.
	h, cs := runCounting(t, sim, nil, 300*time.Millisecond)
	h.ready()
	want := h.injectAll("before", 0, 3)
	h.messages(3)
	sim.Hang(10 * time.Second)
	want = append(want, h.injectAll("hung", 0, 5)...)
	h.recoveryEvents(gw.EventRecoveryProbe, gw.EventRecoveryReinit, gw.EventRecoveryDone)
	want = append(want, h.injectAll("after", 0, 3)...)
	h.messages(len(want))
	h.waitSIMEmpty()
	cs.check(t, want)
	if st := h.s.Status().Recovery; st.Probes < 1 || st.Reinits < 1 {
		t.Errorf("recovery %+v, want a probe and a re-init", st)
	}
}

// A module that hangs while the line is idle (no command waiting, polls
// far apart) is noticed by the idle AT, recovered, and the SMS that reached
// it unannounced meanwhile are drained.
func TestHILHangWhileIdle(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h, cs := runCounting(t, sim, func(c *Config) {
		c.PollInterval = time.Hour
		c.IdleProbe = 200 * time.Millisecond
	}, 300*time.Millisecond)
	h.ready()
	sim.Hang(3 * time.Second)
	want := h.injectAll("hung", 0, 3)
	h.recoveryEvents(gw.EventRecoveryProbe, gw.EventRecoveryDone)
	h.messages(len(want))
	h.waitSIMEmpty()
	cs.check(t, want)
	if st := h.s.Status().Recovery; st.Probes < 1 {
		t.Errorf("recovery %+v, want a probe", st)
	}
}

// A module that never answers again climbs the whole ladder: probe,
// re-init, reset (unanswered), reopen, then recovery_failed, when Healthy
// reports an error. Once the module answers, the session recovers and
// Healthy is nil again.
func TestHILLadderToFailedAndBack(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h, cs := runCounting(t, sim, func(c *Config) { c.BootTimeout = time.Second }, 300*time.Millisecond)
	h.ready()
	sim.Hang(time.Hour)
	want := h.injectAll("hung", 0, 3)
	h.recoveryEvents(gw.EventRecoveryProbe, gw.EventRecoveryReinit, gw.EventRecoveryReset, gw.EventRecoveryReopen, gw.EventRecoveryFailed)
	if err := h.s.Healthy(); err == nil || !strings.Contains(err.Error(), "recovery failed") {
		t.Errorf("Healthy() on the last step = %v, want a recovery failed error", err)
	}
	sim.Hang(0)
	h.recoveryEvents(gw.EventRecoveryDone)
	if err := h.s.Healthy(); err != nil {
		t.Errorf("Healthy() after recovery = %v", err)
	}
	h.messages(len(want))
	cs.check(t, want)
	st := h.s.Status().Recovery
	if st.Probes < 1 || st.Reinits < 1 || st.Resets < 1 || st.Reopens < 1 || st.LastError == "" {
		t.Errorf("recovery counters %+v, want every step counted", st)
	}
}

// deafPort passes bytes between the session and the simulator, except
// that while deaf it swallows every command but the module reset: a module
// whose firmware is wedged and only a reset revives.
type deafPort struct {
	io.ReadWriteCloser
	deaf *atomic.Bool
}

func (p deafPort) Write(b []byte) (int, error) {
	if p.deaf.Load() {
		if !strings.HasPrefix(string(b), "AT+CFUN=1,1") {
			return len(b), nil
		}
		p.deaf.Store(false)
	}
	return p.ReadWriteCloser.Write(b)
}

// Probe and re-init go unanswered; the reset is what revives the module,
// which re-enumerates (its port vanishes) and is initialised again.
func TestHILResetRevives(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	var deaf atomic.Bool
	h, cs := runCounting(t, sim, func(c *Config) {
		c.BootTimeout = 2 * time.Second
		c.Open = func(path string, baud int) (io.ReadWriteCloser, error) {
			p, err := openSerial(path, baud)
			if err != nil {
				return nil, err
			}
			return deafPort{ReadWriteCloser: p, deaf: &deaf}, nil
		}
	}, 300*time.Millisecond)
	h.ready()
	deaf.Store(true)
	want := h.injectAll("wedged", 0, 3)
	h.recoveryEvents(gw.EventRecoveryProbe, gw.EventRecoveryReinit, gw.EventRecoveryReset, gw.EventModemConnected, gw.EventRecoveryDone)
	h.messages(len(want))
	cs.check(t, want)
	st := h.s.Status().Recovery
	if st.Probes < 1 || st.Reinits < 1 || st.Resets != 1 || st.Reopens != 0 {
		t.Errorf("recovery counters %+v, want a probe, a re-init and one reset, no reopen step", st)
	}
	if sim.State().Counters[modemsim.CounterResets] != 1 {
		t.Errorf("modemsim counted %d resets, want 1", sim.State().Counters[modemsim.CounterResets])
	}
}

// Garbage and NUL bytes between and inside replies, split writes and URCs
// between reply lines: nothing is lost and the session stays healthy.
func TestHILLineFaults(t *testing.T) {
	tests := []struct {
		name    string
		faults  modemsim.Faults
		garbage bool
	}{
		{"garbage and NUL bytes", modemsim.Faults{}, true},
		{"chunked writes", modemsim.Faults{Chunked: true}, false},
		{"URC noise", modemsim.Faults{URCNoise: 0.5}, false},
		{"all at once", modemsim.Faults{Chunked: true, URCNoise: 0.3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: "quectel"})
			h, cs := runCounting(t, sim, ipModem(nil), 0)
			h.ready()
			h.dataUp()
			sim.SetFaults(tt.faults)
			var want []string
			for i := range 8 {
				if tt.garbage {
					sim.Garbage([]byte("\x00\x00\xff\r\n\x00garbage\x00\xfe\r"))
				}
				want = append(want, h.injectAll(tt.name, i, i+1)...)
				p := fmt.Appendf(nil, "ip %d \x00\r\nOK\r\n", i)
				h.injectUDP("100.64.0.1:6969", p)
				want = append(want, "ip:"+string(p))
				if err := h.s.SendUDP(context.Background(), p); err != nil {
					t.Errorf("SendUDP: %v", err)
				}
			}
			h.messages(len(want))
			h.waitSIMEmpty()
			cs.check(t, want)
			if n := len(sim.State().SentUDP); n != 8 {
				t.Errorf("%d datagrams sent, want 8", n)
			}
			if err := h.s.Healthy(); err != nil {
				t.Errorf("Healthy() = %v", err)
			}
		})
	}
}

// Boot URC storms (a module on a failing supply rebooting again and
// again, echo back on each time) and a plain reset: the session
// initialises the module again and loses nothing.
func TestHILBootStormAndReset(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", ResetDrop: -1})
	h, cs := runCounting(t, sim, ipModem(nil), 0)
	h.ready()
	h.dataUp()
	want := h.injectAll("before", 0, 3)
	h.messages(3)
	sim.BootStorm(5)
	h.event(gw.EventModemRestarted)
	want = append(want, h.injectAll("storm", 0, 3)...)
	h.dataUp()
	waitBooted(t, sim)
	sim.Reset()
	want = append(want, h.injectAll("reset", 0, 3)...)
	h.event(gw.EventModemRestarted)
	waitBooted(t, sim)
	// The socket is gone with the reset until the session opens it again.
	deadline := time.Now().Add(2 * wait)
	for {
		err := sim.InjectUDP("100.64.0.1:6969", 6969, []byte("datagram after the storm"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("InjectUDP after the reset: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want = append(want, "ip:datagram after the storm")
	h.messages(len(want))
	h.waitSIMEmpty()
	cs.check(t, want)
	if st := sim.State(); st.Echo || st.CNMI[1] != 1 {
		t.Errorf("module not initialised again: echo=%v cnmi=%v", st.Echo, st.CNMI)
	}
	if st := h.s.Status().Recovery; st.Reinits < 2 {
		t.Errorf("recovery %+v, want at least two re-inits", st)
	}
}

// The SIM was full before simgate started: the network held back what did
// not fit. The session reports it, drains the SIM, and the network
// delivers the rest.
func TestHILStoreFullBeforeStart(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", Capacity: 5})
	waitBooted(t, sim)
	var want []string
	for i := range 8 {
		text := fmt.Sprintf("queued %d", i)
		_, err := sim.InjectSMS(modemsim.SMS{Text: text, SentAt: sent.Add(time.Duration(i) * time.Second)})
		if i >= 5 && err == nil {
			t.Fatalf("InjectSMS %d into a full SIM succeeded", i)
		}
		want = append(want, "sms:"+text)
	}
	h, cs := runCounting(t, sim, nil, 0)
	if e := h.event(gw.EventStorageFull); e.Fields["used"] != 5 || e.Fields["total"] != 5 {
		t.Errorf("event %+v", e)
	}
	var got []string
	for _, m := range h.messages(8) {
		got = append(got, "sms:"+string(m.Payload))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	h.waitSIMEmpty()
	cs.check(t, want)
}

// The module answers AT but stopped announcing SMS (here: +CNMI switched
// off by modem.init, as a firmware fault or another program would): the
// polls find the SMS, count a missed notification and route SMS again.
func TestHILNoCMTI(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h, cs := runCounting(t, sim, func(c *Config) { c.Init = []string{"AT+CNMI=0,0,0,0,0"} }, 0)
	h.ready()
	cmti := sim.State().Counters[modemsim.CounterCMTI]
	want := h.injectAll("unannounced", 0, 2)
	h.messages(2)
	e := h.event(gw.EventMissedNotification)
	if e.Fields["count"] != 2 && e.Fields["count"] != 1 {
		t.Errorf("event %+v", e)
	}
	if got := sim.State().CNMI; got[0] != 2 || got[1] != 1 {
		t.Errorf("CNMI = %v, want routing set again", got)
	}
	want = append(want, h.injectAll("announced", 0, 1)...)
	h.messages(3)
	if got := sim.State().Counters[modemsim.CounterCMTI]; got <= cmti {
		t.Errorf("no +CMTI after routing was set again (%d, before %d)", got, cmti)
	}
	cs.check(t, want)
}

// Registration lost and back: status and events say so, SMS held by the
// network meanwhile arrive, and the data session comes back.
func TestHILRegistrationLost(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h, cs := runCounting(t, sim, ipModem(nil), 0)
	h.ready()
	h.dataUp()
	sim.SetRegistration(0)
	h.event(gw.EventRegistrationLost)
	if got := h.s.Status().Network.Registration; got != "not_registered" {
		t.Errorf("registration = %q", got)
	}
	want := h.injectAll("held by the network", 0, 2)
	sim.SetRegistration(5)
	h.event(gw.EventRegistrationBack)
	h.dataUp()
	h.injectUDP("100.64.0.1:6969", []byte("back"))
	want = append(want, "ip:back")
	h.messages(len(want))
	cs.check(t, want)
}
