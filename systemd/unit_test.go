package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unitSettings reads a unit file into section.key -> values, in order,
// joining continuation lines and skipping comments.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section, pending := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		if line[0] == '[' {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not a key=value line: %q", path, line)
		}
		settings[section+"."+k] = append(settings[section+"."+k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// The settings the daemon's behaviour and the brief's hardening rely on; a
// change to any of them must be deliberate.
func TestUnitSettings(t *testing.T) {
	got := unitSettings(t, "simgate.service")
	want := map[string][]string{
		"Unit.After":                       {"network.target time-sync.target"},
		"Service.Type":                     {"notify"},
		"Service.NotifyAccess":             {"main"},
		"Service.ExecStart":                {"/usr/bin/simgate run -config /etc/simgate/simgate.yaml"},
		"Service.Restart":                  {"on-failure"},
		"Service.RestartPreventExitStatus": {"78"},
		"Service.WatchdogSec":              {"3min"},
		"Service.User":                     {"simgate"},
		"Service.Group":                    {"simgate"},
		"Service.SupplementaryGroups":      {"dialout"},
		"Service.StateDirectory":           {"simgate"},
		"Service.ConfigurationDirectory":   {"simgate"},
		"Service.ProtectSystem":            {"strict"},
		"Service.ProtectHome":              {"yes"},
		"Service.PrivateTmp":               {"yes"},
		"Service.NoNewPrivileges":          {"yes"},
		"Service.DevicePolicy":             {"closed"},
		"Service.DeviceAllow":              {"char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw"},
		"Service.RestrictAddressFamilies":  {"AF_UNIX AF_INET AF_INET6"},
		"Service.SystemCallFilter":         {"@system-service", "~@privileged @resources"},
		"Service.CapabilityBoundingSet":    {""},
		"Service.MemoryMax":                {"64M"},
		"Service.Environment":              {"GOMEMLIMIT=48MiB"},
		"Service.TasksMax":                 {"64"},
		"Install.WantedBy":                 {"multi-user.target"},
	}
	picked := map[string][]string{}
	for k := range want {
		if v, ok := got[k]; ok {
			picked[k] = v
		}
	}
	if diff := cmp.Diff(want, picked); diff != "" {
		t.Errorf("unit settings (-want +got):\n%s", diff)
	}
}

// systemd-analyze, where installed, must find nothing to complain about and
// rate the sandbox well. It needs ExecStart's binary to exist, so a copy of
// the unit points at this test binary.
func TestUnitAnalyze(t *testing.T) {
	if testing.Short() {
		t.Skip("runs systemd-analyze")
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("simgate.service")
	if err != nil {
		t.Fatal(err)
	}
	unit = bytes.Replace(unit, []byte("ExecStart=/usr/bin/simgate"), []byte("ExecStart="+self), 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "simgate.service"), unit, 0o644); err != nil {
		t.Fatal(err)
	}

	verify := exec.Command("systemd-analyze", "verify", "./simgate.service")
	verify.Dir = dir
	out, err := verify.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	sec := exec.Command("systemd-analyze", "security", "--offline=true", "./simgate.service")
	sec.Dir = dir
	out, err = sec.CombinedOutput()
	if err != nil {
		t.Skipf("systemd-analyze security --offline unsupported: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for simgate\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure score in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	// 1.5 when written; what remains is what a network daemon on serial
	// ports needs (network, devices, dialout). Raise only with a reason.
	if score > 2.0 {
		t.Errorf("exposure %.1f > 2.0:\n%s", score, out)
	}
	t.Logf("systemd-analyze security exposure: %.1f", score)
}
