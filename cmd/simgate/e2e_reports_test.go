package main

// Delivery reports end to end: with sms.delivery_reports at its default
// (true) every SMS request gets a "sent" result, then a second result from
// the network's status report: "delivered", or "failed" with the TP-ST
// reason. A report that never comes leaves "sent" standing and holds
// nothing up.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

func TestE2EDeliveryReports(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Reports: true, Sim: modemsim.Options{ReportDelay: 50 * time.Millisecond}})
	r.waitReady()
	of := func(id string) []result {
		var out []result
		for _, x := range r.obs.results("sms/out/result") {
			if x.ID == id {
				out = append(out, x)
			}
		}
		return out
	}
	send := func(id string, want int) []result {
		t.Helper()
		publish(t, r.url, r.prefix+"/sms/out", []byte(fmt.Sprintf(`{"id":%q,"payload":"report %s"}`, id, id)))
		var got []result
		if !waitUntil(e2eWait, func() bool { got = of(id); return len(got) >= want }) {
			t.Fatalf("results for %s: %+v, want %d", id, got, want)
		}
		return got
	}

	got := send("dr-ok", 2)
	if got[0].Status != "sent" || got[0].Reference == nil || got[1].Status != "delivered" || got[1].Reference == nil || *got[1].Reference != *got[0].Reference || got[1].Error != "" {
		t.Errorf("results for dr-ok: %+v, want sent then delivered with the same reference", got)
	}

	r.sim.SetFaults(modemsim.Faults{ReportStatus: 0x41})
	got = send("dr-fail", 2)
	if got[0].Status != "sent" || got[1].Status != "failed" || !strings.Contains(got[1].Error, "0x41") || got[1].Reference == nil || *got[1].Reference != *got[0].Reference {
		t.Errorf("results for dr-fail: %+v, want sent then failed with TP-ST 0x41", got)
	}

	r.sim.SetFaults(modemsim.Faults{ReportLost: true})
	send("dr-lost", 1)
	r.sim.SetFaults(modemsim.Faults{})
	// The next request is sent and reported although the lost report
	// never came.
	if next := send("dr-next", 2); next[1].Status != "delivered" {
		t.Errorf("results for dr-next: %+v", next)
	}
	if got = of("dr-lost"); len(got) != 1 || got[0].Status != "sent" {
		t.Errorf("results for dr-lost: %+v, want the sent result only", got)
	}
	sent := r.sim.State().SentSMS
	for _, s := range sent {
		if fo := s.PDU[:2]; fo != "21" && fo != "31" {
			t.Errorf("SMS-SUBMIT %s does not request a status report (first octet %s)", s.PDU, fo)
		}
	}
	r.gw.checkLog()
}
