package modemsim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGammu checks the simulator against a real AT client written by
// others: gammu must identify the module and list injected SMS. CI installs
// the Debian package gammu; elsewhere the test skips.
func TestGammu(t *testing.T) {
	gammu, err := exec.LookPath("gammu")
	if err != nil {
		t.Skip("gammu not installed (Debian package gammu): skipping the real-client test")
	}
	if testing.Short() {
		t.Skip("gammu takes seconds per run (its own waits): skipped with -short")
	}
	for _, profile := range []string{"quectel", "simcom", "ublox", "generic"} {
		t.Run(profile, func(t *testing.T) {
			// gammu spends its time in its own sleeps; run the profiles
			// side by side.
			t.Parallel()
			s := startSim(t, Options{Profile: profile})
			waitState(t, s, "boot", func(st State) bool { return st.SMSReady })
			cfg := filepath.Join(t.TempDir(), "gammurc")
			rc := fmt.Sprintf("[gammu]\ndevice = %s\nconnection = at115200\nmodel = at\n", s.Link())
			if err := os.WriteFile(cfg, []byte(rc), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), wait*3)
				defer cancel()
				out, err := exec.CommandContext(ctx, gammu, append([]string{"-c", cfg}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("gammu %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}

			id := run("identify")
			for _, want := range []string{s.prof.manufacturer, s.opts.IMEI, s.opts.IMSI} {
				if !strings.Contains(id, want) {
					t.Errorf("identify lacks %q:\n%s", want, id)
				}
			}

			for _, m := range []SMS{
				{Text: "SMS Command: reboot €{}[]~^\\|"},
				{Text: "UCS-2 😀 works"},
				{Text: strings.Repeat("three part message ", 20), Parts: 3, Order: []int{2, 3, 1}},
			} {
				if _, err := s.InjectSMS(m); err != nil {
					t.Fatal(err)
				}
			}
			all := run("getallsms")
			for _, want := range []string{
				"SMS Command: reboot €{}[]~^\\|",
				"UCS-2 😀 works",
				"part 1 of 3", "part 2 of 3", "part 3 of 3",
				`Remote number        : "000"`,
				"5 SMS parts",
			} {
				if !strings.Contains(all, want) {
					t.Errorf("getallsms lacks %q:\n%s", want, all)
				}
			}
		})
	}
}
