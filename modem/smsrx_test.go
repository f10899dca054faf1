package modem

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
	"github.com/simgate/simgate/modem/modemtest"
)

// scriptCommander answers commands from a script and records their
// lines; a command the script lacks fails the test.
type scriptCommander struct {
	t       *testing.T
	answers map[string]at.Reply
	fail    map[string]error
	lines   []string
}

func (c *scriptCommander) do(ctx context.Context, op string, cmd at.Cmd) (at.Reply, error) {
	c.lines = append(c.lines, cmd.Line)
	if err, ok := c.fail[cmd.Line]; ok {
		return at.Reply{}, &OpError{Op: op, Err: err}
	}
	if r, ok := c.answers[cmd.Line]; ok {
		return r, nil
	}
	if strings.HasPrefix(cmd.Line, "AT+CMGD=") {
		return at.Reply{}, nil
	}
	c.t.Errorf("unexpected command %q", cmd.Line)
	return at.Reply{}, errors.New("unexpected command")
}

// fakeURCs is a URC queue: what waits, and what was put back.
type fakeURCs struct{ waiting []at.URC }

func (q *fakeURCs) takeWaiting() []at.URC {
	w := q.waiting
	q.waiting = nil
	return w
}

func (q *fakeURCs) putBack(u at.URC) { q.waiting = append(q.waiting, u) }

type eventLog []gw.Event

func (l *eventLog) event(typ, msg string, f map[string]any) {
	*l = append(*l, gw.Event{Type: typ, Message: msg, Fields: f})
}

func rxLogger() *slog.Logger {
	if l := testLogger(); l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

func listReply(entries ...string) at.Reply {
	var lines []string
	for _, e := range entries {
		lines = append(lines, strings.Split(e, "\r\n")...)
	}
	return at.Reply{Lines: lines}
}

// The receiver needs no Session: given a commander, a URC queue, an event
// sink and the Sink, a drain hands over the SMS in the order the module
// announced them (the +CMTI that waited in the queue included), deletes
// each only after it was stored, and leaves other URCs queued.
func TestSMSReceiverDrainAlone(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("first")}
	b := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("second")}
	bad := mt{from: "+15550001", sent: t0, dcs: 0x00, ud: septets("not allowed")}
	cmd := &scriptCommander{t: t, answers: map[string]at.Reply{
		// SIM index order is not arrival order: slot 0 was reused.
		"AT+CMGL=4": listReply(entry(0, 0, b), entry(4, 0, a), entry(7, 0, bad)),
	}}
	urcs := &fakeURCs{waiting: []at.URC{{Line: "+CMTI: \"SM\",0"}, {Line: "+CEREG: 1"}}}
	var events eventLog
	var stores []gw.StoreUse
	sink := modemtest.NewMemorySink()
	r := newSMSReceiver(smsSettings{SMS: true, AllowedSenders: []string{"000"}, ReassemblyTimeout: time.Hour},
		sink, rxLogger(), &events, urcs, func(u gw.StoreUse) { stores = append(stores, u) })

	r.cmti(`+CMTI: "SM",4`) // announced first, though its SIM index is higher
	if !r.drainDue() {
		t.Fatal("a +CMTI did not ask for a drain")
	}
	if err := r.drain(context.Background(), cmd); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if r.drainDue() {
		t.Error("a drain that succeeded is still due")
	}
	if diff := cmp.Diff([]string{"first", "second"}, payloads(sink.Messages())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"AT+CMGL=4", "AT+CMGD=4", "AT+CMGD=0", "AT+CMGD=7"}, cmd.lines); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if len(events) != 1 || events[0].Type != gw.EventSenderRejected {
		t.Errorf("events %+v, want one %s", events, gw.EventSenderRejected)
	}
	if diff := cmp.Diff([]at.URC{{Line: "+CEREG: 1"}}, urcs.waiting); diff != "" {
		t.Errorf("URCs left queued (-want +got):\n%s", diff)
	}

	// Slot 7 was never announced: the poll reports the missed +CMTI and
	// routes new SMS again; its storage check reports the store's use,
	// and drains a store holding more than the listing skipped.
	cmd.answers["AT+CNMI=2,1,0,0,0"] = at.Reply{}
	cmd.answers["AT+CPMS?"] = at.Reply{Lines: []string{`+CPMS: "SM",1,10,"SM",1,10,"SM",1,10`}}
	cmd.lines, events = nil, nil
	if err := r.poll(context.Background(), cmd); err != nil {
		t.Fatalf("poll: %v", err)
	}
	if diff := cmp.Diff([]string{"AT+CNMI=2,1,0,0,0", "AT+CPMS?"}, cmd.lines); diff != "" {
		t.Errorf("poll's commands (-want +got):\n%s", diff)
	}
	if len(events) != 1 || events[0].Type != gw.EventMissedNotification || events[0].Fields["count"] != 1 {
		t.Errorf("poll's events %+v, want one %s for one SMS", events, gw.EventMissedNotification)
	}
	if diff := cmp.Diff([]gw.StoreUse{{Used: 1, Total: 10}}, stores); diff != "" {
		t.Errorf("store use (-want +got):\n%s", diff)
	}
	if !r.drainDue() {
		t.Error("an SMS on the SIM that the listing did not skip did not ask for a drain")
	}
}

