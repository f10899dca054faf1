package modemsim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
		t.Skip("gammu takes seconds per run (its own sleeps): skipped with -short")
	}
	// gammu spends its time in its own sleeps (1ms per byte written, 400ms
	// after each open), so the profiles run side by side.
	var wg sync.WaitGroup
	for _, profile := range []string{"quectel", "simcom", "ublox", "generic"} {
		s := startSim(t, Options{Profile: profile})
		cfg := filepath.Join(t.TempDir(), "gammurc")
		rc := fmt.Sprintf("[gammu]\ndevice = %s\nconnection = at115200\nmodel = at\n", s.Link())
		if err := os.WriteFile(cfg, []byte(rc), 0o600); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { gammuSession(t, gammu, cfg, s) })
	}
	wg.Wait()
}

// gammuSession runs gammu identify and getallsms against s. It reports
// with Errorf only, as it runs on its own goroutine.
func gammuSession(t *testing.T, gammu, cfg string, s *Sim) {
	name := s.prof.name
	run := func(args ...string) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), wait*3)
		defer cancel()
		out, err := exec.CommandContext(ctx, gammu, append([]string{"-c", cfg}, args...)...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: gammu %s: %v\n%s", name, strings.Join(args, " "), err, out)
			return "", false
		}
		return string(out), true
	}
	if _, err := waitBoot(s); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	id, ok := run("identify")
	if !ok {
		return
	}
	for _, want := range []string{s.prof.manufacturer, s.opts.IMEI, s.opts.IMSI} {
		if !strings.Contains(id, want) {
			t.Errorf("%s: identify lacks %q:\n%s", name, want, id)
		}
	}
	for _, m := range []SMS{
		{Text: "SMS Command: reboot €{}[]~^\\|"},
		{Text: "UCS-2 😀 works"},
		{Text: strings.Repeat("three part message ", 20), Parts: 3, Order: []int{2, 3, 1}},
	} {
		if _, err := s.InjectSMS(m); err != nil {
			t.Errorf("%s: inject: %v", name, err)
			return
		}
	}
	all, ok := run("getallsms")
	if !ok {
		return
	}
	for _, want := range []string{
		"SMS Command: reboot €{}[]~^\\|",
		"UCS-2 😀 works",
		"part 1 of 3", "part 2 of 3", "part 3 of 3",
		`Remote number        : "000"`,
		"5 SMS parts",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("%s: getallsms lacks %q:\n%s", name, want, all)
		}
	}
}
