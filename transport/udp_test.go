package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemtest"
)

// udpEvents records what a UDP reported through OnEvent.
type udpEvents struct {
	mu  sync.Mutex
	evs []gw.Event
}

func (e *udpEvents) add(ev gw.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *udpEvents) of(typ string) []gw.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []gw.Event
	for _, ev := range e.evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (e *udpEvents) wait(t testing.TB, typ string, n int) []gw.Event {
	t.Helper()
	eventually(t, fmt.Sprintf("%d %s events", n, typ), func() bool { return len(e.of(typ)) >= n })
	return e.of(typ)
}

// udpRun is a UDP receiving in the background on a loopback port.
type udpRun struct {
	u      *UDP
	events *udpEvents
	stop   func() error
}

// startUDP creates a UDP on a free port with cfg and runs it until the test
// ends (or stop is called). cfg.Cloud defaults to an unused loopback port.
func startUDP(t testing.TB, cfg UDPConfig, sink gw.Sink) *udpRun {
	t.Helper()
	ev := &udpEvents{}
	cfg.OnEvent = ev.add
	if cfg.Cloud == "" {
		cfg.Cloud = "127.0.0.1:9"
	}
	u, err := NewUDP(cfg, sink, testLogger(t))
	if err != nil {
		t.Fatalf("NewUDP: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitLimit):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "Run to start", func() bool { return u.Healthy() == nil })
	return &udpRun{u: u, events: ev, stop: stop}
}

// udpClient is a loopback socket that plays the Super SIM cloud.
type udpClient struct {
	t    testing.TB
	conn *net.UDPConn
	to   netip.AddrPort
}

func newUDPClient(t testing.TB, port int) *udpClient {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	})
	return &udpClient{t: t, conn: c, to: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
}

func (c *udpClient) send(p []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort(p, c.to); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *udpClient) addr() string { return c.conn.LocalAddr().String() }

// burst sends payloads keeping at most window of them unread by u, so the
// kernel's receive buffer never overflows and loses some.
func (c *udpClient) burst(u *UDP, payloads [][]byte, window int) {
	c.t.Helper()
	base := u.Stats().Received
	deadline := time.Now().Add(waitLimit)
	for i, p := range payloads {
		// A short poll: the sender's pace is part of what a benchmark measures.
		for i >= window && u.Stats().Received-base <= uint64(i-window) {
			if time.Now().After(deadline) {
				c.t.Fatalf("receiver read %d of %d datagrams", u.Stats().Received-base, i)
			}
			time.Sleep(20 * time.Microsecond)
		}
		c.send(p)
	}
}

// queued returns every message in q, in queue order.
func queued(t testing.TB, q *Queue) []gw.Inbound {
	t.Helper()
	items, err := q.headInbound(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	var out []gw.Inbound
	for _, it := range items {
		if it.err != nil {
			t.Fatalf("stored record %d: %v", it.seq, it.err)
		}
		out = append(out, it.msg)
	}
	return out
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestUDPReceivesExactBytes(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		binary  bool
	}{
		{"all byte values", allBytes(), true},
		{"1300 bytes of text", bytes.Repeat([]byte("a"), gw.MaxUDPPayload), false},
		{"1300 bytes binary", bytes.Repeat([]byte{0, 0xff}, gw.MaxUDPPayload/2), true},
		{"text with tab CR LF and emoji", []byte("reboot\tnow\r\n\xf0\x9f\x9a\x80"), false},
		{"invalid UTF-8", []byte("caf\xe9"), true},
		{"control character", []byte("a\x1bb"), true},
		{"NUL only", []byte{0}, true},
		{"empty datagram", []byte{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openTestQueue(t, t.TempDir(), 100)
			r := startUDP(t, UDPConfig{}, q)
			c := newUDPClient(t, r.u.Port())
			before := time.Now().UTC()
			c.send(tt.payload)
			eventually(t, "the datagram to be stored", func() bool { return r.u.Stats().Stored == 1 })
			got := queued(t, q)
			if len(got) != 1 {
				t.Fatalf("queue holds %d messages, want 1", len(got))
			}
			m := got[0]
			want := gw.Inbound{Channel: gw.ChannelIP, From: c.addr(), Port: r.u.Port(), Payload: tt.payload, Binary: tt.binary}
			if diff := cmp.Diff(want, m, cmpopts.IgnoreFields(gw.Inbound{}, "ID", "ReceivedAt"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("stored message (-want +got):\n%s", diff)
			}
			if m.ReceivedAt.Before(before) || m.ReceivedAt.Location() != time.UTC {
				t.Errorf("ReceivedAt %v: want UTC, not before %v", m.ReceivedAt, before)
			}
			if id := gw.MessageID(m); m.ID != id {
				t.Errorf("ID %q, want MessageID %q", m.ID, id)
			}
		})
	}
}

func TestUDPRejectsOversize(t *testing.T) {
	for _, size := range []int{gw.MaxUDPPayload + 1, 2000, 60000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			q := openTestQueue(t, t.TempDir(), 100)
			r := startUDP(t, UDPConfig{}, q)
			c := newUDPClient(t, r.u.Port())
			c.send(bytes.Repeat([]byte("x"), size))
			c.send([]byte("after"))
			eventually(t, "the next datagram to be stored", func() bool { return r.u.Stats().Stored == 1 })
			evs := r.events.wait(t, gw.EventIPOversize, 1)
			wantFields := map[string]any{"from": c.addr(), "port": r.u.Port(), "size": size}
			if diff := cmp.Diff(wantFields, evs[0].Fields); diff != "" {
				t.Errorf("event fields (-want +got):\n%s", diff)
			}
			if !strings.Contains(evs[0].Message, fmt.Sprintf("%d bytes", size)) || !strings.Contains(evs[0].Message, "1300") {
				t.Errorf("event message %q does not say the size and the limit", evs[0].Message)
			}
			var payloads []string
			for _, m := range queued(t, q) {
				payloads = append(payloads, string(m.Payload))
			}
			if diff := cmp.Diff([]string{"after"}, payloads); diff != "" {
				t.Errorf("queued payloads (-want +got):\n%s", diff)
			}
			if got := r.u.Stats(); got.Oversize != 1 || got.Received != 2 {
				t.Errorf("stats %+v: want Oversize 1, Received 2", got)
			}
		})
	}
}

func TestUDPAllowedSources(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		accept  bool
	}{
		{"empty accepts any", nil, true},
		{"loopback allowed", []string{"127.0.0.0/8"}, true},
		{"exact host", []string{"10.0.0.0/8", "127.0.0.1/32"}, true},
		{"IPv4-mapped prefix", []string{"::ffff:127.0.0.0/104"}, true},
		{"other network", []string{"100.64.0.0/10"}, false},
		{"IPv6 only", []string{"::1/128"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var prefixes []netip.Prefix
			for _, s := range tt.allowed {
				prefixes = append(prefixes, netip.MustParsePrefix(s))
			}
			q := openTestQueue(t, t.TempDir(), 100)
			r := startUDP(t, UDPConfig{AllowedSources: prefixes}, q)
			c := newUDPClient(t, r.u.Port())
			c.send([]byte("open sesame"))
			if tt.accept {
				eventually(t, "the datagram to be stored", func() bool { return r.u.Stats().Stored == 1 })
				if n := len(r.events.of(gw.EventSourceRejected)); n != 0 {
					t.Errorf("%d source_rejected events for an allowed source", n)
				}
				return
			}
			evs := r.events.wait(t, gw.EventSourceRejected, 1)
			wantFields := map[string]any{"from": c.addr(), "port": r.u.Port(), "size": len("open sesame")}
			if diff := cmp.Diff(wantFields, evs[0].Fields); diff != "" {
				t.Errorf("event fields (-want +got):\n%s", diff)
			}
			if got := r.u.Stats(); got.SourceRejected != 1 || got.Stored != 0 {
				t.Errorf("stats %+v: want SourceRejected 1, Stored 0", got)
			}
			if n := q.Stats().Inbound; n != 0 {
				t.Errorf("queue holds %d messages from a rejected source", n)
			}
		})
	}
}

