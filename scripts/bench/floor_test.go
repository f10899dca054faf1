package main

import (
	"testing"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

func TestTPDULen(t *testing.T) {
	tests := []struct {
		pdu     string
		want    int
		wantErr bool
	}{
		{"07914477009021F3" + "040381000000", 6, false}, // 8 octets of SMSC, 6 of TPDU
		{"00" + "0403810000", 5, false},                 // no SMSC
		{"", 0, true},
		{"0", 0, true},
		{"ZZ00", 0, true},
		{"0791447700", 0, true},
	}
	for _, tt := range tests {
		got, err := tpduLen(tt.pdu)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("tpduLen(%q) = %d, %v; want %d, error %v", tt.pdu, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLineBytes(t *testing.T) {
	s := modemsim.StoredSMS{Index: 3, PDU: "00" + "0403810000"}
	got, err := indicatedBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	// "\r\n+CMTI: \"SM\",3\r\n" 17 + "\r\n+CMGR: 0,,5\r\n" 15 + 12 + "\r\n\r\nOK\r\n" 8 + "\r\nOK\r\n" 6
	if want := 17 + 15 + 12 + 8 + 6; got != want {
		t.Errorf("indicatedBytes = %d, want %d", got, want)
	}
	got, err = listedBytes([]modemsim.StoredSMS{s, s})
	if err != nil {
		t.Fatal(err)
	}
	// final OK 6 + 2 * ("\r\n+CMGL: 3,0,,5\r\n" 17 + 12 + CMGD OK 6)
	if want := 6 + 2*(17+12+6); got != want {
		t.Errorf("listedBytes = %d, want %d", got, want)
	}
	if _, err := listedBytes([]modemsim.StoredSMS{{PDU: "x"}}); err == nil {
		t.Error("listedBytes accepted a bad PDU")
	}
	if d := lineTime(11520, 115200); d != time.Second {
		t.Errorf("lineTime(11520, 115200) = %s, want 1s", d)
	}
}

func FuzzTPDULen(f *testing.F) {
	f.Add("07914477009021F3040381000000")
	f.Add("FF00")
	f.Fuzz(func(t *testing.T, pdu string) {
		if n, err := tpduLen(pdu); err == nil && (n <= 0 || n > len(pdu)/2) {
			t.Errorf("tpduLen(%q) = %d", pdu, n)
		}
	})
}
