package main

// Hardware-in-loop tests of what the SIM hands over: identical SMS, the
// order of a live burst, SMS that cannot be decoded, oversize datagrams in
// ip.mode modem and a module flooding the line with framed data while the
// daemon waits for an answer.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wantCopy is how the nth of identical text SMS must look on P/sms/in.
func wantCopy(text string, sentAt time.Time, n int) smsIn {
	w := wantText("000", text, 1, sentAt)
	w.ID = gw.MessageID(gw.Inbound{Channel: gw.ChannelSMS, From: "000", Payload: []byte(text), SentAt: sentAt, Occurrence: n})
	return w
}

// Identical SMS on the SIM at once (a cloud repeating a command within the
// same second) are separate messages: each is published, with an id of
// its own, whether the module announced them or stored them silently
// while the daemon was down. A copy the network delivers again later,
// alone, is still the duplicate it is (TestFaultLateDuplicate).
func TestFaultIdenticalSMS(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	at := sentAtBase()
	r.inject(modemsim.SMS{From: "000", Text: "reboot", SentAt: at, Copies: 3})
	want := []smsIn{wantCopy("reboot", at, 0), wantCopy("reboot", at, 1), wantCopy("reboot", at, 2)}
	r.waitSMS(want, false, e2eWait)
	// One more, alone on the SIM once the others are gone: a fourth
	// message, not the network's copy of one of them.
	r.inject(modemsim.SMS{From: "000", Text: "reboot", SentAt: at})
	want = append(want, wantCopy("reboot", at, 3))
	r.waitSMS(want, false, e2eWait)

	// Stored without a +CMTI while the daemon is stopped.
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	later := at.Add(time.Second)
	r.inject(modemsim.SMS{From: "000", Text: "status", SentAt: later, Copies: 2, Silent: true})
	r.gw.start()
	want = append(want, wantCopy("status", later, 0), wantCopy("status", later, 1))
	r.waitSMS(want, false, e2eWait)
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Errorf("SMS left on the SIM; %s", r.simSummary())
	}
}

// Three identical SMS are on the SIM; the daemon is killed (SIGKILL) in
// the middle of the drain, once it has deleted two of them (and stored the
// third or not). After the restart each of the three arrives under the id
// the first listing gave it: one stored before the kill is not stored
// again under a new id, and the last, alone on the SIM now, is not
// mistaken for a copy of the first.
func TestFaultIdenticalSMSKilledMidDrain(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	deletes := func() int { return r.sim.State().Counters[modemsim.CounterCMGD] }
	before := deletes()
	at := sentAtBase()
	r.inject(modemsim.SMS{From: "000", Text: "reset", SentAt: at, Copies: 3})
	if !waitUntilFast(e2eWait, func() bool { return deletes() >= before+2 }) {
		t.Fatalf("the daemon did not delete two of the SMS; %s", r.simSummary())
	}
	r.sim.Hang(2 * time.Second)
	r.gw.kill()
	if !waitUntil(e2eWait, func() bool { return !r.sim.State().Hung }) {
		t.Fatal("modemsim still hung")
	}
	r.gw.start()
	want := []smsIn{wantCopy("reset", at, 0), wantCopy("reset", at, 1), wantCopy("reset", at, 2)}
	dups := r.waitSMS(want, true, e2eWait)
	t.Logf("%d delivered twice (same id) across the kill", dups)
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Errorf("SMS left on the SIM; %s", r.simSummary())
	}
}

// Forty distinct SMS injected back to back while the daemon runs, all with
// the same service centre second, arrive in the order they were sent. The
// SIM reuses the slots the daemon frees, so SIM index order is not arrival
// order; the module's +CMTI order is.
func TestFaultArrivalOrderLiveBurst(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	at := sentAtBase()
	var want []smsIn
	// Bursts with gaps of a few milliseconds, so the daemon deletes some
	// while others arrive and the SIM hands their slots to later ones.
	for b, gap := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond} {
		var msgs []modemsim.SMS
		for i := range 40 {
			text := fmt.Sprintf("burst %d order %02d", b, i)
			msgs = append(msgs, modemsim.SMS{From: "000", Text: text, SentAt: at})
			want = append(want, wantText("000", text, 1, at))
		}
		in := r.injectPaced(msgs, gap)
		in.wait(t)
		r.waitSMS(want, false, 2*e2eWait)
	}
}

