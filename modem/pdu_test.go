package modem

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

func TestDecodeGolden(t *testing.T) {
	// The textbook SMS-DELIVER (SMSC +31624000000, from +31641600986,
	// 2002-08-26 19:37:41, "How are you?"). Its time zone octet 0x08 is
	// often read as +2 h, but 23.040 9.2.3.11 makes bit 3 the sign and the
	// digits 0: it is -0, so the time is UTC.
	tp, err := splitPDU("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07", 30)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDeliver(tp)
	if err != nil {
		t.Fatal(err)
	}
	text, bin, err := joinText([]*deliver{d})
	if err != nil || bin {
		t.Fatalf("joinText: %v binary=%v", err, bin)
	}
	want := time.Date(2002, 8, 26, 19, 37, 41, 0, time.UTC)
	if d.From != "+31641600986" || string(text) != "How are you?" || !d.SentAt.Equal(want) {
		t.Errorf("got from %q text %q sent %v; want +31641600986 %q %v", d.From, text, d.SentAt, "How are you?", want)
	}
}

func TestDecodeDeliver(t *testing.T) {
	tests := []struct {
		name       string
		parts      []mt
		wantText   string
		wantBinary bool
	}{
		{"gsm7 extension table", []mt{{from: "000", sent: t0, dcs: 0x00, ud: septets("€{}[]~ ^\\|")}}, "€{}[]~ ^\\|", false},
		{"gsm7 160 chars", []mt{{from: "000", sent: t0, dcs: 0x00, ud: septets(strings.Repeat("x", 160))}}, strings.Repeat("x", 160), false},
		{"ucs2 emoji", []mt{{from: "000", sent: t0, dcs: 0x08, ud: utf16be("hi 😀 ж")}}, "hi 😀 ж", false},
		{"8-bit data", []mt{{from: "000", sent: t0, dcs: 0x04, ud: []byte{0, 1, '\r', '\n', 0xff}}}, "\x00\x01\r\n\xff", true},
		{"class 1 8-bit", []mt{{from: "000", sent: t0, dcs: 0xF5, ud: []byte{0xAA}}}, "\xaa", true},
		{
			"ucs2 surrogate pair split across segments",
			[]mt{
				{from: "000", sent: t0, dcs: 0x08, udh: concat8(7, 2, 1), ud: utf16be("a😀")[:4]},
				{from: "000", sent: t0, dcs: 0x08, udh: concat8(7, 2, 2), ud: utf16be("a😀")[4:]},
			},
			"a😀", false,
		},
		{
			"gsm7 escape split across segments, 16-bit ref",
			[]mt{
				{from: "000", sent: t0, dcs: 0x00, udh: concat16(300, 2, 1), ud: septets("ab€")[:3]},
				{from: "000", sent: t0, dcs: 0x00, udh: concat16(300, 2, 2), ud: septets("ab€")[3:]},
			},
			"ab€", false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ds []*deliver
			for _, p := range tt.parts {
				tp, err := splitPDU(p.pdu(), len(p.tpdu()))
				if err != nil {
					t.Fatal(err)
				}
				d, err := decodeDeliver(tp)
				if err != nil {
					t.Fatal(err)
				}
				if d.From != "000" || !d.SentAt.Equal(t0) {
					t.Errorf("from %q sent %v", d.From, d.SentAt)
				}
				ds = append(ds, d)
			}
			if len(ds) > 1 {
				if ds[0].Total != len(ds) || ds[1].Seq != 2 || ds[0].concatKey() != ds[1].concatKey() {
					t.Errorf("concat info: %+v %+v", ds[0], ds[1])
				}
			}
			got, bin, err := joinText(ds)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantText || bin != tt.wantBinary {
				t.Errorf("joinText = %q binary=%v, want %q binary=%v", got, bin, tt.wantText, tt.wantBinary)
			}
		})
	}
}

func TestConcatKey(t *testing.T) {
	d8 := &deliver{From: "000", Ref: 5, Total: 3}
	d16 := &deliver{From: "000", Ref: 5, Total: 3, Ref16: true}
	if d8.concatKey() == d16.concatKey() {
		t.Error("8-bit and 16-bit references share a key")
	}
	tp := (mt{from: "000", sent: t0, dcs: 0x00, udh: concat8(1, 3, 4), ud: septets("x")}).tpdu()
	d, err := decodeDeliver(tp)
	if err != nil {
		t.Fatal(err)
	}
	if d.Total != 0 {
		t.Errorf("segment 4 of 3 kept its concatenation info: %+v", d)
	}
}

func TestDecodeErrors(t *testing.T) {
	submit, _ := hex.DecodeString("0100038100F0000005E8329BFD06")
	tests := []struct {
		name string
		hex  string
		len  int
		want string
	}{
		{"not hex", "ZZ", 0, "not hex"},
		{"empty", "", 0, "empty PDU"},
		{"SMSC longer than PDU", "0A91", 0, "leaves no TPDU"},
		{"length mismatch", "0004", 5, "announced 5"},
		{"truncated", "00040B91", 0, "decode TPDU"},
		{"submit, not deliver", "00" + hex.EncodeToString(submit), 0, "not an SMS-DELIVER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := splitPDU(tt.hex, tt.len)
			if err == nil {
				_, err = decodeDeliver(tp)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestEncodeSubmitGolden(t *testing.T) {
	tests := []struct {
		name    string
		to      string
		payload []byte
		alpha   gw.SMSAlphabet
		want    string
	}{
		{"gsm7 to 000", "000", []byte("hello"), gw.AlphabetGSM7, "0100038100F0000005E8329BFD06"},
		{"gsm7 extension", "000", []byte("€"), gw.AlphabetGSM7, "0100038100F00000029B32"},
		{"ucs2 emoji international", "+15551234567", []byte("😀"), gw.AlphabetUCS2, "01000B915155214365F7000804D83DDE00"},
		{"8-bit", "000", []byte{0x00, 0xFF}, gw.Alphabet8Bit, "0100038100F000040200FF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeSubmit(tt.to, tt.payload, tt.alpha, false)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, strings.ToUpper(hex.EncodeToString(got))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "+", "12a", "++1", strings.Repeat("1", 21)} {
		if _, err := encodeSubmit(bad, []byte("x"), gw.AlphabetGSM7, false); err == nil {
			t.Errorf("encodeSubmit(%q) accepted", bad)
		}
	}
}

// FuzzPDU runs bytes from outside through the receive path: splitting the
// SMSC address, decoding the TPDU and joining text must never panic.
func FuzzPDU(f *testing.F) {
	f.Add("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07", 30)
	f.Add((mt{from: "000", sent: t0, dcs: 0x08, udh: concat16(1, 2, 1), ud: utf16be("😀")}).pdu(), 0)
	f.Add((mt{from: "+1555", sent: t0, dcs: 0x00, udh: concat8(1, 2, 1), ud: septets("€x")}).pdu(), 0)
	f.Add("0004", 5)
	f.Fuzz(func(t *testing.T, h string, n int) {
		tp, err := splitPDU(h, n)
		if err != nil {
			return
		}
		d, err := decodeDeliver(tp)
		if err != nil {
			return
		}
		if _, _, err := joinText([]*deliver{d, d}); err != nil {
			return
		}
	})
}
