package modem

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at/attest"
	"github.com/simgate/simgate/modem/modemtest"
)

// payloads lists the payloads of msgs, in order.
func payloads(msgs []gw.Inbound) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Payload))
	}
	return out
}

// Three identical SMS on the SIM at once (a cloud that repeats a command
// within a second) are three messages with three ids; the first keeps the
// id its content gives.
func TestSessionIdenticalSMSAreSeparateMessages(t *testing.T) {
	a := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("reboot")}
	port := attest.New(t, initSteps(list(entry(1, 0, a), entry(2, 0, a), entry(3, 0, a)), del(1), del(2), del(3))...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	got := r.messages(3)
	base := sms("000", "reboot", t0, 1)
	var want []string
	for n := range 3 {
		m := base
		m.Occurrence = n
		want = append(want, gw.MessageID(m))
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
		if m.ID != gw.MessageID(m) {
			t.Errorf("message %+v: id does not follow from it", m)
		}
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if ids[0] != gw.MessageID(base) {
		t.Errorf("the first of identical SMS has id %s, want the content's own %s", ids[0], gw.MessageID(base))
	}
}

// failNth is a sink that refuses the nth SMS it is handed from the SIM, as
// a store that fails or a process killed at that moment would leave it:
// what came before it in its listing is stored, it and the rest are not.
type failNth struct {
	*modemtest.MemorySink
	mu   sync.Mutex
	n    int
	puts int
}

func (f *failNth) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	f.mu.Lock()
	first := f.puts
	f.puts += len(items)
	f.mu.Unlock()
	if k := f.n - 1 - first; k >= 0 && k < len(items) {
		// The prefix is stored without the journal, as PutSIM says.
		for i := range items[:k] {
			if m := items[i].Message; m != nil {
				if err := f.MemorySink.Put(ctx, *m); err != nil {
					return 0, err
				}
				continue
			}
			held, err := f.MemorySink.PutSegment(ctx, *items[i].Part)
			if err != nil {
				return 0, err
			}
			items[i].Held = held
		}
		return k, errors.New("simulated crash before the commit")
	}
	return f.MemorySink.PutSIM(ctx, items, j)
}

// Two identical SMS on the SIM; the first is stored and deleted, then the
// process stops before the second is stored. The restarted session finds
// the second alone on the SIM, already read: it is the second message of
// the pair, not a copy of the first, and must be stored.
func TestSessionIdenticalSMSAcrossRestart(t *testing.T) {
	a := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("reboot")}
	mem := modemtest.NewMemorySink()
	port1 := attest.New(t, initSteps(list(entry(1, 0, a), entry(2, 0, a)), del(1))...)
	r1 := newRig(t, defaultConfig(), &failNth{MemorySink: mem, n: 2}, port1)
	r1.mem = mem
	first := r1.messages(1)
	port1.Wait(wait)
	r1.event(gw.EventStoreFailed)
	r1.stop()

	port2 := attest.New(t, initSteps(list(entry(2, 1, a)), del(2))...)
	r2 := newRig(t, defaultConfig(), mem, port2)
	r2.mem = mem
	got := r2.messages(2)
	port2.Wait(wait)
	if got[0].ID != first[0].ID || got[1].ID == got[0].ID || got[1].Occurrence != 1 {
		t.Errorf("after the restart: %+v", got)
	}
	// And the same SMS read again after it was stored keeps its id: the
	// sink drops the copy.
	if ids := mem.Messages(); len(ids) != 2 {
		t.Errorf("%d messages stored, want 2", len(ids))
	}
}

// An SMS stored but not deleted before the process stopped is read again
// after the restart with the same id, even while an identical one sits
// beside it: it is not stored twice, and the other is a message of its
// own.
func TestSessionReReadKeepsID(t *testing.T) {
	a := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("reboot")}
	mem := modemtest.NewMemorySink()
	// The deletion of slot 4 is never answered: the process is stopped
	// while it waits.
	port1 := attest.New(t, append(initSteps(list(entry(4, 0, a))), attest.Step{Write: "AT+CMGD=4\r"})...)
	r1 := newRig(t, defaultConfig(), mem, port1)
	r1.mem = mem
	first := r1.messages(1)
	port1.Wait(wait)
	r1.stop()

	port2 := attest.New(t, initSteps(list(entry(4, 1, a), entry(5, 0, a)), del(4), del(5))...)
	r2 := newRig(t, defaultConfig(), mem, port2)
	r2.mem = mem
	got := r2.messages(2)
	port2.Wait(wait)
	if got[0].ID != first[0].ID || got[1].ID == first[0].ID {
		t.Errorf("ids %s then %s %s", first[0].ID, got[0].ID, got[1].ID)
	}
}