func TestUDPBurstKeepsArrivalOrder(t *testing.T) {
	const n = 1000
	q := openTestQueue(t, t.TempDir(), 10*n)
	r := startUDP(t, UDPConfig{}, q)
	c := newUDPClient(t, r.u.Port())
	var want []string
	var payloads [][]byte
	for i := range n {
		p := fmt.Sprintf("command %04d", i)
		want = append(want, p)
		payloads = append(payloads, []byte(p))
	}
	c.burst(r.u, payloads, 100)
	eventually(t, "the burst to be stored", func() bool { return r.u.Stats().Stored == n })
	got := queued(t, q)
	var gotPayloads []string
	ids := map[string]bool{}
	var last time.Time
	for _, m := range got {
		gotPayloads = append(gotPayloads, string(m.Payload))
		ids[m.ID] = true
		if !m.ReceivedAt.After(last) {
			t.Errorf("ReceivedAt %v of %q is not after the one before (%v)", m.ReceivedAt, m.Payload, last)
		}
		last = m.ReceivedAt
	}
	if diff := cmp.Diff(want, gotPayloads); diff != "" {
		t.Errorf("queue order (-want +got):\n%s", diff)
	}
	if len(ids) != n {
		t.Errorf("%d distinct ids for %d messages", len(ids), n)
	}
}

