package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// The module hangs while the gateway is idle, with ip.mode modem: the
// notification of the datagrams that arrive meanwhile is lost. A Quectel
// module in buffer mode then announces nothing more until its buffer has
// been read empty, and a u-blox module announces each later datagram
// alone, so the gateway must read the socket without being told. Every
// datagram that reached the module, during the hang and after, must reach
// P/ip/in once and in order, without a restart. A short hang ends before
// the idle probe notices it; a long one is noticed and repaired. A SIM7600
// pushes each datagram with its notification, so what arrives during the
// hang is lost at the module: there only the datagrams after it count.
func TestFaultUDPHang(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{"quectel", "ublox", "simcom"} {
		for _, hang := range []time.Duration{2 * time.Second, 7 * time.Second} {
			t.Run(fmt.Sprintf("%s/%s", profile, hang), func(t *testing.T) {
				t.Parallel()
				r := newRig(t, rigOptions{Sim: modemsim.Options{Profile: profile}, IPMode: "modem"})
				r.waitReady()
				waitSocket(t, r)
				const cloud = "100.64.0.1:6969"
				var want []string
				inject := func(tag string, n int) {
					for i := range n {
						p := fmt.Sprintf("%s datagram %d of %s", tag, i, profile)
						if err := r.sim.InjectUDP(cloud, 6969, []byte(p)); err != nil {
							t.Fatalf("inject %q: %v", p, err)
						}
						want = append(want, p)
					}
				}
				inject("before", 1)
				waitIPIn(t, r, want)
				r.sim.Hang(hang)
				if profile == "simcom" {
					// Pushed into the hang: lost at the module, not counted.
					for i := range 3 {
						if err := r.sim.InjectUDP(cloud, 6969, []byte(fmt.Sprintf("lost %d", i))); err != nil {
							t.Fatalf("inject: %v", err)
						}
					}
				} else {
					inject("during", 3)
				}
				if !waitUntil(e2eWait, func() bool { return !r.sim.State().Hung }) {
					t.Fatal("modemsim still hung")
				}
				// A datagram may find the socket being reopened by the
				// recovery; the test waits for it rather than lose it.
				waitSocket(t, r)
				inject("after", 3)
				waitIPIn(t, r, want)
				t.Logf("events: %v", eventTypes(r.obs.events()))
			})
		}
	}
}

// waitSocket waits until the simulated module has a socket open on the
// daemon's ip.port (6969) and its data session is up.
func waitSocket(t *testing.T, r *rig) {
	t.Helper()
	if !waitUntil(e2eWait, func() bool {
		st := r.sim.State()
		for _, s := range st.Sockets {
			if s.Port == 6969 && !s.Closed {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no socket open on port 6969; %s", r.simSummary())
	}
}

// waitIPIn waits until P/ip/in carries exactly want, in order.
func waitIPIn(t *testing.T, r *rig, want []string) {
	t.Helper()
	payloads := func() []string {
		var got []string
		for _, m := range r.obs.ipIn() {
			got = append(got, m.Payload)
		}
		return got
	}
	waitUntil(e2eWait, func() bool { return len(payloads()) >= len(want) })
	got := payloads()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("P/ip/in carries %d datagrams %q, want %d %q; %s", len(got), got, len(want), want, r.simSummary())
	}
}
