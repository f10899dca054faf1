package modem

// Hardware-in-loop tests of the SIM7080G and SARA-R5 beyond what
// TestHILIPCommands covers for every profile: a reset in the middle of
// traffic, and the SIM7080's client socket (firmware without AT+CASERVER).

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
)

// The module resets while datagrams and SMS flow: the session sees the
// boot URCs ("SMS Ready" and echo back on for the SIM7080), initialises the
// module again, re-opens the data session and socket, and traffic resumes;
// nothing delivered before the reset is delivered twice.
func TestHILModuleResetMidTraffic(t *testing.T) {
	for _, profile := range []string{"sim7080", "sara-r5", "quectel", "simcom", "ublox"} {
		t.Run(profile, func(t *testing.T) {
			sim := startSim(t, modemsim.Options{Profile: profile})
			h := runHIL(t, sim, ipModem(nil))
			h.ready()
			h.dataUp()
			if m := sim.State().RadioMode; profile == "sim7080" && m != [2]int{38, 1} {
				t.Errorf("AT+CNMP/AT+CMNB = %v, want Cat-M only (38, 1)", m)
			}
			n := 0
			for i := range 3 {
				h.injectUDP("100.64.0.1:6969", []byte(fmt.Sprintf("before %d", i)))
				n++
				if err := h.s.SendUDP(context.Background(), []byte(fmt.Sprintf("out before %d", i))); err != nil {
					t.Fatalf("SendUDP: %v", err)
				}
			}
			h.messages(n)
			sent := len(sim.State().SentUDP)
			// An SMS arrives while the module boots: only the drain after
			// the boot (SMS DONE, SMS Ready) can find it.
			sim.Reset()
			h.inject(modemsim.SMS{Text: "sms during boot"})
			n++
			h.event(gw.EventDataDown)
			err := h.s.SendUDP(context.Background(), []byte("while down"))
			if err != nil && !strings.Contains(err.Error(), "down") && !strings.Contains(err.Error(), "modem") {
				t.Errorf("SendUDP during the reset = %v, want a clear error", err)
			}
			h.event(gw.EventModemConnected)
			h.dataUp()
			if st := sim.State(); st.Echo {
				t.Errorf("echo is on after the reset: the module was not initialised again")
			}
			for i := range 3 {
				h.injectUDP("100.64.0.1:6969", []byte(fmt.Sprintf("after %d", i)))
				n++
				if err := h.s.SendUDP(context.Background(), []byte(fmt.Sprintf("out after %d", i))); err != nil {
					t.Fatalf("SendUDP after the reset: %v", err)
				}
			}
			got := h.messages(n)
			var payloads []string
			for _, m := range got {
				payloads = append(payloads, string(m.Payload))
			}
			// The SMS stored during the boot comes in any place after the
			// datagrams from before the reset.
			if i := slices.Index(payloads, "sms during boot"); i < 3 {
				t.Errorf("received %q: the SMS sent during the boot is missing or early", payloads)
			} else {
				payloads = slices.Delete(payloads, i, i+1)
			}
			want := []string{"before 0", "before 1", "before 2", "after 0", "after 1", "after 2"}
			if !slices.Equal(payloads, want) {
				t.Errorf("received %q, want %q", payloads, want)
			}
			out := sim.State().SentUDP
			var outs []string
			for _, d := range out[sent:] {
				if string(d.Data) != "while down" {
					outs = append(outs, string(d.Data))
				}
			}
			if !slices.Equal(outs, []string{"out after 0", "out after 1", "out after 2"}) {
				t.Errorf("sent after the reset %q", outs)
			}
			h.inject(modemsim.SMS{Text: "sms after reset"})
			if m := h.messages(n + 1)[n]; string(m.Payload) != "sms after reset" {
				t.Errorf("SMS after reset: %q", m.Payload)
			}
		})
	}
}

// Firmware without AT+CASERVER: the session opens a UDP socket to
// ip.cloud with AT+CAOPEN instead. Sends go to ip.cloud and replies to the
// socket's own port (the module's choice) are received.
func TestHILSIM7080Client(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "sim7080", SIM7080NoServer: true})
	h := runHIL(t, sim, ipModem(nil))
	h.ready()
	h.dataUp()
	socks := sim.State().Sockets
	if len(socks) != 1 {
		t.Fatalf("sockets = %+v", socks)
	}
	for _, p := range [][]byte{{0}, allBytes(), randomBytes(1300, 7)} {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := h.s.SendUDP(ctx, p)
		cancel()
		if err != nil {
			t.Fatalf("SendUDP(%d bytes): %v", len(p), err)
		}
	}
	st := sim.State().SentUDP
	if len(st) != 3 || st[2].To != cloud || !bytes.Equal(st[2].Data, randomBytes(1300, 7)) {
		t.Errorf("sent %+v", st)
	}
	if err := sim.InjectUDP(cloud, socks[0].Port, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if got := h.messages(1); string(got[0].Payload) != "reply" || got[0].From != cloud {
		t.Errorf("got %+v", got[0])
	}
	sim.CloseSocket(socks[0].ID)
	h.event(gw.EventDataDown)
	h.dataUp()
	if err := h.s.SendUDP(context.Background(), []byte("again")); err != nil {
		t.Errorf("SendUDP after the socket was re-opened: %v", err)
	}
}

