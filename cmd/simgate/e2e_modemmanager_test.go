package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/simgate/simgate/modem/modemsim"
)

// The ModemManager backend against the real daemon: ModemManager in its
// test mode on a private session bus, driving modemsim's AT port over a
// UNIX socket (Test.SetProfile), and simgate run with modem.backend
// modemmanager. ModemManager and dbus-run-session come from the Debian
// packages modemmanager and dbus, which .ci/run installs.

const (
	modemManagerBin = "/usr/sbin/ModemManager"
	mmService       = "org.freedesktop.ModemManager1"
)

// mmBus is a private session bus started with dbus-run-session, and
// ModemManager on it, which the test may stop and start again.
type mmBus struct {
	t       *testing.T
	dir     string
	addr    string
	session *exec.Cmd
	mm      *exec.Cmd
	mmDone  chan struct{}
	mmLog   string
	conn    *dbus.Conn
	socket  string
	starts  int
}

// needModemManager skips where the packages cannot be installed.
func needModemManager(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(modemManagerBin); err != nil {
		t.Skipf("ModemManager is not installed (%v): install the Debian package modemmanager (.ci/run does)", err)
	}
	if _, err := exec.LookPath("dbus-run-session"); err != nil {
		t.Skipf("dbus-run-session is not installed (%v): install the Debian package dbus (.ci/run does)", err)
	}
}

// startBus starts dbus-run-session around a child that only publishes the
// bus address and waits; the bus lives until the test ends.
func startBus(t *testing.T, dir, socket string) *mmBus {
	t.Helper()
	b := &mmBus{t: t, dir: dir, socket: socket, mmLog: filepath.Join(dir, "ModemManager.log")}
	addrFile := filepath.Join(dir, "bus.addr")
	cmd := exec.Command("dbus-run-session", "--", "sh", "-c", `printf %s "$DBUS_SESSION_BUS_ADDRESS" > "$0.tmp" && mv "$0.tmp" "$0" && exec sleep 3600`, addrFile)
	cmd.SysProcAttr = childProcAttr()
	cmd.SysProcAttr.Setpgid = true
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-run-session: %v", err)
	}
	b.session = cmd
	t.Cleanup(func() {
		b.stopMM()
		if b.conn != nil {
			b.conn.Close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() || *showLogs {
			t.Logf("ModemManager log:\n%s", tail(b.mmLog, logLines()))
		}
	})
	if !waitUntil(e2eWait, func() bool { return fileExists(addrFile) }) {
		t.Fatal("dbus-run-session did not start a bus")
	}
	raw, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	b.addr = strings.TrimSpace(string(raw))
	conn, err := dbus.Connect(b.addr)
	if err != nil {
		t.Fatalf("connect to the test bus: %v", err)
	}
	b.conn = conn
	return b
}

// startMM starts ModemManager in test mode and points it at modemsim.
func (b *mmBus) startMM() {
	b.t.Helper()
	b.starts++
	lf, err := os.OpenFile(b.mmLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "==== test: ModemManager start %d at %s ====\n", b.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(modemManagerBin, "--test-session", "--test-enable", "--test-no-udev", "--no-auto-scan", "--debug")
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+b.addr)
	cmd.SysProcAttr = childProcAttr()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start ModemManager: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	b.mm, b.mmDone = cmd, done
	if !waitUntil(e2eWait, func() bool {
		var has bool
		err := b.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, mmService).Store(&has)
		return err == nil && has
	}) {
		b.t.Fatal("ModemManager did not take its name on the bus")
	}
	call := b.conn.Object(mmService, "/org/freedesktop/ModemManager1").Call(
		mmService+".Test.SetProfile", 0, "modemsim", "quectel", []string{b.socket})
	if call.Err != nil {
		b.t.Fatalf("Test.SetProfile: %v", call.Err)
	}
}

// stopMM stops ModemManager (SIGTERM), as systemctl restart does.
func (b *mmBus) stopMM() {
	if b.mm == nil {
		return
	}
	_ = b.mm.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.mmDone:
	case <-time.After(e2eWait):
		b.t.Errorf("ModemManager ignored SIGTERM; killing it")
		_ = b.mm.Process.Kill()
		<-b.mmDone
	}
	b.mm = nil
}

