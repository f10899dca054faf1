package modemsim

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.bug.st/serial"
)

// bootDone waits for the profile's last boot URC (or, for modules that say
// nothing, for the boot to complete).
func bootDone(t *testing.T, s *Sim, h *host) {
	t.Helper()
	switch s.prof.name {
	case "quectel":
		h.expect("APP RDY\r\n")
	case "simcom":
		h.expect("PB DONE\r\n")
	default:
		waitState(t, s, "boot", func(st State) bool { return st.BootDone })
	}
}

// TestPTYProfiles drives every command family of every profile through a
// real pty with a plain line-based client.
func TestPTYProfiles(t *testing.T) {
	for _, profile := range []string{"quectel", "simcom", "ublox", "generic"} {
		t.Run(profile, func(t *testing.T) {
			s := startSim(t, Options{Profile: profile})
			h := openHost(t, s.Link())
			bootDone(t, s, h)
			p := s.prof

			check := func(line string, want ...string) {
				t.Helper()
				if diff := cmp.Diff(want, h.cmd(line)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", line, diff)
				}
			}
			check("AT", "OK")
			check("ATE0", "OK")
			check("AT+CMEE=1", "OK")
			check("AT+CGMI", p.manufacturer, "OK")
			check("AT+CGSN", p.imei, "OK")
			check("AT"+p.iccidCmd, p.iccidPrefix+defaultICCID, "OK")
			check("AT+CEREG=2", "OK")
			check("AT+CEREG?", `+CEREG: 2,5,"1A2B","01A2D001",7`, "OK")
			check("AT+CMGF=0", "OK")
			check(`AT+CPMS="SM","SM","SM"`, "+CPMS: 0,30,0,30,0,30", "OK")
			check("AT+CNMI=2,1,0,0,0", "OK")

			// Receive, read, delete.
			idx, err := s.InjectSMS(SMS{Text: "hellohello", SentAt: scts})
			if err != nil {
				t.Fatal(err)
			}
			if got := h.line(); got != fmt.Sprintf(`+CMTI: "SM",%d`, idx[0]) {
				t.Errorf("indication %q", got)
			}
			check(fmt.Sprintf("AT+CMGR=%d", idx[0]), "+CMGR: 0,,24", helloPDU, "OK")
			check("AT+CMGL=4", fmt.Sprintf("+CMGL: %d,1,,24", idx[0]), helloPDU, "OK")
			check(fmt.Sprintf("AT+CMGD=%d", idx[0]), "OK")
			check(fmt.Sprintf("AT+CMGR=%d", idx[0]), "+CMS ERROR: 321")

			// Send: the prompt is exactly "\r\n> " with nothing after it.
			pdu, n := submitHex(t, []byte("reply 😀"))
			h.send(fmt.Sprintf("AT+CMGS=%d\r", n))
			if got := h.readN(4); string(got) != "\r\n> " {
				t.Fatalf("prompt %q", got)
			}
			h.send(pdu + "\x1a")
			if got := h.line(); got != "+CMGS: 0" {
				t.Errorf("send result %q", got)
			}
			if got := h.line(); got != "OK" {
				t.Errorf("final %q", got)
			}
			if sent := s.State().SentSMS; len(sent) != 1 || sent[0].Text != "reply 😀" {
				t.Errorf("sent %+v", sent)
			}

			// Registration URC through the pty.
			s.SetRegistration(1)
			if got := h.line(); got != `+CEREG: 1,"1A2B","01A2D001",7` {
				t.Errorf("URC %q", got)
			}

			if sockets := ptySockets[profile]; sockets != nil {
				sockets(t, s, h)
			}
		})
	}
}

