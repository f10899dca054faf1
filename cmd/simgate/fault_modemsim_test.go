package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simgate/simgate/modem/modemsim"
)

// A process started while the simulator runs must not inherit its pty
// master: holding it keeps the pty alive, so a host in that process (the
// daemon under test) would never see Unplug or Reset take the port away,
// and would recover only through its slow silence ladder.
func TestModemsimMasterNotInherited(t *testing.T) {
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(t.TempDir(), "ttyModem")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sim.Close(); err != nil {
			t.Errorf("modemsim Close: %v", err)
		}
	}()
	out, err := exec.Command("ls", "-l", "/proc/self/fd").CombinedOutput()
	if err != nil {
		t.Fatalf("list a child's descriptors: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "/dev/ptmx") {
		t.Errorf("a child process holds the simulator's pty master:\n%s", out)
	}
}
