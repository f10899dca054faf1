package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
)

// ackProxy sits between the relay and the broker. It counts the PUBLISH
// packets on P/sms/in the relay sends, holds back the broker's PUBACKs
// until release, and can cut every connection at once (a reconnect).
type ackProxy struct {
	t        testing.TB
	ln       net.Listener
	upstream string

	mu       sync.Mutex
	sent     int // PUBLISH on P/sms/in seen from the relay
	changed  chan struct{}
	released bool
	release  chan struct{}
	conns    []net.Conn
	// stall, when set, stops reading from the relay after the first
	// PUBLISH on P/sms/in of the first connection, until cut: the relay's
	// writes back up into paho.
	stall   bool
	stalled bool
}

func startAckProxy(t testing.TB, upstream string) *ackProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackProxy{t: t, ln: ln, upstream: upstream, changed: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	go p.accept()
	return p
}

func (p *ackProxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *ackProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(c, u, true)
		go p.pipe(u, c, false)
	}
}

// readPacket reads one MQTT packet whole.
func readPacket(r *bufio.Reader) ([]byte, error) {
	var buf bytes.Buffer
	b, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	buf.WriteByte(b)
	n, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		buf.WriteByte(b)
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (p *ackProxy) pipe(from, to net.Conn, up bool) {
	defer from.Close()
	defer to.Close()
	r := bufio.NewReader(from)
	for {
		pk, err := readPacket(r)
		if err != nil {
			return
		}
		switch typ := pk[0] >> 4; {
		case up && typ == 3:
			cp, err := packets.ReadPacket(bytes.NewReader(pk))
			if err == nil && strings.HasSuffix(cp.(*packets.PublishPacket).TopicName, "/"+TopicSMSIn) {
				p.mu.Lock()
				p.sent++
				close(p.changed)
				p.changed = make(chan struct{})
				stall := p.stall && !p.stalled
				p.stalled = p.stalled || stall
				p.mu.Unlock()
				if stall {
					if _, err := to.Write(pk); err != nil {
						return
					}
					// Read nothing more; cut closes from.
					io.Copy(io.Discard, eofReader{from})
					return
				}
			}
		case !up && typ == 4: // PUBACK
			<-p.release
		}
		if _, err := to.Write(pk); err != nil {
			return
		}
	}
}

// eofReader reads nothing until its connection is closed.
type eofReader struct{ c net.Conn }

func (e eofReader) Read([]byte) (int, error) {
	var one [1]byte
	for {
		// A read that never consumes: poll for the close.
		if err := e.c.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
			return 0, err
		}
		_, err := e.c.Read(one[:0])
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			continue
		}
		if err == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return 0, err
	}
}

// hasStalled reports whether the proxy has stopped reading from the relay.
func (p *ackProxy) hasStalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// waitSent waits until the relay has sent n PUBLISH on P/sms/in.
func (p *ackProxy) waitSent(t testing.TB, n int) int {
	t.Helper()
	var got int
	eventually(t, "publishes through the proxy", func() bool {
		p.mu.Lock()
		got = p.sent
		p.mu.Unlock()
		return got >= n
	})
	return got
}

func (p *ackProxy) releaseAcks() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.released {
		p.released = true
		close(p.release)
	}
}

// cut closes every connection through the proxy: the relay sees its
// connection die and reconnects.
func (p *ackProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.t.Logf("cut: %v", err)
		}
	}
}

// With PUBACKs held back, the relay has a whole window of messages in
// flight, not one; once they come, everything arrives in order. Cutting
// the connection while windows are in flight (twice) loses nothing and
// keeps the order of first delivery.
func TestRelayPublishWindow(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	proxy := startAckProxy(t, addr)
	q := openTestQueue(t, t.TempDir(), 10000)
	ctx := context.Background()
	var want []string
	put := func(from, to int) {
		for i := from; i < to; i++ {
			m := sms(i)
			if err := q.Put(ctx, m); err != nil {
				t.Fatal(err)
			}
			want = append(want, mustRender(t, m))
		}
	}
	// The default window; with one message in flight this fails.
	const window = 16
	put(0, 3*window)
	r := newTestRelay(t, testRelayConfig(proxy.url()), q, newFakeDevice())
	runRelay(t, r)
	// No PUBACK has come through: what the relay sent is in flight at once.
	if got := proxy.waitSent(t, window); got != window {
		t.Errorf("%d in flight, want %d", got, window)
	}
	if got := r.Stats().Published; got != 0 {
		t.Errorf("%d counted published before any PUBACK", got)
	}
	proxy.releaseAcks()
	obs.wait(t, TopicSMSIn, len(want))

	// Cut the connection twice while messages stream.
	put(3*window, 300)
	proxy.waitSent(t, len(want)/2)
	proxy.cut()
	put(300, 600)
	proxy.waitSent(t, len(want)*3/4)
	proxy.cut()
	put(600, 700)
	obs.wait(t, TopicSMSIn, len(want))
	eventually(t, "every message delivered", func() bool { return len(firstSeen(obs.payloads(TopicSMSIn))) >= len(want) })
	if diff := cmp.Diff(want, firstSeen(obs.payloads(TopicSMSIn))); diff != "" {
		t.Errorf("first deliveries (-want +got):\n%s", diff)
	}
	eventually(t, "queue to empty", func() bool { return q.Stats().Inbound == 0 })
	t.Logf("%d publishes held back at a reconnect, %d deliveries for %d messages", r.conns.held.Load(), len(obs.payloads(TopicSMSIn)), len(want))
}

