package modem

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
	"github.com/warthog618/sms/encoding/tpdu"
)

// buildReport is an SMS-STATUS-REPORT TPDU as a network sends it.
func buildReport(t testing.TB, mr int, to string, st byte) []byte {
	t.Helper()
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	tp := tpdu.TPDU{Direction: tpdu.MT, FirstOctet: 0x06, MR: byte(mr), RA: tpdu.Address{TOA: 0x81, Addr: to},
		SCTS: tpdu.Timestamp{Time: now}, DT: tpdu.Timestamp{Time: now.Add(time.Minute)}, ST: st}
	b, err := tp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeStatusReport(t *testing.T) {
	tests := []struct {
		st        byte
		delivered bool
		final     bool
		err       string
	}{
		{0x00, true, true, ""},
		{0x01, true, true, ""},
		{0x21, false, false, "recipient busy"},
		{0x41, false, true, "incompatible destination"},
		{0x46, false, true, "validity period expired"},
		{0x62, false, true, "no response"},
		{0x5A, false, true, "permanent error"},
	}
	for _, tt := range tests {
		r, err := decodeStatusReport(buildReport(t, 42, "000", tt.st))
		if err != nil {
			t.Errorf("TP-ST %#02x: %v", tt.st, err)
			continue
		}
		if r.Reference != 42 || r.Recipient != "000" || r.Status != int(tt.st) || r.Delivered != tt.delivered || r.Final() != tt.final {
			t.Errorf("TP-ST %#02x: %+v (final %v)", tt.st, r, r.Final())
		}
		if !strings.Contains(r.Error, tt.err) || (tt.delivered && r.Error != "") {
			t.Errorf("TP-ST %#02x: error %q, want %q", tt.st, r.Error, tt.err)
		}
		if !r.DischargedAt.Equal(time.Date(2026, 12, 1, 18, 1, 0, 0, time.UTC)) {
			t.Errorf("discharge time %v", r.DischargedAt)
		}
	}
	for _, bad := range [][]byte{nil, {0x04}, {0x06}, {0x06, 1, 3, 0x81}, buildReport(t, 1, "000", 0)[:12]} {
		if r, err := decodeStatusReport(bad); err == nil {
			t.Errorf("decodeStatusReport(%x) = %+v, want an error", bad, r)
		}
	}
}

func TestParseCDS(t *testing.T) {
	tp := buildReport(t, 7, "000", 0)
	// An SMSC address in front, as modules send it.
	pdu := "0791447709001032" + strings.ToUpper(hex.EncodeToString(tp))
	r, err := parseCDS(at.URC{Line: "+CDS: " + strconv.Itoa(len(tp)), Extra: []string{pdu}})
	if err != nil || r.Reference != 7 || !r.Delivered {
		t.Errorf("parseCDS = %+v, %v", r, err)
	}
	for _, u := range []at.URC{
		{Line: "+CDS: 25"},
		{Line: "+CDS: x", Extra: []string{pdu}},
		{Line: "+CDS: 3", Extra: []string{pdu}},
		{Line: "+CDS: " + strconv.Itoa(len(tp)), Extra: []string{"zz"}},
	} {
		if _, err := parseCDS(u); err == nil {
			t.Errorf("parseCDS(%+v) accepted", u)
		}
	}
}

func TestEncodeSubmitSRR(t *testing.T) {
	for _, srr := range []bool{false, true} {
		tp, err := encodeSubmit("000", []byte("hi"), gw.AlphabetGSM7, srr)
		if err != nil {
			t.Fatal(err)
		}
		if got := tp[0]&byte(tpdu.FoSRR) != 0; got != srr {
			t.Errorf("srr %v: first octet %#02x", srr, tp[0])
		}
		if tp[0]&0x03 != 0x01 {
			t.Errorf("first octet %#02x is not an SMS-SUBMIT", tp[0])
		}
	}
}

// FuzzStatusReport feeds the status report decoders arbitrary bytes: they
// return an error or a report with a one-byte reference and status, and
// never panic.
func FuzzStatusReport(f *testing.F) {
	f.Add(buildReport(f, 0, "000", 0), "+CDS: 25")
	f.Add(buildReport(f, 255, "447700900123", 0x46), "+CDS: 0")
	f.Add([]byte{0x06, 0x01}, "+CDS: ,2")
	f.Add([]byte{}, "+CDS:")
	f.Fuzz(func(t *testing.T, tp []byte, line string) {
		if r, err := decodeStatusReport(tp); err == nil {
			if r.Reference < 0 || r.Reference > 255 || r.Status < 0 || r.Status > 255 {
				t.Fatalf("report %+v out of range", r)
			}
			if r.Delivered == (r.Error != "") {
				t.Fatalf("report %+v: delivered and error disagree", r)
			}
		}
		pdu := "00" + hex.EncodeToString(tp)
		parseCDS(at.URC{Line: line, Extra: []string{pdu}})
		parseCDS(at.URC{Line: "+CDS: " + strconv.Itoa(len(tp)), Extra: []string{pdu}})
		e := newEntry(1, 0, len(tp), pdu)
		e.statusReport()
	})
}