// mmLogLines returns ModemManager's log lines with s (its crashes and
// warnings are evidence of an implausible modem).
func (b *mmBus) mmLogLines(s string) []string {
	f, err := os.Open(b.mmLog)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestE2EModemManager runs the gateway with modem.backend modemmanager
// against the real ModemManager: status from ModemManager's view of the
// modem, SMS stored before start, the encodings, a 3-part message, a
// sender not allowed, ModemManager restarted in the middle of a burst of
// 20, and a send to 000 that reaches modemsim.
func TestE2EModemManager(t *testing.T) {
	needModemManager(t)
	sockDir, err := os.MkdirTemp("", "mm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "at.sock")
	const iccid = "89883070000098765438"
	r := newRig(t, rigOptions{
		Sim: modemsim.Options{
			Profile: "quectel", Listen: socket, ICCID: iccid,
			// One network transaction per segment, as a real network
			// delivers them: ModemManager 1.20 reads one +CMTI at a time
			// and drops one that arrives while it reads another.
			DeliveryGap: 300 * time.Millisecond,
		},
		Stopped:    true,
		ModemExtra: "  backend: modemmanager\n  modemmanager:\n    bus: session\n",
	})
	base := sentAtBase()
	var want []smsIn
	// Stored on the SIM before ModemManager or simgate run.
	stored := modemsim.SMS{From: "000", Text: "stored before start", Encoding: "gsm7", SentAt: base}
	r.inject(stored)
	want = append(want, wantText("000", stored.Text, 1, base))
	if !waitUntil(e2eWait, func() bool { return len(r.sim.State().Stored) == 1 }) {
		t.Fatalf("the SMS was not stored: %s", r.simSummary())
	}

	bus := startBus(t, r.dir, socket)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.addr)
	bus.startMM()
	r.start()
	st := r.waitReady()
	if st.Modem.Manufacturer != "Quectel" || st.Modem.Model != "BG96" || st.Modem.IMEI == "" {
		t.Errorf("status modem = %+v, want Quectel BG96 with its IMEI", st.Modem)
	}
	if !waitUntil(e2eWait, func() bool {
		for _, s := range r.obs.statuses() {
			if s.SIM.ICCID == iccid && s.Network.Technology != "" && s.Network.SignalDBm != nil {
				return true
			}
		}
		return false
	}) {
		t.Errorf("no status with the SIM's ICCID %s, a technology and a signal: %+v", iccid, r.obs.statuses())
	}

	t.Run("encodings and a 3-part message", func(t *testing.T) {
		msgs := []modemsim.SMS{
			{From: "000", Text: "GSM 7-bit with the extension table: {[~]} €|^\\", Encoding: "gsm7", SentAt: base.Add(1 * time.Second)},
			{From: "000", Text: "UCS-2: Grüße, 東京, emoji 🚀👍", Encoding: "ucs2", SentAt: base.Add(2 * time.Second)},
			{From: "000", Data: []byte{0x00, 0x01, 0xfe, 0xff, 0x7f, 0x80, 'o', 'k'}, Encoding: "8bit", SentAt: base.Add(3 * time.Second)},
			{From: "000", Text: "three parts, out of order: " + strings.Repeat("0123456789 [~] ", 24), Encoding: "gsm7",
				Parts: 3, Order: []int{2, 3, 1}, SentAt: base.Add(4 * time.Second)},
		}
		for _, m := range msgs {
			r.inject(m)
		}
		want = append(want,
			wantText("000", msgs[0].Text, 1, msgs[0].SentAt),
			wantText("000", msgs[1].Text, 1, msgs[1].SentAt),
			wantData("000", msgs[2].Data, msgs[2].SentAt),
			wantText("000", msgs[3].Text, 3, msgs[3].SentAt))
		r.waitSMS(want, false, e2eWait)
	})

	t.Run("sender not allowed", func(t *testing.T) {
		r.inject(modemsim.SMS{From: "+447700900999", Text: "not from Super SIM", Encoding: "gsm7", SentAt: base.Add(5 * time.Second)})
		if !waitUntil(e2eWait, func() bool { return hasEvent(r.obs.events(), "sms_sender_rejected") }) {
			t.Fatalf("no sms_sender_rejected event; events %v", eventTypes(r.obs.events()))
		}
		for _, ev := range r.obs.events() {
			if ev.Type == "sms_sender_rejected" && !strings.Contains(ev.Message, "+447700900999") {
				t.Errorf("rejection does not name the sender: %q", ev.Message)
			}
		}
		waitSIMEmpty(t, r)
		bus.waitNoSMS()
		r.waitSMS(want, false, time.Second)
	})

	t.Run("ModemManager restarted mid-burst", func(t *testing.T) {
		msgs, burstWant := burst("mm", 20, base.Add(10*time.Second))
		want = append(want, burstWant...)
		paced := func(ms []modemsim.SMS) {
			for _, m := range ms {
				r.inject(m)
				time.Sleep(250 * time.Millisecond)
			}
		}
		// The first third reaches ModemManager; the second arrives on the
		// SIM while it is stopped; the rest after it is back.
		paced(msgs[:7])
		bus.stopMM()
		paced(msgs[7:14])
		// Everything the network still holds reaches the SIM before
		// ModemManager starts listing it (see below).
		if !waitUntil(e2eWait, func() bool { return r.sim.State().NetworkQueue == 0 }) {
			t.Fatalf("the network did not deliver: %s", r.simSummary())
		}
		bus.startMM()
		// ModemManager 1.20 drops a +CMTI that arrives while it holds the
		// SMS storage (for most of its enable sequence, and while it
		// deletes): such an SMS stays on the SIM until it next enables the
		// modem. The network pauses until ModemManager has listed the SIM
		// and simgate has emptied it, so that the test checks simgate, not
		// that ModemManager limitation (see the README).
		if !waitUntil(e2eWait, func() bool {
			n := 0
			for _, ev := range r.obs.events() {
				if ev.Type == "modem_connected" {
					n++
				}
			}
			return n >= 2
		}) {
			t.Fatalf("no modem_connected after the restart; events %v", eventTypes(r.obs.events()))
		}
		waitSIMEmpty(t, r)
		bus.waitNoSMS()
		paced(msgs[14:])
		r.waitSMS(want, false, e2eWait)
		waitSIMEmpty(t, r)
		evs := eventTypes(r.obs.events())
		if !slices.Contains(evs, "modem_lost") {
			t.Errorf("events %v, want modem_lost when ModemManager stopped", evs)
		}
	})

	t.Run("send to 000", func(t *testing.T) {
		publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"mm-1","payload":"reply through ModemManager"}`))
		if !waitUntil(e2eWait, func() bool { return len(r.obs.results("sms/out/result")) >= 1 }) {
			t.Fatal("no result on P/sms/out/result")
		}
		res := r.obs.results("sms/out/result")[0]
		if res.ID != "mm-1" || res.Status != "sent" || res.Reference == nil {
			t.Fatalf("result %+v, want mm-1 sent with a reference", res)
		}
		sent := r.sim.State().SentSMS
		if len(sent) != 1 || sent[0].To != "000" || sent[0].Text != "reply through ModemManager" || sent[0].Reference != *res.Reference {
			b, _ := json.Marshal(sent)
			t.Fatalf("modemsim recorded %s, want one SMS to 000 with reference %d", b, *res.Reference)
		}

		// A network failure comes back as the AT backend reports it.
		r.sim.SetFaults(modemsim.Faults{SendError: 332})
		publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"mm-2","payload":"this one fails"}`))
		if !waitUntil(e2eWait, func() bool { return len(r.obs.results("sms/out/result")) >= 2 }) {
			t.Fatal("no second result on P/sms/out/result")
		}
		r.sim.SetFaults(modemsim.Faults{})
		res = r.obs.results("sms/out/result")[1]
		if res.ID != "mm-2" || res.Status != "failed" || !strings.Contains(res.Error, "+CMS ERROR: 332") {
			t.Errorf("result %+v, want mm-2 failed with +CMS ERROR: 332", res)
		}
	})

	r.gw.stop(syscall.SIGTERM)
	for _, bad := range []string{"segfault", "SIGSEGV", "assertion", "CRITICAL"} {
		if lines := bus.mmLogLines(bad); len(lines) > 0 {
			t.Errorf("ModemManager log has %q: %v", bad, lines)
		}
	}
}