// A sink without PutBatch gets one Put at a time, still in arrival order.
func TestUDPPlainSinkKeepsOrder(t *testing.T) {
	const n = 200
	sink := modemtest.NewMemorySink()
	r := startUDP(t, UDPConfig{}, sink)
	c := newUDPClient(t, r.u.Port())
	var want []string
	var payloads [][]byte
	for i := range n {
		want = append(want, fmt.Sprint(i))
		payloads = append(payloads, []byte(fmt.Sprint(i)))
	}
	c.burst(r.u, payloads, 50)
	eventually(t, "the burst to be stored", func() bool { return r.u.Stats().Stored == n })
	var got []string
	for _, m := range sink.Messages() {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sink order (-want +got):\n%s", diff)
	}
}

func TestUDPReopensAfterSocketLoss(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 100)
	cloud := newUDPClient(t, 0)
	r := startUDP(t, UDPConfig{Cloud: cloud.addr()}, q)
	c := newUDPClient(t, r.u.Port())
	c.send([]byte("before"))
	eventually(t, "the first datagram", func() bool { return r.u.Stats().Stored == 1 })

	// The interface going away: the socket fails under the reader.
	r.u.mu.Lock()
	conn := r.u.conn
	r.u.mu.Unlock()
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	lost := r.events.wait(t, gw.EventIPSocketLost, 1)
	if lost[0].Fields["port"] != r.u.Port() {
		t.Errorf("lost event fields %v: want port %d", lost[0].Fields, r.u.Port())
	}
	r.events.wait(t, gw.EventIPSocketReopened, 1)
	if err := r.u.Healthy(); err != nil {
		t.Errorf("Healthy after reopen: %v", err)
	}
	if got := r.u.Data().State; got != "up" {
		t.Errorf("Data().State = %q after reopen, want up", got)
	}

	c.send([]byte("after"))
	eventually(t, "the datagram after the reopen", func() bool { return r.u.Stats().Stored == 2 })
	var got []string
	for _, m := range queued(t, q) {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff([]string{"before", "after"}, got); diff != "" {
		t.Errorf("queued payloads (-want +got):\n%s", diff)
	}
	if s := r.u.Stats(); s.Reopens != 1 {
		t.Errorf("Reopens = %d, want 1", s.Reopens)
	}

	// Sending uses the new socket, from the same port.
	if err := r.u.Send(context.Background(), []byte("pong")); err != nil {
		t.Fatalf("Send after reopen: %v", err)
	}
	p, from := cloud.read(t)
	if string(p) != "pong" || int(from.Port()) != r.u.Port() {
		t.Errorf("cloud got %q from %s, want \"pong\" from port %d", p, from, r.u.Port())
	}
}

