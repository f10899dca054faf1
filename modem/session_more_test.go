package modem

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at/attest"
	"github.com/simgate/simgate/modem/modemtest"
)

// A module that resets under a live port (a UART module, or one whose USB
// link survived) is initialised again on the same port.
func TestSessionRestartReinitialises(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("while rebooting")}
	p1 := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, p1)
	p1.Wait(wait)
	p1.Append(initSteps(list(entry(1, 0, m)), del(1))...)
	p1.Send("\r\nRDY\r\n")
	r.event(gw.EventModemRestarted)
	p1.Wait(wait)
	if diff := cmp.Diff([]gw.Inbound{sms("000", "while rebooting", t0, 1)}, r.messages(1), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	st := r.s.Status()
	if st.Recovery.Reinits != 1 || st.Recovery.Reopens != 0 || !strings.Contains(st.Recovery.LastError, "restarted") {
		t.Errorf("recovery = %+v, want 1 reinit, no reopen, last error about the restart", st.Recovery)
	}
}

// The tty vanishes (USB re-enumeration), is away for two attempts, and the
// session reopens it by name, drains what arrived meanwhile and proves the
// modem healthy with a poll.
func TestSessionReopensAfterPortLoss(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("while away")}
	p1 := attest.New(t, initSteps(list())...)
	p2 := attest.New(t, append(initSteps(list(entry(3, 0, m)), del(3)), pollSteps(0)...)...)
	r := newRig(t, defaultConfig(), nil, p1, nil, nil, p2)
	p1.Wait(wait)
	p1.Close()
	r.event(gw.EventRecoveryReopen)
	p2.Wait(wait)
	if diff := cmp.Diff([]gw.Inbound{sms("000", "while away", t0, 1)}, r.messages(1), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	r.event(gw.EventModemConnected)
	r.event(gw.EventRecoveryDone)
	if st := r.s.Status(); st.Recovery.Reopens != 1 || !st.Ready {
		t.Errorf("status = %+v, want 1 reopen step and ready", st)
	}
	if err := r.s.Healthy(); err != nil {
		t.Errorf("Healthy() after reopening = %v", err)
	}
}

