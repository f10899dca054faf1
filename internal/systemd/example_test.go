package systemd_test

import (
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/simgate/simgate/internal/systemd"
)

// The daemon's side of sd_notify, heard here by a socket standing in for
// the service manager: READY=1 once (later calls send nothing), STATUS=
// cleaned of the newline a network name could smuggle in, and STOPPING=1.
func Example() {
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify.sock")
	manager, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		log.Fatal(err)
	}
	defer manager.Close()
	os.Setenv("NOTIFY_SOCKET", sock)
	defer os.Unsetenv("NOTIFY_SOCKET")

	n := systemd.New(nil)
	for _, send := range []func() error{
		n.Ready,
		n.Ready, // already ready: nothing sent
		func() error { return n.Status("registered (roaming) on Vodafone\nREADY=1 LTE, 0 queued") },
		n.Stopping,
	} {
		if err := send(); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, 256)
	for range 3 {
		if err := manager.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			log.Fatal(err)
		}
		k, err := manager.Read(buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(buf[:k]))
	}
	// Output:
	// READY=1
	// STATUS=registered (roaming) on Vodafone READY=1 LTE, 0 queued
	// STOPPING=1
}
