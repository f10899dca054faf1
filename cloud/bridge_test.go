package cloud

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/transport"
)

const (
	testICCID = "8988307000000000001"
	testSid   = "HS00000000000000000000000000000001"
)

// signTwilio signs as Twilio does: base64 HMAC-SHA1 with the auth token
// over the URL followed by the sorted POST parameters.
func signTwilio(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := u
	for _, k := range keys {
		s += k + form.Get(k)
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func postCallback(t *testing.T, u string, form url.Values, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func statuses(rs []ResultJSON) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// A request on to_sim becomes one SmsCommand with the SIM's SID, the
// payload and a CallbackUrl; its result is queued, then the signed status
// callbacks give sent and delivered, each once and in order even when a
// callback is repeated or arrives out of order.
func TestBridgeSMSRoundTrip(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	tb := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-1")

	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"r1","payload":"hello device"}`)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 1 }) {
		t.Fatalf("no result; got %v", obs.on(""))
	}
	sms, _ := api.created()
	if len(sms) != 1 {
		t.Fatalf("created %d SmsCommands, want 1", len(sms))
	}
	f := sms[0].Form
	if f.Get("Sim") != testSid || f.Get("Payload") != "hello device" || f.Get("CallbackMethod") != "POST" {
		t.Errorf("SmsCommand form = %v", f)
	}
	cb := f.Get("CallbackUrl")
	if !strings.HasPrefix(cb, tb.public+"/callbacks/sms?") || !strings.Contains(cb, "id=r1") {
		t.Errorf("CallbackUrl = %q", cb)
	}
	sid := sms[0].Sid
	// delivered arrives before sent, and sent twice.
	for _, st := range []string{"delivered", "sent", "sent"} {
		form := url.Values{"SmsCommandSid": {sid}, "SimSid": {testSid}, "Status": {st}}
		if code := postCallback(t, cb, form, map[string]string{HeaderTwilioSignature: signTwilio(api.pass, cb, form)}); code != 200 {
			t.Fatalf("callback %s answered %d", st, code)
		}
	}
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 3 }) {
		t.Fatalf("results: %v", obs.results("/sms/to_sim/result"))
	}
	time.Sleep(300 * time.Millisecond)
	got := obs.results("/sms/to_sim/result")
	if diff := cmp.Diff([]string{"queued", "sent", "delivered"}, statuses(got)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.ID != "r1" || r.Sid != sid {
			t.Errorf("result %+v: want id r1 sid %s", r, sid)
		}
	}
	if n := len(obs.on("supersim/" + testICCID + "/sms/to_sim/result")); n != 3 {
		t.Errorf("results on the ICCID's topic: %d, want 3", n)
	}
}

// A forged callback or webhook is answered 403 and nothing is published.
func TestBridgeForgedCallback(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	tb := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-1")

	form := url.Values{"Sid": {"HC0001"}, "SimSid": {testSid}, "SimIccid": {testICCID}, "Payload": {"x"}, "Direction": {"from_sim"}}
	u := tb.public + "/webhooks/sms"
	for name, h := range map[string]map[string]string{
		"missing":     {},
		"wrong token": {HeaderTwilioSignature: signTwilio("other", u, form)},
		"other url":   {HeaderTwilioSignature: signTwilio(api.pass, u+"x", form)},
	} {
		if code := postCallback(t, u, form, h); code != 403 {
			t.Errorf("%s signature: answered %d, want 403", name, code)
		}
	}
	cb := tb.public + "/callbacks/sms?id=r1&sim=" + testICCID
	cform := url.Values{"Sid": {"HC0001"}, "Status": {"delivered"}}
	if code := postCallback(t, cb, cform, map[string]string{HeaderTwilioSignature: "AAAA"}); code != 403 {
		t.Errorf("forged callback answered %d, want 403", code)
	}
	if !waitFor(testWait, func() bool { return len(obs.on("bridge/events")) > 0 }) {
		t.Error("no bad_signature event")
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(obs.on("/from_sim")) + len(obs.on("/result")); n != 0 {
		t.Errorf("%d messages published for forged callbacks", n)
	}
	var ev map[string]any
	if err := json.Unmarshal(obs.on("bridge/events")[0].payload, &ev); err != nil || ev["type"] != "bad_signature" {
		t.Errorf("event %v (%v), want type bad_signature", ev, err)
	}
	// The genuine one goes through, once, whatever the redeliveries.
	for range 2 {
		if code := postCallback(t, u, form, map[string]string{HeaderTwilioSignature: signTwilio(api.pass, u, form)}); code != 200 {
			t.Fatalf("genuine webhook answered %d", code)
		}
	}
	if !waitFor(testWait, func() bool { return len(obs.on("/sms/from_sim")) >= 1 }) {
		t.Fatal("from_sim not published")
	}
	time.Sleep(300 * time.Millisecond)
	msgs := obs.on("supersim/" + testICCID + "/sms/from_sim")
	if len(msgs) != 1 {
		t.Fatalf("from_sim published %d times, want 1", len(msgs))
	}
	var m FromSimJSON
	if err := json.Unmarshal(msgs[0].payload, &m); err != nil {
		t.Fatal(err)
	}
	want := FromSimJSON{ID: "HC0001", Sid: "HC0001", Channel: "sms", Sim: testICCID, Payload: "x", Encoding: "text", ReceivedAt: m.ReceivedAt}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("from_sim (-want +got):\n%s", diff)
	}
}

// 429 with Retry-After and 503 are retried; the command is created once; a
// 4xx is final with the API's code and message in the result.
func TestBridgeRetriesAndFinalErrors(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	api.script(fakeAnswer{status: 429, code: 20429, message: "Too Many Requests", retryAfter: "1"},
		fakeAnswer{status: 503, code: 20503, message: "Service Unavailable"},
		fakeAnswer{status: 503, code: 20503, message: "Service Unavailable"})
	obs := observe(t, br.url(), "supersim/#")
	runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-1")

	start := time.Now()
	publish(t, br.url(), "supersim/"+testICCID+"/ip/to_sim", `{"id":"ip1","payload":"AAEC","encoding":"base64"}`)
	if !waitFor(testWait, func() bool { return len(obs.results("/ip/to_sim/result")) >= 1 }) {
		t.Fatal("no result after retries")
	}
	if time.Since(start) < time.Second {
		t.Errorf("result after %s: Retry-After: 1 was not honoured", time.Since(start))
	}
	_, ip := api.created()
	if len(ip) != 1 {
		t.Fatalf("created %d IpCommands, want 1", len(ip))
	}
	if f := ip[0].Form; f.Get("PayloadType") != "binary" || f.Get("Payload") != "AAEC" || f.Get("DevicePort") != "6969" {
		t.Errorf("IpCommand form %v", f)
	}
	if got := obs.results("/ip/to_sim/result"); got[0].Status != "queued" || got[0].ID != "ip1" {
		t.Errorf("result %+v", got[0])
	}
	if len(obs.on("bridge/events")) == 0 {
		t.Error("no api_retry event")
	}

	api.script(fakeAnswer{status: 400, code: 83001, message: "Payload too long for this SIM"})
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"bad","payload":"x"}`)
	publish(t, br.url(), "supersim/8988307000000009999/sms/to_sim", `{"id":"nosim","payload":"x"}`)
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"big","payload":"`+strings.Repeat("a", 161)+`"}`)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 3 }) {
		t.Fatalf("results %v", obs.results("/sms/to_sim/result"))
	}
	byID := map[string]ResultJSON{}
	for _, r := range obs.results("/sms/to_sim/result") {
		byID[r.ID] = r
	}
	if r := byID["bad"]; r.Status != "failed" || r.Code != 83001 || r.Error != "Payload too long for this SIM" {
		t.Errorf("4xx result %+v", r)
	}
	if r := byID["nosim"]; r.Status != "failed" || r.Code != 20404 {
		t.Errorf("unknown SIM result %+v", r)
	}
	if r := byID["big"]; r.Status != "failed" || !strings.Contains(r.Error, "161 characters") {
		t.Errorf("oversize result %+v", r)
	}
	if sms, _ := api.created(); len(sms) != 0 {
		t.Errorf("%d SmsCommands created for refused requests", len(sms))
	}
}

// Requests of one SIM reach the API in arrival order; a duplicate id is
// dropped; the ICCID is looked up once and cached across restarts.
func TestBridgeOrderDedupAndSimCache(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	dir := t.TempDir()
	tb := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
	var payloads []string
	for i := range 50 {
		payloads = append(payloads, fmt.Sprintf(`{"id":"o%02d","payload":"m%02d"}`, i, i))
	}
	payloads = append(payloads, `{"id":"o00","payload":"again"}`)
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", payloads...)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 50 }) {
		t.Fatalf("%d results", len(obs.results("/sms/to_sim/result")))
	}
	time.Sleep(300 * time.Millisecond)
	sms, _ := api.created()
	if len(sms) != 50 {
		t.Fatalf("created %d, want 50 (duplicate id dropped)", len(sms))
	}
	for i, c := range sms {
		if want := fmt.Sprintf("m%02d", i); c.Form.Get("Payload") != want {
			t.Fatalf("command %d payload %q, want %q: order lost", i, c.Form.Get("Payload"), want)
		}
	}
	for i, r := range obs.results("/sms/to_sim/result") {
		if want := fmt.Sprintf("o%02d", i); r.ID != want {
			t.Fatalf("result %d id %q, want %q", i, r.ID, want)
		}
	}
	tb.stop(t)
	tb = runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"after","payload":"x"}`)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 51 }) {
		t.Fatal("no result after restart")
	}
	api.mu.Lock()
	lookups := api.lookups
	api.mu.Unlock()
	if lookups != 1 {
		t.Errorf("ICCID looked up %d times, want 1 (cached durably)", lookups)
	}
	_ = tb
}

