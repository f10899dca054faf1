package modem

// Hardware-in-loop tests: the real session, through go.bug.st/serial, on a
// real pty, against the simulated modem. Skipped with -short.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemtest"
)

type hil struct {
	t      *testing.T
	sim    *modemsim.Sim
	s      *Session
	sink   *modemtest.MemorySink
	events chan gw.Event
	cancel context.CancelFunc
	done   chan error
}

func startSim(t *testing.T, opts modemsim.Options) *modemsim.Sim {
	t.Helper()
	if testing.Short() {
		t.Skip("hardware-in-loop test (runs without -short)")
	}
	opts.Link = filepath.Join(t.TempDir(), "modem")
	opts.Logger = testLogger()
	sim, err := modemsim.Start(opts)
	if err != nil {
		t.Fatalf("modemsim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("modemsim Close: %v", err)
		}
	})
	return sim
}

func runHIL(t *testing.T, sim *modemsim.Sim, tweak func(*Config)) *hil {
	return runHILTimeout(t, sim, tweak, 0)
}

func runHILTimeout(t *testing.T, sim *modemsim.Sim, tweak func(*Config), cmdTimeout time.Duration) *hil {
	t.Helper()
	mem := modemtest.NewMemorySink()
	return runHILSink(t, sim, mem, mem, tweak, cmdTimeout)
}