// Power-up noise, a SIM still busy and an SMS subsystem not ready yet are
// waited out.
func TestSessionBootNoise(t *testing.T) {
	steps := []attest.Step{
		// The module drops what it gets before it says RDY: the first AT
		// is abandoned at RDY, and the engine resynchronises.
		{Write: "AT\r", Read: "\x00\x00\xff\xfe\x00\r\nRDY\r\n"},
		answer("AT+CMEE?\r", "+CMEE: 0"),
		ok("AT\r"),
		{Write: "ATE0\r", Read: "ATE0\r\r\nOK\r\n"},
		ok("AT+CMEE=1\r"),
		answer("AT+CGMI\r", "Quectel"),
		answer("AT+CGMM\r", "BG96"),
		answer("AT+CGMR\r", "R1"),
		answer("AT+CGSN\r", "866425030123456"),
		{Write: "AT+CPIN?\r", Read: "\r\n+CME ERROR: 14\r\n"},
		{Write: "AT+CPIN?\r", Read: "\r\n+CPIN: NOT READY\r\n\r\nOK\r\n"},
		answer("AT+CPIN?\r", "+CPIN: READY"),
		{Write: "AT+QCCID\r", Read: "\r\n+CME ERROR: 14\r\n"},
		answer("AT+QCCID\r", "+QCCID: 8988307000001234567F"),
		answer("AT+CIMI\r", "310260000000001"),
		{Write: "AT+CMGF=0\r", Read: "\r\n+CMS ERROR: 500\r\n"},
		ok("AT+CMGF=0\r"),
		{Write: "AT+CPMS=\"SM\",\"SM\",\"SM\"\r", Read: "\r\n+QIND: SMS DONE\r\n+CMS ERROR: 314\r\n"},
		answer("AT+CPMS=\"SM\",\"SM\",\"SM\"\r", "+CPMS: 0,30,0,30,0,30"),
		ok("AT+CNMI=2,1,0,0,0\r"),
		ok("AT+CEREG=2\r"),
	}
	steps = append(steps, statusSteps()...)
	// RDY and SMS DONE during initialisation describe the boot just handled:
	// no restart, and the drain after initialisation covers SMS DONE.
	steps = append(steps, list())
	port := attest.New(t, steps...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	// SMS DONE after initialisation (the SIM was slow) drains again.
	port.Append(list())
	port.Send("\r\nSMS DONE\r\n")
	r.handledURC("SMS DONE")
	port.Wait(wait)
	if got := r.s.Status().SIM.ICCID; got != "8988307000001234567" {
		t.Errorf("ICCID = %q", got)
	}
}

func TestSessionStorageWatch(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("missed")}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	// 24 of 30: nearly full; a message whose +CMTI was missed is drained.
	port.Append(pollSteps(24)...)
	port.Append(list(entry(1, 0, m)), del(1))
	r.poll()
	if e := r.event(gw.EventStorageNearlyFull); e.Fields["used"] != 24 || e.Fields["total"] != 30 {
		t.Errorf("event = %+v", e)
	}
	r.messages(1)
	port.Wait(wait)
	// No +CMTI came for it, even late: a missed notification, so the next
	// poll routes new SMS again.
	port.Append(statusSteps()...)
	port.Append(ok("AT+CNMI=2,1,0,0,0\r"))
	port.Append(answer("AT+CPMS?\r", `+CPMS: "SM",30,30,"SM",30,30,"SM",30,30`))
	port.Append(list()) // full of outgoing messages it does not own: nothing to take
	r.poll()
	if e := r.event(gw.EventMissedNotification); e.Fields["count"] != 1 {
		t.Errorf("event = %+v", e)
	}
	if e := r.event(gw.EventStorageFull); !strings.Contains(e.Message, "full") {
		t.Errorf("event = %+v", e)
	}
	port.Wait(wait)
}

// A +CMTI that arrives after the poll's drain has already read its SMS is
// late, not missing: no missed-notification event, no AT+CNMI.
func TestSessionLateCMTIIsNotMissed(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("late")}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Append(pollSteps(1)...)
	port.Append(list(entry(1, 0, m)), del(1))
	r.poll()
	r.messages(1)
	port.Wait(wait)
	port.Send("\r\n+CMTI: \"SM\",1\r\n") // nothing to read: the drain has it
	r.handledURC(`+CMTI: "SM",1`)
	port.Append(pollSteps(0)...)
	r.poll()
	port.Wait(wait)
	for {
		select {
		case e := <-r.events:
			if e.Type == gw.EventMissedNotification {
				t.Errorf("unexpected event %+v", e)
			}
			continue
		default:
		}
		break
	}
}

func TestSessionReassemblyTimeout(t *testing.T) {
	cfg := defaultConfig()
	cfg.ReassemblyTimeout = time.Nanosecond // any poll finds the set overdue
	part := mt{from: "000", sent: t0, dcs: 0x08, udh: concat8(9, 3, 2), ud: utf16be("middle😀")}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, cfg, nil, port)
	port.Wait(wait)
	// Every drain (here the one the +CMTI asks for) times out overdue sets.
	port.Append(list(entry(4, 0, part)), del(4))
	port.Send("\r\n+CMTI: \"SM\",4\r\n")
	want := sms("000", "middle😀", t0, 1)
	want.Partial = true
	if diff := cmp.Diff([]gw.Inbound{want}, r.messages(1), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	e := r.event(gw.EventPartial)
	if diff := cmp.Diff([]int{2}, e.Fields["parts"]); diff != "" || e.Fields["total"] != 3 {
		t.Errorf("partial event %+v", e)
	}
	port.Wait(wait)
}

