package main

// Hardware-in-loop tests of the real daemon: SMS Commands both ways,
// malformed requests and the embedded broker. See testutil_e2e_test.go for
// the rig.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/ratelimit"
	"github.com/simgate/simgate/modem/modemsim"
)

// Every kind of SMS Command reaches P/sms/in with its exact payload, the
// contract's fields and the id derived from its content: GSM 7-bit with the
// extension table, UCS-2 with emoji, 8-bit data as base64, and concatenated
// messages delivered out of order. An SMS from a sender not allowed is not
// relayed but reported on P/events.
func TestE2ESMSInExactPayloads(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	base := sentAtBase()
	long := strings.Repeat("Part of a long command with €{}[]~ and \\^| in it. ", 6)
	emoji := strings.Repeat("x", 66) + "😀 and 🌡️ at 31 °C across the boundary"
	data := []byte{0x00, 0x01, 0x1a, 0x1b, '\r', '\n', 0x7f, 0x80, 0xfe, 0xff}
	cases := []struct {
		in   modemsim.SMS
		want smsIn
	}{
		{modemsim.SMS{Text: "€{}[]~ \\^| gsm7 extension table", Encoding: "gsm7"}, wantText("000", "€{}[]~ \\^| gsm7 extension table", 1, base)},
		{modemsim.SMS{Text: "temperature alert 🌡️ 31 °C 😀", Encoding: "ucs2"}, wantText("000", "temperature alert 🌡️ 31 °C 😀", 1, base.Add(1*time.Second))},
		{modemsim.SMS{Data: data, Encoding: "8bit"}, wantData("000", data, base.Add(2*time.Second))},
		{modemsim.SMS{Text: long, Encoding: "gsm7", Parts: 3, Order: []int{3, 1, 2}}, wantText("000", long, 3, base.Add(3*time.Second))},
		{modemsim.SMS{Text: emoji, Encoding: "ucs2", Parts: 2, Order: []int{2, 1}}, wantText("000", emoji, 2, base.Add(4*time.Second))},
	}
	var want []smsIn
	for i, c := range cases {
		c.in.From = "000"
		c.in.SentAt = base.Add(time.Duration(i) * time.Second)
		r.inject(c.in)
		want = append(want, c.want)
		if i == 2 {
			// Between the others: not relayed, but never silent.
			r.inject(modemsim.SMS{From: "+447700900777", Text: "not from the Super SIM cloud", SentAt: base.Add(10 * time.Second)})
		}
	}
	// A last plain message: everything before it must have arrived by then,
	// so a message relayed that should not have been is seen too.
	last := modemsim.SMS{From: "000", Text: "last", SentAt: base.Add(20 * time.Second)}
	r.inject(last)
	want = append(want, wantText("000", "last", 1, last.SentAt))
	r.waitSMS(want, false, e2eWait)

	evs := r.obs.events()
	var rejected []event
	for _, e := range evs {
		if e.Type == "sms_sender_rejected" {
			rejected = append(rejected, e)
		}
	}
	if len(rejected) != 1 || rejected[0].Fields["from"] != "+447700900777" {
		t.Errorf("want one sms_sender_rejected event naming +447700900777, got %+v (all events %v)", rejected, eventTypes(evs))
	}
	// An SMS is deleted once committed to the queue, while the relay may
	// already be publishing it: the last delete can come after its
	// delivery.
	if !waitUntil(e2eWait, func() bool { return len(r.sim.State().Stored) == 0 }) {
		t.Errorf("SMS left on the SIM after delivery: %+v", r.sim.State().Stored)
	}
}

// sentWant is the part of a modemsim.SentSMS a test checks.
type sentWant struct {
	To       string
	Text     string
	Data     []byte
	Encoding string
}

