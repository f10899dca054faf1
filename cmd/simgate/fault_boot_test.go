package main

import (
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// A module on a UART boots while the daemon's first command waits for its
// answer, its output reaches the port in pieces of 1 to 3 bytes, and it
// answers ERROR to AT+CMEE?, the command the AT engine resynchronises
// with. The boot abandons the first command, so every later one waits for
// that probe: the daemon must still initialise the module and relay SMS.
func TestFaultBootDuringFirstCommand(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Sim: modemsim.Options{BootDelay: 2 * time.Second, ResetDrop: -1}, Stopped: true})
	if !waitUntil(e2eWait, func() bool { return r.sim.State().BootDone }) {
		t.Fatalf("modemsim did not boot; %s", r.simSummary())
	}
	r.sim.SetFaults(modemsim.Faults{Chunked: true, ChunkMax: 3, ErrorOn: []string{"AT+CMEE?"}})
	// The module restarts as the daemon starts, so the daemon's first
	// command goes to a booting module, which drops it, and the boot URCs
	// arrive while it waits.
	r.sim.Reset()
	r.start()
	wrote := func() (commands, discarded int) {
		c := r.sim.State().Counters
		return c[modemsim.CounterCommands], c[modemsim.CounterDiscarded]
	}
	if !waitUntilFast(e2eWait, func() bool { c, d := wrote(); return c+d > 0 }) {
		t.Fatalf("the daemon wrote nothing to the modem; %s", r.simSummary())
	}
	if _, d := wrote(); d == 0 {
		// The daemon was slower than the boot: restart the module under
		// the command it is running now.
		r.sim.Reset()
	}
	r.waitReady()
	if st := r.sim.State(); st.Counters[modemsim.CounterErrors] == 0 {
		t.Fatalf("setup: the module never answered ERROR, so the probe was not exercised; %s", r.simSummary())
	}
	msgs, want := burst("boot", 3, sentAtBase())
	for _, m := range msgs {
		r.inject(m)
	}
	r.waitSMS(want, false, e2eWait)
	evs := r.obs.events()
	if !hasEvent(evs, "modem_connected") {
		t.Errorf("no modem_connected event; events: %v", eventTypes(evs))
	}
	checkSendAfter(t, r, "after-boot")
}
