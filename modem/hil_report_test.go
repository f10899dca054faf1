package modem

// Hardware-in-loop tests of delivery reports: SMS sent with TP-SRR, the
// simulated network's SMS-STATUS-REPORT routed as +CDS (ds=1) or stored
// with +CDSI (ds=2), handed to a ReportSink.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemtest"
	"github.com/warthog618/sms/encoding/tpdu"
)

// reportSink is a MemorySink that also takes delivery reports.
type reportSink struct {
	*modemtest.MemorySink
	mu      sync.Mutex
	fail    error
	reports []gw.DeliveryReport
	changed chan struct{}
}

func newReportSink() *reportSink {
	return &reportSink{MemorySink: modemtest.NewMemorySink(), changed: make(chan struct{})}
}

func (r *reportSink) PutReport(ctx context.Context, rep gw.DeliveryReport) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.reports = append(r.reports, rep)
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

func (r *reportSink) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// wait returns the reports once there are n.
func (r *reportSink) wait(t *testing.T, n int) []gw.DeliveryReport {
	t.Helper()
	deadline := time.After(2 * wait)
	for {
		r.mu.Lock()
		got, ch := append([]gw.DeliveryReport(nil), r.reports...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%d delivery reports, want %d: %+v", len(got), n, got)
		}
	}
}

func sendSMS(t *testing.T, h *hil, text string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ref, err := h.s.SendSMS(ctx, "", []byte(text), false)
	if err != nil {
		t.Fatalf("SendSMS(%q): %v", text, err)
	}
	return ref
}

func TestHILDeliveryReports(t *testing.T) {
	for _, route := range []struct {
		name string
		init []string
	}{{"CDS", nil}, {"CDSI", []string{"AT+CNMI=2,1,0,2,0"}}} {
		t.Run(route.name, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: "quectel", ReportDelay: 20 * time.Millisecond})
			sink := newReportSink()
			h := runHILSink(t, sim, sink, sink.MemorySink, func(c *Config) {
				c.DeliveryReports = true
				c.Init = route.init
			}, 0)
			h.ready()

			// Delivered.
			ok := sendSMS(t, h, "delivered please")
			got := sink.wait(t, 1)
			if r := got[0]; r.Reference != ok || !r.Delivered || r.Status != 0 || r.Error != "" || r.Recipient != gw.SMSRecipient {
				t.Errorf("report %+v, want delivered for reference %d to %s", r, ok, gw.SMSRecipient)
			}
			sent := sim.State().SentSMS
			if fo := pduFirstOctet(t, sent[len(sent)-1].PDU); fo&byte(tpdu.FoSRR) == 0 {
				t.Errorf("SMS-SUBMIT first octet %#02x has no TP-SRR", fo)
			}

			// Failed: validity period expired.
			sim.SetFaults(modemsim.Faults{ReportStatus: 0x46})
			bad := sendSMS(t, h, "will fail")
			got = sink.wait(t, 2)
			if r := got[1]; r.Reference != bad || r.Delivered || r.Status != 0x46 || !strings.Contains(r.Error, "0x46") || !strings.Contains(r.Error, "validity period expired") {
				t.Errorf("report %+v, want failed 0x46 for reference %d", r, bad)
			}

			// Lost: no report ever comes; the next one does, and nothing
			// waits for the lost one.
			sim.SetFaults(modemsim.Faults{ReportLost: true})
			lost := sendSMS(t, h, "report lost")
			sim.SetFaults(modemsim.Faults{})
			after := sendSMS(t, h, "after the lost one")
			got = sink.wait(t, 3)
			if len(got) != 3 || got[2].Reference != after {
				t.Errorf("reports %+v, want a third for reference %d only", got, after)
			}
			for _, r := range got {
				if r.Reference == lost {
					t.Errorf("a report for the lost reference %d: %+v", lost, r)
				}
			}
			// Stored reports leave the SIM once handed over, and are handed
			// over once: a report left behind would come again with the
			// next drain.
			h.waitSIMEmpty()
			if got := sink.wait(t, 3); len(got) != 3 {
				t.Errorf("%d reports, want 3: %+v", len(got), got)
			}
			// SMS still arrive alongside.
			h.inject(modemsim.SMS{Text: "inbound too"})
			if m := h.messages(1); string(m[0].Payload) != "inbound too" {
				t.Errorf("got %q", m[0].Payload)
			}
		})
	}
}

// A stored report the Sink refuses stays on the SIM and is handed over
// by a later drain.
func TestHILDeliveryReportStoredKept(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", ReportDelay: 20 * time.Millisecond})
	sink := newReportSink()
	sink.setFail(errors.New("queue full"))
	h := runHILSink(t, sim, sink, sink.MemorySink, func(c *Config) {
		c.DeliveryReports = true
		c.Init = []string{"AT+CNMI=2,1,0,2,0"}
	}, 0)
	h.ready()
	ref := sendSMS(t, h, "kept")
	h.event(gw.EventReportLost)
	if n := len(sim.State().Stored); n != 1 {
		t.Fatalf("SIM holds %d messages, want the refused report", n)
	}
	sink.setFail(nil)
	got := sink.wait(t, 1)
	if got[0].Reference != ref || !got[0].Delivered {
		t.Errorf("report %+v", got[0])
	}
	h.waitSIMEmpty()
}

// Without DeliveryReports nothing asks for a report.
func TestHILNoDeliveryReports(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", ReportDelay: 20 * time.Millisecond})
	h := runHIL(t, sim, nil)
	h.ready()
	sendSMS(t, h, "no report")
	sent := sim.State().SentSMS
	if fo := pduFirstOctet(t, sent[0].PDU); fo&byte(tpdu.FoSRR) != 0 {
		t.Errorf("SMS-SUBMIT first octet %#02x asks for a report", fo)
	}
	if st := sim.State(); st.CNMI[3] != 0 {
		t.Errorf("CNMI = %v, want ds 0", st.CNMI)
	}
}

func pduFirstOctet(t *testing.T, pdu string) byte {
	t.Helper()
	if len(pdu) < 2 {
		t.Fatalf("PDU %q", pdu)
	}
	var b byte
	for _, c := range pdu[:2] {
		b <<= 4
		switch {
		case c >= '0' && c <= '9':
			b |= byte(c - '0')
		case c >= 'A' && c <= 'F':
			b |= byte(c-'A') + 10
		}
	}
	return b
}