// A Publish waiting for paho's writer when the connection dies is the one
// paho would write first on the next connection, ahead of its resend of
// the older messages lost with the connection. The proxy stops reading so
// the relay's writes back up, the connection is cut while a Publish waits,
// and the first deliveries must still be in order.
func TestRelayPublishWindowStalledReconnect(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	proxy := startAckProxy(t, addr)
	proxy.stall = true
	proxy.releaseAcks()
	q := openTestQueue(t, t.TempDir(), 10000)
	ctx := context.Background()
	var want []string
	big := strings.Repeat("x", 1<<20) // the socket buffers fill within a window
	for i := range 40 {
		m := sms(i)
		m.Payload = append([]byte(fmt.Sprintf("%02d ", i)), big...)
		m.ID = gw.MessageID(m)
		if err := q.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%02d", i))
	}
	r := newTestRelay(t, testRelayConfig(proxy.url()), q, newFakeDevice())
	runRelay(t, r)
	// The proxy stalls first: a cut before it would move the stall to the
	// next connection, which nothing cuts. (A publish of P/status at the
	// start is handed over too, before any on P/sms/in.)
	eventually(t, "a publish waiting for paho's writer behind the stalled proxy", func() bool {
		if !proxy.hasStalled() {
			return false
		}
		h := r.handing.Load()
		if h == nil {
			return false
		}
		_, known := h.packetID()
		return known
	})
	proxy.cut()
	// Each payload starts with its number; a megabyte of JSON each is too
	// much to decode every few milliseconds.
	var got []string
	seen := 0
	for len(firstSeen(got)) < len(want) {
		msgs := obs.wait(t, TopicSMSIn, seen+1)
		for _, m := range msgs[seen:] {
			_, rest, ok := strings.Cut(m.Payload, `"payload":"`)
			if !ok || len(rest) < 2 {
				t.Fatalf("unexpected message %.80s", m.Payload)
			}
			got = append(got, rest[:2])
		}
		seen = len(msgs)
	}
	if diff := cmp.Diff(want, firstSeen(got)); diff != "" {
		t.Errorf("first deliveries (-want +got):\n%s", diff)
	}
	t.Logf("%d publishes held back at the reconnect", r.conns.held.Load())
}

// publishID reads the packet id of a PUBLISH as paho writes it, whatever
// the length of its topic and payload; the fence holds back only the
// first PUBLISH on a connection opened after it was armed, and only a
// first send (DUP clear) of the packet it names.
func TestFencePublishID(t *testing.T) {
	encode := func(id uint16, topic string, n int, dup bool) []byte {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Qos, p.MessageID, p.TopicName, p.Payload, p.Dup = 1, id, topic, bytes.Repeat([]byte("x"), n), dup
		var b bytes.Buffer
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, n := range []int{0, 100, 20000, 3 << 20} {
		if id, ok := publishID(encode(0xbeef, "supersim/dev1/sms/in", n, false)); !ok || id != 0xbeef {
			t.Errorf("payload %d: publishID = %#x, %v", n, id, ok)
		}
	}
	for _, short := range [][]byte{{0x32}, {0x32, 0x80}, {0x32, 5, 0, 9, 'a'}, {0x30, 2, 0, 0}} {
		if _, ok := publishID(short); ok {
			t.Errorf("publishID(% x) found an id", short)
		}
	}

	var b brokerConns
	h := &handOff{id: 7, known: true}
	b.gen = 1
	b.arm(h)
	if b.fenced(1, encode(7, "t", 1, false)) {
		t.Error("the dying connection's packet was held back")
	}
	if b.fenced(2, encode(7, "t", 1, true)) {
		t.Error("paho's resend (DUP) was held back")
	}
	if b.fenced(2, encode(7, "t", 1, false)) {
		t.Error("held back a packet after the first PUBLISH decided")
	}
	b.arm(h)
	if !b.fenced(2, encode(7, "t", 1, false)) {
		t.Error("the waiting packet, first on the next connection, went out")
	}
	b.arm(h)
	if b.fenced(2, encode(8, "t", 1, false)) || b.fenced(2, encode(7, "t", 1, false)) {
		t.Error("held back another packet")
	}
}