// A SIM7080 is told from the SIM7600 and a SARA-R5 from the R4 by +CGMM.
func TestChooseProfileModules(t *testing.T) {
	tests := []struct {
		manufacturer, model, want string
		psd                       bool
	}{
		{"SIMCOM INCORPORATED", "SIMCOM_SIM7080G", "sim7080", false},
		{"SIMCOM INCORPORATED", "SIM7070G", "sim7080", false},
		{"SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "simcom", false},
		{"u-blox", "SARA-R510M8S", "ublox", true},
		{"u-blox", "SARA-R500S", "ublox", true},
		{"u-blox", "SARA-R410M-02B", "ublox", false},
	}
	for _, tt := range tests {
		p := chooseProfile("auto", tt.manufacturer, tt.model)
		if p.Name != tt.want {
			t.Errorf("%s %s: profile %q, want %q", tt.manufacturer, tt.model, p.Name, tt.want)
		}
		if u, ok := p.Sockets.(ubloxSockets); ok && u.PSD != tt.psd {
			t.Errorf("%s: PSD %v, want %v", tt.model, u.PSD, tt.psd)
		}
	}
	if p := chooseProfile("ublox", "u-blox", "SARA-R510M8S"); p.Sockets.(ubloxSockets).PSD != true {
		t.Errorf("a configured ublox profile on a SARA-R5 does not use its PSD profile")
	}
}

// A deactivation the network reports while the SIM7080's data session is
// in fact up makes the session tear it down and open it afresh. Its own
// AT+CNACT=0,0 is answered with "+APP PDP: 0,DEACTIVE" too; that echo of
// its own request must not start another round.
func TestHILSIM7080OwnDeactivation(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "sim7080"})
	h := runHIL(t, sim, ipModem(nil))
	h.ready()
	first := h.dataUp()
	sim.Garbage([]byte("\r\n+APP PDP: 0,DEACTIVE\r\n"))
	h.event(gw.EventDataDown)
	up := h.dataUp()
	if up.IP == first.IP {
		t.Fatalf("address %s unchanged: the data session was not opened afresh", up.IP)
	}
	for i := range 5 {
		h.injectUDP("100.64.0.1:6969", []byte(fmt.Sprintf("after %d", i)))
		h.messages(i + 1)
		if err := h.s.SendUDP(context.Background(), []byte("out")); err != nil {
			t.Fatalf("SendUDP: %v", err)
		}
	}
	if d := h.s.Status().Data; d.State != DataUp || d.IP != up.IP || sim.State().IP != up.IP {
		t.Errorf("data %+v, module address %s: the session was torn down again (want it up at %s)", d, sim.State().IP, up.IP)
	}
}

// BenchmarkHILModuleUDP measures one 100-byte IP Command each way on the
// SIM7080 (+CADATAIND, AT+CARECV until "+CARECV: 0"; AT+CASEND) and the
// SARA-R5 (+UUSORF, AT+USORF; AT+USOST) over a pty paced at 115200 baud.
func BenchmarkHILModuleUDP(b *testing.B) {
	for _, profile := range []string{"sim7080", "sara-r5"} {
		b.Run(profile+"/receive", func(b *testing.B) {
			sim, _, sink, ctx := benchIPProfile(b, profile, nil)
			payload := randomBytes(100, 9)
			n := 0
			for b.Loop() {
				payload[0], payload[1] = byte(n), byte(n>>8)
				if err := sim.InjectUDP(cloud, 6969, payload); err != nil {
					b.Fatal(err)
				}
				n++
				wctx, wcancel := context.WithTimeout(ctx, wait)
				if _, err := sink.Wait(wctx, n); err != nil {
					b.Fatal(err)
				}
				wcancel()
			}
		})
		b.Run(profile+"/send", func(b *testing.B) {
			_, s, _, ctx := benchIPProfile(b, profile, nil)
			payload := randomBytes(100, 10)
			for b.Loop() {
				if err := s.SendUDP(ctx, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Config.SIM7080Socket forces the socket kind: "client" opens AT+CAOPEN
// although the firmware has AT+CASERVER; "server" on firmware without it
// fails to open, with the module's refusal in the event, rather than
// falling back.
func TestHILSIM7080SocketChoice(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		sim := startSim(t, modemsim.Options{Profile: "sim7080"})
		h := runHIL(t, sim, ipModem(func(c *Config) { c.SIM7080Socket = "client" }))
		h.ready()
		h.dataUp()
		socks := sim.State().Sockets
		if len(socks) != 1 || socks[0].Port == 6969 {
			t.Fatalf("sockets %+v, want one client socket on a port of the module's choice", socks)
		}
		if err := h.s.SendUDP(context.Background(), []byte("x")); err != nil {
			t.Errorf("SendUDP: %v", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		sim := startSim(t, modemsim.Options{Profile: "sim7080", SIM7080NoServer: true})
		h := runHIL(t, sim, ipModem(func(c *Config) { c.SIM7080Socket = "server" }))
		h.ready()
		e := h.event(gw.EventDataOpenFailed)
		if !strings.Contains(e.Message, "CASERVER") {
			t.Errorf("event %q does not name AT+CASERVER", e.Message)
		}
		if n := len(sim.State().Sockets); n != 0 {
			t.Errorf("%d sockets open, want none", n)
		}
	})
}