// waitNoSMS waits until ModemManager lists no SMS. The SIM empties when
// modemsim has done the last AT+CMGD, a moment before ModemManager has
// read its OK and let go of the SMS storage; a +CMTI in that moment is
// dropped (the README's ModemManager section), and that SMS would wait on
// the SIM for the next enable and reach P/sms/in after later ones. An SMS
// object goes from the list only after its delete has finished, so an
// empty list means the storage is free and what comes next is read at
// once. (ModemManager serves D-Bus calls from the loop that handles the
// modem, so the answer comes after the delete's completion.)
func (b *mmBus) waitNoSMS() {
	b.t.Helper()
	var n int
	var lastErr error
	if !waitUntil(e2eWait, func() bool {
		var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
		err := b.conn.Object(mmService, "/org/freedesktop/ModemManager1").Call(
			"org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&objs)
		if err != nil {
			lastErr = err
			return false
		}
		for p, ifs := range objs {
			if _, ok := ifs[mmService+".Modem.Messaging"]; !ok {
				continue
			}
			var list []dbus.ObjectPath
			if err := b.conn.Object(mmService, p).Call(mmService+".Modem.Messaging.List", 0).Store(&list); err != nil {
				lastErr = err
				return false
			}
			n = len(list)
			return n == 0
		}
		lastErr = fmt.Errorf("no modem with the Messaging interface")
		return false
	}) {
		b.t.Errorf("ModemManager still lists %d SMS (last error: %v)", n, lastErr)
	}
}

// waitSIMEmpty waits until every SMS has been deleted from the SIM.
func waitSIMEmpty(t *testing.T, r *rig) {
	t.Helper()
	if !waitUntil(e2eWait, func() bool {
		st := r.sim.State()
		return len(st.Stored) == 0 && st.NetworkQueue == 0
	}) {
		t.Errorf("SMS left on the SIM: %s", r.simSummary())
	}
}
