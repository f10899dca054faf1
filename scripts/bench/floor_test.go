package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
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
	// "\r\n+CMTI: \"SM\",3\r\n" 17 + "AT+CMGL=4\r" 10
	// + "\r\n" 2 + "+CMGL: 3,0,,5\r\n" 15 + PDU 12 + "\r\n" 2 + "\r\nOK\r\n" 6
	// + the deletion's "\r\nOK\r\n" 6
	if want := 17 + 10 + 2 + 15 + 12 + 2 + 6 + 6; got != want {
		t.Errorf("indicatedBytes = %d, want %d", got, want)
	}
	toLast, all, err := burstBytes([]modemsim.StoredSMS{s, s})
	if err != nil {
		t.Fatal(err)
	}
	// "AT+CMGL=4\r" 10 + "\r\n" 2 + 2 * (15 + 12 + 2) + OK 6
	if want := 10 + 2 + 2*(15+12+2) + 6; toLast != want {
		t.Errorf("burstBytes to the last = %d, want %d", toLast, want)
	}
	// + 2 * ("AT+CMGD=3\r" 10 + OK 6)
	if want := 10 + 2 + 2*(15+12+2) + 6 + 2*(10+6); all != want {
		t.Errorf("burstBytes with the deletions = %d, want %d", all, want)
	}
	if _, _, err := burstBytes([]modemsim.StoredSMS{{PDU: "x"}}); err == nil {
		t.Error("burstBytes accepted a bad PDU")
	}
	if _, err := indicatedBytes(modemsim.StoredSMS{PDU: "x"}); err == nil {
		t.Error("indicatedBytes accepted a bad PDU")
	}
	if d := lineTime(11520, 115200); d != time.Second {
		t.Errorf("lineTime(11520, 115200) = %s, want 1s", d)
	}
}

// TestFloorMatchesModemsim counts what modemsim really writes for one SMS
// announced, listed and deleted, and what the host writes to it, against
// the floor's estimates.
func TestFloorMatchesModemsim(t *testing.T) {
	link := filepath.Join(t.TempDir(), "modem")
	sim, err := modemsim.Start(modemsim.Options{Link: link})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := waitBooted(sim, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	port, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	chunks := make(chan []byte, 64)
	go func() {
		for {
			b := make([]byte, 512)
			n, err := port.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				close(chunks)
				return
			}
		}
	}()
	var got []byte
	// until reads until got ends with end, and returns and clears it.
	until := func(end string) []byte {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !bytes.HasSuffix(got, []byte(end)) {
			select {
			case b, ok := <-chunks:
				if !ok {
					t.Fatalf("port closed; read %q", got)
				}
				got = append(got, b...)
			case <-deadline:
				t.Fatalf("no %q; read %q", end, got)
			}
		}
		out := got
		got = nil
		return out
	}
	command := func(line string) []byte {
		t.Helper()
		if _, err := port.Write([]byte(line + "\r")); err != nil {
			t.Fatal(err)
		}
		return until("OK\r\n")
	}
	// Boot URCs and the echo of ATE0 go; then PDU mode, +CMTI on.
	command("ATE0")
	for _, c := range []string{"AT+CMGF=0", "AT+CNMI=2,1,0,0,0"} {
		if r := command(c); string(r) != "\r\nOK\r\n" {
			t.Fatalf("%s answered %q", c, r)
		}
	}
	if _, err := sim.InjectSMS(modemsim.SMS{Text: smsText(marker("floor", 0))}); err != nil {
		t.Fatal(err)
	}
	cmti := until("\r\n")
	for !bytes.Contains(cmti, []byte("+CMTI:")) {
		cmti = append(cmti, until("\r\n")...)
	}
	st := sim.State().Stored
	if len(st) != 1 {
		t.Fatalf("%d SMS stored, want 1", len(st))
	}
	list := command("AT+CMGL=4")
	del := command(fmt.Sprintf("AT+CMGD=%d", st[0].Index))
	wantList, err := listingBytes(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != wantList {
		t.Errorf("listing is %d bytes (%q), listingBytes says %d", len(list), list, wantList)
	}
	want, err := indicatedBytes(st[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cmti) + len("AT+CMGL=4\r") + len(list) + len(del); n != want {
		t.Errorf("the line carried %d bytes (+CMTI %q, listing %q, deletion %q), indicatedBytes says %d", n, cmti, list, del, want)
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
