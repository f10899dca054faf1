package modemsim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/warthog618/sms"
)

const helloPDU = "079144770009103204038100F00000621162010000000AE8329BFD4697D9EC37"

func inject(t *testing.T, s *Sim, m SMS) []int {
	t.Helper()
	if m.SentAt.IsZero() {
		m.SentAt = scts
	}
	idx, err := s.InjectSMS(m)
	if err != nil {
		t.Fatalf("InjectSMS: %v", err)
	}
	return idx
}

func TestCMTIThenCMGR(t *testing.T) {
	for _, tt := range []struct {
		profile string
		index   int
	}{{"quectel", 0}, {"simcom", 0}, {"ublox", 1}} {
		t.Run(tt.profile, func(t *testing.T) {
			e := newEngine(t, Options{Profile: tt.profile})
			e.quiet("ATE0", "AT+CMGF=0", "AT+CNMI=2,1,0,0,0")
			idx := inject(t, e.sim, SMS{Text: "hellohello"})
			if diff := cmp.Diff([]int{tt.index}, idx); diff != "" {
				t.Errorf("indexes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(fmt.Sprintf("\r\n+CMTI: \"SM\",%d\r\n", tt.index), e.out.take()); diff != "" {
				t.Errorf("indication (-want +got):\n%s", diff)
			}
			want := "\r\n+CMGR: 0,,24\r\n" + helloPDU + "\r\n\r\nOK\r\n"
			if diff := cmp.Diff(want, e.at(fmt.Sprintf("AT+CMGR=%d", tt.index))); diff != "" {
				t.Errorf("first read (-want +got):\n%s", diff)
			}
			want = "\r\n+CMGR: 1,,24\r\n" + helloPDU + "\r\n\r\nOK\r\n"
			if diff := cmp.Diff(want, e.at(fmt.Sprintf("AT+CMGR=%d", tt.index))); diff != "" {
				t.Errorf("second read is REC READ (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n+CPMS: \"SM\",1,30,\"SM\",1,30,\"SM\",1,30\r\n\r\nOK\r\n", e.at("AT+CPMS?")); diff != "" {
				t.Errorf("CPMS (-want +got):\n%s", diff)
			}
			e.quiet(fmt.Sprintf("AT+CMGD=%d", tt.index))
			st := e.sim.State()
			if len(st.Stored) != 0 || st.Counters[CounterCMTI] != 1 || st.Counters[CounterCMGR] != 2 || st.Counters[CounterCMGD] != 1 {
				t.Errorf("state after delete: stored %v counters %v", st.Stored, st.Counters)
			}
		})
	}
}

func TestCNMIModes(t *testing.T) {
	tests := []struct {
		cnmi string
		want string
	}{
		{"AT+CNMI=2,1,0,0,0", "\r\n+CMTI: \"SM\",0\r\n"},
		{"AT+CNMI=1,1,0,0,0", "\r\n+CMTI: \"SM\",0\r\n"},
		{"AT+CNMI=0,1,0,0,0", ""},
		{"AT+CNMI=2,0,0,0,0", ""},
		{"AT+CNMI=2,2,0,0,0", "\r\n+CMT: ,24\r\n" + helloPDU + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.cnmi, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.quiet("ATE0", tt.cnmi)
			inject(t, e.sim, SMS{Text: "hellohello"})
			if diff := cmp.Diff(tt.want, e.out.take()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			stored := len(e.sim.State().Stored)
			if direct := strings.Contains(tt.cnmi, ",2,"); direct == (stored == 1) {
				t.Errorf("%d stored; direct delivery %v", stored, direct)
			}
		})
	}
}

func TestCMGLAndDelflags(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CNMI=2,0,0,0,0")
	for _, txt := range []string{"one", "two", "three"} {
		inject(t, e.sim, SMS{Text: txt})
	}
	e.at("AT+CMGR=1") // two becomes REC READ
	got := e.at("AT+CMGL=0")
	if n := strings.Count(got, "+CMGL:"); n != 2 || !strings.Contains(got, "+CMGL: 0,0,,") || !strings.Contains(got, "+CMGL: 2,0,,") {
		t.Errorf("CMGL=0 lists %d: %q", n, got)
	}
	got = e.at("AT+CMGL=4")
	if n := strings.Count(got, "+CMGL:"); n != 3 || !strings.HasSuffix(got, "\r\n\r\nOK\r\n") {
		t.Errorf("CMGL=4 lists %d: %q", n, got)
	}
	lines := splitLines(got)
	for i := 0; i < len(lines)-1; i += 2 {
		var idx, stat, n int
		if _, err := fmt.Sscanf(lines[i], "+CMGL: %d,%d,,%d", &idx, &stat, &n); err != nil {
			t.Fatalf("header %q: %v", lines[i], err)
		}
		if stat != 0 && stat != 1 || len(lines[i+1]) != 2*(n+8) {
			t.Errorf("entry %q %q: stat %d, PDU of %d hex digits for %d TPDU octets", lines[i], lines[i+1], stat, len(lines[i+1]), n)
		}
	}
	if got := e.at("AT+CMGL=0"); got != "\r\nOK\r\n" {
		t.Errorf("listing marks read: CMGL=0 gives %q", got)
	}
	inject(t, e.sim, SMS{Text: "four"}) // slot 3, unread
	e.quiet("AT+CMGD=0,1")              // deletes every read message
	st := e.sim.State()
	if len(st.Stored) != 1 || st.Stored[0].Index != 3 || st.Stored[0].Status != "REC UNREAD" || st.Stored[0].Text != "four" {
		t.Errorf("after delflag 1: %+v", st.Stored)
	}
	e.quiet("AT+CMGD=0,4")
	if st := e.sim.State(); len(st.Stored) != 0 {
		t.Errorf("after delflag 4: %+v", st.Stored)
	}
}

// TestStoreFull checks that a full SIM refuses silently, that the network
// holds the refused segment and delivers it once a slot is freed.
func TestStoreFull(t *testing.T) {
	e := newEngine(t, Options{Capacity: 2})
	e.quiet("ATE0", "AT+CMEE=1")
	idx, err := e.sim.InjectSMS(SMS{Text: "abcdefghi", Parts: 3, SentAt: scts})
	if !errors.Is(err, ErrStoreFull) {
		t.Fatalf("error %v, want ErrStoreFull", err)
	}
	if diff := cmp.Diff([]int{0, 1}, idx); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CMTI: \"SM\",0\r\n\r\n+CMTI: \"SM\",1\r\n", e.out.take()); diff != "" {
		t.Errorf("only stored segments are indicated (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CPMS: \"SM\",2,2,\"SM\",2,2,\"SM\",2,2\r\n\r\nOK\r\n", e.at("AT+CPMS?")); diff != "" {
		t.Errorf("CPMS (-want +got):\n%s", diff)
	}
	st := e.sim.State()
	if st.NetworkQueue != 1 || st.Counters[CounterRefusedFull] != 1 {
		t.Errorf("network queue %d, refused %d", st.NetworkQueue, st.Counters[CounterRefusedFull])
	}
	if diff := cmp.Diff("\r\nOK\r\n\r\n+CMTI: \"SM\",0\r\n", e.at("AT+CMGD=0")); diff != "" {
		t.Errorf("delete frees a slot for the held segment (-want +got):\n%s", diff)
	}
	st = e.sim.State()
	if st.NetworkQueue != 0 || st.Stored[0].Seq != 3 || st.Stored[1].Seq != 2 {
		t.Errorf("after redelivery: queue %d stored %+v", st.NetworkQueue, st.Stored)
	}
}

func TestNetworkHoldsWhileUnregistered(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0")
	e.sim.SetRegistration(2)
	idx, err := e.sim.InjectSMS(SMS{Text: "later"})
	if err != nil || len(idx) != 0 {
		t.Fatalf("InjectSMS while searching = %v, %v; want held", idx, err)
	}
	if got := e.out.take(); got != "" {
		t.Errorf("said %q while unregistered", got)
	}
	e.sim.SetRegistration(5)
	if diff := cmp.Diff("\r\n+CMTI: \"SM\",0\r\n", e.out.take()); diff != "" {
		t.Errorf("delivery on registration (-want +got):\n%s", diff)
	}
}

// TestCMTAcknowledgement checks +CMT with AT+CSMS=1: one unacknowledged
// message at a time, AT+CNMA releases the next.
func TestCMTAcknowledgement(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CMEE=1", "AT+CSMS=1", "AT+CNMI=2,2,0,0,0")
	inject(t, e.sim, SMS{Text: "hellohello"})
	inject(t, e.sim, SMS{Text: "hellohello"})
	cmt := "\r\n+CMT: ,24\r\n" + helloPDU + "\r\n"
	if diff := cmp.Diff(cmt, e.out.take()); diff != "" {
		t.Errorf("first +CMT only (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nOK\r\n"+cmt, e.at("AT+CNMA")); diff != "" {
		t.Errorf("ack releases the second (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nOK\r\n", e.at("AT+CNMA")); diff != "" {
		t.Errorf("second ack (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CMS ERROR: 340\r\n", e.at("AT+CNMA")); diff != "" {
		t.Errorf("ack with nothing pending (-want +got):\n%s", diff)
	}
	if st := e.sim.State(); st.Counters[CounterCMT] != 2 || st.Counters[CounterCNMA] != 2 || len(st.Stored) != 0 {
		t.Errorf("counters %v stored %v", st.Counters, st.Stored)
	}
}

// TestCMTAckTimeout checks 27.005's fallback: no +CNMA in time switches
// direct delivery off and the message lands in storage.
func TestCMTAckTimeout(t *testing.T) {
	e := newEngine(t, Options{AckTimeout: 10 * time.Millisecond})
	e.quiet("ATE0", "AT+CSMS=1", "AT+CNMI=2,2,0,0,0")
	inject(t, e.sim, SMS{Text: "hellohello"})
	st := waitState(t, e.sim, "ack timeout", func(st State) bool { return st.Counters[CounterAckTimeouts] == 1 })
	if len(st.Stored) != 1 || st.Stored[0].Text != "hellohello" {
		t.Errorf("stored %+v", st.Stored)
	}
	if diff := cmp.Diff([]int{2, 0, 0, 0, 0}, st.CNMI); diff != "" {
		t.Errorf("CNMI after timeout (-want +got):\n%s", diff)
	}
}

// TestCMGS sends SMS-SUBMITs built by warthog618/sms, as a host would.
func TestCMGS(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		opts []sms.EncoderOption
		want SentSMS
	}{
		{"gsm7", []byte("reply €[]"), nil, SentSMS{To: "+000", Text: "reply €[]", Encoding: "gsm7"}},
		{"ucs2 emoji", []byte("👍 done"), nil, SentSMS{To: "+000", Text: "👍 done", Encoding: "ucs2"}},
		{"8bit", []byte{0, 1, 0x1a, 0x1b, '\r', '\n', 0xff}, []sms.EncoderOption{sms.As8Bit}, SentSMS{To: "+000", Data: []byte{0, 1, 0x1a, 0x1b, '\r', '\n', 0xff}, Encoding: "8bit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.quiet("ATE0")
			h, n := submitHex(t, tt.msg, tt.opts...)
			if diff := cmp.Diff("\r\n> ", e.at(fmt.Sprintf("AT+CMGS=%d", n))); diff != "" {
				t.Fatalf("prompt (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n+CMGS: 0\r\n\r\nOK\r\n", e.in(h+"\x1a")); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			st := e.sim.State()
			if len(st.SentSMS) != 1 {
				t.Fatalf("sent %d", len(st.SentSMS))
			}
			got := st.SentSMS[0]
			if got.PDU != h[2:] {
				t.Errorf("PDU %s, want %s", got.PDU, h[2:])
			}
			got.PDU = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCMGSEchoCancelAndErrors(t *testing.T) {
	h, n := submitHex(t, []byte("x"))
	cmgs := fmt.Sprintf("AT+CMGS=%d", n)

	e := newEngine(t, Options{})
	if diff := cmp.Diff(cmgs+"\r\r\n> ", e.at(cmgs)); diff != "" {
		t.Errorf("prompt with echo (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(h+"\r\n+CMGS: 0\r\n\r\nOK\r\n", e.in(h+"\x1a")); diff != "" {
		t.Errorf("PDU echoed (-want +got):\n%s", diff)
	}
	e.quiet("ATE0", "AT+CMEE=1")
	e.at(cmgs)
	if diff := cmp.Diff("\r\nOK\r\n", e.in(h[:6]+"\x1b")); diff != "" {
		t.Errorf("ESC cancels (-want +got):\n%s", diff)
	}
	e.at(fmt.Sprintf("AT+CMGS=%d", n+1))
	if diff := cmp.Diff("\r\n+CMS ERROR: 304\r\n", e.in(h+"\x1a")); diff != "" {
		t.Errorf("length mismatch (-want +got):\n%s", diff)
	}
	e.at(cmgs)
	if diff := cmp.Diff("\r\n+CMS ERROR: 304\r\n", e.in("00GG\x1a")); diff != "" {
		t.Errorf("not hex (-want +got):\n%s", diff)
	}
	e.sim.SetFaults(Faults{SendError: 332})
	e.at(cmgs)
	if diff := cmp.Diff("\r\n+CMS ERROR: 332\r\n", e.in(h+"\x1a")); diff != "" {
		t.Errorf("send fault (-want +got):\n%s", diff)
	}
	e.sim.SetFaults(Faults{})
	e.sim.SetRegistration(0)
	e.at(cmgs)
	if diff := cmp.Diff("\r\n+CMS ERROR: 331\r\n", e.in(h+"\x1a")); diff != "" {
		t.Errorf("unregistered (-want +got):\n%s", diff)
	}
	e.sim.SetRegistration(1)
	e.at(cmgs)
	if diff := cmp.Diff("\r\n+CMGS: 1\r\n\r\nOK\r\n", e.in(h+"\x1a")); diff != "" {
		t.Errorf("next reference (-want +got):\n%s", diff)
	}
	if st := e.sim.State(); len(st.SentSMS) != 2 || st.Counters[CounterCMGS] != 2 {
		t.Errorf("sent %d, counter %d", len(st.SentSMS), st.Counters[CounterCMGS])
	}
}

// TestCMGSConcatenated sends a two-part SMS and checks the decoded records.
func TestCMGSConcatenated(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0")
	text := strings.Repeat("long reply ", 20)
	pdus, err := sms.Encode([]byte(text), sms.To("000"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pdus {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		e.at(fmt.Sprintf("AT+CMGS=%d", len(b)))
		if got := e.in("00" + hex.EncodeToString(b) + "\x1a"); !strings.Contains(got, "+CMGS:") {
			t.Fatalf("send: %q", got)
		}
	}
	st := e.sim.State()
	var joined string
	for i, s := range st.SentSMS {
		if s.Total != 2 || s.Seq != i+1 || s.ConcatRef != st.SentSMS[0].ConcatRef {
			t.Errorf("segment %d: %+v", i, s)
		}
		joined += s.Text
	}
	if joined != text {
		t.Errorf("joined %q, want %q", joined, text)
	}
}

func TestTextMode(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CMGF=1", "AT+CNMI=2,0,0,0,0")
	inject(t, e.sim, SMS{Text: "hellohello"})
	inject(t, e.sim, SMS{Text: "😀", SentAt: scts.In(time.FixedZone("x", 3600))})
	want := "\r\n+CMGR: \"REC UNREAD\",\"000\",,\"26/11/26,10:00:00+00\"\r\nhellohello\r\n\r\nOK\r\n"
	if diff := cmp.Diff(want, e.at("AT+CMGR=0")); diff != "" {
		t.Errorf("CMGR (-want +got):\n%s", diff)
	}
	e.quiet(`AT+CSCS="UCS2"`)
	want = "\r\n+CMGR: \"REC UNREAD\",\"000\",,\"26/11/26,11:00:00+04\"\r\nD83DDE00\r\n\r\nOK\r\n"
	if diff := cmp.Diff(want, e.at("AT+CMGR=1")); diff != "" {
		t.Errorf("CMGR UCS2 (-want +got):\n%s", diff)
	}
	got := e.at(`AT+CMGL="ALL"`)
	if !strings.Contains(got, "+CMGL: 0,\"REC READ\",\"000\",,") || !strings.Contains(got, "+CMGL: 1,\"REC READ\"") {
		t.Errorf("CMGL: %q", got)
	}
	e.quiet(`AT+CSCS="GSM"`)
	if diff := cmp.Diff("\r\n> ", e.at(`AT+CMGS="000"`)); diff != "" {
		t.Errorf("prompt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CMGS: 0\r\n\r\nOK\r\n", e.in("text reply\x1a")); diff != "" {
		t.Errorf("send (-want +got):\n%s", diff)
	}
	st := e.sim.State()
	if len(st.SentSMS) != 1 || st.SentSMS[0].To != "000" || st.SentSMS[0].Text != "text reply" {
		t.Errorf("sent %+v", st.SentSMS)
	}
}

// TestStoredState checks what State reports about stored segments.
func TestStoredState(t *testing.T) {
	e := newEngine(t, Options{})
	inject(t, e.sim, SMS{Data: []byte{1, 2, 0xff}})
	inject(t, e.sim, SMS{Text: "abcdef", Parts: 2, Ref16: true})
	st := e.sim.State()
	want := []StoredSMS{
		{Index: 0, Status: "REC UNREAD", From: "000", Text: "0102FF", Encoding: "8bit"},
		{Index: 1, Status: "REC UNREAD", From: "000", Text: "abc", Encoding: "gsm7", ConcatRef: 0x1a2c, Seq: 1, Total: 2},
		{Index: 2, Status: "REC UNREAD", From: "000", Text: "def", Encoding: "gsm7", ConcatRef: 0x1a2c, Seq: 2, Total: 2},
	}
	for i := range st.Stored {
		if !strings.HasPrefix(st.Stored[i].PDU, "0791447700091032") {
			t.Errorf("PDU %s lacks the SMSC", st.Stored[i].PDU)
		}
		st.Stored[i].PDU = ""
	}
	if diff := cmp.Diff(want, st.Stored); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Copies stores identical SMS together, Silent stores without a +CMTI, and
// TPDU stores the bytes as given.
func TestInjectCopiesSilentAndRawTPDU(t *testing.T) {
	e := newEngine(t, Options{Profile: "quectel"})
	e.quiet("ATE0", "AT+CMGF=0", "AT+CNMI=2,1,0,0,0")
	idx := inject(t, e.sim, SMS{Text: "reboot", Copies: 3})
	if diff := cmp.Diff([]int{0, 1, 2}, idx); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CMTI: \"SM\",0\r\n\r\n+CMTI: \"SM\",1\r\n\r\n+CMTI: \"SM\",2\r\n", e.out.take()); diff != "" {
		t.Errorf("indications (-want +got):\n%s", diff)
	}
	st := e.sim.State()
	if len(st.Stored) != 3 || st.Stored[0].PDU != st.Stored[1].PDU || st.Stored[1].PDU != st.Stored[2].PDU {
		t.Errorf("copies are not identical: %+v", st.Stored)
	}
	inject(t, e.sim, SMS{Text: "quiet", Silent: true})
	if got := e.out.take(); got != "" {
		t.Errorf("a silent SMS was announced: %q", got)
	}
	raw := []byte{0x00, 0xc0, 0xff, 0xee}
	idx = inject(t, e.sim, SMS{TPDU: raw, Silent: true})
	want := fmt.Sprintf("\r\n+CMGR: 0,,4\r\n%s00C0FFEE\r\n\r\nOK\r\n", strings.ToUpper(hex.EncodeToString(smscPrefix(e.sim.opts.SMSC))))
	if diff := cmp.Diff(want, e.at(fmt.Sprintf("AT+CMGR=%d", idx[0]))); diff != "" {
		t.Errorf("raw TPDU read (-want +got):\n%s", diff)
	}
	if _, err := e.sim.InjectSMS(SMS{Text: "x", Copies: -1}); err == nil {
		t.Error("negative copies accepted")
	}
}
