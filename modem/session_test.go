package modem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
	"github.com/simgate/simgate/modem/at/attest"
	"github.com/simgate/simgate/modem/modemtest"
)

func testLogger() *slog.Logger {
	if os.Getenv("SIMGATE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wait only keeps a broken test from hanging; nothing asserts on time.
const wait = 10 * time.Second

func ok(write string) attest.Step { return attest.Step{Write: write, Read: "\r\nOK\r\n"} }

func answer(write, lines string) attest.Step {
	return attest.Step{Write: write, Read: "\r\n" + lines + "\r\n\r\nOK\r\n"}
}

// initSteps is a Quectel BG96 answering the standard initialisation,
// registered roaming.
func initSteps(extra ...attest.Step) []attest.Step {
	steps := []attest.Step{
		ok("AT\r"),
		{Write: "ATE0\r", Read: "ATE0\r\r\nOK\r\n"}, // echo was on after boot
		ok("AT+CMEE=1\r"),
		answer("AT+CGMI\r", "Quectel"),
		answer("AT+CGMM\r", "BG96"),
		answer("AT+CGMR\r", "BG96MAR02A07M1G"),
		answer("AT+CGSN\r", "866425030123456"),
		answer("AT+CPIN?\r", "+CPIN: READY"),
		answer("AT+QCCID\r", "+QCCID: 89883070000012345678"),
		answer("AT+CIMI\r", "310260000000001"),
		ok("AT+CMGF=0\r"),
		answer("AT+CPMS=\"SM\",\"SM\",\"SM\"\r", "+CPMS: 0,30,0,30,0,30"),
		ok("AT+CNMI=2,1,0,0,0\r"),
		ok("AT+CEREG=2\r"),
	}
	steps = append(steps, statusSteps()...)
	return append(steps, extra...)
}

func statusSteps() []attest.Step {
	return []attest.Step{
		answer("AT+CSQ\r", "+CSQ: 20,99"),
		answer("AT+CEREG?\r", `+CEREG: 2,5,"1A2B","01A2D001",7`),
		answer("AT+COPS?\r", `+COPS: 0,0,"Twilio",7`),
	}
}

// pollSteps is one poll with the SIM store holding used messages.
func pollSteps(used int) []attest.Step {
	return append(statusSteps(), answer("AT+CPMS?\r", fmt.Sprintf(`+CPMS: "SM",%d,30,"SM",%d,30,"SM",%d,30`, used, used, used)))
}

func list(entries ...string) attest.Step {
	return attest.Step{Write: "AT+CMGL=4\r", Read: "\r\n" + strings.Join(entries, "\r\n") + "\r\n\r\nOK\r\n"}
}

func entry(idx, stat int, m mt) string {
	return fmt.Sprintf("+CMGL: %d,%d,,%d\r\n%s", idx, stat, len(m.tpdu()), m.pdu())
}

func del(idx int) attest.Step { return ok(fmt.Sprintf("AT+CMGD=%d\r", idx)) }

type rig struct {
	t      *testing.T
	sink   gw.Sink
	mem    *modemtest.MemorySink
	s      *Session
	events chan gw.Event
	tick   chan time.Time
	urcs   chan string // URC lines the worker has acted on
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	ports    []*attest.Port
	opens    int
	stopOnce sync.Once
}

func defaultConfig() Config {
	return Config{
		Port: "/dev/fake", SMS: true, AllowedSenders: []string{"000"},
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, BootTimeout: wait,
		// Scripts list every command; an idle AT would not be in them.
		IdleProbe: time.Hour,
		Logger:    testLogger(),
	}
}

// newRig runs a session whose Open hands out ports in order.
func newRig(t *testing.T, cfg Config, sink gw.Sink, ports ...*attest.Port) *rig {
	t.Helper()
	return newRigWith(t, cfg, sink, nil, ports...)
}

// newRigWith is newRig with prep run on the session before Run starts.
func newRigWith(t *testing.T, cfg Config, sink gw.Sink, prep func(*Session), ports ...*attest.Port) *rig {
	t.Helper()
	r := &rig{t: t, mem: modemtest.NewMemorySink(), events: make(chan gw.Event, 1000), tick: make(chan time.Time), ports: ports}
	r.sink = sink
	if sink == nil {
		r.sink = r.mem
	}
	cfg.OnEvent = func(e gw.Event) {
		select {
		case r.events <- e:
		default: // a test that does not read events must not block the session
		}
	}
	cfg.Open = func(string, int) (rwc io.ReadWriteCloser, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.opens >= len(r.ports) {
			return nil, errors.New("no such device")
		}
		r.opens++
		if p := r.ports[r.opens-1]; p != nil {
			return p, nil
		}
		return nil, errors.New("no such device") // nil: the device is away for this attempt
	}
	r.s = NewSession(cfg, r.sink)
	hook(r.s, func(h *testHooks) { h.tick = r.tick })
	if prep != nil {
		prep(r.s)
	}
	r.urcs = make(chan string, 1000)
	hook(r.s, func(h *testHooks) {
		h.handled = func(u at.URC) {
			select {
			case r.urcs <- u.Line:
			default:
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.s.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *rig) stop() { r.stopOnce.Do(r.stopRun) }

func (r *rig) stopRun() {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run() = %v, want nil after cancel", err)
		}
	case <-time.After(wait):
		r.t.Error("Run did not return after cancel")
	}
}

func (r *rig) poll() {
	select {
	case r.tick <- time.Now():
	case <-time.After(wait):
		r.t.Fatal("session did not take a poll tick")
	}
}

// event waits for the next event of type typ, skipping others.
func (r *rig) event(typ string) gw.Event {
	r.t.Helper()
	for {
		select {
		case e := <-r.events:
			if e.Type == typ {
				return e
			}
		case <-time.After(wait):
			r.t.Fatalf("no %s event", typ)
		}
	}
}

// handledURC waits until the worker has acted on a URC with this line.
func (r *rig) handledURC(line string) {
	r.t.Helper()
	for {
		select {
		case l := <-r.urcs:
			if l == line {
				return
			}
		case <-time.After(wait):
			r.t.Fatalf("URC %q never handled", line)
		}
	}
}

func (r *rig) messages(n int) []gw.Inbound {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msgs, err := r.mem.Wait(ctx, n)
	if err != nil {
		r.t.Fatalf("got %d messages, want %d: %v", len(msgs), n, err)
	}
	return msgs
}

var ignoreVolatile = cmpopts.IgnoreFields(gw.Inbound{}, "ID", "ReceivedAt")

func sms(from, text string, sent time.Time, parts int) gw.Inbound {
	return gw.Inbound{Channel: gw.ChannelSMS, From: from, Payload: []byte(text), Parts: parts, SentAt: sent}
}

func TestSessionDrainsStoredMessagesInSentOrder(t *testing.T) {
	a := mt{from: "000", sent: t0.Add(2 * time.Minute), dcs: 0x00, ud: septets("second")}
	b := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("first")}
	c := mt{from: "000", sent: t0.Add(3 * time.Minute), dcs: 0x08, ud: utf16be("third 😀")}
	spam := mt{from: "+15551234567", sent: t0.Add(time.Minute), dcs: 0x00, ud: septets("buy now")}
	mo := "+CMGL: 9,2,,14\r\n000100038100F0000005E8329BFD06" // a stored outgoing SMS: left alone
	port := attest.New(t, initSteps(
		list(entry(1, 1, a), entry(2, 0, b), entry(3, 0, c), entry(4, 0, spam), "+CMGL: 5,0,,3\r\n00C0FFEE", mo),
		del(5),         // undecodable: stored with its PDU, reported, then deleted so it cannot fill the SIM
		del(2),         // "first" was sent first
		del(4),         // the rejected sender
		del(1), del(3), // then in timestamp order
	)...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	got := r.messages(4)
	undecodable := got[0]
	got = got[1:]
	if undecodable.Undecodable == "" || !bytes.Equal(undecodable.Payload, []byte{0x00, 0xc0, 0xff, 0xee}) || !undecodable.Binary || undecodable.ID != gw.MessageID(undecodable) {
		t.Errorf("first stored is not the undecodable SMS with its PDU: %+v", undecodable)
	}
	want := []gw.Inbound{
		sms("000", "first", t0, 1),
		sms("000", "second", t0.Add(2*time.Minute), 1),
		sms("000", "third 😀", t0.Add(3*time.Minute), 1),
	}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	for _, m := range got {
		if m.ID != gw.MessageID(m) || m.ReceivedAt.IsZero() {
			t.Errorf("message %q: ID %q ReceivedAt %v", m.Payload, m.ID, m.ReceivedAt)
		}
	}
	if e := r.event(gw.EventUndecodable); e.Fields["pdu"] != "00C0FFEE" || e.Fields["id"] != undecodable.ID {
		t.Errorf("undecodable event lacks the PDU: %+v", e)
	}
	if e := r.event(gw.EventSenderRejected); e.Fields["from"] != "+15551234567" {
		t.Errorf("rejected event: %+v", e)
	}
	st := r.s.Status()
	want2 := gw.Status{
		Modem:   gw.ModemInfo{Manufacturer: "Quectel", Model: "BG96", Revision: "BG96MAR02A07M1G", IMEI: "866425030123456", Profile: "quectel"},
		SIM:     gw.SIMInfo{ICCID: "89883070000012345678", IMSI: "310260000000001"},
		Network: gw.NetworkInfo{Registration: "roaming", Operator: "Twilio", Technology: "lte", SignalDBm: intp(-73)},
		// As the scripted AT+CPMS answers at init.
		SMSStore: gw.StoreUse{Used: 0, Total: 30},
		Ready:    true,
	}
	if diff := cmp.Diff(want2, st); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if err := r.s.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
}

// orderSink checks that no SMS is deleted from the SIM before it is stored.
type orderSink struct {
	*modemtest.MemorySink
	port  *attest.Port
	index map[string]int // payload -> SIM index
	t     *testing.T
}

func (o *orderSink) Put(ctx context.Context, m gw.Inbound) error {
	o.check(m)
	return o.MemorySink.Put(ctx, m)
}

func (o *orderSink) check(m gw.Inbound) {
	if idx, ok := o.index[string(m.Payload)]; ok && strings.Contains(o.port.Written(), fmt.Sprintf("AT+CMGD=%d\r", idx)) {
		o.t.Errorf("SMS %q deleted before it was stored", m.Payload)
	}
}

func (o *orderSink) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	for _, it := range items {
		if it.Message != nil {
			o.check(*it.Message)
		}
	}
	return o.MemorySink.PutSIM(ctx, items, j)
}

func TestSessionCMTIWithURCsAround(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("€{}[]~")}
	port := attest.New(t, initSteps(list())...)
	sink := &orderSink{MemorySink: modemtest.NewMemorySink(), port: port, index: map[string]int{"€{}[]~": 4}, t: t}
	r := newRig(t, defaultConfig(), sink, port)
	r.mem = sink.MemorySink
	port.Wait(wait)
	port.Append(
		attest.Step{Write: "AT+CMGL=4\r", Read: fmt.Sprintf("\r\n+CEREG: 1\r\n+CMGL: 4,0,,%d\r\n+CMTI: \"SM\",5\r\n", len(m.tpdu())) +
			m.pdu() + "\r\n\r\n+CEREG: 5\r\n\r\nOK\r\n"},
		del(4),
		list(entry(5, 0, mt{from: "000", sent: t0.Add(time.Second), dcs: 0x00, ud: septets("next")})),
		del(5),
	)
	port.Send("\r\n+CMTI: \"SM\",4\r\n")
	got := r.messages(2)
	want := []gw.Inbound{sms("000", "€{}[]~", t0, 1), sms("000", "next", t0.Add(time.Second), 1)}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	port.Wait(wait)
}

func TestSessionConcatenatedOutOfOrder(t *testing.T) {
	text := strings.Repeat("abcdefghij", 40) // 400 characters: 3 parts
	s := septets(text)
	part := func(seq int, ud []byte) mt {
		return mt{from: "000", sent: t0.Add(time.Duration(seq) * time.Second), dcs: 0x00, udh: concat16(0x1234, 3, seq), ud: ud}
	}
	p1, p2, p3 := part(1, s[:153]), part(2, s[153:306]), part(3, s[306:])
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	// One drain reads all three, whichever +CMTI asked for it, in the
	// order the module announced them; the other +CMTIs find nothing left
	// to read.
	port.Append(list(entry(7, 0, p3), entry(8, 0, p1), entry(9, 0, p2)), del(7), del(8), del(9))
	port.Send("\r\n+CMTI: \"SM\",7\r\n\r\n+CMTI: \"SM\",8\r\n\r\n+CMTI: \"SM\",9\r\n")
	got := r.messages(1)
	if diff := cmp.Diff([]gw.Inbound{sms("000", text, t0.Add(time.Second), 3)}, got, ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if segs, _ := r.mem.Segments(context.Background()); len(segs) != 0 {
		t.Errorf("%d parts still held after assembly", len(segs))
	}
	port.Wait(wait)
}

// A sink that refuses (queue full) leaves the SMS on the SIM; later +CMTIs
// wait so nothing overtakes it; the next poll drains them in order.
func TestSessionSinkFailureKeepsSMSOnSIM(t *testing.T) {
	m1 := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("one")}
	m2 := mt{from: "000", sent: t0.Add(time.Second), dcs: 0x00, ud: septets("two")}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	full := errors.New("queue full")
	r.mem.SetFail(full)
	port.Wait(wait)
	port.Append(list(entry(1, 0, m1)))
	port.Send("\r\n+CMTI: \"SM\",1\r\n")
	e := r.event(gw.EventStoreFailed)
	if !strings.Contains(e.Message, "queue full") {
		t.Errorf("event %q lacks the cause", e.Message)
	}
	port.Send("\r\n+CMTI: \"SM\",2\r\n") // must not be read ahead of "one"
	r.handledURC(`+CMTI: "SM",2`)
	r.mem.SetFail(nil)
	port.Append(pollSteps(2)...)
	port.Append(list(entry(1, 0, m1), entry(2, 0, m2)), del(1), del(2))
	r.poll()
	got := r.messages(2)
	want := []gw.Inbound{sms("000", "one", t0, 1), sms("000", "two", t0.Add(time.Second), 1)}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	port.Wait(wait)
}

func TestSessionSendSMS(t *testing.T) {
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	tests := []struct {
		name    string
		to      string
		payload []byte
		binary  bool
		steps   []attest.Step
		want    int
		wantErr string
	}{
		{
			name: "gsm7 to 000", payload: []byte("hello"),
			steps: []attest.Step{
				{Write: "AT+CMGS=14\r", Read: "\r\n> "},
				{Write: "000100038100F0000005E8329BFD06\x1a", Read: "\r\n+CMGS: 42\r\n\r\nOK\r\n"},
			},
			want: 42,
		},
		{
			name: "ucs2 international", to: "+15551234567", payload: []byte("😀"),
			steps: []attest.Step{
				{Write: "AT+CMGS=17\r", Read: "\r\n> "},
				{Write: "0001000B915155214365F7000804D83DDE00\x1a", Read: "\r\n+CEREG: 5\r\n+CMGS: 43\r\n\r\nOK\r\n"},
			},
			want: 43,
		},
		{
			name: "8-bit", payload: []byte{0, 0xff}, binary: true,
			steps: []attest.Step{
				{Write: "AT+CMGS=11\r", Read: "\r\n> "},
				{Write: "000100038100F000040200FF\x1a", Read: "\r\n+CMGS: 44\r\n\r\nOK\r\n"},
			},
			want: 44,
		},
		{
			name: "network refuses", payload: []byte("hello"),
			steps: []attest.Step{
				{Write: "AT+CMGS=14\r", Read: "\r\n> "},
				{Write: "000100038100F0000005E8329BFD06\x1a", Read: "\r\n+CMS ERROR: 500\r\n"},
			},
			wantErr: "send SMS to 000 (+CMGS): +CMS ERROR: 500 (unknown error)",
		},
		{name: "too long", payload: []byte(strings.Repeat("a", 161)), wantErr: "161 GSM 7-bit characters"},
		{name: "bad number", to: "12ab", payload: []byte("x"), wantErr: "not a phone number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port.Append(tt.steps...)
			got, err := r.s.SendSMS(context.Background(), tt.to, tt.payload, tt.binary)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SendSMS() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SendSMS() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	port.Wait(wait)
}

func TestSessionNotReady(t *testing.T) {
	s := NewSession(defaultConfig(), modemtest.NewMemorySink())
	if _, err := s.SendSMS(context.Background(), "", []byte("x"), false); !errors.Is(err, ErrNotReady) {
		t.Errorf("SendSMS before Run = %v, want ErrNotReady", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Healthy before Run = %v, want ErrNotReady", err)
	}
	off := defaultConfig()
	off.SMS = false
	if _, err := NewSession(off, modemtest.NewMemorySink()).SendSMS(context.Background(), "", []byte("x"), false); !errors.Is(err, ErrSMSDisabled) {
		t.Errorf("SendSMS with SMS off = %v, want ErrSMSDisabled", err)
	}
	if err := s.SendUDP(context.Background(), []byte("x")); !errors.Is(err, ErrIPUnavailable) {
		t.Errorf("SendUDP = %v, want ErrIPUnavailable", err)
	}
	if err := NewSession(Config{}, modemtest.NewMemorySink()).Run(context.Background()); err == nil {
		t.Error("Run without a port succeeded")
	}
}
