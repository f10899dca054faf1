package modem

// Hardware-in-loop tests of ip.mode "modem": the real session over a pty
// against the simulated module's UDP sockets. Skipped with -short.

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemtest"
)

const cloud = "100.64.0.1:6969"

func ipModem(tweak func(*Config)) func(*Config) {
	return func(c *Config) {
		c.IPMode, c.IPPort, c.APN, c.Cloud = "modem", 6969, "super", cloud
		if tweak != nil {
			tweak(c)
		}
	}
}

// dataUp waits until the data session is up. Callers first wait for
// what took it down, so an "up" seen here is the new one.
func (h *hil) dataUp() gw.DataInfo {
	h.t.Helper()
	deadline := time.Now().Add(2 * wait)
	for {
		d := h.s.Status().Data
		if d.State == DataUp {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("data session not up: %+v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *hil) injectUDP(from string, payload []byte) {
	h.t.Helper()
	if err := h.sim.InjectUDP(from, 6969, payload); err != nil {
		h.t.Fatalf("InjectUDP: %v", err)
	}
}

func (h *hil) socketID() int {
	h.t.Helper()
	socks := h.sim.State().Sockets
	if len(socks) != 1 {
		h.t.Fatalf("sockets = %+v, want one", socks)
	}
	return socks[0].ID
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

type ipCase struct {
	name    string
	profile string
	opts    modemsim.Options
	tweak   func(*Config)
	maxSend int
}

var ipCases = []ipCase{
	{name: "quectel buffer", profile: "quectel", maxSend: 1300},
	{name: "quectel direct push", profile: "quectel", tweak: func(c *Config) { c.IPDirectPush = true }, maxSend: 1300},
	{name: "simcom", profile: "simcom", maxSend: 1300},
	{name: "simcom RECEIVE colon", profile: "simcom", opts: modemsim.Options{ReceiveColon: true}, maxSend: 1300},
	// SARA-R4's AT+USOST sends at most 1024 bytes per datagram.
	{name: "ublox", profile: "ublox", maxSend: 1024},
	{name: "sim7080", profile: "sim7080", maxSend: 1300},
	// SARA-R5's AT+USOST has the R4's limit.
	{name: "sara-r5", profile: "sara-r5", maxSend: 1024},
}

func TestHILIPCommands(t *testing.T) {
	for _, tc := range ipCases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Profile = tc.profile
			sim := startSim(t, opts)
			h := runHIL(t, sim, ipModem(tc.tweak))
			h.ready()
			d := h.dataUp()
			if d.Mode != "modem" || d.IP == "" || d.IP != sim.State().IP {
				t.Errorf("data = %+v, want mode modem and the module's address %q", d, sim.State().IP)
			}

			receive := []struct {
				name    string
				from    string
				payload []byte
				binary  bool
			}{
				{"text", "100.64.0.1:6969", []byte(`{"cmd":"on"}`), false},
				{"one byte", "100.64.0.1:6969", []byte{0xff}, true},
				{"every byte value", "100.64.0.1:6969", allBytes(), true},
				{"line ends, quotes, NUL", "100.64.0.1:4242", []byte("a\r\nOK\r\n\"\x00\"+QIURC: \"closed\",0\r\n"), true},
				{"1300 bytes", "100.64.0.1:6969", randomBytes(1300, 1), true},
				{"1300 bytes of text", "100.64.0.1:6969", bytes.Repeat([]byte("0123456789"), 130), false},
			}
			for i, r := range receive {
				h.injectUDP(r.from, r.payload)
				got := h.messages(i + 1)[i]
				want := gw.Inbound{Channel: gw.ChannelIP, From: r.from, Port: 6969, Payload: r.payload, Binary: r.binary}
				if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
					t.Errorf("receive %s (-want +got):\n%s", r.name, diff)
				}
				if got.ID != gw.MessageID(got) || got.ReceivedAt.IsZero() {
					t.Errorf("receive %s: id %q, received_at %v", r.name, got.ID, got.ReceivedAt)
				}
			}

			send := [][]byte{[]byte("pong"), {0xff}, allBytes(), randomBytes(tc.maxSend, 2), []byte("\r\n> @\x1a\x1b")}
			for i, p := range send {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				err := h.s.SendUDP(ctx, p)
				cancel()
				if err != nil {
					t.Fatalf("SendUDP(%d bytes): %v", len(p), err)
				}
				st := sim.State().SentUDP
				if len(st) != i+1 {
					t.Fatalf("modemsim recorded %d datagrams, want %d", len(st), i+1)
				}
				if st[i].To != cloud || !bytes.Equal(st[i].Data, p) {
					t.Errorf("sent %d bytes to %s, want %d bytes to %s (equal: %v)", len(st[i].Data), st[i].To, len(p), cloud, bytes.Equal(st[i].Data, p))
				}
			}
			over := []struct {
				n    int
				want string
			}{{1301, "at most 1300"}}
			if tc.maxSend < 1300 {
				over = append(over, struct {
					n    int
					want string
				}{1300, "at most 1024"})
			}
			for _, o := range over {
				err := h.s.SendUDP(context.Background(), randomBytes(o.n, 3))
				if err == nil || !strings.Contains(err.Error(), o.want) {
					t.Errorf("SendUDP(%d bytes) = %v, want an error saying %q", o.n, err, o.want)
				}
			}
			if n := len(sim.State().SentUDP); n != len(send) {
				t.Errorf("modemsim recorded %d datagrams, want %d: a refused payload reached the module", n, len(send))
			}

			// The network closes the socket, then ends the data session:
			// each time the session re-opens and works again.
			n := len(receive)
			for _, drop := range []string{"close socket", "drop data session"} {
				if drop == "close socket" {
					sim.CloseSocket(h.socketID())
				} else {
					sim.DropData()
				}
				h.event(gw.EventDataDown)
				h.dataUp()
				h.injectUDP("100.64.0.1:6969", []byte("after "+drop))
				n++
				if got := h.messages(n)[n-1]; string(got.Payload) != "after "+drop {
					t.Errorf("after %s got %q", drop, got.Payload)
				}
				if err := h.s.SendUDP(context.Background(), []byte("sent after "+drop)); err != nil {
					t.Errorf("SendUDP after %s: %v", drop, err)
				}
			}
			if got := len(h.sink.Messages()); got != n {
				t.Errorf("%d messages stored, want %d (a duplicate or a loss)", got, n)
			}
			// SMS keep working alongside.
			h.inject(modemsim.SMS{Text: "sms too"})
			if got := h.messages(n + 1)[n]; string(got.Payload) != "sms too" {
				t.Errorf("SMS got %q", got.Payload)
			}
		})
	}
}

