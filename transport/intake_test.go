package transport

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeMessage is a paho.Message as the broker delivers it, for driving the
// intake exactly as paho's router does.
type fakeMessage struct {
	topic    string
	payload  []byte
	qos      byte
	mid      uint16
	dup      bool
	retained bool
	acked    chan struct{}
}

func (m *fakeMessage) Duplicate() bool   { return m.dup }
func (m *fakeMessage) Qos() byte         { return m.qos }
func (m *fakeMessage) Retained() bool    { return m.retained }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return m.mid }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack() {
	if m.acked != nil {
		close(m.acked)
	}
}

func TestDerivedID(t *testing.T) {
	msg := func(qos byte, mid uint16, dup, retained bool, payload string) *fakeMessage {
		return &fakeMessage{topic: testPrefix + "/sms/out", payload: []byte(payload), qos: qos, mid: mid, dup: dup, retained: retained}
	}
	first := derivedID("sms", msg(1, 7, false, false, `{"payload":"reboot"}`))
	if !strings.HasPrefix(first, "req-") {
		t.Errorf("derived id %q lacks the req- prefix", first)
	}
	if got := derivedID("sms", msg(1, 7, true, false, `{"payload":"reboot"}`)); got != first {
		t.Errorf("redelivered copy (DUP, same packet id) got id %q, first delivery %q", got, first)
	}
	for name, m := range map[string]*fakeMessage{
		"another packet id": msg(1, 8, false, false, `{"payload":"reboot"}`),
		"another payload":   msg(1, 7, false, false, `{"payload":"reboot "}`),
	} {
		if got := derivedID("sms", m); got == first {
			t.Errorf("%s: same id %q as a different request", name, got)
		}
	}
	if derivedID("ip", msg(1, 7, false, false, `{"payload":"reboot"}`)) == first {
		t.Error("the same message on another channel got the same id")
	}
	// QoS 0 is never redelivered: identical messages are distinct requests.
	if a, b := derivedID("sms", msg(0, 0, false, false, "x")), derivedID("sms", msg(0, 0, false, false, "x")); a == b {
		t.Errorf("two QoS 0 messages share id %q", a)
	}
	// A retained message keeps its name however often it is handed over.
	if a, b := derivedID("sms", msg(1, 3, false, true, "x")), derivedID("sms", msg(1, 9, false, true, "x")); a != b {
		t.Errorf("one retained message got two ids %q and %q", a, b)
	}
}

// TestRelayRedeliveredRequestSentOnce delivers one id-less QoS 1 request
// twice, the second time as the broker resends it after the daemon was
// killed between committing it and acknowledging it: same packet id, DUP
// set. It must be sent once.
func TestRelayRedeliveredRequestSentOnce(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), openTestQueue(t, t.TempDir(), 10), dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	body := []byte(`{"payload":"reboot"}`)
	first := &fakeMessage{topic: testPrefix + "/" + TopicSMSOut, payload: body, qos: 1, mid: 41, acked: make(chan struct{})}
	r.onMessage(nil, first)
	<-first.acked
	again := &fakeMessage{topic: first.topic, payload: body, qos: 1, mid: 41, dup: true, acked: make(chan struct{})}
	r.onMessage(nil, again)
	<-again.acked
	// A later request with the same text is a new one: another packet id.
	later := &fakeMessage{topic: first.topic, payload: body, qos: 1, mid: 42, acked: make(chan struct{})}
	r.onMessage(nil, later)
	<-later.acked
	obs.wait(t, TopicSMSOutResult, 2)
	events := obs.wait(t, TopicEvents, 1)
	if !strings.Contains(events[0].Payload, `"type":"request_duplicate"`) {
		t.Errorf("event %s, want request_duplicate", events[0].Payload)
	}
	got, _ := dev.sent()
	if diff := cmp.Diff([]sentSMS{{"000", "reboot", false}, {"000", "reboot", false}}, got); diff != "" {
		t.Errorf("SMS sent (-want +got):\n%s", diff)
	}
	if res := obs.on(TopicSMSOutResult); len(res) != 2 || res[0].Payload == res[1].Payload {
		t.Errorf("results %v, want two with distinct ids", res)
	}
}

// TestRelayRetainedRequestRefused leaves a retained request on the broker,
// as a publisher using -r would: the gateway refuses it with a failed result
// and a request_rejected event instead of sending it on every connection.
func TestRelayRetainedRequestRefused(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	pub := publisher(t, "tcp://"+addr)
	tok := pub.Publish(testPrefix+"/"+TopicSMSOut, 1, true, `{"id":"standing","payload":"reboot"}`)
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("publish retained: %v", tok.Error())
	}
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig("tcp://"+addr), openTestQueue(t, t.TempDir(), 10), dev)
	runRelay(t, r)
	res := obs.wait(t, TopicSMSOutResult, 1)
	if !strings.Contains(res[0].Payload, `"id":"standing","status":"failed"`) || !strings.Contains(res[0].Payload, "retained") {
		t.Errorf("result %s, want failed naming the retain flag", res[0].Payload)
	}
	events := obs.wait(t, TopicEvents, 1)
	if !strings.Contains(events[0].Payload, `"type":"request_rejected"`) || !strings.Contains(events[0].Payload, "retained") {
		t.Errorf("event %s, want request_rejected about the retain flag", events[0].Payload)
	}
	// A live request after it still goes out.
	publish(t, pub, TopicSMSOut, `{"id":"live","payload":"ok"}`)
	obs.wait(t, TopicSMSOutResult, 2)
	got, _ := dev.sent()
	if diff := cmp.Diff([]sentSMS{{"000", "ok", false}}, got); diff != "" {
		t.Errorf("SMS sent (-want +got):\n%s", diff)
	}
}
