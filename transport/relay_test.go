package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ratelimit"
)

func TestRelayInboundInOrder(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	q := openTestQueue(t, t.TempDir(), 1000)
	ctx := context.Background()
	var want []msg
	put := func(m gw.Inbound) {
		t.Helper()
		if err := q.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg{Topic: testPrefix + "/" + inboundTopic(m), Payload: mustRender(t, m)})
	}
	// Some wait before the relay starts, some arrive while it runs.
	for i := range 10 {
		if i%4 == 0 {
			put(udp(i))
		} else {
			put(sms(i))
		}
	}
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), q, newFakeDevice())
	runRelay(t, r)
	for i := 10; i < 30; i++ {
		if i%4 == 0 {
			put(udp(i))
		} else {
			put(sms(i))
		}
	}
	eventually(t, "30 messages", func() bool { return len(obs.on(TopicSMSIn))+len(obs.on(TopicIPIn)) >= 30 })
	var got []msg
	for _, m := range obs.all() {
		if strings.HasSuffix(m.Topic, "/in") {
			got = append(got, m)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	eventually(t, "queue to empty", func() bool { return q.Stats().Inbound == 0 })
	if got := r.Stats().Published; got != 30 {
		t.Errorf("Stats().Published = %d, want 30", got)
	}
	// Delivered messages are remembered: the same SMS again is not sent.
	if err := q.Put(ctx, sms(1)); err != nil {
		t.Fatal(err)
	}
	if got := q.Stats().Inbound; got != 0 {
		t.Errorf("redelivered SMS queued again: %d pending", got)
	}
}

func TestRelayRequests(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	q := openTestQueue(t, t.TempDir(), 1000)
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), q, dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	pub := publisher(t, "tcp://"+addr)

	smsReqs := []struct {
		body string
		want string // result, with a generated id replaced by "GEN"
	}{
		{`{"id":"s1","payload":"reboot"}`, `{"id":"s1","status":"sent","reference":1}`},
		{`{"payload":"no id"}`, `{"id":"GEN","status":"sent","reference":2}`},
		{`{"id":"s3","payload":"AP8=","encoding":"base64","to":"+15550100"}`, `{"id":"s3","status":"sent","reference":3}`},
		{`{"id":"s4","payload":"` + strings.Repeat("x", 161) + `"}`, `{"id":"s4","status":"failed","error":"too long for one SMS: text needs 161 GSM 7-bit characters, one SMS holds at most 160"}`},
		{`not json`, `{"id":"GEN","status":"failed","error":"request must be a JSON object"}`},
		{`{"id":"s6","payload":"x","encoding":"rot13"}`, `{"id":"s6","status":"failed","error":"unknown encoding \"rot13\": use \"text\" or \"base64\""}`},
		{`{"id":"s7","payload":"after the bad ones"}`, `{"id":"s7","status":"sent","reference":4}`},
	}
	ipReqs := []struct {
		body string
		want string
	}{
		{`{"id":"i1","payload":"AAEC","encoding":"base64"}`, `{"id":"i1","status":"sent"}`},
		{`{"id":"i2","payload":"hello"}`, `{"id":"i2","status":"sent"}`},
		{`{"id":"i3","payload":"x","to":"000"}`, `{"id":"i3","status":"failed","error":"\"to\" is not accepted on ip/out: datagrams go to the configured ip.cloud address"}`},
	}
	for i := range max(len(smsReqs), len(ipReqs)) {
		if i < len(smsReqs) {
			publish(t, pub, TopicSMSOut, smsReqs[i].body)
		}
		if i < len(ipReqs) {
			publish(t, pub, TopicIPOut, ipReqs[i].body)
		}
	}
	gen := func(results []string) []string {
		var out []string
		for _, s := range results {
			var m map[string]any
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				t.Fatalf("result is not JSON: %s", s)
			}
			if id, _ := m["id"].(string); strings.HasPrefix(id, "req-") {
				s = strings.Replace(s, id, "GEN", 1)
			}
			out = append(out, s)
		}
		return out
	}
	var wantSMS, wantIP []string
	for _, r := range smsReqs {
		wantSMS = append(wantSMS, r.want)
	}
	for _, r := range ipReqs {
		wantIP = append(wantIP, r.want)
	}
	obs.wait(t, TopicSMSOutResult, len(smsReqs))
	obs.wait(t, TopicIPOutResult, len(ipReqs))
	// Rejections are answered at once, sends when the device returns, so
	// the two interleave; the device calls below pin the order of sends.
	if diff := cmp.Diff(sortedCopy(wantSMS), sortedCopy(gen(obs.payloads(TopicSMSOutResult)))); diff != "" {
		t.Errorf("sms results (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedCopy(wantIP), sortedCopy(gen(obs.payloads(TopicIPOutResult)))); diff != "" {
		t.Errorf("ip results (-want +got):\n%s", diff)
	}
	gotSMS, gotUDP := dev.sent()
	wantSent := []sentSMS{{"000", "reboot", false}, {"000", "no id", false}, {"+15550100", "\x00\xff", true}, {"000", "after the bad ones", false}}
	if diff := cmp.Diff(wantSent, gotSMS); diff != "" {
		t.Errorf("SMS sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]byte{{0, 1, 2}, []byte("hello")}, gotUDP); diff != "" {
		t.Errorf("UDP sent (-want +got):\n%s", diff)
	}
	// Every rejection is also an event naming the request.
	events := obs.wait(t, TopicEvents, 4)
	var rejected []string
	for _, e := range events {
		var m map[string]any
		if err := json.Unmarshal([]byte(e.Payload), &m); err != nil {
			t.Fatalf("event is not JSON: %s", e.Payload)
		}
		if m["type"] == "request_rejected" && m["message"] != "" && m["time"] != "" {
			rejected = append(rejected, fmt.Sprint(m["channel"]))
		}
	}
	if diff := cmp.Diff([]string{"ip", "sms", "sms", "sms"}, sortedCopy(rejected)); diff != "" {
		t.Errorf("rejection events by channel (-want +got):\n%s", diff)
	}
	eventually(t, "results to leave the queue", func() bool { return q.Stats().Pending() == 0 })
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestRelayDeviceError(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	dev := newFakeDevice()
	dev.err = errors.New("+CMS ERROR: 500")
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), openTestQueue(t, t.TempDir(), 10), dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	publish(t, publisher(t, "tcp://"+addr), TopicSMSOut, `{"id":"x","payload":"hi"}`)
	got := obs.wait(t, TopicSMSOutResult, 1)
	if diff := cmp.Diff(`{"id":"x","status":"failed","error":"+CMS ERROR: 500"}`, got[0].Payload); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestRelayDuplicateRequest(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), openTestQueue(t, t.TempDir(), 10), dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	pub := publisher(t, "tcp://"+addr)
	publish(t, pub, TopicSMSOut, `{"id":"same","payload":"one"}`)
	obs.wait(t, TopicSMSOutResult, 1)
	publish(t, pub, TopicSMSOut, `{"id":"same","payload":"one"}`)
	publish(t, pub, TopicSMSOut, `{"id":"other","payload":"two"}`)
	obs.wait(t, TopicSMSOutResult, 2)
	events := obs.wait(t, TopicEvents, 1)
	if !strings.Contains(events[0].Payload, `"type":"request_duplicate"`) {
		t.Errorf("event %s, want request_duplicate", events[0].Payload)
	}
	got, _ := dev.sent()
	if diff := cmp.Diff([]sentSMS{{"000", "one", false}, {"000", "two", false}}, got); diff != "" {
		t.Errorf("SMS sent (-want +got):\n%s", diff)
	}
}

func TestRelayRequestQueueFull(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	broker := embeddedBroker(t, addr, obs)
	q := openTestQueue(t, t.TempDir(), 1)
	// A request the modem is still sending holds the only place.
	if err := q.admit(context.Background(), []*admit{{Req: Request{ID: "held", Channel: gw.ChannelSMS, To: "000", Payload: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	dev := newFakeDevice()
	release := make(chan struct{})
	dev.release = release
	t.Cleanup(func() { close(release) })
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), q, dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	<-dev.started
	broker.waitSubscribed(t, "simgate-dev1")
	publish(t, publisher(t, "tcp://"+addr), TopicIPOut, `{"id":"f","payload":"x"}`)
	got := obs.wait(t, TopicIPOutResult, 1)
	if diff := cmp.Diff(`{"id":"f","status":"failed","error":"queue full"}`, got[0].Payload); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	events := obs.wait(t, TopicEvents, 1)
	if !strings.Contains(events[0].Payload, `"type":"queue_full"`) {
		t.Errorf("event %s, want queue_full", events[0].Payload)
	}
	if _, udp := dev.sent(); len(udp) != 0 {
		t.Errorf("device sent %d datagrams, want none", len(udp))
	}
}

// TestRelayBrokerOutage stops the broker, lets 50 SMS arrive, and starts it
// again: all 50 arrive in order, and requests work again (the relay
// resubscribes on a broker that forgot its session).
func TestRelayBrokerOutage(t *testing.T) {
	addr := freeAddr(t)
	obs1 := new(observer)
	srv := embeddedBroker(t, addr, obs1)
	q := openTestQueue(t, t.TempDir(), 1000)
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), q, dev)
	stop := runRelay(t, r)
	ctx := context.Background()
	if err := q.Put(ctx, sms(0)); err != nil {
		t.Fatal(err)
	}
	obs1.wait(t, TopicSMSIn, 1)

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "relay to notice", func() bool { return !r.Stats().Connected })
	var want []string
	for i := 1; i <= 50; i++ {
		m := sms(i)
		if err := q.Put(ctx, m); err != nil {
			t.Fatalf("Put during outage: %v", err)
		}
		want = append(want, mustRender(t, m))
	}
	if got := q.Stats().Inbound; got != 50 {
		t.Errorf("queued during outage = %d, want 50", got)
	}

	obs2 := new(observer)
	embeddedBroker(t, addr, obs2)
	got := obs2.wait(t, TopicSMSIn, 50)
	if diff := cmp.Diff(want, firstSeen(obs2.payloads(TopicSMSIn))); diff != "" {
		t.Errorf("after outage (-want +got):\n%s", diff)
	}
	if len(got) != 50 {
		t.Logf("%d duplicates after the outage (allowed: at least once)", len(got)-50)
	}
	eventually(t, "queue to empty", func() bool { return q.Stats().Inbound == 0 })

	// The new broker has no session: a request is only routed to the relay
	// once it has subscribed again.
	eventually(t, "relay to subscribe again", func() bool { return r.Stats().Connected })
	publish(t, publisher(t, "tcp://"+addr), TopicSMSOut, `{"id":"after","payload":"x"}`)
	obs2.wait(t, TopicSMSOutResult, 1)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// firstSeen drops repeats, keeping first occurrences in order: at least
// once means repeats are allowed, but the order of first delivery is not
// negotiable.
func firstSeen(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// TestRelayMosquittoOutage is the outage test against a real mosquitto,
// stopped with SIGTERM and restarted mid-stream while SMS keep arriving.
func TestRelayMosquittoOutage(t *testing.T) {
	mq := startMosquitto(t)
	obs := new(observer)
	obs.connect(t, mq.url(), "observer")
	q := openTestQueue(t, t.TempDir(), 1000)
	r := newTestRelay(t, testRelayConfig(mq.url()), q, newFakeDevice())
	runRelay(t, r)
	ctx := context.Background()
	var want []string
	put := func(i int) {
		m := sms(i)
		if err := q.Put(ctx, m); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		want = append(want, mustRender(t, m))
	}
	for i := range 10 {
		put(i)
	}
	obs.wait(t, TopicSMSIn, 10)
	mq.stop()
	for i := 10; i < 60; i++ {
		put(i)
	}
	mq.start()
	obs.wait(t, TopicSMSIn, 60)
	eventually(t, "all 60 distinct", func() bool { return len(firstSeen(obs.payloads(TopicSMSIn))) == 60 })
	if diff := cmp.Diff(want, firstSeen(obs.payloads(TopicSMSIn))); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	eventually(t, "queue to empty", func() bool { return q.Stats().Inbound == 0 })
	// Requests still reach the device after the restart, once the relay
	// is subscribed (the session may predate its first SUBACK).
	eventually(t, "relay to subscribe", func() bool { return r.Stats().Connected })
	pub := publisher(t, mq.url())
	publish(t, pub, TopicIPOut, `{"id":"after","payload":"x"}`)
	obs.wait(t, TopicIPOutResult, 1)
}

// TestRelayMosquittoRequests checks the request path against mosquitto,
// including acknowledgement only after commit.
func TestRelayMosquittoRequests(t *testing.T) {
	mq := startMosquitto(t)
	obs := new(observer)
	obs.connect(t, mq.url(), "observer")
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig(mq.url()), openTestQueue(t, t.TempDir(), 100), dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	pub := publisher(t, mq.url())
	var want []sentSMS
	for i := range 20 {
		publish(t, pub, TopicSMSOut, fmt.Sprintf(`{"id":"m%d","payload":"n%d"}`, i, i))
		want = append(want, sentSMS{"000", fmt.Sprintf("n%d", i), false})
	}
	publish(t, pub, TopicSMSOut, `{"id":"bad"`)
	obs.wait(t, TopicSMSOutResult, 21)
	got, _ := dev.sent()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SMS sent (-want +got):\n%s", diff)
	}
	var failed []string
	for _, p := range obs.payloads(TopicSMSOutResult) {
		if strings.Contains(p, `"status":"failed"`) {
			failed = append(failed, p)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "malformed JSON") {
		t.Errorf("failed results = %q, want one for the malformed request", failed)
	}
}

// TestRelayRestartResumes runs a relay that cannot reach its broker, stops
// it with messages queued, and resumes over the same store: every message
// goes out, in order, with the ids it had.
func TestRelayRestartResumes(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t) // nothing listens yet
	ctx := context.Background()
	q1, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r1 := newTestRelay(t, testRelayConfig("tcp://"+addr), q1, newFakeDevice())
	stop1 := runRelay(t, r1)
	var want []string
	for i := range 30 {
		m := sms(i)
		if i%5 == 0 {
			m = udp(i)
		}
		if err := q1.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	if err := stop1(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}

	obs := new(observer)
	embeddedBroker(t, addr, obs)
	q2 := openTestQueue(t, dir, 1000)
	runRelay(t, newTestRelay(t, testRelayConfig("tcp://"+addr), q2, newFakeDevice()))
	eventually(t, "30 messages", func() bool { return len(obs.on(TopicSMSIn))+len(obs.on(TopicIPIn)) >= 30 })
	var got []string
	for _, m := range obs.all() {
		var j struct{ ID string }
		if strings.HasSuffix(m.Topic, "/in") {
			if err := json.Unmarshal([]byte(m.Payload), &j); err != nil {
				t.Fatal(err)
			}
			got = append(got, j.ID)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids after restart (-want +got):\n%s", diff)
	}
}

func TestRelayStatusAndWill(t *testing.T) {
	addr := freeAddr(t)
	url := "tcp://" + addr
	obs := new(observer)
	srv := embeddedBroker(t, addr, obs)
	dbm := -81
	dev := newFakeDevice()
	dev.status = gw.Status{
		Modem:   gw.ModemInfo{Manufacturer: "Quectel", Model: "BG96", IMEI: "860000000000001"},
		SIM:     gw.SIMInfo{ICCID: "89883070000000000001"},
		Network: gw.NetworkInfo{Registration: "home", SignalDBm: &dbm},
		Ready:   true,
	}
	q := openTestQueue(t, t.TempDir(), 10)
	r := newTestRelay(t, testRelayConfig(url), q, dev)
	stop := runRelay(t, r)

	first := obs.wait(t, TopicStatus, 1)[0]
	var st struct {
		Online  bool
		Version string
		Modem   gw.ModemInfo
		SIM     gw.SIMInfo
		Network gw.NetworkInfo
		Queue   QueueJSON
	}
	if err := json.Unmarshal([]byte(first.Payload), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Online || st.Version != "test" || st.SIM.ICCID != "89883070000000000001" || st.Network.SignalDBm == nil || *st.Network.SignalDBm != -81 {
		t.Errorf("status = %s", first.Payload)
	}
	if !first.Retained {
		t.Error("status not retained")
	}

	// A change is published; a poke without a change is not.
	r.StatusChanged()
	dev.mu.Lock()
	dev.status.Network.Registration = "roaming"
	dev.mu.Unlock()
	r.StatusChanged()
	got := obs.wait(t, TopicStatus, 2)
	if !strings.Contains(got[1].Payload, `"registration":"roaming"`) {
		t.Errorf("second status %s, want the roaming registration", got[1].Payload)
	}

	// The connection dies without a DISCONNECT, as on kill -9: the broker
	// publishes the will, and the relay comes back and says it is online.
	cl, ok := srv.Clients.Get("simgate-dev1")
	if !ok {
		t.Fatal("relay client not found in the broker")
	}
	// Closed under the broker, as a dead link would be. (mochi's own
	// cl.Stop sometimes ends the read loop without an error, which mochi
	// takes for a clean DISCONNECT and drops the will.)
	if err := cl.Net.Conn.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "will and a new online status", func() bool {
		ps := obs.payloads(TopicStatus)
		for i, p := range ps {
			if p == OfflinePayload {
				return i+1 < len(ps) && strings.Contains(ps[len(ps)-1], `"online":true`)
			}
		}
		return false
	})

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := retained(t, url, TopicStatus); got != OfflinePayload {
		t.Errorf("retained status after clean stop = %s, want %s", got, OfflinePayload)
	}
}

// TestRelayShutdownFlushes stops the relay while the modem is sending: the
// send completes within the grace period and its result is published
// before the relay disconnects.
func TestRelayShutdownFlushes(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	dev := newFakeDevice()
	dev.release = make(chan struct{})
	q := openTestQueue(t, t.TempDir(), 10)
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), q, dev)
	stop := runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	publish(t, publisher(t, "tcp://"+addr), TopicSMSOut, `{"id":"slow","payload":"x"}`)
	select {
	case <-dev.started:
	case <-time.After(waitLimit):
		t.Fatal("device never called")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Run must be waiting for the device, not returning without it.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a send was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(dev.release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if diff := cmp.Diff([]string{`{"id":"slow","status":"sent","reference":1}`}, obs.payloads(TopicSMSOutResult)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if got := q.Stats().Pending(); got != 0 {
		t.Errorf("pending after clean stop = %d, want 0", got)
	}
}

// TestRelayShutdownAbandons stops the relay while the modem never answers:
// Run returns after the grace period and the request stays queued, to be
// sent by the next run.
func TestRelayShutdownAbandons(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	dir := t.TempDir()
	dev := newFakeDevice()
	dev.release = make(chan struct{})
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testRelayConfig("tcp://" + addr)
	cfg.ShutdownGrace = 100 * time.Millisecond
	r := newTestRelay(t, cfg, q, dev)
	stop := runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	publish(t, publisher(t, "tcp://"+addr), TopicSMSOut, `{"id":"stuck","payload":"x"}`)
	select {
	case <-dev.started:
	case <-time.After(waitLimit):
		t.Fatal("device never called: the request published once the relay was connected did not reach it")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := q.Stats().OutboundSMS; got != 1 {
		t.Fatalf("queued requests after abandoned send = %d, want 1", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q2 := openTestQueue(t, dir, 10)
	dev2 := newFakeDevice()
	runRelay(t, newTestRelay(t, cfg, q2, dev2))
	eventually(t, "result of the resent request", func() bool {
		for _, p := range obs.payloads(TopicSMSOutResult) {
			if p == `{"id":"stuck","status":"sent","reference":1}` {
				return true
			}
		}
		return false
	})
}

func TestRelayHealthy(t *testing.T) {
	addr := freeAddr(t)
	broker := embeddedBroker(t, addr, nil)
	dev := newFakeDevice()
	dev.release = make(chan struct{})
	dev.ignore = true // a device that ignores its context
	defer close(dev.release)
	cfg := testRelayConfig("tcp://" + addr)
	cfg.SendTimeout = 20 * time.Millisecond
	cfg.StallTimeout = 20 * time.Millisecond
	cfg.ShutdownGrace = 50 * time.Millisecond
	r := newTestRelay(t, cfg, openTestQueue(t, t.TempDir(), 10), dev)
	if err := r.Healthy(); err == nil {
		t.Error("Healthy before Run = nil, want an error")
	}
	stop := runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	if err := r.Healthy(); err != nil {
		t.Errorf("Healthy while idle = %v", err)
	}
	broker.waitSubscribed(t, cfg.MQTT.ClientID)
	publish(t, publisher(t, "tcp://"+addr), TopicIPOut, `{"payload":"x"}`)
	var err error
	eventually(t, "Healthy to report the stuck device", func() bool {
		err = r.Healthy()
		return err != nil
	})
	if !strings.Contains(err.Error(), "IP sender") {
		t.Errorf("Healthy = %v, want it to name the IP sender", err)
	}
	dev.release <- struct{}{}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := r.Healthy(); err == nil {
		t.Error("Healthy after Run = nil, want an error")
	}
}

func TestRelayRunTwice(t *testing.T) {
	r := newTestRelay(t, testRelayConfig("tcp://"+freeAddr(t)), openTestQueue(t, t.TempDir(), 10), newFakeDevice())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if err := r.Run(ctx); err == nil {
		t.Error("second Run succeeded, want an error")
	}
}

// A flood of bad requests gets a failed result each, but P/events carries
// only the first DefaultBurst rejections and then one summary counting the
// rest; events of other types are not held back by the flood.
func TestRelayEventFloodLimited(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), openTestQueue(t, t.TempDir(), 10), newFakeDevice())
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	const n = 300
	pub := publisher(t, "tcp://"+addr)
	for i := range n {
		publish(t, pub, TopicSMSOut, fmt.Sprintf(`{"id":"bad-%d","payload":5}`, i))
	}
	obs.wait(t, TopicSMSOutResult, n)
	// A result can reach the broker before its rejection is reported.
	eventually(t, "every rejection reported", func() bool { return r.Channel(gw.ChannelSMS).Rejected == n })
	r.Event(gw.Event{Type: "modem_lost", Message: "another kind"})
	obs.wait(t, TopicEvents, ratelimit.DefaultBurst+1)
	r.eventLimit.Flush() // the end of the period, without waiting for it
	events := obs.wait(t, TopicEvents, ratelimit.DefaultBurst+2)
	var rejected, lost int
	var summary map[string]any
	for _, m := range events {
		var ev map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
			t.Fatal(err)
		}
		switch ev["type"] {
		case "request_rejected":
			rejected++
			if _, ok := ev["suppressed"]; ok {
				summary = ev
			}
		case "modem_lost":
			lost++
		}
	}
	if rejected != ratelimit.DefaultBurst+1 || lost != 1 || len(events) != ratelimit.DefaultBurst+2 {
		t.Errorf("%d request_rejected and %d modem_lost events of %d, want %d and 1", rejected, lost, len(events), ratelimit.DefaultBurst+1)
	}
	want := fmt.Sprintf("[%d request_rejected events held back in the last 1m0s; this is the latest]", n-ratelimit.DefaultBurst)
	if summary == nil || summary["suppressed"] != float64(n-ratelimit.DefaultBurst) || summary["id"] != fmt.Sprint("bad-", n-1) ||
		!strings.HasSuffix(summary["message"].(string), want) {
		t.Errorf("summary %v, want the latest rejection with suppressed %d and %q", summary, n-ratelimit.DefaultBurst, want)
	}
}