// Requests on P/sms/out reach the network as SMS to 000 (or "to"), in the
// alphabet the payload needs, and each gets a "sent" result carrying the
// reference the module answered. Payloads exactly at the limits of one SMS
// are sent, not refused.
func TestE2ESMSOut(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	bin := []byte{0x00, 0x01, 0x1a, 0x1b, '\r', '\n', 0xff}
	b140 := make([]byte, 140)
	for i := range b140 {
		b140[i] = byte(255 - i)
	}
	g160 := strings.Repeat("g", 159) + "@"
	u70 := strings.Repeat("Ж", 69) + "ы"
	reqs := []struct {
		body string
		id   string // "" when the request has none
		want sentWant
	}{
		{`{"id":"out-gsm","payload":"status ok €[]{}~"}`, "out-gsm", sentWant{"000", "status ok €[]{}~", nil, "gsm7"}},
		{`{"id":"out-ucs2","payload":"👍 done, 31 °C 🌡️"}`, "out-ucs2", sentWant{"000", "👍 done, 31 °C 🌡️", nil, "ucs2"}},
		{`{"id":"out-to","payload":"to a number","to":"+447700900555"}`, "out-to", sentWant{"+447700900555", "to a number", nil, "gsm7"}},
		{`{"id":"out-bin","payload":"` + base64.StdEncoding.EncodeToString(bin) + `","encoding":"base64"}`, "out-bin", sentWant{"000", "", bin, "8bit"}},
		{`{"payload":"no id given","encoding":"text"}`, "", sentWant{"000", "no id given", nil, "gsm7"}},
		{`{"id":"out-160","payload":"` + g160 + `"}`, "out-160", sentWant{"000", g160, nil, "gsm7"}},
		{`{"id":"out-70","payload":"` + u70 + `"}`, "out-70", sentWant{"000", u70, nil, "ucs2"}},
		{`{"id":"out-140","payload":"` + base64.StdEncoding.EncodeToString(b140) + `","encoding":"base64"}`, "out-140", sentWant{"000", "", b140, "8bit"}},
	}
	for _, q := range reqs {
		publish(t, r.url, r.prefix+"/sms/out", []byte(q.body))
	}
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/out/result")) >= len(reqs) }) {
		t.Fatalf("%d of %d results on P/sms/out/result: %v", len(r.obs.on("sms/out/result")), len(reqs), r.obs.results("sms/out/result"))
	}
	results := r.obs.results("sms/out/result")
	sent := r.sim.State().SentSMS
	var gotSent, wantSent []sentWant
	for _, s := range sent {
		gotSent = append(gotSent, sentWant{s.To, s.Text, s.Data, s.Encoding})
	}
	for _, q := range reqs {
		wantSent = append(wantSent, q.want)
	}
	if diff := cmp.Diff(wantSent, gotSent); diff != "" {
		t.Fatalf("SMS the network received (-want +got):\n%s", diff)
	}
	if len(results) != len(reqs) {
		t.Fatalf("%d results for %d requests: %+v", len(results), len(reqs), results)
	}
	for i, q := range reqs {
		res := results[i]
		want := result{ID: q.id, Status: "sent", Reference: &sent[i].Reference}
		if q.id == "" {
			if res.ID == "" {
				t.Errorf("request without an id: result without one either: %+v", res)
			}
			want.ID = res.ID
		}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("result of request %d (-want +got):\n%s", i, diff)
		}
	}

	// The same id again (a client retrying, or the broker redelivering) is
	// not sent twice: it is dropped with a request_duplicate event. The
	// request after it shows it has been handled.
	publish(t, r.url, r.prefix+"/sms/out", []byte(reqs[0].body))
	checkSendAfter(t, r, "after-duplicate")
	if n := len(r.sim.State().SentSMS); n != len(reqs)+1 {
		t.Errorf("the network received %d SMS, want %d: the duplicate was sent", n, len(reqs)+1)
	}
	if !waitUntil(e2eWait, func() bool {
		for _, e := range r.obs.events() {
			if e.Type == "request_duplicate" && e.Fields["id"] == "out-gsm" {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no request_duplicate event for out-gsm; events: %v", eventTypes(r.obs.events()))
	}
	n := 0
	for _, res := range r.obs.results("sms/out/result") {
		if res.ID == "out-gsm" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d results for out-gsm, want the first one only", n)
	}
}

// Malformed and oversize requests get a "failed" result with the reason
// and a P/events entry; none reaches the modem, and a good request after
// them is still sent.
func TestE2EMalformedRequests(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	bad := []struct {
		topic  string
		body   string
		id     string // "" when no id can be read: one is generated
		reason string
	}{
		{"sms/out", `hello`, "", "must be a JSON object"},
		{"sms/out", `{"id":"truncated","payload":`, "", "malformed JSON"},
		{"sms/out", `{"id":"bad-encoding","payload":"x","encoding":"hex"}`, "bad-encoding", `unknown encoding "hex"`},
		{"sms/out", `{"id":"gsm7-161","payload":"` + strings.Repeat("a", 161) + `"}`, "gsm7-161", "161 GSM 7-bit characters"},
		{"sms/out", `{"id":"gsm7-161-ext","payload":"` + strings.Repeat("a", 159) + `€"}`, "gsm7-161-ext", "161 GSM 7-bit characters"},
		{"sms/out", `{"id":"ucs2-71","payload":"` + strings.Repeat("Ж", 71) + `"}`, "ucs2-71", "71 UTF-16 units"},
		{"sms/out", `{"id":"bin-141","payload":"` + b64(141) + `","encoding":"base64"}`, "bin-141", "141 bytes"},
		{"ip/out", `{"id":"ip-1301","payload":"` + b64(1301) + `","encoding":"base64"}`, "ip-1301", "1301 bytes"},
		{"sms/out", `{"id":"bad-base64","payload":"@@not base64@@","encoding":"base64"}`, "bad-base64", "not valid base64"},
		{"ip/out", `{"id":"ip-to","payload":"x","to":"000"}`, "ip-to", `"to" is not accepted on ip/out`},
		{"sms/out", `{"id":"bad-to","payload":"x","to":"call me"}`, "bad-to", "digits"},
		{"sms/out", `{"id":"no-payload"}`, "no-payload", "payload is missing"},
		{"sms/out", `{"id":"empty-payload","payload":""}`, "empty-payload", "payload is empty"},
		{"sms/out", `{"id":"unknown-field","payload":"x","priority":"high"}`, "unknown-field", `unknown field "priority"`},
	}
	for _, q := range bad {
		publish(t, r.url, r.prefix+"/"+q.topic, []byte(q.body))
	}
	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"good","payload":"still working"}`))

	total := func() int { return len(r.obs.on("sms/out/result")) + len(r.obs.on("ip/out/result")) }
	if !waitUntil(e2eWait, func() bool { return total() >= len(bad)+1 }) {
		t.Fatalf("%d results for %d requests", total(), len(bad)+1)
	}
	results := map[string][]result{
		"sms/out": r.obs.results("sms/out/result"),
		"ip/out":  r.obs.results("ip/out/result"),
	}
	used := map[string]bool{}
	for _, q := range bad {
		var found *result
		for i, res := range results[q.topic] {
			if used[res.ID] || res.Status != "failed" || !strings.Contains(res.Error, q.reason) {
				continue
			}
			if q.id != "" && res.ID != q.id {
				continue
			}
			found = &results[q.topic][i]
			break
		}
		if found == nil {
			t.Errorf("%s %s: no failed result with the reason %q; results: %+v", q.topic, q.body[:min(len(q.body), 60)], q.reason, results[q.topic])
			continue
		}
		used[found.ID] = true
		if found.ID == "" || found.Reference != nil {
			t.Errorf("%s %s: result %+v: want an id and no reference", q.topic, q.body[:min(len(q.body), 60)], *found)
		}
	}
	var good []result
	for _, res := range results["sms/out"] {
		if res.ID == "good" {
			good = append(good, res)
		}
	}
	if len(good) != 1 || good[0].Status != "sent" || good[0].Reference == nil {
		t.Errorf("the good request after the bad ones: results %+v", good)
	}
	sent := r.sim.State().SentSMS
	if len(sent) != 1 || sent[0].Text != "still working" || sent[0].To != "000" {
		t.Errorf("the network received %+v; want only the good request", sent)
	}

	// Each rejection is on P/events too, naming the request and the reason.
	if !waitUntil(e2eWait, func() bool { return countEvents(r.obs.events(), "request_rejected") >= len(bad) }) {
		t.Errorf("%d request_rejected events for %d bad requests: %v", countEvents(r.obs.events(), "request_rejected"), len(bad), eventTypes(r.obs.events()))
	}
	for _, q := range bad {
		if q.id == "" {
			continue
		}
		ok := false
		for _, e := range r.obs.events() {
			if e.Type == "request_rejected" && e.Fields["id"] == q.id && strings.Contains(e.Message, q.reason) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no request_rejected event for %s with the reason %q", q.id, q.reason)
		}
	}
	// The daemon is still up and relaying.
	in := modemsim.SMS{From: "000", Text: "inbound after the bad requests", SentAt: sentAtBase()}
	r.inject(in)
	r.waitSMS([]smsIn{wantText("000", in.Text, 1, in.SentAt)}, false, e2eWait)
}

func countEvents(evs []event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// With mqtt.embedded the daemon is its own broker: one SMS in, one out.
func TestE2EEmbeddedBroker(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Embedded: true})
	r.waitReady()
	in := modemsim.SMS{From: "000", Text: "over the embedded broker €", SentAt: sentAtBase()}
	r.inject(in)
	r.waitSMS([]smsIn{wantText("000", in.Text, 1, in.SentAt)}, false, e2eWait)

	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"emb-1","payload":"reply 👍"}`))
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/out/result")) >= 1 }) {
		t.Fatal("no result on P/sms/out/result")
	}
	sent := r.sim.State().SentSMS
	if len(sent) != 1 {
		t.Fatalf("the network received %d SMS, want 1: %+v", len(sent), sent)
	}
	if diff := cmp.Diff(sentWant{"000", "reply 👍", nil, "ucs2"}, sentWant{sent[0].To, sent[0].Text, sent[0].Data, sent[0].Encoding}); diff != "" {
		t.Errorf("sent SMS (-want +got):\n%s", diff)
	}
	ref := sent[0].Reference
	if diff := cmp.Diff([]result{{ID: "emb-1", Status: "sent", Reference: &ref}}, r.obs.results("sms/out/result")); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	raw := retainedOn(t, r.url, r.prefix+"/status")
	var st statusMsg
	if err := json.Unmarshal(raw, &st); err != nil || !st.Online {
		t.Errorf("retained status on the embedded broker: %s (%v)", raw, err)
	}
}