// Two bridges share the requests through the shared subscription, and a
// status callback taken by the instance that did not create the command is
// published against the right request all the same.
func TestBridgeSharedSubscriptionAndForeignCallback(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	a := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-a")
	b := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-b")
	var reqs []string
	for i := range 20 {
		reqs = append(reqs, fmt.Sprintf(`{"id":"s%02d","payload":"p%02d"}`, i, i))
	}
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", reqs...)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 20 }) {
		t.Fatalf("%d results", len(obs.results("/sms/to_sim/result")))
	}
	sms, _ := api.created()
	if len(sms) != 20 {
		t.Fatalf("created %d, want 20", len(sms))
	}
	if na, nb := a.b.Created.Load(), b.b.Created.Load(); na == 0 || nb == 0 || na+nb != 20 {
		t.Errorf("bridge a created %d, b %d: want a share each, 20 in all", na, nb)
	}
	// The callback URL names bridge a or b; deliver it to the other one.
	c := sms[0]
	cb, err := url.Parse(c.Form.Get("CallbackUrl"))
	if err != nil {
		t.Fatal(err)
	}
	other := a.public
	if strings.HasPrefix(cb.String(), a.public) {
		other = b.public
	}
	u := other + cb.RequestURI()
	form := url.Values{"Sid": {c.Sid}, "Status": {"delivered"}}
	if code := postCallback(t, u, form, map[string]string{HeaderTwilioSignature: signTwilio(api.pass, u, form)}); code != 200 {
		t.Fatalf("callback at the other instance answered %d", code)
	}
	id := cb.Query().Get("id")
	if !waitFor(testWait, func() bool {
		for _, r := range obs.results("/sms/to_sim/result") {
			if r.ID == id && r.Status == "delivered" && r.Sid == c.Sid {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no delivered result for %s via the other instance: %v", id, obs.results("/sms/to_sim/result"))
	}
}

// cloud.sims: a SIM outside the allowlist gets a failed result and no API
// call; one on it (by ICCID or by SID) goes through.
func TestBridgeSimsAllowlist(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	api.sims["8988307000000000002"] = "HS00000000000000000000000000000002"
	obs := observe(t, br.url(), "supersim/#")
	runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-1",
		func(c *Config) { c.Sims = []string{"HS00000000000000000000000000000001"} })
	publish(t, br.url(), "supersim/8988307000000000002/sms/to_sim", `{"id":"no","payload":"x"}`)
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"yes","payload":"y"}`)
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 2 }) {
		t.Fatalf("results %v", obs.results("/sms/to_sim/result"))
	}
	for _, r := range obs.results("/sms/to_sim/result") {
		switch r.ID {
		case "no":
			if r.Status != "failed" || !strings.Contains(r.Error, "not in cloud.sims") {
				t.Errorf("outside the allowlist: %+v", r)
			}
		case "yes":
			if r.Status != "queued" {
				t.Errorf("on the allowlist: %+v", r)
			}
		}
	}
	if sms, _ := api.created(); len(sms) != 1 || sms[0].Form.Get("Payload") != "y" {
		t.Errorf("created %v", sms)
	}
}

// A request found after a restart with its API call under way is looked
// for at the API first: the command created before the crash is taken, not
// created again. One not found there is created.
func TestBridgeInDoubtRequestNotCreatedTwice(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	// The API created "done before" for the SIM before the bridge died.
	api.sms = append(api.sms, created{Sid: "HC0000000000000000000000000000abcd", Form: url.Values{"Sim": {testSid}, "Payload": {"done before"}}})
	dir := t.TempDir()
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []transport.Job
	for i, p := range []string{"done before", "never sent"} {
		r := Request{ID: fmt.Sprintf("d%d", i), Channel: ChannelSMS, Sim: testICCID, Payload: p, ReceivedAt: time.Now().UTC(), AttemptedAt: time.Now().UTC()}
		body, _ := json.Marshal(r)
		jobs = append(jobs, transport.Job{Lane: testICCID, ID: testICCID + "/sms/" + r.ID, Body: body})
	}
	if _, err := q.AddJobs(context.Background(), jobs, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	obs := observe(t, br.url(), "supersim/#")
	runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
	if !waitFor(testWait, func() bool { return len(obs.results("/sms/to_sim/result")) >= 2 }) {
		t.Fatalf("results %v", obs.results("/sms/to_sim/result"))
	}
	sms, _ := api.created()
	if len(sms) != 2 {
		t.Fatalf("API holds %d commands, want 2 (one from before, one new)", len(sms))
	}
	got := obs.results("/sms/to_sim/result")
	if got[0].ID != "d0" || got[0].Sid != "HC0000000000000000000000000000abcd" || got[0].Status != "queued" {
		t.Errorf("in-doubt request: %+v, want the command created before", got[0])
	}
	if got[1].ID != "d1" || got[1].Sid != sms[1].Sid {
		t.Errorf("request never sent: %+v, want the new command %s", got[1], sms[1].Sid)
	}
}