// SMS are handed over in the order the module announced them, not by SIM
// index: the SIM reuses freed slots, so a later SMS may sit at a lower
// index. A +CMTI that arrived with the list's answer counts too.
func TestSessionOrderFollowsCMTI(t *testing.T) {
	m := func(text string) mt { return mt{from: "000", sent: t0, dcs: 0x00, ud: septets(text)} }
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Append(
		attest.Step{Write: "AT+CMGL=4\r", Read: "\r\n" + entry(2, 0, m("second")) + "\r\n" + entry(5, 0, m("first")) + "\r\n+CMTI: \"SM\",9\r\n" +
			entry(9, 0, m("fourth")) + "\r\n+CMTI: \"SM\",1\r\n" + entry(1, 0, m("fifth")) + "\r\n\r\nOK\r\n"},
		del(5), del(2), del(9), del(1),
	)
	port.Send("\r\n+CMTI: \"SM\",5\r\n+CMTI: \"SM\",2\r\n")
	got := r.messages(4)
	port.Wait(wait)
	if diff := cmp.Diff([]string{"first", "second", "fourth", "fifth"}, payloads(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// SMS stored without a +CMTI go by timestamp among the announced ones:
// each before the first announced SMS sent after it.
func TestSessionOrderUnannouncedByTime(t *testing.T) {
	at := func(text string, s int) mt {
		return mt{from: "000", sent: t0.Add(time.Duration(s) * time.Second), dcs: 0x00, ud: septets(text)}
	}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Append(
		list(entry(1, 0, at("announced late", 10)), entry(2, 0, at("silent old", 1)), entry(3, 0, at("announced early", 5)), entry(4, 0, at("silent new", 20))),
		del(2), del(3), del(1), del(4),
	)
	port.Send("\r\n+CMTI: \"SM\",3\r\n+CMTI: \"SM\",1\r\n")
	got := r.messages(4)
	port.Wait(wait)
	if diff := cmp.Diff([]string{"silent old", "announced early", "announced late", "silent new"}, payloads(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// The +CMTI order survives a restart: a drain stopped after storing the
// first SMS leaves the rest in the journal, and the next process hands
// them over in that order, not by SIM index.
func TestSessionOrderAcrossRestart(t *testing.T) {
	m := func(text string) mt { return mt{from: "000", sent: t0, dcs: 0x00, ud: septets(text)} }
	mem := modemtest.NewMemorySink()
	port1 := attest.New(t, initSteps(list())...)
	r1 := newRig(t, defaultConfig(), &failNth{MemorySink: mem, n: 2}, port1)
	r1.mem = mem
	port1.Wait(wait)
	port1.Append(list(entry(1, 0, m("three")), entry(2, 0, m("two")), entry(3, 0, m("one"))), del(3))
	port1.Send("\r\n+CMTI: \"SM\",3\r\n+CMTI: \"SM\",2\r\n+CMTI: \"SM\",1\r\n")
	r1.messages(1)
	r1.event(gw.EventStoreFailed)
	port1.Wait(wait)
	r1.stop()

	port2 := attest.New(t, initSteps(list(entry(1, 1, m("three")), entry(2, 1, m("two"))), del(2), del(1))...)
	r2 := newRig(t, defaultConfig(), mem, port2)
	r2.mem = mem
	got := r2.messages(3)
	port2.Wait(wait)
	if diff := cmp.Diff([]string{"one", "two", "three"}, payloads(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// Identical SMS that reach the SIM one after another, the first deleted
// before the second arrives (the SIM even hands it the same slot), are two
// messages too.
func TestSessionIdenticalSMSOneAfterAnother(t *testing.T) {
	a := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("reboot")}
	port := attest.New(t, initSteps(list(entry(1, 0, a)), del(1))...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Append(list(entry(1, 0, a)), del(1))
	port.Send("\r\n+CMTI: \"SM\",1\r\n")
	got := r.messages(2)
	port.Wait(wait)
	second := sms("000", "reboot", t0, 1)
	second.Occurrence = 1
	if got[0].ID != gw.MessageID(sms("000", "reboot", t0, 1)) || got[1].ID != gw.MessageID(second) {
		t.Errorf("ids %s, %s; want the content's own, then occurrence 1", got[0].ID, got[1].ID)
	}
}