// read waits for one datagram.
func (c *udpClient) read(t testing.TB) ([]byte, netip.AddrPort) {
	t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, udpReadSize)
	n, from, err := c.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("cloud read: %v", err)
	}
	return buf[:n], from
}

func TestUDPSend(t *testing.T) {
	cloud := newUDPClient(t, 0)
	r := startUDP(t, UDPConfig{Cloud: cloud.addr()}, modemtest.NewMemorySink())
	tests := []struct {
		name    string
		payload []byte
		err     string
	}{
		{"all byte values", allBytes(), ""},
		{"1300 bytes", bytes.Repeat([]byte{0xa5}, gw.MaxUDPPayload), ""},
		{"empty", []byte{}, ""},
		{"1301 bytes refused", bytes.Repeat([]byte{1}, gw.MaxUDPPayload+1), "payload is 1301 bytes, one IP Command holds at most 1300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.u.Send(context.Background(), tt.payload)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Send error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			p, from := cloud.read(t)
			if diff := cmp.Diff(tt.payload, p, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("cloud received (-want +got):\n%s", diff)
			}
			if int(from.Port()) != r.u.Port() {
				t.Errorf("datagram came from port %d, want the device port %d", from.Port(), r.u.Port())
			}
		})
	}
	// Nothing of the refused payload went out: the next datagram is the next one sent.
	if err := r.u.Send(context.Background(), []byte("last")); err != nil {
		t.Fatal(err)
	}
	if p, _ := cloud.read(t); string(p) != "last" {
		t.Errorf("cloud received %q, want \"last\"", p)
	}
}

func TestUDPSendErrors(t *testing.T) {
	t.Run("cloud of another address family", func(t *testing.T) {
		r := startUDP(t, UDPConfig{Bind: "127.0.0.1", Cloud: "[::1]:6969"}, modemtest.NewMemorySink())
		err := r.u.Send(context.Background(), []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "send udp to [::1]:6969") {
			t.Errorf("Send error %v, want one naming the cloud [::1]:6969", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		r := startUDP(t, UDPConfig{}, modemtest.NewMemorySink())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := r.u.Send(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Send error %v, want context.Canceled", err)
		}
	})
	t.Run("after Run returned", func(t *testing.T) {
		r := startUDP(t, UDPConfig{}, modemtest.NewMemorySink())
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		err := r.u.Send(context.Background(), []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "socket closed") {
			t.Errorf("Send error %v, want \"socket closed\"", err)
		}
		if err := r.u.Healthy(); err == nil {
			t.Error("Healthy after Run returned: nil, want an error")
		}
		if got, want := r.u.Data(), (gw.DataInfo{Mode: "os", State: "down"}); got != want {
			t.Errorf("Data() = %+v, want %+v", got, want)
		}
	})
	t.Run("socket down", func(t *testing.T) {
		u, err := NewUDP(UDPConfig{Cloud: "127.0.0.1:9"}, modemtest.NewMemorySink(), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := u.Close(); err != nil {
				t.Error(err)
			}
		})
		// As after a read error, before the reopen.
		u.mu.Lock()
		c := u.conn
		u.mu.Unlock()
		u.lost(c, errors.New("network is down"))
		err = u.Send(context.Background(), []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "socket is down and being reopened: network is down") {
			t.Errorf("Send error %v, want the socket's failure", err)
		}
	})
}

func TestNewUDPRejectsBadConfig(t *testing.T) {
	// A port someone else holds.
	busy, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.LocalAddr().(*net.UDPAddr).Port
	tests := []struct {
		name string
		cfg  UDPConfig
		err  string
	}{
		{"no cloud", UDPConfig{}, "ip.cloud is empty"},
		{"cloud without port", UDPConfig{Cloud: "100.64.0.1"}, `ip.cloud "100.64.0.1" is not host:port`},
		{"cloud port 0", UDPConfig{Cloud: "100.64.0.1:0"}, "not a port number from 1 to 65535"},
		{"cloud port text", UDPConfig{Cloud: "100.64.0.1:x"}, "not a port number from 1 to 65535"},
		{"cloud port too big", UDPConfig{Cloud: "100.64.0.1:65536"}, "not a port number from 1 to 65535"},
		{"cloud without host", UDPConfig{Cloud: ":6969"}, "has no host"},
		{"cloud unspecified", UDPConfig{Cloud: "0.0.0.0:6969"}, "not an address to send to"},
		{"bind interface name", UDPConfig{Cloud: "100.64.0.1:6969", Bind: "wwan0"}, `ip.bind "wwan0" is not an IP address`},
		{"negative port", UDPConfig{Cloud: "100.64.0.1:6969", Port: -1}, "ip.port -1 is not a port number"},
		{"port too big", UDPConfig{Cloud: "100.64.0.1:6969", Port: 70000}, "ip.port 70000 is not a port number"},
		{"invalid prefix", UDPConfig{Cloud: "100.64.0.1:6969", AllowedSources: []netip.Prefix{{}}}, "invalid prefix"},
		{"port in use", UDPConfig{Cloud: "100.64.0.1:6969", Port: busyPort}, "address already in use"},
		{"bind address not here", UDPConfig{Cloud: "100.64.0.1:6969", Bind: "192.0.2.1"}, "listen on 192.0.2.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUDP(tt.cfg, modemtest.NewMemorySink(), nil)
			if err == nil {
				if cerr := u.Close(); cerr != nil {
					t.Error(cerr)
				}
				t.Fatalf("NewUDP(%+v) succeeded, want an error containing %q", tt.cfg, tt.err)
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NewUDP error %q, want one containing %q", err, tt.err)
			}
		})
	}
	if _, err := NewUDP(UDPConfig{Cloud: "100.64.0.1:6969"}, nil, nil); err == nil {
		t.Error("NewUDP without a sink succeeded")
	}
}