// runHILSink starts a session on sim that hands messages to sink; mem is
// the MemorySink the test reads them from (sink itself, or the one it
// wraps).
func runHILSink(t *testing.T, sim *modemsim.Sim, sink gw.Sink, mem *modemtest.MemorySink, tweak func(*Config), cmdTimeout time.Duration) *hil {
	t.Helper()
	h := &hil{t: t, sim: sim, sink: mem, events: make(chan gw.Event, 1000)}
	cfg := Config{
		Port: sim.Link(), Profile: "auto", SMS: true, AllowedSenders: []string{"000"},
		PollInterval: 200 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		BootTimeout: 20 * time.Second, Logger: testLogger(),
		OnEvent: func(e gw.Event) {
			select {
			case h.events <- e:
			default:
			}
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.s = NewSession(cfg, sink)
	hook(h.s, func(hk *testHooks) { hk.cmdTimeout = cmdTimeout })
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run() = %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *hil) ready() {
	h.t.Helper()
	deadline := time.Now().Add(2 * wait)
	for h.s.Healthy() != nil {
		if time.Now().After(deadline) {
			h.t.Fatalf("session not ready: %v", h.s.Healthy())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *hil) inject(m modemsim.SMS) {
	h.t.Helper()
	if _, err := h.sim.InjectSMS(m); err != nil {
		h.t.Fatalf("InjectSMS: %v", err)
	}
}

func (h *hil) messages(n int) []gw.Inbound {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	msgs, err := h.sink.Wait(ctx, n)
	if err != nil {
		h.t.Fatalf("got %d messages, want %d: %v", len(msgs), n, err)
	}
	return msgs
}

func (h *hil) event(typ string) gw.Event {
	h.t.Helper()
	for {
		select {
		case e := <-h.events:
			if e.Type == typ {
				return e
			}
		case <-time.After(2 * wait):
			h.t.Fatalf("no %s event", typ)
		}
	}
}

// waitSIMEmpty waits until the session deleted everything from the SIM.
func (h *hil) waitSIMEmpty() {
	h.t.Helper()
	deadline := time.Now().Add(2 * wait)
	for len(h.sim.State().Stored) > 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("SIM still holds %+v", h.sim.State().Stored)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sent = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func TestHILReceive(t *testing.T) {
	tests := []struct {
		name string
		sms  modemsim.SMS
		want gw.Inbound
	}{
		{"gsm7 extension table", modemsim.SMS{Text: "€{}[]~ ok", Encoding: "gsm7", SentAt: sent},
			gw.Inbound{Payload: []byte("€{}[]~ ok"), Parts: 1}},
		{"ucs2 emoji", modemsim.SMS{Text: "on 😀 ж", Encoding: "ucs2", SentAt: sent},
			gw.Inbound{Payload: []byte("on 😀 ж"), Parts: 1}},
		{"8-bit data", modemsim.SMS{Data: []byte{0, 1, 2, '\r', '\n', 0x1a, 0xff}, Encoding: "8bit", SentAt: sent},
			gw.Inbound{Payload: []byte{0, 1, 2, '\r', '\n', 0x1a, 0xff}, Binary: true, Parts: 1}},
		{"3 parts out of order, 16-bit reference", modemsim.SMS{Text: strings.Repeat("0123456789", 15) + "😀", Parts: 3, Ref16: true, Order: []int{3, 1, 2}, SentAt: sent},
			gw.Inbound{Payload: []byte(strings.Repeat("0123456789", 15) + "😀"), Parts: 3}},
		{"3 parts out of order, 8-bit reference", modemsim.SMS{Text: strings.Repeat("abc{}", 60), Parts: 3, Order: []int{2, 3, 1}, SentAt: sent},
			gw.Inbound{Payload: []byte(strings.Repeat("abc{}", 60)), Parts: 3}},
	}
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h := runHIL(t, sim, nil)
	h.ready()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.t = t
			h.inject(tt.sms)
			got := h.messages(i + 1)[i]
			tt.want.Channel, tt.want.From, tt.want.SentAt = gw.ChannelSMS, "000", sent
			if diff := cmp.Diff(tt.want, got, ignoreVolatile); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			h.waitSIMEmpty()
		})
	}
}

func TestHILStoredBeforeStart(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	// Injected while no host listens; the SIM indexes them 1, 2, 3 but they
	// were sent in the order b, c, a.
	for _, m := range []modemsim.SMS{
		{Text: "a", SentAt: sent.Add(3 * time.Minute)},
		{Text: "b", SentAt: sent.Add(time.Minute)},
		{Text: "c", SentAt: sent.Add(2 * time.Minute)},
	} {
		if _, err := sim.InjectSMS(m); err != nil {
			t.Fatal(err)
		}
	}
	h := runHIL(t, sim, nil)
	var got []string
	for _, m := range h.messages(3) {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff([]string{"b", "c", "a"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	h.waitSIMEmpty()
}

func TestHILSenderNotAllowed(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h := runHIL(t, sim, nil)
	h.ready()
	h.inject(modemsim.SMS{From: "+15551234567", Text: "let me in"})
	e := h.event(gw.EventSenderRejected)
	if e.Fields["from"] != "+15551234567" {
		t.Errorf("event %+v", e)
	}
	h.waitSIMEmpty()
	h.inject(modemsim.SMS{Text: "from 000"})
	if got := h.messages(1); len(got) != 1 || string(got[0].Payload) != "from 000" {
		t.Errorf("messages = %+v, want only the one from 000", got)
	}
}

// A full SIM refuses new SMS silently. The sink refusing (queue full) keeps
// them there; the session notices through AT+CPMS? and, once the sink
// accepts again, drains the SIM, after which the network delivers the SMS
// it held back.
func TestHILStoreAtCapacity(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", Capacity: 4})
	h := runHIL(t, sim, nil)
	h.sink.SetFail(errors.New("queue full"))
	h.ready()
	for i := range 4 {
		h.inject(modemsim.SMS{Text: string(rune('a' + i)), SentAt: sent.Add(time.Duration(i) * time.Second)})
	}
	if _, err := sim.InjectSMS(modemsim.SMS{Text: "e", SentAt: sent.Add(4 * time.Second)}); !errors.Is(err, modemsim.ErrStoreFull) {
		t.Fatalf("fifth InjectSMS = %v, want ErrStoreFull", err)
	}
	h.event(gw.EventStoreFailed)
	if e := h.event(gw.EventStorageFull); e.Fields["used"] != 4 {
		t.Errorf("event %+v", e)
	}
	h.sink.SetFail(nil)
	var got []string
	for _, m := range h.messages(5) {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	h.waitSIMEmpty()
}

func TestHILSend(t *testing.T) {
	tests := []struct {
		name     string
		to       string
		payload  []byte
		binary   bool
		wantTo   string
		wantText string
		wantData []byte
		wantEnc  string
	}{
		{"gsm7 to 000", "", []byte("temp=21.5 {ok} €"), false, "000", "temp=21.5 {ok} €", nil, "gsm7"},
		{"ucs2", "", []byte("😀 ж"), false, "000", "😀 ж", nil, "ucs2"},
		{"8-bit", "", []byte{0, 0x1a, 0x1b, 0xff}, true, "000", "", []byte{0, 0x1a, 0x1b, 0xff}, "8bit"},
		{"160 characters", "", []byte(strings.Repeat("x", 160)), false, "000", strings.Repeat("x", 160), nil, "gsm7"},
		{"to a number", "+15551234567", []byte("hi"), false, "+15551234567", "hi", nil, "gsm7"},
	}
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h := runHIL(t, sim, nil)
	h.ready()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ref, err := h.s.SendSMS(ctx, tt.to, tt.payload, tt.binary)
			if err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			st := sim.State().SentSMS
			if len(st) != i+1 {
				t.Fatalf("modemsim recorded %d SMS, want %d", len(st), i+1)
			}
			got := st[i]
			want := modemsim.SentSMS{To: tt.wantTo, Text: tt.wantText, Data: tt.wantData, Encoding: tt.wantEnc, Reference: ref, PDU: got.PDU, SMSC: got.SMSC}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sent SMS (-want +got):\n%s", diff)
			}
			if _, err := hex.DecodeString(got.PDU); err != nil {
				t.Errorf("PDU %q: %v", got.PDU, err)
			}
		})
	}
	sim.SetFaults(modemsim.Faults{SendError: 332})
	_, err := h.s.SendSMS(context.Background(), "", []byte("x"), false)
	if err == nil || !strings.Contains(err.Error(), "+CMS ERROR: 332 (network timeout)") {
		t.Errorf("SendSMS with the network failing = %v", err)
	}
}

// Split writes and URCs between reply lines must not disturb anything.
func TestHILNoisyLine(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	sim.SetFaults(modemsim.Faults{Chunked: true, URCNoise: 0.5})
	h := runHIL(t, sim, nil)
	h.ready()
	want := []string{"one", "two €", "three 😀", strings.Repeat("long ", 50)}
	for i, text := range want {
		h.inject(modemsim.SMS{Text: text, SentAt: sent.Add(time.Duration(i) * time.Second)})
		if _, err := h.s.SendSMS(context.Background(), "", []byte("ack "+text[:3]), false); err != nil {
			t.Fatalf("SendSMS: %v", err)
		}
	}
	var got []string
	for _, m := range h.messages(len(want)) {
		got = append(got, string(m.Payload))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if n := len(sim.State().SentSMS); n != len(want) {
		t.Errorf("%d SMS sent, want %d", n, len(want))
	}
	st := h.s.Status()
	if st.Modem.IMEI == "" || st.SIM.ICCID == "" || !registered(st.Network.Registration) {
		t.Errorf("status incomplete under noise: %+v", st)
	}
}

// The link vanishes like a USB module re-enumerating, and comes back.
func TestHILUnplug(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h := runHIL(t, sim, nil)
	h.ready()
	sim.Unplug(300 * time.Millisecond)
	h.event(gw.EventModemLost)
	h.event(gw.EventModemConnected)
	h.inject(modemsim.SMS{Text: "after replug"})
	if got := h.messages(1); string(got[0].Payload) != "after replug" {
		t.Errorf("got %q", got[0].Payload)
	}
	if st := h.s.Status(); st.Recovery.Reopens < 1 {
		t.Errorf("recovery %+v, want a reopen", st.Recovery)
	}
}

// The module resets itself (watchdog, brown-out): echo is back on and every
// setting is lost; the session initialises it again.
func TestHILReset(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel", ResetDrop: -1})
	h := runHIL(t, sim, nil)
	h.ready()
	sim.Reset()
	h.event(gw.EventModemRestarted)
	h.event(gw.EventModemConnected)
	h.inject(modemsim.SMS{Text: "after reset"})
	if got := h.messages(1); string(got[0].Payload) != "after reset" {
		t.Errorf("got %q", got[0].Payload)
	}
	if st := sim.State(); st.Echo || !slices.Equal(st.CNMI[:2], []int{2, 1}) {
		t.Errorf("modem not initialised again: echo=%v cnmi=%v", st.Echo, st.CNMI)
	}
}

func TestHILProfiles(t *testing.T) {
	// The simulator's SARA-R5 is detected as the ublox profile.
	detected := map[string]string{"sara-r5": "ublox"}
	for _, profile := range []string{"quectel", "simcom", "ublox", "generic", "sim7080", "sara-r5"} {
		t.Run(profile, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: profile, EmptyRead: "ok"})
			h := runHIL(t, sim, nil)
			h.ready()
			h.inject(modemsim.SMS{Text: "hello " + profile})
			if got := h.messages(1); string(got[0].Payload) != "hello "+profile {
				t.Errorf("got %q", got[0].Payload)
			}
			if _, err := h.s.SendSMS(context.Background(), "", []byte("pong"), false); err != nil {
				t.Errorf("SendSMS: %v", err)
			}
			st := h.s.Status()
			want := profile
			if d, ok := detected[profile]; ok {
				want = d
			}
			if st.Modem.Profile != want || st.SIM.ICCID == "" || st.Modem.IMEI == "" {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// A modem that stops answering (firmware hang) is noticed by the polls'
// timeouts; the session reopens the port and carries on once it answers.
func TestHILHang(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	h := runHILTimeout(t, sim, nil, 300*time.Millisecond)
	h.ready()
	sim.Hang(2 * time.Second)
	e := h.event(gw.EventRecoveryProbe)
	if !strings.Contains(e.Message, "stopped answering") && !strings.Contains(e.Message, "no final result") {
		t.Errorf("event %q does not say the modem went silent", e.Message)
	}
	h.event(gw.EventRecoveryDone)
	h.ready()
	h.inject(modemsim.SMS{Text: "after the hang"})
	if got := h.messages(1); string(got[0].Payload) != "after the hang" {
		t.Errorf("got %q", got[0].Payload)
	}
}

// BenchmarkHILReceive measures one SMS from injection in the simulator to
// the Sink: +CMTI, AT+CMGR, decode, Put, AT+CMGD, over a pty paced like a
// 115200 baud UART.
func BenchmarkHILReceive(b *testing.B) {
	if testing.Short() {
		b.Skip("hardware-in-loop benchmark")
	}
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(b.TempDir(), "modem"), Profile: "quectel", Baud: 115200})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	sink := modemtest.NewMemorySink()
	s := NewSession(Config{Port: sim.Link(), SMS: true, AllowedSenders: []string{"000"}}, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for s.Healthy() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	n := 0
	for b.Loop() {
		if _, err := sim.InjectSMS(modemsim.SMS{Text: fmt.Sprintf("command %d", n)}); err != nil {
			b.Fatal(err)
		}
		n++
		wctx, wcancel := context.WithTimeout(ctx, wait)
		if _, err := sink.Wait(wctx, n); err != nil {
			b.Fatal(err)
		}
		wcancel()
	}
}

// BenchmarkHILSend measures one AT+CMGS round trip (prompt, PDU, +CMGS)
// over a pty paced like a 115200 baud UART.
func BenchmarkHILSend(b *testing.B) {
	if testing.Short() {
		b.Skip("hardware-in-loop benchmark")
	}
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(b.TempDir(), "modem"), Profile: "quectel", Baud: 115200})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	s := NewSession(Config{Port: sim.Link(), SMS: true}, modemtest.NewMemorySink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for s.Healthy() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	for b.Loop() {
		if _, err := s.SendSMS(ctx, "", []byte("temperature 21.5"), false); err != nil {
			b.Fatal(err)
		}
	}
}