// undecodableMsg is P/sms/undecodable.
type undecodableMsg struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Channel    string `json:"channel"`
	PDU        string `json:"pdu"`
	Error      string `json:"error"`
	ReceivedAt string `json:"received_at"`
}

// An SMS that cannot be decoded is stored before it is deleted from the
// SIM and published on P/sms/undecodable with its PDU, across a restart
// of the daemon; the event names it.
func TestFaultUndecodableSMSStored(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	tpdu := []byte{0x04, 0xC0, 0xFF, 0xEE}
	r.inject(modemsim.SMS{TPDU: tpdu})
	next := modemsim.SMS{From: "000", Text: "after the bad one", SentAt: sentAtBase()}
	r.inject(next)
	r.waitSMS([]smsIn{wantText("000", next.Text, 1, next.SentAt)}, false, e2eWait)
	var got []undecodableMsg
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/undecodable")) > 0 }) {
		t.Fatalf("nothing on P/sms/undecodable; events %v", eventTypes(r.obs.events()))
	}
	for _, m := range r.obs.on("sms/undecodable") {
		var u undecodableMsg
		if err := decodeStrict(m.Payload, &u, []string{"id", "type", "channel", "pdu", "error", "received_at"}); err != nil {
			t.Fatal(err)
		}
		got = append(got, u)
	}
	if len(got) != 1 {
		t.Fatalf("%d messages on P/sms/undecodable, want 1: %+v", len(got), got)
	}
	u := got[0]
	pdu, err := base64.StdEncoding.DecodeString(u.PDU)
	if err != nil {
		t.Fatalf("pdu %q: %v", u.PDU, err)
	}
	// The PDU as the SIM holds it: the SMSC address, then the TPDU.
	if len(pdu) == 0 || len(pdu) != int(pdu[0])+1+len(tpdu) || !bytes.HasSuffix(pdu, tpdu) || u.Type != "sms_undecodable" || u.Channel != "sms" || u.Error == "" || !strings.HasPrefix(u.ID, "sms-") {
		t.Errorf("P/sms/undecodable: %+v (pdu %X)", u, pdu)
	}
	found := false
	for _, e := range r.obs.events() {
		if e.Type == "sms_undecodable" && e.Fields["id"] == u.ID {
			found = true
		}
	}
	if !found {
		t.Errorf("no sms_undecodable event names %s; events %v", u.ID, eventTypes(r.obs.events()))
	}
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Errorf("left on the SIM; %s", r.simSummary())
	}
}

// With the broker down, an undecodable SMS deleted from the SIM is in the
// daemon's queue on disk, across a SIGKILL, and is published once the
// broker is back.
func TestFaultUndecodableSMSDurable(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	r.mq.stop(syscall.SIGTERM)
	r.inject(modemsim.SMS{TPDU: []byte{0x04, 0xC0, 0xFF, 0xEE}})
	if !waitUntil(e2eWait, func() bool { s, n := r.onSIM(); return s+n == 0 }) {
		t.Fatalf("the daemon did not take the SMS off the SIM; %s", r.simSummary())
	}
	r.gw.kill()
	if held := r.heldByDaemon(); held.Inbound != 1 {
		t.Fatalf("the queue on disk holds %d messages after the SMS left the SIM, want 1", held.Inbound)
	}
	r.mq.start()
	r.gw.start()
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/undecodable")) > 0 }) {
		t.Fatalf("nothing on P/sms/undecodable after the restart; events %v", eventTypes(r.obs.events()))
	}
}

