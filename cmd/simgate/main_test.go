package main

import (
	"bytes"
	"os"
	"path/filepath"
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
