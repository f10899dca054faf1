package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainedTopics is how many topics the stress test keeps a retained
// message on: a wildcard subscription walks all of them.
const retainedTopics = 64

// brokerClient connects a paho client to the embedded broker at url.
func brokerClient(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// The embedded broker under retained publishes racing new wildcard
// subscriptions, and retained wills of clients that vanish. mochi-mqtt
// v2.7.9 writes a topic's retained path under a lock that a subscription
// looking up retained messages does not take, so under -race this test
// fails there unless the broker is used in a way that cannot race. It
// also checks that retention still works: a fresh subscriber gets exactly
// the newest retained message of every topic, flagged retained.
func TestEmbeddedBrokerRetainedStress(t *testing.T) {
	addr := freeAddr(t)
	url := "tcp://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := StartEmbedded(ctx, url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()

	const publishers, subscribers, rounds = 4, 4, 40
	pubDone := make(chan struct{})
	var pubs sync.WaitGroup
	for p := range publishers {
		c := brokerClient(t, url, fmt.Sprintf("pub-%d", p))
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			defer c.Disconnect(50)
			for n := 0; ; n++ {
				select {
				case <-pubDone:
					return
				default:
				}
				topic := fmt.Sprintf("race/t%d", (n*publishers+p)%retainedTopics)
				if tok := c.Publish(topic, 0, true, fmt.Sprintf("p%d-%d", p, n)); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
					return
				}
			}
		}()
	}
	var subs sync.WaitGroup
	for s := range subscribers {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for r := range rounds {
				id := fmt.Sprintf("sub-%d-%d", s, r)
				filter := "race/#"
				if r%3 == 1 {
					filter = "race/+"
				}
				if r%2 == 0 {
					// A client with a retained will that subscribes and
					// vanishes: its will is retained while others subscribe.
					if err := vanishWithWill(addr, id, filter); err != nil {
						t.Errorf("client with a will: %v", err)
					}
					continue
				}
				c := brokerClient(t, url, id)
				if tok := c.Subscribe(filter, 0, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
					t.Errorf("subscribe %s: %v", filter, tok.Error())
				}
				c.Disconnect(0)
			}
		}()
	}
	subs.Wait()
	close(pubDone)
	pubs.Wait()

	// Retention still works once the storm is over: one retained message
	// per topic, the newest, flagged retained; every vanished client's
	// will is retained too.
	c := brokerClient(t, url, "final")
	defer c.Disconnect(50)
	checkRetained(t, c, "race/+", retainedTopics, "p")
	checkRetained(t, c, "race/will/+", subscribers*rounds/2, "gone")
}

// checkRetained subscribes c to filter and waits until n messages flagged
// retained have arrived, each on a topic not seen before, with a payload
// starting with prefix. Messages not flagged retained are publishes still
// in flight when the subscription began.
func checkRetained(t *testing.T, c paho.Client, filter string, n int, prefix string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	var bad []string
	tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) {
		if !m.Retained() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[m.Topic()] || !strings.HasPrefix(string(m.Payload()), prefix) {
			bad = append(bad, fmt.Sprintf("%s %q (seen before: %t)", m.Topic(), m.Payload(), seen[m.Topic()]))
		}
		seen[m.Topic()] = true
	})
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	eventually(t, fmt.Sprintf("%d retained messages on %s", n, filter), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= n || len(bad) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || len(seen) != n {
		t.Errorf("retained messages on %s: %d topics, want %d; wrong: %v", filter, len(seen), n, bad)
	}
}