// In ip.mode modem a datagram over 1300 bytes is refused with the same
// rule as ip.mode os: an ip_oversize event, and nothing stored or
// published. 1300 bytes still pass.
func TestFaultOversizeDatagramModemMode(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{"quectel", "simcom"} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{Sim: modemsim.Options{Profile: profile}, IPMode: "modem"})
			r.waitReady()
			if !waitUntil(e2eWait, func() bool { return r.waitData() }) {
				t.Fatalf("no socket open; %s", r.simSummary())
			}
			for _, n := range []int{1301, 1500, 1300} {
				if err := r.sim.InjectUDP("100.64.0.1:6969", 6969, bytes.Repeat([]byte{byte(n)}, n)); err != nil {
					t.Fatalf("inject %d bytes: %v", n, err)
				}
			}
			if !waitUntil(e2eWait, func() bool { return len(r.obs.on("ip/in")) >= 1 }) {
				t.Fatalf("the 1300-byte datagram never arrived; %s", r.simSummary())
			}
			var sizes []int
			if !waitUntil(e2eWait, func() bool {
				sizes = nil
				for _, e := range r.obs.events() {
					if e.Type == "ip_oversize" {
						if n, ok := e.Fields["size"].(float64); ok {
							sizes = append(sizes, int(n))
						}
					}
				}
				return len(sizes) >= 2
			}) {
				t.Errorf("ip_oversize events for sizes %v, want 1301 and 1500; events %v", sizes, eventTypes(r.obs.events()))
			}
			for _, g := range r.obs.ipIn() {
				b, err := base64.StdEncoding.DecodeString(g.Payload)
				if err != nil || len(b) != 1300 {
					t.Errorf("published on P/ip/in: %d bytes (%v); only the 1300-byte datagram may be", len(b), err)
				}
			}
			if code := r.gw.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if held := r.heldByDaemon(); held.Inbound != 0 {
				t.Errorf("%d messages left in the queue; an oversize datagram must never be stored", held.Inbound)
			}
		})
	}
}

// waitData reports whether the daemon has a socket open on port 6969.
func (r *rig) waitData() bool {
	for _, s := range r.sim.State().Sockets {
		if s.Port == 6969 && !s.Closed {
			return true
		}
	}
	return false
}

// peakRSS is the daemon's peak resident set (VmHWM) in bytes.
func (d *daemon) peakRSS() int64 {
	d.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		d.t.Fatalf("read the daemon's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				d.t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	d.t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// While the module hangs in the middle of a command, it floods the line
// with framed 64 KiB URCs (a direct-push datagram announcement with a
// corrupt length). The daemon cannot act on them until the command times
// out, so they queue, and the queue must stay bounded in bytes: before, it
// held up to 4,096 of them. What the daemon's memory may grow by is far
// below what was sent.
func TestFaultFramedURCFloodWhileHung(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	r.waitReady()
	base := r.gw.peakRSS()
	at := sentAtBase()
	reads := func() int {
		c := r.sim.State().Counters
		return c[modemsim.CounterCMGR] + c[modemsim.CounterCMGL]
	}
	before := reads()
	r.inject(modemsim.SMS{From: "000", Text: "before the flood", SentAt: at})
	// Hung just after the daemon read the SMS: its deletion goes
	// unanswered.
	if !waitUntilFast(e2eWait, func() bool { return reads() > before }) {
		t.Fatalf("the daemon read no SMS; %s", r.simSummary())
	}
	r.sim.Hang(8 * time.Second)
	frame := append([]byte("\r\n+QIURC: \"recv\",0,65536,\"100.64.0.1\",6969\r\n"), bytes.Repeat([]byte{'x'}, 65536)...)
	const frames = 1200 // 75 MiB
	for range frames {
		if !waitUntilFast(e2eWait, func() bool { return r.sim.Waiting() < 512<<10 }) {
			t.Fatalf("the daemon stopped reading the line; %s", r.simSummary())
		}
		r.sim.Garbage(frame)
	}
	next := modemsim.SMS{From: "000", Text: "after the flood", SentAt: at.Add(time.Second)}
	r.inject(next)
	r.waitSMS([]smsIn{wantText("000", "before the flood", 1, at), wantText("000", next.Text, 1, next.SentAt)}, false, 3*e2eWait)
	grew := r.gw.peakRSS() - base
	sent := int64(frames * len(frame))
	t.Logf("peak RSS %d MiB at start, grew by %d MiB while %d MiB of framed URCs arrived", base>>20, grew>>20, sent>>20)
	// The race detector's shadow memory doubles what the heap costs.
	limit := int64(40 << 20)
	if raceEnabled {
		limit = 100 << 20
	}
	if grew > limit {
		t.Errorf("the daemon's peak RSS grew by %d MiB while %d MiB of URCs arrived; want at most %d MiB", grew>>20, sent>>20, limit>>20)
	}
}