// ptySockets drive each profile's UDP socket commands with a binary
// payload in both directions.
var ptySockets = map[string]func(t *testing.T, s *Sim, h *host){
	"quectel": func(t *testing.T, s *Sim, h *host) {
		p := binaryPayload()
		cmd(t, h, "AT+QIACT=1", "OK")
		cmd(t, h, `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`, "OK")
		if got := h.line(); got != "+QIOPEN: 0,0" {
			t.Fatalf("open result %q", got)
		}
		if err := s.InjectUDP(cloud, 6969, p); err != nil {
			t.Fatal(err)
		}
		if got := h.line(); got != `+QIURC: "recv",0` {
			t.Fatalf("URC %q", got)
		}
		h.send("AT+QIRD=0,1500\r")
		h.expect(fmt.Sprintf("+QIRD: %d,\"100.64.0.1\",6969\r\n", len(p)))
		if got := h.readN(len(p)); !bytes.Equal(got, p) {
			t.Errorf("read %q, want %q", got, p)
		}
		if got := h.readN(8); string(got) != "\r\n\r\nOK\r\n" {
			t.Errorf("after data %q", got)
		}
		h.send(fmt.Sprintf("AT+QISEND=0,%d,\"100.64.0.1\",6969\r", len(p)))
		h.expect("\r\n> ")
		h.send(string(p))
		if got := h.line(); got != "SEND OK" {
			t.Errorf("send %q", got)
		}
		checkSent(t, s, p)
	},
	"simcom": func(t *testing.T, s *Sim, h *host) {
		p := binaryPayload()
		cmd(t, h, "AT+NETOPEN", "OK")
		if got := h.line(); got != "+NETOPEN: 0" {
			t.Fatalf("netopen %q", got)
		}
		cmd(t, h, `AT+CIPOPEN=0,"UDP",,,6969`, "+CIPOPEN: 0,0", "OK")
		if err := s.InjectUDP(cloud, 6969, p); err != nil {
			t.Fatal(err)
		}
		h.expect(fmt.Sprintf("RECV FROM:100.64.0.1:6969\r\n+RECEIVE,0,%d\r\n", len(p)))
		if got := h.readN(len(p)); !bytes.Equal(got, p) {
			t.Errorf("read %q, want %q", got, p)
		}
		h.send(fmt.Sprintf("AT+CIPSEND=0,%d,\"100.64.0.1\",6969\r", len(p)))
		h.expect("\r\n>")
		h.send(string(p))
		if got := h.line(); got != "OK" {
			t.Errorf("send %q", got)
		}
		if got := h.line(); got != fmt.Sprintf("+CIPSEND: 0,%d,%d", len(p), len(p)) {
			t.Errorf("send report %q", got)
		}
		checkSent(t, s, p)
	},
	"ublox": func(t *testing.T, s *Sim, h *host) {
		p := binaryPayload()
		cmd(t, h, "AT+USOCR=17,6969", "+USOCR: 0", "OK")
		if err := s.InjectUDP(cloud, 6969, p); err != nil {
			t.Fatal(err)
		}
		if got := h.line(); got != fmt.Sprintf("+UUSORF: 0,%d", len(p)) {
			t.Fatalf("URC %q", got)
		}
		h.send("AT+USORF=0,1024\r")
		h.expect(fmt.Sprintf("+USORF: 0,\"100.64.0.1\",6969,%d,\"", len(p)))
		if got := h.readN(len(p)); !bytes.Equal(got, p) {
			t.Errorf("read %q, want %q", got, p)
		}
		if got := h.readN(9); string(got) != "\"\r\n\r\nOK\r\n" {
			t.Errorf("after data %q", got)
		}
		h.send(fmt.Sprintf("AT+USOST=0,\"100.64.0.1\",6969,%d\r", len(p)))
		h.expect("\r\n@")
		h.send(string(p))
		if got := h.line(); got != fmt.Sprintf("+USOST: 0,%d", len(p)) {
			t.Errorf("send %q", got)
		}
		h.expect("OK\r\n")
		checkSent(t, s, p)
	},
}

func cmd(t *testing.T, h *host, line string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, h.cmd(line)); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", line, diff)
	}
}

func checkSent(t *testing.T, s *Sim, p []byte) {
	t.Helper()
	sent := s.State().SentUDP
	if len(sent) != 1 || !bytes.Equal(sent[0].Data, p) || sent[0].To != cloud {
		t.Errorf("sent %+v", sent)
	}
}

