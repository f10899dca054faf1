package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "simgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "modem:\n  port: /dev/ttyUSB2\n")
	code, out, errOut := run(t, "check-config", "-config", good)
	if code != 0 || out != "ok\n" || errOut != "" {
		t.Fatalf("good config: code %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := writeFile(t, "modem:\n  port: /dev/ttyUSB2\n  speed: 9600\nip:\n  port: 70000\n")
	code, out, errOut = run(t, "check-config", "-config", bad)
	if code != 78 {
		t.Fatalf("bad config: exit %d, want 78", code)
	}
	want := bad + ":3: modem.speed: unknown key\n" + bad + ":5: ip.port: must be between 1 and 65535, got 70000\n"
	if out != "" || errOut != want {
		t.Fatalf("bad config: stdout %q, stderr %q, want stderr %q", out, errOut, want)
	}

	code, _, errOut = run(t, "check-config", "-config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 78 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("missing config: exit %d, stderr %q", code, errOut)
	}
}

func TestRunBadConfigExits78(t *testing.T) {
	bad := writeFile(t, "log:\n  level: loud\n")
	code, _, errOut := run(t, "run", "-config", bad)
	if code != 78 || !strings.Contains(errOut, ":2: log.level: must be one of") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "simgate ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

// Without link-time stamps the version comes from the module's build
// info, so a go build or go install binary does not say "dev".
func TestVersionFrom(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "f67d846f479f3b94c815852eecc6205876b45169"
	tests := []struct {
		name         string
		ldV, ldC     string
		info         *debug.BuildInfo
		wantV, wantC string
	}{
		{"link-time stamp wins", "v1.4.0", "abc1234", &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}, Settings: vcs(rev, "false")}, "v1.4.0", "abc1234"},
		{"go install module@version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3", "unknown"},
		{"go build in a checkout", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201174100-f67d846f479f+dirty"}, Settings: vcs(rev, "true")},
			"v0.0.0-20261201174100-f67d846f479f+dirty", "f67d846f479f"},
		{"commit recorded, no version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "devel-f67d846f479f-dirty", "f67d846f479f"},
		{"clean commit, no version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "devel-f67d846f479f", "f67d846f479f"},
		{"go run: nothing recorded", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel", "unknown"},
		{"no build info", "", "", nil, "devel", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, c := versionFrom(tt.ldV, tt.ldC, tt.info)
			if v != tt.wantV || c != tt.wantC {
				t.Errorf("versionFrom = %q, %q; want %q, %q", v, c, tt.wantV, tt.wantC)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := run(t); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Fatalf("no verb: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown verb "frobnicate"`) {
		t.Fatalf("unknown verb: exit %d, %q", code, errOut)
	}
	if code, _, _ := run(t, "check-config", "-nope"); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "check-config", "extra"); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
}

// check-config refuses credentials in mqtt.url without repeating them,
// refuses a password file anyone can rewrite, and passes one others can
// read with a warning line.
func TestCheckConfigSecrets(t *testing.T) {
	creds := writeFile(t, "mqtt:\n  url: tcp://alice:hunter2@127.0.0.1:1883\n")
	code, out, errOut := run(t, "check-config", "-config", creds)
	want := creds + ":2: mqtt.url: must not hold a user name or password (tcp://REDACTED@127.0.0.1:1883): set mqtt.username and mqtt.password_file instead\n"
	if code != 78 || out != "" || errOut != want {
		t.Fatalf("credentials in the url: exit %d, stdout %q, stderr %q, want stderr %q", code, out, errOut, want)
	}
	code, _, errOut = run(t, "run", "-config", creds)
	if code != 78 || strings.Contains(errOut, "hunter2") || strings.Contains(errOut, "alice") {
		t.Fatalf("run with credentials in the url: exit %d, stderr %q", code, errOut)
	}

	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, "mqtt:\n  username: u\n  password_file: "+pw+"\n")
	for _, c := range []struct {
		mode   os.FileMode
		code   int
		stderr string
	}{
		{0o600, 0, ""},
		{0o644, 0, cfg + ":3: mqtt.password_file: " + pw + " is readable by every user (mode 0644)"},
		{0o646, 78, cfg + ":3: mqtt.password_file: " + pw + " is writable by every user (mode 0646)"},
	} {
		if err := os.Chmod(pw, c.mode); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := run(t, "check-config", "-config", cfg)
		if code != c.code || !strings.HasPrefix(errOut, c.stderr) || (c.stderr == "") != (errOut == "") {
			t.Errorf("password file mode %#o: exit %d, stdout %q, stderr %q; want exit %d, stderr %q", c.mode, code, out, errOut, c.code, c.stderr)
		}
		if c.code == 0 && out != "ok\n" {
			t.Errorf("password file mode %#o: stdout %q, want ok", c.mode, out)
		}
	}
}
