package modemsim

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// What ModemManager asks while it probes and enables a module, answered as
// a module with a Super SIM does.
func TestManagerCommands(t *testing.T) {
	e := newEngine(t, Options{Profile: "quectel", ICCID: "89883070000012345672", IMSI: "732123200004178"})
	e.quiet("ATE0", "AT+CMEE=1")
	for _, tt := range []struct{ cmd, want string }{
		{"AT+CRSM=176,12258,0,0,10", "\r\n+CRSM: 144,0,\"98880307000021436527\"\r\n\r\nOK\r\n"},
		{"AT+CRSM=176,28589,0,0,4", "\r\n+CRSM: 144,0,\"00000003\"\r\n\r\nOK\r\n"},
		{"AT+CRSM=176,28478,0,0,0", "\r\n+CRSM: 106,130\r\n\r\nOK\r\n"},
		{"AT+CRSM=242,0,0,0,0", "\r\n+CRSM: 109,0\r\n\r\nOK\r\n"},
		{"AT+CSIM=10,\"0020000100\"", "\r\n+CME ERROR: 4\r\n"},
		{"AT+CPOL?", "\r\nOK\r\n"},
		{"AT+CPOL=,2", "\r\nOK\r\n"},
		{"AT+CPLS=0", "\r\nOK\r\n"},
		{"AT+CNUM", "\r\nOK\r\n"},
		{"AT+CLCK=?", "\r\n+CLCK: (\"SC\",\"FD\",\"PN\",\"PU\",\"PP\",\"PC\",\"PF\",\"AO\",\"OI\",\"OX\",\"AI\",\"IR\",\"AB\",\"AG\",\"AC\")\r\n\r\nOK\r\n"},
		{"AT+CLCK=\"SC\",2", "\r\n+CLCK: 0\r\n\r\nOK\r\n"},
		{"AT+CUSD=?", "\r\n+CUSD: (0-2)\r\n\r\nOK\r\n"},
		{"AT+CTZU=?", "\r\n+CTZU: (0,1)\r\n\r\nOK\r\n"},
		{"AT+WS46=?", "\r\n+WS46: (12,28,30)\r\n\r\nOK\r\n"},
		{"AT+CLIP=1", "\r\nOK\r\n"},
		{"AT+CLCC=?", "\r\nOK\r\n"},
		{"AT+COPS=3,2", "\r\nOK\r\n"},
		{"AT+COPS?", "\r\n+COPS: 0,2,\"90140\",7\r\n\r\nOK\r\n"},
		{"AT+COPS=3,0", "\r\nOK\r\n"},
		{"AT+COPS?", "\r\n+COPS: 0,0,\"Super Network\",7\r\n\r\nOK\r\n"},
	} {
		if diff := cmp.Diff(tt.want, e.at(tt.cmd)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.cmd, diff)
		}
	}
}

// With DeliveryGap the network hands over one segment at a time: a 3-part
// SMS is on the SIM part by part, each with its own +CMTI.
func TestDeliveryGap(t *testing.T) {
	s := startSim(t, Options{Profile: "quectel", DeliveryGap: 100 * time.Millisecond})
	if _, err := waitBoot(s); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InjectSMS(SMS{Text: strings.Repeat("x", 400), Parts: 3}); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); len(st.Stored) != 1 || st.NetworkQueue != 2 {
		t.Fatalf("right after the injection: %d stored, %d held by the network; want 1 and 2", len(st.Stored), st.NetworkQueue)
	}
	// A single SMS injected now waits for its turn behind them.
	if _, err := s.InjectSMS(SMS{Text: "after"}); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); len(st.Stored) != 1 || st.NetworkQueue != 3 {
		t.Fatalf("after a second injection: %d stored, %d held by the network; want 1 and 3", len(st.Stored), st.NetworkQueue)
	}
	waitState(t, s, "every part stored", func(st State) bool { return len(st.Stored) == 4 && st.NetworkQueue == 0 })
	// And one injected after the last delivery still keeps the gap.
	if _, err := s.InjectSMS(SMS{Text: "one"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InjectSMS(SMS{Text: "two"}); err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.NetworkQueue < 1 {
		t.Errorf("two single SMS injected at once were both delivered at once: %d stored, %d held", len(st.Stored), st.NetworkQueue)
	}
	waitState(t, s, "every SMS stored", func(st State) bool { return len(st.Stored) == 6 && st.NetworkQueue == 0 })
}

// The AT port on a UNIX socket is the same port as the pty: commands work,
// and a second host is turned away while one is connected.
func TestListenUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "at.sock")
	s := startSim(t, Options{Profile: "quectel", Listen: sock})
	if _, err := waitBoot(s); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("ATE0\r")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, r, "OK")
	if _, err := c.Write([]byte("AT+CGMM\r")); err != nil {
		t.Fatal(err)
	}
	if got := readUntil(t, r, "OK"); !strings.Contains(got, "BG96") {
		t.Errorf("AT+CGMM over the socket: %q", got)
	}
	second, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Errorf("a second connection read %d bytes; want it closed", n)
	}
	// Unplugged, the port vanishes: the host's socket closes.
	s.Unplug(time.Hour)
	if _, err := r.ReadString('\n'); err == nil {
		for {
			if _, err := r.ReadString('\n'); err != nil {
				break
			}
		}
	}
}

// readUntil reads lines until one equals final and returns all of them.
func readUntil(t *testing.T, r *bufio.Reader, final string) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("reading until %q: %v (got %q)", final, err, b.String())
		}
		if strings.TrimSpace(line) == final {
			return b.String()
		}
	}
}