func TestUDPData(t *testing.T) {
	tests := []struct {
		name string
		cfg  UDPConfig
		want gw.DataInfo
	}{
		{"route to the cloud", UDPConfig{Cloud: "127.0.0.1:6969"}, gw.DataInfo{Mode: "os", State: "up", IP: "127.0.0.1"}},
		{"bound address", UDPConfig{Cloud: "127.0.0.1:6969", Bind: "127.0.0.1"}, gw.DataInfo{Mode: "os", State: "up", IP: "127.0.0.1"}},
		{"unresolved host name", UDPConfig{Cloud: "cloud.example:6969"}, gw.DataInfo{Mode: "os", State: "up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startUDP(t, tt.cfg, modemtest.NewMemorySink())
			if diff := cmp.Diff(tt.want, r.u.Data()); diff != "" {
				t.Errorf("Data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUDPRunLifecycle(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 100)
	u, err := NewUDP(UDPConfig{Cloud: "127.0.0.1:9"}, q, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Healthy(); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Healthy before Run: %v, want \"not running\"", err)
	}
	// Datagrams that arrive before Run waits in the kernel, not lost.
	c := newUDPClient(t, u.Port())
	for i := range 5 {
		c.send([]byte(fmt.Sprint(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	eventually(t, "the early datagrams", func() bool { return u.Stats().Stored == 5 })
	if err := u.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v, want an error", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close after Run: %v", err)
	}

	u2, err := NewUDP(UDPConfig{Cloud: "127.0.0.1:9"}, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("Run after Close: %v, want an error", err)
	}
}

// What was read before Run's context was cancelled is stored before Run
// returns, even while the sink is slow.
func TestUDPStopStoresWhatWasRead(t *testing.T) {
	const n = 20
	sink := &gateSink{MemorySink: modemtest.NewMemorySink(), gate: make(chan struct{})}
	r := startUDP(t, UDPConfig{}, sink)
	c := newUDPClient(t, r.u.Port())
	for i := range n {
		c.send([]byte(fmt.Sprint(i)))
	}
	eventually(t, "every datagram to be read", func() bool { return r.u.Stats().Received == n })
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop() }()
	eventually(t, "Run to be stopping", r.u.isClosed)
	close(sink.gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := len(sink.Messages()); got != n {
		t.Errorf("sink holds %d messages after stop, want %d", got, n)
	}
}

// gateSink holds every Put until gate is closed.
type gateSink struct {
	*modemtest.MemorySink
	gate chan struct{}
}

func (s *gateSink) Put(ctx context.Context, m gw.Inbound) error {
	<-s.gate
	return s.MemorySink.Put(ctx, m)
}

func TestUDPQueueFull(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 3)
	var full atomic.Int32
	q.SetEventHandler(func(ev gw.Event) {
		if ev.Type == "queue_full" {
			full.Add(1)
		}
	})
	r := startUDP(t, UDPConfig{}, q)
	c := newUDPClient(t, r.u.Port())
	for i := range 5 {
		c.send([]byte(fmt.Sprint(i)))
	}
	eventually(t, "every datagram to be handled", func() bool { s := r.u.Stats(); return s.Stored+s.Dropped == 5 })
	if s := r.u.Stats(); s.Stored != 3 || s.Dropped != 2 {
		t.Errorf("stats %+v: want Stored 3, Dropped 2", s)
	}
	if full.Load() == 0 {
		t.Error("no queue_full event")
	}
	var got []string
	for _, m := range queued(t, q) {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff([]string{"0", "1", "2"}, got); diff != "" {
		t.Errorf("queued (-want +got):\n%s", diff)
	}
	if n := len(r.events.of(gw.EventIPStoreFailed)); n != 0 {
		t.Errorf("%d ip_store_failed events for a full queue; the queue reports that", n)
	}
}

// flakySink fails the first fails calls of Put or PutBatch, then stores.
type flakySink struct {
	*Queue
	mu    sync.Mutex
	fails int
	calls int
}

func (s *flakySink) fail() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fails > 0 {
		s.fails--
		return errors.New("disk I/O error")
	}
	return nil
}

func (s *flakySink) PutBatch(ctx context.Context, ms []gw.Inbound) ([]error, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.Queue.PutBatch(ctx, ms)
}

func shortStoreRetries(t *testing.T) {
	old := udpStoreRetries
	udpStoreRetries = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	t.Cleanup(func() { udpStoreRetries = old })
}

func TestUDPStoreFailures(t *testing.T) {
	shortStoreRetries(t)
	tests := []struct {
		name       string
		fails      int
		stored     uint64
		dropped    uint64
		wantEvents int
	}{
		{"retried until it works", len(udpStoreRetries), 1, 0, 0},
		{"dropped after the retries", len(udpStoreRetries) + 1, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &flakySink{Queue: openTestQueue(t, t.TempDir(), 100), fails: tt.fails}
			r := startUDP(t, UDPConfig{}, sink)
			c := newUDPClient(t, r.u.Port())
			c.send([]byte("x"))
			eventually(t, "the datagram to be handled", func() bool { s := r.u.Stats(); return s.Stored+s.Dropped == 1 })
			if s := r.u.Stats(); s.Stored != tt.stored || s.Dropped != tt.dropped {
				t.Errorf("stats %+v: want Stored %d, Dropped %d", s, tt.stored, tt.dropped)
			}
			// The drop is counted before the event goes out.
			if tt.wantEvents > 0 {
				r.events.wait(t, gw.EventIPStoreFailed, tt.wantEvents)
			}
			evs := r.events.of(gw.EventIPStoreFailed)
			if len(evs) != tt.wantEvents {
				t.Fatalf("%d ip_store_failed events, want %d", len(evs), tt.wantEvents)
			}
			if tt.wantEvents > 0 && !strings.Contains(evs[0].Message, "disk I/O error") {
				t.Errorf("event message %q does not carry the cause", evs[0].Message)
			}
			// The next datagram is stored once the store works again.
			c.send([]byte("y"))
			eventually(t, "the next datagram", func() bool { return r.u.Stats().Stored == tt.stored+1 })
		})
	}
	t.Run("plain sink", func(t *testing.T) {
		sink := modemtest.NewMemorySink()
		sink.SetFail(errors.New("read-only file system"))
		r := startUDP(t, UDPConfig{}, sink)
		c := newUDPClient(t, r.u.Port())
		c.send([]byte("x"))
		evs := r.events.wait(t, gw.EventIPStoreFailed, 1)
		if !strings.Contains(evs[0].Message, "read-only file system") {
			t.Errorf("event message %q does not carry the cause", evs[0].Message)
		}
		sink.SetFail(nil)
		c.send([]byte("y"))
		eventually(t, "the next datagram", func() bool { return r.u.Stats().Stored == 1 })
		if got := sink.Messages(); len(got) != 1 || string(got[0].Payload) != "y" {
			t.Errorf("sink holds %v, want only y", got)
		}
	})
}

func TestUDPEventLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := eventLimiter{every: 10 * time.Second, now: func() time.Time { return now }}
	type step struct {
		advance time.Duration
		typ     string
		show    bool
		held    int
	}
	steps := []step{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{time.Second, "b", true, 0}, // types are limited apart
		{time.Second, "a", false, 0},
		{8 * time.Second, "a", true, 2},
		{0, "a", false, 0},
		{10 * time.Second, "a", true, 1},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		show, held := l.allow(s.typ)
		if show != s.show || held != s.held {
			t.Errorf("step %d (%s): allow = %v, %d; want %v, %d", i, s.typ, show, held, s.show, s.held)
		}
	}
}

// Rejections beyond the first in a period are counted, not each reported.
func TestUDPRejectionEventsAreLimited(t *testing.T) {
	sink := modemtest.NewMemorySink()
	r := startUDP(t, UDPConfig{AllowedSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, sink)
	c := newUDPClient(t, r.u.Port())
	for range 10 {
		c.send([]byte("x"))
	}
	eventually(t, "every datagram to be read", func() bool { return r.u.Stats().SourceRejected == 10 })
	if n := len(r.events.of(gw.EventSourceRejected)); n != 1 {
		t.Errorf("%d source_rejected events for 10 datagrams in one period, want 1", n)
	}
}

func TestUDPStampsAreDistinct(t *testing.T) {
	u := &UDP{port: 6969}
	fixed := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := []time.Time{fixed, fixed, fixed.Add(-time.Microsecond), fixed.Add(time.Second), fixed.Add(-time.Hour)}
	i := 0
	u.now = func() time.Time { t := clock[i]; i++; return t }
	want := []time.Time{fixed, fixed.Add(1), fixed.Add(2), fixed.Add(time.Second), fixed.Add(-time.Hour)}
	from := netip.MustParseAddrPort("100.64.0.1:6969")
	var got []time.Time
	ids := map[string]bool{}
	for range clock {
		m, rej := u.accept(from, []byte("same"), u.stamp())
		if rej != nil {
			t.Fatalf("rejected: %+v", rej)
		}
		got = append(got, m.ReceivedAt)
		ids[m.ID] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stamps (-want +got):\n%s", diff)
	}
	if len(ids) != len(clock) {
		t.Errorf("%d distinct ids for %d identical datagrams", len(ids), len(clock))
	}
}

func TestQueuePutBatch(t *testing.T) {
	msg := func(s string) gw.Inbound {
		m := gw.Inbound{Channel: gw.ChannelIP, From: "100.64.0.1:6969", Port: 6969, Payload: []byte(s), ReceivedAt: t0}
		m.ID = gw.MessageID(m)
		return m
	}
	q := openTestQueue(t, t.TempDir(), 4)
	ctx := context.Background()
	if err := q.Put(ctx, msg("a")); err != nil {
		t.Fatal(err)
	}
	noID := msg("no id")
	noID.ID = ""
	batch := []gw.Inbound{msg("b"), msg("a"), noID, msg("c"), msg("b"), msg("d"), msg("e")}
	res, err := q.PutBatch(ctx, batch)
	if err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	var got []string
	for _, r := range res {
		switch {
		case r == nil:
			got = append(got, "ok")
		case errors.Is(r, ErrQueueFull):
			got = append(got, "full")
		default:
			got = append(got, "error")
		}
	}
	// a is already queued and the second b is in the batch: both accepted
	// once. The queue holds 4, so e is refused.
	if diff := cmp.Diff([]string{"ok", "ok", "error", "ok", "ok", "ok", "full"}, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	var payloads []string
	for _, m := range queued(t, q) {
		payloads = append(payloads, string(m.Payload))
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, payloads); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.PutBatch(ctx, []gw.Inbound{msg("f")}); !errors.Is(err, ErrClosed) {
		t.Errorf("PutBatch after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkUDPToQueue is a burst over loopback into a real Queue: the rate
// at which datagrams become durable.
func BenchmarkUDPToQueue(b *testing.B) {
	q := openTestQueue(b, b.TempDir(), 1<<30)
	r := startUDP(b, UDPConfig{}, q)
	c := newUDPClient(b, r.u.Port())
	payloads := make([][]byte, b.N)
	for i := range payloads {
		payloads[i] = []byte(fmt.Sprintf(`{"cmd":"set","seq":%d,"value":"%064d"}`, i, i))
	}
	b.ResetTimer()
	c.burst(r.u, payloads, 128)
	eventually(b, "the burst to be stored", func() bool { return r.u.Stats().Stored == uint64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if s := r.u.Stats(); s.Dropped != 0 || q.Stats().Inbound != b.N {
		b.Fatalf("stats %+v, queue %+v: want all %d stored", s, q.Stats(), b.N)
	}
}

func TestUDPHealthy(t *testing.T) {
	tests := []struct {
		name    string
		running bool
		down    time.Duration // how long the socket has been down; 0: open
		storing time.Duration // how long a store call has run; 0: idle
		err     string
	}{
		{"not running", false, 0, 0, "not running"},
		{"running", true, 0, 0, ""},
		{"down briefly", true, time.Second, 0, ""},
		{"down too long", true, 2 * udpHealthGrace, 0, "down for"},
		{"store call too long", true, 0, 2 * udpHealthGrace, "storing IP Commands has taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := NewUDP(UDPConfig{Cloud: "127.0.0.1:9"}, modemtest.NewMemorySink(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := u.Close(); err != nil {
					t.Error(err)
				}
			}()
			u.running.Store(tt.running)
			if tt.down > 0 {
				u.mu.Lock()
				c := u.conn
				u.mu.Unlock()
				u.lost(c, errors.New("network is down"))
				u.mu.Lock()
				u.downSince = time.Now().Add(-tt.down)
				u.mu.Unlock()
			}
			if tt.storing > 0 {
				u.base = u.base.Add(-tt.storing)
				u.storing.Store(1)
			}
			err = u.Healthy()
			if tt.err == "" {
				if err != nil {
					t.Errorf("Healthy: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Healthy: %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

// A host name in ip.cloud is resolved when sending, in the family of the
// bound address.
func TestUDPSendToHostName(t *testing.T) {
	cloud := newUDPClient(t, 0)
	_, port, err := net.SplitHostPort(cloud.addr())
	if err != nil {
		t.Fatal(err)
	}
	r := startUDP(t, UDPConfig{Bind: "127.0.0.1", Cloud: "localhost:" + port}, modemtest.NewMemorySink())
	if err := r.u.Send(context.Background(), []byte("hello")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if p, from := cloud.read(t); string(p) != "hello" || int(from.Port()) != r.u.Port() {
		t.Errorf("cloud got %q from %s, want \"hello\" from port %d", p, from, r.u.Port())
	}
}
