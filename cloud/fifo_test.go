package cloud

import (
	"strings"
	"testing"

	"github.com/simgate/simgate/transport"
)

type fakeMsg struct {
	qos     byte
	payload []byte
}

func (m fakeMsg) Duplicate() bool   { return false }
func (m fakeMsg) Qos() byte         { return m.qos }
func (m fakeMsg) Retained() bool    { return false }
func (m fakeMsg) Topic() string     { return "supersim/898/sms/to_sim" }
func (m fakeMsg) MessageID() uint16 { return 1 }
func (m fakeMsg) Payload() []byte   { return m.payload }
func (m fakeMsg) Ack()              {}

// QoS 0 requests waiting for the queue are bounded in bytes; QoS 1 ones,
// bounded by the broker's in-flight window, are always taken.
func TestIntakeBoundsQoS0Backlog(t *testing.T) {
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	api, err := NewAPI(APIConfig{BaseURL: "http://127.0.0.1:1", Username: "a", Password: "b"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{MQTT: transport.MQTTConfig{URL: "tcp://127.0.0.1:1", ClientID: "x", TopicPrefix: "supersim"},
		API: api, Verifier: NewKoreVerifier(""), StoreDir: t.TempDir()}, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(strings.Repeat("x", 4096))
	for range 2 * maxQoS0Backlog / len(big) {
		b.onMessage(nil, fakeMsg{qos: 0, payload: big})
	}
	if n := b.fifo.len(); n != maxQoS0Backlog/len(big) {
		t.Errorf("%d QoS 0 requests held, want %d", n, maxQoS0Backlog/len(big))
	}
	b.onMessage(nil, fakeMsg{qos: 1, payload: big})
	if n := b.fifo.len(); n != maxQoS0Backlog/len(big)+1 {
		t.Errorf("QoS 1 request not taken: %d held", n)
	}
	b.fifo.take(10)
	if got, want := b.fifo.qos0Bytes(), maxQoS0Backlog-10*len(big); got != want {
		t.Errorf("QoS 0 bytes after take: %d, want %d", got, want)
	}
}
