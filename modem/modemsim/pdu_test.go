package modemsim

import (
	"bytes"
	"encoding/hex"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

var scts = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func fixedRef(start int) func(bool) int {
	n := start
	return func(bool) int { n++; return n }
}

// TestDeliverGolden pins one SMS-DELIVER to bytes worked out by hand from
// 23.040: first octet 04, OA 03 81 00F0 ("000"), PID 00, DCS 00, SCTS
// 62 11 62 01 00 00 00 (26-11-26 10:00:00 +0), UDL 0A, "hellohello" packed.
func TestDeliverGolden(t *testing.T) {
	d, err := buildDeliver(SMS{Text: "hellohello", SentAt: scts}, fixedRef(0), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ToUpper(hex.EncodeToString(d[0].tpdu))
	if diff := cmp.Diff("04038100F00000621162010000000AE8329BFD4697D9EC37", got); diff != "" {
		t.Errorf("TPDU (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("0791447700091032", strings.ToUpper(hex.EncodeToString(smscPrefix(defaultSMSC)))); diff != "" {
		t.Errorf("SMSC (-want +got):\n%s", diff)
	}
}

// TestDeliverRoundTrip builds SMS-DELIVER PDUs and decodes them with
// warthog618/sms, as the gateway will: the text (or data) must come back
// exactly, with the right coding, concatenation and delivery order.
func TestDeliverRoundTrip(t *testing.T) {
	long := strings.Repeat("0123456789", 40)
	tests := []struct {
		name      string
		m         SMS
		wantEnc   tpdu.Alphabet
		wantParts int
		want16    bool
	}{
		{name: "ascii", m: SMS{Text: "on"}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
		{name: "gsm7 extension table", m: SMS{Text: "€{}[]~^\\| and @£$¥"}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
		{name: "160 septets in one", m: SMS{Text: strings.Repeat("x", 160)}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
		{name: "161 septets in two", m: SMS{Text: strings.Repeat("x", 161)}, wantEnc: tpdu.Alpha7Bit, wantParts: 2},
		{name: "80 euros fill one", m: SMS{Text: strings.Repeat("€", 80)}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
		{name: "escape never split", m: SMS{Text: strings.Repeat("a", 152) + "€" + strings.Repeat("b", 10)}, wantEnc: tpdu.Alpha7Bit, wantParts: 2},
		{name: "ucs2 emoji", m: SMS{Text: "Hi 😀👍🏽 ж"}, wantEnc: tpdu.AlphaUCS2, wantParts: 1},
		{name: "ucs2 forced", m: SMS{Text: "plain", Encoding: "ucs2"}, wantEnc: tpdu.AlphaUCS2, wantParts: 1},
		{name: "ucs2 surrogate not split", m: SMS{Text: strings.Repeat("ж", 66) + "😀" + "tail", Parts: 2}, wantEnc: tpdu.AlphaUCS2, wantParts: 2},
		{name: "ucs2 long", m: SMS{Text: strings.Repeat("😀", 100)}, wantEnc: tpdu.AlphaUCS2, wantParts: 4},
		{name: "8bit all bytes", m: SMS{Data: allBytes()}, wantEnc: tpdu.Alpha8Bit, wantParts: 2},
		{name: "8bit NUL CR LF", m: SMS{Data: []byte{0, '\r', '\n', '"', 0x1a, 0x1b}, Encoding: "8bit"}, wantEnc: tpdu.Alpha8Bit, wantParts: 1},
		{name: "three parts in order", m: SMS{Text: "abcdefghi", Parts: 3}, wantEnc: tpdu.Alpha7Bit, wantParts: 3},
		{name: "three parts out of order", m: SMS{Text: long, Parts: 3, Order: []int{3, 1, 2}}, wantEnc: tpdu.Alpha7Bit, wantParts: 3},
		{name: "16-bit reference", m: SMS{Text: long, Ref16: true}, wantEnc: tpdu.Alpha7Bit, wantParts: 3, want16: true},
		{name: "alphanumeric sender", m: SMS{From: "Twilio", Text: "hi"}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
		{name: "international sender", m: SMS{From: "+447700900001", Text: "hi"}, wantEnc: tpdu.Alpha7Bit, wantParts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.SentAt = scts
			dels, err := buildDeliver(tt.m, fixedRef(300), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(dels) != tt.wantParts {
				t.Fatalf("%d segments, want %d", len(dels), tt.wantParts)
			}
			var segs []*tpdu.TPDU
			var order []int
			for _, d := range dels {
				// Decode the PDU exactly as +CMGR shows it.
				p, err := pdumode.UnmarshalHexString(hex.EncodeToString(append(smscPrefix(defaultSMSC), d.tpdu...)))
				if err != nil {
					t.Fatalf("pdu mode: %v", err)
				}
				seg, err := sms.Unmarshal(p.TPDU, sms.AsMT)
				if err != nil {
					t.Fatalf("unmarshal %X: %v", p.TPDU, err)
				}
				if seg.SmsType() != tpdu.SmsDeliver {
					t.Errorf("type %v, want SMS-DELIVER", seg.SmsType())
				}
				if a, _ := seg.Alphabet(); a != tt.wantEnc {
					t.Errorf("alphabet %v, want %v", a, tt.wantEnc)
				}
				from := tt.m.From
				if from == "" {
					from = "000"
				}
				if seg.OA.Number() != from {
					t.Errorf("OA %q, want %q", seg.OA.Number(), from)
				}
				if !seg.SCTS.Time.Equal(scts) {
					t.Errorf("SCTS %v, want %v", seg.SCTS.Time, scts)
				}
				if ud := len(p.TPDU); ud > 140+28 {
					t.Errorf("TPDU of %d octets", ud)
				}
				if tt.wantParts > 1 {
					_, seq, _, ok := seg.ConcatInfo()
					if !ok {
						t.Fatal("segment without concatenation IE")
					}
					_, is16 := seg.UDH.IE(8)
					if is16 != tt.want16 {
						t.Errorf("16-bit IE %v, want %v", is16, tt.want16)
					}
					order = append(order, seq)
				}
				segs = append(segs, seg)
			}
			if tt.m.Order != nil {
				if diff := cmp.Diff(tt.m.Order, order); diff != "" {
					t.Errorf("delivery order (-want +got):\n%s", diff)
				}
			}
			sort.Slice(segs, func(i, j int) bool {
				_, a, _, _ := segs[i].ConcatInfo()
				_, b, _, _ := segs[j].ConcatInfo()
				return a < b
			})
			if !sms.IsCompleteMessage(segs) {
				t.Fatal("segments do not form a complete message")
			}
			got, err := sms.Decode(segs)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := []byte(tt.m.Text)
			if tt.m.Data != nil {
				want = tt.m.Data
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded %q, want %q", got, want)
			}
		})
	}
}

func TestDeliverErrors(t *testing.T) {
	tests := []struct {
		name string
		m    SMS
		want string
	}{
		{"empty", SMS{}, "empty message"},
		{"bad encoding", SMS{Text: "x", Encoding: "utf8"}, "encoding"},
		{"emoji in gsm7", SMS{Text: "😀", Encoding: "gsm7"}, "GSM 7-bit"},
		{"invalid utf8", SMS{Text: "\xff", Encoding: "ucs2"}, "UTF-8"},
		{"too short for parts", SMS{Text: "ab", Parts: 3}, "too short"},
		{"too long for parts", SMS{Text: strings.Repeat("x", 400), Parts: 2}, "too long"},
		{"order not a permutation", SMS{Text: "abcdef", Parts: 3, Order: []int{1, 1, 2}}, "permutation"},
		{"order wrong length", SMS{Text: "abcdef", Parts: 3, Order: []int{1, 2}}, "entries"},
		{"bad sender", SMS{From: "a very long sender name", Text: "x"}, "sender"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildDeliver(tt.m, fixedRef(0), time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want containing %q", err, tt.want)
			}
		})
	}
}

// submitHex builds what a host types after +CMGS: "00" (default SMSC)
// and an SMS-SUBMIT made with warthog618/sms.
func submitHex(t *testing.T, msg []byte, opts ...sms.EncoderOption) (string, int) {
	t.Helper()
	pdus, err := sms.Encode(msg, append([]sms.EncoderOption{sms.To("000")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(pdus) != 1 {
		t.Fatalf("%d segments", len(pdus))
	}
	b, err := pdus[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return "00" + strings.ToUpper(hex.EncodeToString(b)), len(b)
}

func TestDecodeSubmit(t *testing.T) {
	tests := []struct {
		name     string
		msg      []byte
		opts     []sms.EncoderOption
		wantEnc  string
		wantText string
	}{
		{"gsm7", []byte("status ok"), nil, encGSM7, "status ok"},
		{"gsm7 extension", []byte("€{}[]~^\\|"), nil, encGSM7, "€{}[]~^\\|"},
		{"ucs2 emoji", []byte("ok 😀"), nil, encUCS2, "ok 😀"},
		{"8bit", allBytes()[:140], []sms.EncoderOption{sms.As8Bit}, enc8Bit, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n := submitHex(t, tt.msg, tt.opts...)
			_, smsc, info, err := decodeSubmit(h, n)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantEnc == enc8Bit {
				info.text = "" // shown as hex for people; the bytes are in data
			}
			// sms.To makes an international number: the PDU says "+000".
			if smsc != "" || info.to != "+000" || info.enc != tt.wantEnc || info.text != tt.wantText {
				t.Errorf("got smsc %q to %q enc %q text %q", smsc, info.to, info.enc, info.text)
			}
			if tt.wantEnc == enc8Bit && !bytes.Equal(info.data, tt.msg) {
				t.Errorf("data %X, want %X", info.data, tt.msg)
			}
		})
	}
	h, n := submitHex(t, []byte("x"))
	bad := []struct {
		name string
		hex  string
		n    int
	}{
		{"not hex", "zz", 1},
		{"empty", "", 0},
		{"length mismatch", h, n + 1},
		{"smsc overruns", "0991", 0},
		{"deliver not submit", "0004038100F00000621162010000000AE8329BFD4697D9EC37", 24},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.name, func(t *testing.T) {
			if _, _, _, err := decodeSubmit(tt.hex, tt.n); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzBuildDeliver checks that every SMS the simulator agrees to build
// decodes back to what was asked for.
func FuzzBuildDeliver(f *testing.F) {
	f.Add("hello", 0, false, "")
	f.Add("€{}[]~^\\|", 2, true, "gsm7")
	f.Add("😀👍🏽", 3, false, "ucs2")
	f.Add(strings.Repeat("x€", 200), 0, false, "")
	f.Add("\x00\xff", 1, false, "8bit")
	f.Fuzz(func(t *testing.T, text string, parts int, ref16 bool, enc string) {
		m := SMS{Text: text, Parts: parts % 10, Ref16: ref16, Encoding: enc, SentAt: scts}
		dels, err := buildDeliver(m, fixedRef(0), time.Now())
		if err != nil {
			return
		}
		var segs []*tpdu.TPDU
		for _, d := range dels {
			seg, err := sms.Unmarshal(d.tpdu, sms.AsMT)
			if err != nil {
				t.Fatalf("built PDU does not decode: %v", err)
			}
			segs = append(segs, seg)
		}
		got, err := sms.Decode(segs)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if enc == "8bit" || utf8.ValidString(text) {
			if string(got) != text {
				t.Fatalf("decoded %q, want %q", got, text)
			}
		}
	})
}

// FuzzDecodeSubmit feeds arbitrary text typed after +CMGS.
func FuzzDecodeSubmit(f *testing.F) {
	f.Add("0001000381000F0000026F37", 11)
	f.Add("00", 0)
	f.Add("07914477000910320100038100F00000", 8)
	f.Fuzz(func(t *testing.T, h string, n int) {
		tp, _, info, err := decodeSubmit(h, n)
		if err != nil {
			return
		}
		if len(tp) != n {
			t.Fatalf("accepted %d octets for length %d", len(tp), n)
		}
		if info.enc != encGSM7 && info.enc != encUCS2 && info.enc != enc8Bit {
			t.Fatalf("encoding %q", info.enc)
		}
	})
}