func TestHILIPSourceNotAllowed(t *testing.T) {
	for _, profile := range []string{"quectel", "simcom", "ublox", "sim7080", "sara-r5"} {
		t.Run(profile, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: profile})
			h := runHIL(t, sim, ipModem(func(c *Config) {
				c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}
			}))
			h.ready()
			h.dataUp()
			h.injectUDP("203.0.113.7:1234", []byte("let me in"))
			e := h.event(gw.EventSourceRejected)
			if !strings.Contains(e.Message, "203.0.113.7:1234") || e.Fields["from"] != "203.0.113.7:1234" {
				t.Errorf("event %+v does not name the source", e)
			}
			h.injectUDP("100.64.0.1:6969", []byte("from the cloud"))
			got := h.messages(1)
			if len(got) != 1 || string(got[0].Payload) != "from the cloud" {
				t.Errorf("messages = %+v, want only the one from the cloud", got)
			}
		})
	}
}

// The Sink refuses (queue full): the datagram is neither dropped nor
// duplicated, and arrives once the Sink accepts again, in order.
func TestHILIPSinkRefuses(t *testing.T) {
	for _, tc := range ipCases[:3] {
		t.Run(tc.name, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: tc.profile})
			h := runHIL(t, sim, ipModem(tc.tweak))
			h.ready()
			h.dataUp()
			h.sink.SetFail(errors.New("queue full"))
			h.injectUDP("100.64.0.1:6969", []byte("one"))
			h.event(gw.EventIPStoreFailed)
			h.injectUDP("100.64.0.1:6969", []byte("two"))
			h.sink.SetFail(nil)
			var got []string
			for _, m := range h.messages(2) {
				got = append(got, string(m.Payload))
			}
			h.injectUDP("100.64.0.1:6969", []byte("three"))
			got = append(got, string(h.messages(3)[2].Payload))
			if diff := cmp.Diff([]string{"one", "two", "three"}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The generic profile has no sockets: ip.mode modem says so clearly and
// SMS keep working.
func TestHILIPGenericUnsupported(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "generic", EmptyRead: "ok"})
	h := runHIL(t, sim, ipModem(nil))
	h.ready()
	e := h.event(gw.EventDataUnsupported)
	if !strings.Contains(e.Message, "generic") {
		t.Errorf("event %+v does not name the profile", e)
	}
	if d := h.s.Status().Data; d != (gw.DataInfo{Mode: "modem", State: DataUnsupported}) {
		t.Errorf("data = %+v", d)
	}
	err := h.s.SendUDP(context.Background(), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "data session down") {
		t.Errorf("SendUDP = %v, want a data session down error", err)
	}
	h.inject(modemsim.SMS{Text: "sms still"})
	if got := h.messages(1); string(got[0].Payload) != "sms still" {
		t.Errorf("got %q", got[0].Payload)
	}
}