// Parts held across a restart: a complete set (the process died between
// storing the last part and assembling) is assembled, an old incomplete set
// times out, a recent one keeps waiting.
func TestSessionRestoresHeldParts(t *testing.T) {
	sink := modemtest.NewMemorySink()
	ctx := context.Background()
	seg := func(ref, total, seq int, text string, received time.Time) gw.Segment {
		m := mt{from: "000", sent: t0, dcs: 0x00, udh: concat8(ref, total, seq), ud: septets(text)}
		d, err := decodeDeliver(m.tpdu())
		if err != nil {
			t.Fatal(err)
		}
		return gw.Segment{Key: d.concatKey(), Seq: seq, Total: total, TPDU: m.tpdu(), ReceivedAt: received}
	}
	now := time.Now().UTC()
	for _, s := range []gw.Segment{
		seg(1, 2, 2, "world", now), seg(1, 2, 1, "hello ", now),
		seg(2, 2, 1, "stale ", now.Add(-48*time.Hour)),
		seg(3, 2, 1, "recent ", now),
		seg(4, 2, 1, "clock at 1970 ", time.Unix(0, 0)),
	} {
		if _, err := sink.PutSegment(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), sink, port)
	r.mem = sink
	got := r.messages(2)
	stale := sms("000", "stale ", t0, 1)
	stale.Partial = true
	want := []gw.Inbound{sms("000", "hello world", t0, 2), stale}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	port.Wait(wait)
	held, err := sink.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, h := range held {
		d, _ := decodeDeliver(h.TPDU)
		text, _, _ := joinText([]*deliver{d})
		texts = append(texts, string(text))
	}
	if diff := cmp.Diff([]string{"recent ", "clock at 1970 "}, texts); diff != "" {
		t.Errorf("still held (-want +got):\n%s", diff)
	}
}

func TestSessionEchoMeansReset(t *testing.T) {
	p1 := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, p1)
	p1.Wait(wait)
	// u-blox modules reset without a word; only the echo tells.
	p1.Append(attest.Step{Write: "AT+CSQ\r", Read: "AT+CSQ\r\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
		answer("AT+CEREG?\r", `+CEREG: 0,5`), answer("AT+COPS?\r", `+COPS: 0,0,"Twilio",7`))
	p1.Append(initSteps(list())...)
	r.poll()
	r.event(gw.EventModemRestarted)
	p1.Wait(wait)
}