// A flood of bad requests against the real daemon: every request gets its
// failed result, but P/events and the log carry only the first rejections
// of the minute and, at the latest when the daemon stops, one summary
// with the count of the rest.
func TestE2ERequestFloodLimited(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	const n = 200
	for i := range n {
		publish(t, r.url, r.prefix+"/sms/out", fmt.Appendf(nil, `{"id":"flood-%d","payload":5}`, i))
	}
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/out/result")) >= n }) {
		t.Fatalf("%d results for %d requests", len(r.obs.on("sms/out/result")), n)
	}
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	held := n - ratelimit.DefaultBurst
	var summary *event
	if !waitUntil(e2eWait, func() bool {
		for _, e := range r.obs.events() {
			if e.Type == "request_rejected" && e.Fields["suppressed"] != nil {
				summary = &e
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no summary event; %d request_rejected events", countEvents(r.obs.events(), "request_rejected"))
	}
	if got := countEvents(r.obs.events(), "request_rejected"); got != ratelimit.DefaultBurst+1 {
		t.Errorf("%d request_rejected events for %d bad requests, want %d and a summary", got, n, ratelimit.DefaultBurst)
	}
	if summary.Fields["suppressed"] != float64(held) || summary.Fields["id"] != fmt.Sprint("flood-", n-1) {
		t.Errorf("summary %+v: want suppressed %d and the latest id", *summary, held)
	}
	lines := r.gw.logLines(`msg="request rejected"`)
	if len(lines) != ratelimit.DefaultBurst+1 || !strings.Contains(lines[len(lines)-1], fmt.Sprintf("suppressed=%d", held)) {
		t.Errorf("%d \"request rejected\" log lines, want %d and a summary with suppressed=%d; last: %q",
			len(lines), ratelimit.DefaultBurst+1, held, lines[len(lines)-1])
	}
}
