package main

// Hardware-in-loop tests of the daemon on every simulated module, with
// modem.profile auto: SMS both ways and, where the module has sockets, IP
// Commands both ways (ip.mode modem).

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/modem/modemsim"
)

// ipIn is P/ip/in as docs/contract.md defines it.
type ipIn struct {
	ID         string `json:"id"`
	Channel    string `json:"channel"`
	From       string `json:"from"`
	Port       int    `json:"port"`
	Payload    string `json:"payload"`
	Encoding   string `json:"encoding"`
	ReceivedAt string `json:"received_at"`
}

var ipInKeys = []string{"id", "channel", "from", "port", "payload", "encoding", "received_at"}

// ipIn decodes every P/ip/in message so far, in order.
func (o *observer) ipIn() []ipIn {
	o.t.Helper()
	var out []ipIn
	for _, m := range o.on("ip/in") {
		var p ipIn
		if err := decodeStrict(m.Payload, &p, ipInKeys); err != nil {
			o.problem("P/ip/in: %v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// The daemon detects each module (modem.profile auto) and relays SMS
// Commands both ways on it; on modules with sockets it also relays IP
// Commands both ways, binary-safe and up to 1300 bytes.
func TestE2EProfiles(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{"quectel", "simcom", "ublox", "generic", "sim7080", "sara-r5"} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			ip := profile != "generic" // the generic module has no sockets
			mode := "off"
			if ip {
				mode = "modem"
			}
			r := newRig(t, rigOptions{Sim: modemsim.Options{Profile: profile}, IPMode: mode})
			base := sentAtBase()
			long := strings.Repeat("Ж", 60) + " 😀 " + strings.Repeat("ы", 30)
			in := []modemsim.SMS{
				{From: "000", Text: "on " + profile + " {€}", SentAt: base},
				{From: "000", Text: long, Encoding: "ucs2", Parts: 2, Order: []int{2, 1}, SentAt: base.Add(time.Second)},
			}
			for _, m := range in {
				r.inject(m)
			}
			r.waitSMS([]smsIn{wantText("000", in[0].Text, 1, base), wantText("000", long, 2, base.Add(time.Second))}, false, e2eWait)
			r.waitReady()
			checkSendAfter(t, r, "on-"+profile)
			if ip {
				checkIPBothWays(t, r, profile)
			}
		})
	}
}

// checkIPBothWays injects datagrams on ip.port and checks them on P/ip/in,
// then sends requests on P/ip/out and checks what the network received.
// A SARA-R4 socket sends at most 1024 bytes per datagram: there a
// 1300-byte request must fail with that reason, and nothing go out.
func checkIPBothWays(t *testing.T, r *rig, profile string) {
	t.Helper()
	const cloud = "100.64.0.1:6969"
	if !waitUntil(e2eWait, func() bool {
		for _, s := range r.sim.State().Sockets {
			if s.Port == 6969 && !s.Closed {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the daemon opened no socket on port 6969; %s", r.simSummary())
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat(all, 6)[:1300]
	dgrams := []struct {
		data     []byte
		payload  string
		encoding string
	}{
		{[]byte("ip hello € {}"), "ip hello € {}", "text"},
		{all, base64.StdEncoding.EncodeToString(all), "base64"},
		{big, base64.StdEncoding.EncodeToString(big), "base64"},
	}
	for _, d := range dgrams {
		if err := r.sim.InjectUDP(cloud, 6969, d.data); err != nil {
			t.Fatalf("inject datagram: %v", err)
		}
	}
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("ip/in")) >= len(dgrams) }) {
		t.Fatalf("%d of %d datagrams on P/ip/in; %s", len(r.obs.on("ip/in")), len(dgrams), r.simSummary())
	}
	got := r.obs.ipIn()
	ids := map[string]bool{}
	for i, g := range got {
		if i >= len(dgrams) {
			t.Errorf("more on P/ip/in than injected: %+v", g)
			continue
		}
		if !strings.HasPrefix(g.ID, "ip-") || ids[g.ID] {
			t.Errorf("datagram %d: id %q is not a new ip- id", i, g.ID)
		}
		ids[g.ID] = true
		if ts, err := time.Parse(time.RFC3339, g.ReceivedAt); err != nil || ts.Location() != time.UTC {
			t.Errorf("datagram %d: received_at %q is not RFC 3339 UTC", i, g.ReceivedAt)
		}
		want := ipIn{ID: g.ID, Channel: "ip", From: cloud, Port: 6969, Payload: dgrams[i].payload, Encoding: dgrams[i].encoding, ReceivedAt: g.ReceivedAt}
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("datagram %d on P/ip/in (-want +got):\n%s", i, diff)
		}
	}

	outs := []struct {
		body string
		data []byte
	}{
		{`{"id":"ip-text","payload":"ip reply €"}`, []byte("ip reply €")},
		{`{"id":"ip-all","payload":"` + base64.StdEncoding.EncodeToString(all) + `","encoding":"base64"}`, all},
		{`{"id":"ip-1300","payload":"` + base64.StdEncoding.EncodeToString(big) + `","encoding":"base64"}`, big},
	}
	for _, o := range outs {
		publish(t, r.url, r.prefix+"/ip/out", []byte(o.body))
	}
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("ip/out/result")) >= len(outs) }) {
		t.Fatalf("%d of %d results on P/ip/out/result: %+v", len(r.obs.on("ip/out/result")), len(outs), r.obs.results("ip/out/result"))
	}
	results := r.obs.results("ip/out/result")
	wantResults := []result{{ID: "ip-text", Status: "sent"}, {ID: "ip-all", Status: "sent"}, {ID: "ip-1300", Status: "sent"}}
	// SARA-R5's AT+USOST has the R4's limit.
	if (profile == "ublox" || profile == "sara-r5") && len(results) == len(outs) {
		if !strings.Contains(results[2].Error, "1024 bytes") {
			t.Errorf("a 1300-byte request on SARA-R4: error %q does not give the module's 1024-byte limit", results[2].Error)
		}
		wantResults[2] = result{ID: "ip-1300", Status: "failed", Error: results[2].Error}
		outs = outs[:2]
	}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("P/ip/out/result (-want +got):\n%s", diff)
	}
	var sent []string
	for _, s := range r.sim.State().SentUDP {
		sent = append(sent, fmt.Sprintf("%s %x", s.To, s.Data))
	}
	var want []string
	for _, o := range outs {
		want = append(want, fmt.Sprintf("%s %x", cloud, o.data))
	}
	if diff := cmp.Diff(want, sent); diff != "" {
		t.Errorf("datagrams the network received (-want +got):\n%s", diff)
	}
}