// A Sink that refuses an SMS leaves it on the SIM (no AT+CMGD) and makes
// the next poll drain again; the +CMTIs that arrive meanwhile wait.
func TestSMSReceiverRefusedWaitsForPoll(t *testing.T) {
	m := mt{from: "000", sent: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), dcs: 0x00, ud: septets("kept")}
	cmd := &scriptCommander{t: t, answers: map[string]at.Reply{
		"AT+CMGL=4": listReply(entry(2, 0, m)),
		"AT+CPMS?":  {Lines: []string{`+CPMS: "SM",1,10,"SM",1,10,"SM",1,10`}},
	}}
	var events eventLog
	sink := modemtest.NewMemorySink()
	r := newSMSReceiver(smsSettings{SMS: true, ReassemblyTimeout: time.Hour}, sink, rxLogger(), &events, &fakeURCs{}, func(gw.StoreUse) {})
	sink.SetFail(errors.New("disk full"))
	r.cmti(`+CMTI: "SM",2`)
	if err := r.drain(context.Background(), cmd); !errors.Is(err, errStore) {
		t.Fatalf("drain = %v, want errStore", err)
	}
	r.cmti(`+CMTI: "SM",3`)
	if r.drainDue() {
		t.Error("a +CMTI overtook the SMS the Sink refused")
	}
	sink.SetFail(nil)
	if err := r.poll(context.Background(), cmd); err != nil {
		t.Fatalf("poll: %v", err)
	}
	if !r.drainDue() {
		t.Fatal("the poll did not retry the refused SMS")
	}
	if err := r.drain(context.Background(), cmd); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if diff := cmp.Diff([]string{"kept"}, payloads(sink.Messages())); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	want := []string{"AT+CMGL=4", "AT+CPMS?", "AT+CMGL=4", "AT+CMGD=2"}
	if diff := cmp.Diff(want, cmd.lines); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if len(events) != 1 || events[0].Type != gw.EventStoreFailed {
		t.Errorf("events %+v, want one %s", events, gw.EventStoreFailed)
	}
}

// The +CMTI order is the order of announcement, not of SIM index; a place
// taken for a store that failed comes back where it was.
func TestCMTIOrder(t *testing.T) {
	o := newCMTIOrder()
	if got := o.indexes(); got != nil {
		t.Errorf("empty order: indexes() = %v, want nil (the journal's Announced stays empty)", got)
	}
	for _, idx := range []int{5, 0, 3} {
		o.add(idx)
	}
	seq, ok := o.take(0)
	if !ok || o.has(0) {
		t.Fatalf("take(0) = %d, %v; has(0) = %v", seq, ok, o.has(0))
	}
	o.add(9)
	o.put(0, seq)
	if diff := cmp.Diff([]int{5, 0, 3, 9}, o.indexes()); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if !o.before(0, 3) || o.before(9, 5) {
		t.Error("before does not follow the announcement order")
	}
	o.forget(3)
	if diff := cmp.Diff(map[int]bool{5: true, 0: true, 9: true}, o.announced()); diff != "" {
		t.Errorf("announced (-want +got):\n%s", diff)
	}
	o.reset()
	if o.has(5) || o.indexes() != nil {
		t.Error("reset left announcements")
	}
}