func TestSessionDirectCMT(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x04, ud: []byte{1, 2, 3}}
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Send(fmt.Sprintf("\r\n+CMT: ,%d\r\n%s\r\n", len(m.tpdu()), m.pdu()))
	want := gw.Inbound{Channel: gw.ChannelSMS, From: "000", Payload: []byte{1, 2, 3}, Binary: true, Parts: 1, SentAt: t0}
	if diff := cmp.Diff([]gw.Inbound{want}, r.messages(1), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSessionInitCommandFails(t *testing.T) {
	cfg := defaultConfig()
	cfg.Init = []string{`AT+QCFG="nwscanmode",3`, "AT+BOGUS"}
	port := attest.New(t, initSteps(list())[:14]...)
	port.Append(
		ok("AT+QCFG=\"nwscanmode\",3\r"),
		attest.Step{Write: "AT+BOGUS\r", Read: "\r\nERROR\r\n"},
	)
	port.Append(statusSteps()...)
	port.Append(list())
	r := newRig(t, cfg, nil, port)
	if e := r.event(gw.EventInitFailed); e.Fields["command"] != "AT+BOGUS" || !strings.Contains(e.Message, "ERROR") {
		t.Errorf("event = %+v", e)
	}
	port.Wait(wait)
	r.event(gw.EventModemConnected)
}

func TestSessionStatusUpdates(t *testing.T) {
	statuses := make(chan gw.Status, 100)
	cfg := defaultConfig()
	cfg.OnStatus = func(s gw.Status) { statuses <- s }
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, cfg, nil, port)
	port.Wait(wait)
	next := func(ok func(gw.Status) bool) gw.Status {
		t.Helper()
		for {
			select {
			case s := <-statuses:
				if ok(s) {
					return s
				}
			case <-time.After(wait):
				t.Fatal("status never reached the wanted state")
			}
		}
	}
	next(func(s gw.Status) bool { return s.Ready && s.Network.Registration == "roaming" })
	port.Send("\r\n+CEREG: 2\r\n")
	s := next(func(s gw.Status) bool { return s.Network.Registration == "searching" })
	if s.Network.Operator != "" {
		t.Errorf("operator %q kept while not registered", s.Network.Operator)
	}
	port.Send("\r\n+CEREG: 1,\"1A2B\",\"01A2D001\",9\r\n")
	s = next(func(s gw.Status) bool { return s.Network.Registration == "home" })
	if diff := cmp.Diff(gw.NetworkInfo{Registration: "home", Technology: "nb-iot", SignalDBm: intp(-73)}, s.Network, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	r.stop()
	if s := r.s.Status(); s.Ready {
		t.Error("still ready after Run returned")
	}
}

// The process died after storing the last part but before deleting it from
// the SIM: the restored set is complete, and the part is still on the SIM.
// The drain must re-read it into the same set before assembly, so it does
// not start a new set that would later surface as a partial duplicate.
func TestSessionRestoredCompleteSetWithPartStillOnSIM(t *testing.T) {
	sink := modemtest.NewMemorySink()
	part := holdParts(t, sink, 5, "one ", "two")
	port := attest.New(t, initSteps(list(entry(6, 1, part(2))), del(6))...)
	r := newRig(t, defaultConfig(), sink, port)
	r.mem = sink
	port.Wait(wait)
	if diff := cmp.Diff([]gw.Inbound{sms("000", "one two", t0, 2)}, r.messages(1), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Nothing may be left waiting to time out later.
	port.Append(pollSteps(0)...)
	r.poll()
	port.Wait(wait)
	if segs, _ := sink.Segments(context.Background()); len(segs) != 0 {
		t.Errorf("parts left: %+v", segs)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// A module refusing AT+CMGL (SIM busy) is asked again at the next poll,
// not in a tight loop.
func TestSessionDrainRefusedWaitsForPoll(t *testing.T) {
	m := mt{from: "000", sent: t0, dcs: 0x00, ud: septets("later")}
	port := attest.New(t, initSteps(attest.Step{Write: "AT+CMGL=4\r", Read: "\r\n+CMS ERROR: 314\r\n"})...)
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	port.Append(pollSteps(1)...)
	port.Append(list(entry(2, 0, m)), del(2))
	r.poll()
	if got := r.messages(1); string(got[0].Payload) != "later" {
		t.Errorf("got %q", got[0].Payload)
	}
	port.Wait(wait)
}

// A set restored complete was read before anything still on the SIM, so it
// is delivered first, ahead of a newer single SMS listed with it.
func TestSessionRestoredCompleteSetKeepsOrder(t *testing.T) {
	sink := modemtest.NewMemorySink()
	holdParts(t, sink, 9, "first ", "message")
	later := mt{from: "000", sent: t0.Add(time.Second), dcs: 0x00, ud: septets("second message")}
	port := attest.New(t, initSteps(list(entry(3, 1, later)), del(3))...)
	r := newRig(t, defaultConfig(), sink, port)
	r.mem = sink
	port.Wait(wait)
	want := []gw.Inbound{sms("000", "first message", t0, 2), sms("000", "second message", t0.Add(time.Second), 1)}
	if diff := cmp.Diff(want, r.messages(2), ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// holdParts stores in sink, as a run before a restart would have, every
// part of a concatenated SMS from 000 with reference ref, one part per
// text; it returns each part as the SIM would list it, by position.
func holdParts(t *testing.T, sink *modemtest.MemorySink, ref int, texts ...string) func(seq int) mt {
	t.Helper()
	part := func(seq int) mt {
		return mt{from: "000", sent: t0, dcs: 0x00, udh: concat8(ref, len(texts), seq), ud: septets(texts[seq-1])}
	}
	for seq := 1; seq <= len(texts); seq++ {
		m := part(seq)
		d, err := decodeDeliver(m.tpdu())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.PutSegment(context.Background(), gw.Segment{Key: d.concatKey(), Seq: seq, Total: len(texts), TPDU: m.tpdu(), ReceivedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return part
}
