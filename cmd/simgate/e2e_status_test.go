package main

// Hardware-in-loop tests of the daemon's lifecycle: the retained status,
// the will, clean stop and exit codes.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/modem/modemsim"
)

// P/status is retained: a subscriber arriving later reads the gateway
// online with the modem, SIM and network; the topics are named by the
// ICCID when device_id is empty. SIGKILL leaves the broker to publish the
// will {"online":false}; after a restart SIGTERM stops the daemon cleanly
// (exit 0) with the retained status offline.
func TestE2EStatusRetainedWillAndCleanStop(t *testing.T) {
	t.Parallel()
	const iccid = "89883070000012345672"
	r := newRig(t, rigOptions{DeviceID: "-", Sim: modemsim.Options{Profile: "quectel", ICCID: iccid, IMSI: "732123200004178"}})
	r.waitReady()

	raw := retainedOn(t, r.url, r.prefix+"/status")
	var keys map[string]any
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("retained status %s: %v", raw, err)
	}
	for _, path := range []string{"online", "version", "modem.manufacturer", "modem.model", "modem.revision", "modem.imei",
		"sim.iccid", "sim.imsi", "network.registration", "network.operator", "network.technology", "network.signal_dbm",
		"queue.pending", "updated_at"} {
		if !hasPath(keys, path) {
			t.Errorf("retained status lacks %s: %s", path, raw)
		}
	}
	var st statusMsg
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version == "" {
		t.Errorf("status without a version: %s", raw)
	}
	if ts, err := time.Parse(time.RFC3339, st.UpdatedAt); err != nil || ts.Location() != time.UTC {
		t.Errorf("updated_at %q is not RFC 3339 UTC", st.UpdatedAt)
	}
	dbm := -113 + 2*17 // modemsim's +CSQ: 17,99
	want := st
	want.Online, want.Ready = true, true
	want.Modem.Manufacturer, want.Modem.Model, want.Modem.Revision, want.Modem.IMEI = "Quectel", "BG96", "BG96MAR02A07M1G", "866425030012340"
	want.SIM.ICCID, want.SIM.IMSI = iccid, "732123200004178"
	want.Network.Registration, want.Network.Operator, want.Network.Technology, want.Network.SignalDBm = "roaming", "Super Network", "lte", &dbm
	want.Queue.Pending = 0
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("retained status (-want +got):\n%s", diff)
	}

	// SIGKILL: the daemon says nothing more; the broker publishes the will.
	r.gw.kill()
	if !waitUntil(e2eWait, func() bool { return string(retainedOn(t, r.url, r.prefix+"/status")) == `{"online":false}` }) {
		t.Errorf("after SIGKILL the retained status is %s, want the will {\"online\":false}", retainedOn(t, r.url, r.prefix+"/status"))
	}

	// Restarted, it is online again (and names its topics by the ICCID it
	// remembered or read again).
	before := len(r.obs.statuses())
	r.gw.start()
	if !waitUntil(e2eWait, func() bool {
		s := r.obs.statuses()
		return len(s) > before && s[len(s)-1].Online
	}) {
		t.Fatalf("no online status after the restart")
	}

	// SIGTERM: a clean stop, exit code 0, and the offline status is the
	// daemon's own (the will is not sent after a clean disconnect).
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if got := string(retainedOn(t, r.url, r.prefix+"/status")); got != `{"online":false}` {
		t.Errorf("retained status after SIGTERM = %s, want {\"online\":false}", got)
	}
	if n := len(r.gw.logLines("simgate stopped")); n != 1 {
		t.Errorf("the log says \"simgate stopped\" %d times, want once (after SIGTERM)", n)
	}
}

// hasPath reports whether a dotted path exists in decoded JSON.
func hasPath(m map[string]any, path string) bool {
	first, rest, nested := strings.Cut(path, ".")
	v, ok := m[first]
	if !ok {
		return false
	}
	if !nested {
		return true
	}
	sub, ok := v.(map[string]any)
	return ok && hasPath(sub, rest)
}

// A configuration the daemon cannot use ends simgate run with exit code 78
// (EX_CONFIG) and FILE:LINE: key: problem lines, before it touches a modem
// or broker.
func TestE2EBadConfigExits78(t *testing.T) {
	t.Parallel()
	bin := simgateBinary(t)
	dir := t.TempDir()
	cases := []struct {
		name string
		body string
		want []string // lines stderr must contain
	}{
		{"unknown key", "modem:\n  port: /dev/ttyUSB2\n  speed: 9600\n", []string{"simgate.yaml:3: modem.speed: unknown key"}},
		{"bad values", "mqtt:\n  url: gopher://x\nip:\n  port: 70000\n", []string{"simgate.yaml:2: mqtt.url", "simgate.yaml:4: ip.port: must be between 1 and 65535, got 70000"}},
		{"not YAML", "modem: [\n", []string{"simgate.yaml"}},
		{"credentials in url", "mqtt:\n  url: tcp://alice:hunter2@127.0.0.1:1883\n", []string{"simgate.yaml:2: mqtt.url: must not hold a user name or password"}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"), "simgate.yaml")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "-config", path)
		cmd.Env = daemonEnv()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if code != 78 {
			t.Errorf("%s: exit code %d (%v), want 78; stderr:\n%s", c.name, code, err, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("%s: stderr shows the password:\n%s", c.name, stderr.String())
		}
	}
	// A missing file is a configuration problem too.
	cmd := exec.Command(bin, "run", "-config", filepath.Join(dir, "missing.yaml"))
	cmd.Env = daemonEnv()
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 78 {
		t.Errorf("missing config: exit code %d (%v), want 78:\n%s", code, err, out)
	}
}
