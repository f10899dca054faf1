// Package testenv holds what the tests of several packages need from the
// machine they run on: a free loopback port, a small disk, a mosquitto
// binary and its configuration. Only tests import it.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FreeAddr returns a loopback address nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// SmallDisk mounts a tmpfs of size bytes and returns its path; it skips
// the test where mounting is not allowed (not root, no CAP_SYS_ADMIN). The
// tmpfs is unmounted when the test ends.
func SmallDisk(t testing.TB, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// MosquittoBin returns the mosquitto binary, or skips the test with why
// when it is not installed (Debian puts it in /usr/sbin, often not on a
// user's PATH).
func MosquittoBin(t testing.TB, why string) string {
	t.Helper()
	if bin, err := exec.LookPath("mosquitto"); err == nil {
		return bin
	}
	const sbin = "/usr/sbin/mosquitto"
	if _, err := os.Stat(sbin); err != nil {
		t.Skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does): " + why)
	}
	return sbin
}

// MosquittoConf writes dir/mosquitto.conf for a broker on 127.0.0.1:port
// that keeps its sessions and queued messages in dir, as a production
// broker is configured, logging to stderr; extra lines are appended. It
// returns the file's path.
func MosquittoConf(t testing.TB, dir, port string, extra ...string) string {
	t.Helper()
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nlog_dest stderr\n", port, dir)
	if os.Geteuid() == 0 {
		// Otherwise mosquitto drops to its own user, who cannot write here.
		text += "user root\n"
	}
	for _, l := range extra {
		text += l + "\n"
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}