// The embedded broker refuses subscriptions to $SYS, whose retained
// messages mochi rewrites outside any lock a subscription could share;
// other subscriptions in the same request are granted.
func TestEmbeddedBrokerRefusesSys(t *testing.T) {
	url := "tcp://" + freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := StartEmbedded(ctx, url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	c := brokerClient(t, url, "sys")
	defer c.Disconnect(50)
	tok := c.SubscribeMultiple(map[string]byte{"$SYS/#": 0, "$sys/broker/+": 0, "x/#": 0}, func(paho.Client, paho.Message) {})
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	want := map[string]byte{"$SYS/#": 0x80, "$sys/broker/+": 0x80, "x/#": 0}
	if diff := cmp.Diff(want, tok.(*paho.SubscribeToken).Result()); diff != "" {
		t.Errorf("SUBACK return codes (-want +got):\n%s", diff)
	}
}

// vanishWithWill connects over raw MQTT 3.1.1 with a retained will on
// race/will/<id>, subscribes to filter and closes the connection without
// DISCONNECT, so the broker publishes the will.
func vanishWithWill(addr, id, filter string) error {
	conn, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		return err
	}
	defer conn.Close()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	packet := func(typ byte, body []byte) []byte { return append([]byte{typ, byte(len(body))}, body...) }
	// Protocol "MQTT" level 4; flags: clean session, will, will retain.
	connect := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x26, 0, 60}, str(id)...)
	connect = append(connect, str("race/will/"+id)...)
	connect = append(connect, str("gone")...)
	if _, err := conn.Write(packet(0x10, connect)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return fmt.Errorf("read CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		return fmt.Errorf("CONNACK % x", ack)
	}
	sub := append([]byte{0, 1}, str(filter)...)
	sub = append(sub, 0)
	if _, err := conn.Write(packet(0x82, sub)); err != nil {
		return err
	}
	// Wait for the SUBACK (type 0x90): the subscription has been looked up
	// for retained messages by then.
	hdr := make([]byte, 2)
	for {
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return fmt.Errorf("read SUBACK: %w", err)
		}
		n := int(hdr[1])
		if hdr[1]&0x80 != 0 { // a two-byte remaining length: a retained message
			b := make([]byte, 1)
			if _, err := io.ReadFull(conn, b); err != nil {
				return err
			}
			n = int(hdr[1]&0x7f) | int(b[0])<<7
		}
		if _, err := io.CopyN(io.Discard, conn, int64(n)); err != nil {
			return err
		}
		if hdr[0] == 0x90 {
			return nil
		}
	}
}

// The guard's lock is held exactly from the hook before mochi stores a
// retained message to OnRetainMessage, and never for a delayed will,
// which it publishes without retaining.
func TestRetainGuardLocking(t *testing.T) {
	g := new(retainGuard)
	cl := new(mochi.Client)
	if _, err := g.OnPublish(cl, packets.Packet{}); err != nil || !g.mu.TryLock() {
		t.Fatalf("a publish without retain took the lock (err %v)", err)
	}
	g.mu.Unlock()
	if _, err := g.OnPublish(cl, packets.Packet{FixedHeader: packets.FixedHeader{Retain: true}}); err != nil || g.mu.TryRLock() {
		t.Fatalf("a retained publish left the lock free (err %v)", err)
	}
	g.OnRetainMessage(cl, packets.Packet{}, 1)
	if w, err := g.OnWill(cl, mochi.Will{Retain: true}); err != nil || !w.Retain || g.mu.TryRLock() {
		t.Fatalf("a retained will: %+v, %v, or the lock is free", w, err)
	}
	g.OnRetainMessage(cl, packets.Packet{}, 1)
	cl.Properties.Will.WillDelayInterval = 30
	if w, err := g.OnWill(cl, mochi.Will{Retain: true}); err != nil || w.Retain || !g.mu.TryLock() {
		t.Fatalf("a delayed will: %+v, %v, or the lock is held", w, err)
	}
	g.mu.Unlock()
	g.OnSubscribe(cl, packets.Packet{})
	if g.mu.TryLock() {
		t.Fatal("a subscription left the lock free")
	}
	g.OnPacketProcessed(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}}, nil)
	if !g.mu.TryLock() {
		t.Fatal("the lock is still held after the subscription")
	}
	g.mu.Unlock()
}

// A client connected but not yet past CONNECT when the embedded broker
// stops. mochi-mqtt v2.7.9 counts a client in its listeners' WaitGroup
// from the client's own goroutine (attachClient's Add) and Close waits on
// that WaitGroup; nothing orders that Add before the Wait for a client not
// yet registered, which -race reports as a data race. Close must also not
// wait for such a client to send its CONNECT.
func TestEmbeddedBrokerStopWhileConnecting(t *testing.T) {
	for _, scheme := range []string{"tcp", "ws"} {
		addr := freeAddr(t)
		stop, err := StartEmbedded(context.Background(), scheme+"://"+addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		var c net.Conn
		eventually(t, "the broker listening", func() bool {
			// mochi's WebSocket listener binds once serving.
			c, err = net.Dial("tcp", addr)
			return err == nil
		})
		if scheme == "ws" {
			// The WebSocket handshake, then nothing: no CONNECT.
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n", addr)
		}
		// The broker's goroutine for the connection has started.
		time.Sleep(100 * time.Millisecond)
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("%s: stop: %v", scheme, err)
			}
		case <-time.After(waitLimit):
			t.Errorf("%s: stop still waiting for a client that never sent CONNECT", scheme)
		}
		c.Close()
	}
}