// TestBootURCs checks the exact boot sequence of each talkative profile.
func TestBootURCs(t *testing.T) {
	for _, tt := range []struct{ profile, want string }{
		{"quectel", "\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n\r\nAPP RDY\r\n"},
		{"simcom", "\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			s := startSim(t, Options{Profile: tt.profile, BootDelay: time.Millisecond})
			h := openHost(t, s.Link())
			waitState(t, s, "boot", func(st State) bool { return st.BootDone })
			if diff := cmp.Diff(tt.want, string(h.readN(len(tt.want)))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestSerialLibrary opens the link with go.bug.st/serial exactly as the
// gateway does.
func TestSerialLibrary(t *testing.T) {
	s := startSim(t, Options{})
	waitState(t, s, "boot", func(st State) bool { return st.BootDone })
	port, err := serial.Open(s.Link(), &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("serial.Open: %v", err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := port.Write([]byte("ATI\r")); err != nil {
		t.Fatal(err)
	}
	var got []byte
	deadline := time.Now().Add(wait)
	for !bytes.HasSuffix(got, []byte("\r\nOK\r\n")) && time.Now().Before(deadline) {
		b := make([]byte, 256)
		n, err := port.Read(b)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, b[:n]...)
	}
	if i := bytes.Index(got, []byte("ATI\r")); i >= 0 {
		got = got[i:] // boot URCs came first
	}
	want := "ATI\r\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestReopen closes the port and opens it again: the simulator holds its
// own slave fd, so the link survives the host closing it.
func TestReopen(t *testing.T) {
	s := startSim(t, Options{})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	h.close()
	h2 := openHost(t, s.Link())
	cmd(t, h2, "AT+CSQ", "+CSQ: 17,99", "OK")
}

// TestUnplug checks USB re-enumeration: the host's reads fail, the link
// path disappears, then comes back as a freshly booted module.
func TestUnplug(t *testing.T) {
	s := startSim(t, Options{})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	before, err := os.Readlink(s.Link())
	if err != nil {
		t.Fatal(err)
	}
	s.Unplug(time.Hour)
	if err := h.readErr(); err == nil {
		t.Fatal("no read error")
	}
	if _, err := os.Lstat(s.Link()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link still there while unplugged: %v", err)
	}
	if st := s.State(); st.Plugged || st.Booted {
		t.Errorf("unplugged module: plugged %v booted %v", st.Plugged, st.Booted)
	}
	// A second unplug while gone replaces the first one's return time.
	s.Unplug(50 * time.Millisecond)
	st := waitState(t, s, "replug", func(st State) bool { return st.Plugged })
	if st.Counters[CounterUnplugs] != 2 {
		t.Errorf("unplugs %d", st.Counters[CounterUnplugs])
	}
	after, err := os.Readlink(s.Link())
	if err != nil {
		t.Fatal(err)
	}
	h2 := openHost(t, s.Link())
	h2.expect("APP RDY\r\n")
	// Echo is back on after the reboot.
	h2.send("AT\r")
	h2.expect("AT\r\r\nOK\r\n")
	t.Logf("pty before %s, after %s", before, after)
}

// TestResetDrops checks AT+CFUN=1,1 and the u-blox AT+CFUN=15: OK, the
// link drops and returns, boot URCs follow.
func TestResetDrops(t *testing.T) {
	for _, tt := range []struct{ profile, cmd, last string }{
		{"quectel", "AT+CFUN=1,1", "APP RDY\r\n"},
		{"simcom", "AT+CFUN=1,1", "PB DONE\r\n"},
		{"simcom", "AT+CRESET", "PB DONE\r\n"},
		{"ublox", "AT+CFUN=15", ""},
	} {
		t.Run(tt.profile, func(t *testing.T) {
			s := startSim(t, Options{Profile: tt.profile, ResetDrop: 50 * time.Millisecond})
			h := openHost(t, s.Link())
			bootDone(t, s, h)
			cmd(t, h, "ATE0", "OK")
			cmd(t, h, tt.cmd, "OK")
			if err := h.readErr(); err == nil {
				t.Fatal("link did not drop")
			}
			waitState(t, s, "replug", func(st State) bool { return st.Plugged && st.Counters[CounterResets] == 1 })
			h2 := openHost(t, s.Link())
			bootDone(t, s, h2)
			h2.send("AT\r")
			h2.expect("AT\r\r\nOK\r\n")
		})
	}
}

// TestResetWithoutDrop is a module on a UART: no re-enumeration, the
// boot URCs come on the same port.
func TestResetWithoutDrop(t *testing.T) {
	s := startSim(t, Options{ResetDrop: -1})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	s.Reset()
	h.expect("RDY\r\n")
	h.expect("APP RDY\r\n")
	h.send("AT\r")
	h.expect("AT\r\r\nOK\r\n")
}

// TestHang sends a command the hung module drops; after the hang the
// module answers the next one, and only that one.
func TestHang(t *testing.T) {
	s := startSim(t, Options{})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	s.Hang(time.Hour)
	h.send("AT+CGMI\r")
	waitState(t, s, "input dropped", func(st State) bool { return st.Counters[CounterDiscarded] > 0 })
	if _, err := s.InjectSMS(SMS{Text: "lost indication"}); err != nil {
		t.Fatal(err)
	}
	s.Hang(0)
	h.send("AT+CSQ\r")
	got := h.expect("OK\r\n")
	if diff := cmp.Diff("\r\n+CSQ: 17,99\r\n\r\nOK\r\n", got); diff != "" {
		t.Errorf("after hang (-want +got):\n%s", diff)
	}
}

// TestGarbageChunksNoise turns on every line fault and checks the host
// still gets intact replies once it skips junk and URCs.
func TestGarbageChunksNoise(t *testing.T) {
	s := startSim(t, Options{})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	s.Garbage([]byte{0, 0, 0xff, 0xfe, '\r'})
	if got := h.readN(5); !bytes.Equal(got, []byte{0, 0, 0xff, 0xfe, '\r'}) {
		t.Errorf("garbage %q", got)
	}
	s.SetFaults(Faults{Chunked: true, URCNoise: 0.5})
	for range 5 {
		var reply []string
		for _, l := range h.cmd("ATI") {
			if !isNoise(l) {
				reply = append(reply, l)
			}
		}
		if diff := cmp.Diff([]string{"Quectel", "BG96", "Revision: BG96MAR02A07M1G", "OK"}, reply); diff != "" {
			t.Errorf("ATI (-want +got):\n%s", diff)
		}
	}
	if s.State().Counters[CounterNoise] == 0 {
		t.Error("no noise URC in 5 replies at p=0.5") // (1/2)^20 chance
	}
}

// TestBootStorm checks repeated boots without a link drop: boot URC bursts
// and echo back on.
func TestBootStorm(t *testing.T) {
	s := startSim(t, Options{})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	s.BootStorm(3)
	for range 3 {
		h.expect("RDY\r\n")
		h.expect("APP RDY\r\n")
	}
	h.send("AT\r")
	h.expect("AT\r\r\nOK\r\n")
	if st := s.State(); st.Counters[CounterBoots] != 4 {
		t.Errorf("boots %d, want 4", st.Counters[CounterBoots])
	}
}

// TestBaudPacing checks that paced output cannot arrive faster than the
// line rate allows. It asserts a lower bound, which pacing guarantees on
// any machine, never an upper one.
func TestBaudPacing(t *testing.T) {
	const baud = 9600
	s := startSim(t, Options{Baud: baud})
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")
	payload := strings.Repeat("x", 600)
	start := time.Now()
	s.Garbage([]byte(payload))
	h.readN(len(payload))
	elapsed := time.Since(start)
	min := time.Duration(len(payload)) * 10 * time.Second / baud
	if elapsed < min*9/10 {
		t.Errorf("%d bytes at %d baud took %v, the line needs at least %v", len(payload), baud, elapsed, min)
	}
	t.Logf("%d bytes at %d baud: %v (line time %v)", len(payload), baud, elapsed, min)
}

// TestLinkPathSafety refuses to replace a file that is not a symlink.
func TestLinkPathSafety(t *testing.T) {
	p := filepath.Join(t.TempDir(), "modem")
	if err := os.WriteFile(p, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Start(Options{Link: p}); err == nil {
		s.Close()
		t.Fatal("Start replaced a regular file")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "mine" {
		t.Errorf("file changed: %q %v", b, err)
	}
	if _, err := Start(Options{}); err == nil {
		t.Error("Start without Link accepted")
	}
	if _, err := Start(Options{Link: p + "2", Profile: "nokia"}); err == nil {
		t.Error("unknown profile accepted")
	}
}

// TestCloseRemovesEverything checks that Close leaves no link or socket.
func TestCloseRemovesEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(Options{Link: filepath.Join(dir, "modem"), Control: filepath.Join(dir, "ctl")})
	if err != nil {
		t.Fatal(err)
	}
	h := openHost(t, s.Link())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.readErr(); err == nil {
		t.Error("host read did not fail")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// BenchmarkPTYRoundTrip measures one AT command and its reply through the
// pty, unpaced and at 115200 baud (8N1 in both directions).
func BenchmarkPTYRoundTrip(b *testing.B) {
	for _, baud := range []int{0, 115200} {
		b.Run(fmt.Sprintf("baud=%d", baud), func(b *testing.B) {
			s, err := Start(Options{Link: filepath.Join(b.TempDir(), "modem"), Baud: baud, BootDelay: time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := waitBoot(s); err != nil {
				b.Fatal(err)
			}
			f, err := os.OpenFile(s.Link(), os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 256)
			var got []byte
			roundTrip := func() {
				if _, err := f.Write([]byte("AT+CSQ\r")); err != nil {
					b.Fatal(err)
				}
				for !bytes.HasSuffix(got, []byte("OK\r\n")) {
					n, err := f.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got = append(got, buf[:n]...)
				}
				got = got[:0]
			}
			roundTrip() // boot URCs and echo out of the way
			b.ResetTimer()
			for range b.N {
				roundTrip()
			}
		})
	}
}
