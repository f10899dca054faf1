package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// orphanHelperEnv makes this test binary, run again by
// TestChildDiesWithTestBinary, start a child as the tests start their
// daemons, print its pid and wait to be killed.
const orphanHelperEnv = "E2E_ORPHAN_HELPER"

// TestChildDiesWithTestBinary checks that a daemon started by the tests
// does not outlive a test binary that is killed: a test binary ends by
// SIGKILL here (as a -timeout or a killed go test ends it, running no
// Cleanup), and its child must go with it. A simgate left behind reopens
// its port symlink and talks to whichever later modemsim got that pty.
func TestChildDiesWithTestBinary(t *testing.T) {
	if os.Getenv(orphanHelperEnv) != "" {
		cmd := exec.Command("sleep", "600")
		cmd.SysProcAttr = childProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sleep: %v", err)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		_ = cmd.Wait()
		return
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithTestBinary$", "-test.count=1")
	helper.Env = append(os.Environ(), orphanHelperEnv+"=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatalf("start the helper test binary: %v", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("the helper printed no pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("the helper printed %q, not a pid", line)
	}
	_ = helper.Process.Kill()
	_ = helper.Wait()
	if !waitUntil(e2eWait, func() bool { return !processAlive(pid) }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the child %d outlived the killed test binary", pid)
	}
}

// processAlive reports whether pid runs (a zombie waiting for init to
// reap it has ended).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