// benchIP starts a session in ip.mode modem on a pty paced like a 115200
// baud UART, and waits for its socket.
func benchIP(b *testing.B, tweak func(*Config)) (*modemsim.Sim, *Session, *modemtest.MemorySink, context.Context) {
	return benchIPProfile(b, "quectel", tweak)
}

// benchIPProfile is benchIP on the module of profile.
func benchIPProfile(b *testing.B, profile string, tweak func(*Config)) (*modemsim.Sim, *Session, *modemtest.MemorySink, context.Context) {
	b.Helper()
	if testing.Short() {
		b.Skip("hardware-in-loop benchmark")
	}
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(b.TempDir(), "modem"), Profile: profile, Baud: 115200})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Close() })
	sink := modemtest.NewMemorySink()
	cfg := Config{Port: sim.Link(), SMS: true, IPMode: "modem", IPPort: 6969, Cloud: cloud}
	if tweak != nil {
		tweak(&cfg)
	}
	s := NewSession(cfg, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(wait)
	for s.Status().Data.State != DataUp {
		if time.Now().After(deadline) {
			b.Fatalf("data session not up: %+v", s.Status().Data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return sim, s, sink, ctx
}

// BenchmarkHILUDPReceive measures one 100-byte IP Command from the network
// to the Sink: +QIURC "recv", AT+QIRD until "+QIRD: 0" (buffer mode) or
// the pushed bytes (direct push), over a paced pty.
func BenchmarkHILUDPReceive(b *testing.B) {
	for _, mode := range []struct {
		name string
		push bool
	}{{"buffer", false}, {"push", true}} {
		b.Run(mode.name, func(b *testing.B) {
			sim, _, sink, ctx := benchIP(b, func(c *Config) { c.IPDirectPush = mode.push })
			payload := randomBytes(100, 9)
			n := 0
			for b.Loop() {
				payload[0] = byte(n)
				payload[1] = byte(n >> 8)
				if err := sim.InjectUDP(cloud, 6969, payload); err != nil {
					b.Fatal(err)
				}
				n++
				wctx, wcancel := context.WithTimeout(ctx, wait)
				if _, err := sink.Wait(wctx, n); err != nil {
					b.Fatal(err)
				}
				wcancel()
			}
		})
	}
}

// BenchmarkHILUDPSend measures one 100-byte SendUDP (AT+QISEND, prompt,
// bytes, SEND OK) over a paced pty.
func BenchmarkHILUDPSend(b *testing.B) {
	_, s, _, ctx := benchIP(b, nil)
	payload := randomBytes(100, 10)
	for b.Loop() {
		if err := s.SendUDP(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}
