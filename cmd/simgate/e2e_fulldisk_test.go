package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/testenv"
	"github.com/simgate/simgate/modem/modemsim"
)

// fillDisk writes a file in dir until the disk has no space left.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			return path
		}
	}
}

// TestE2EFullDisk queues SMS with the broker down, then lets another
// program fill the disk under store.dir. bbolt writes removals to fresh
// pages too: before, once the broker was back nothing delivered could be
// removed, pending never dropped and everything would be sent again after
// a restart. Now the disk reserve is given back, deliveries are removed,
// new SMS wait on the SIM (store_full in P/status) and are taken once the
// disk has room again.
func TestE2EFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("hardware-in-loop")
	}
	disk := testenv.SmallDisk(t, 2<<20)
	r := newRig(t, rigOptions{Stopped: true})
	r.conf.StoreDir = filepath.Join(disk, "store")
	r.gw = newDaemon(t, simgateBinary(t), r.dir, r.conf)
	r.mq.stop(syscall.SIGTERM)
	r.start()

	var want []smsIn
	base := sentAtBase()
	n := 0
	inject := func(k int) {
		for range k {
			at := base.Add(time.Duration(n) * time.Second)
			text := fmt.Sprintf("full disk %04d %s", n, strings.Repeat("filler ", 15))
			r.inject(modemsim.SMS{From: "000", Text: text, Encoding: "gsm7", SentAt: at})
			want = append(want, wantText("000", text, 1, at))
			n++
		}
	}
	inject(200)
	if !waitUntil(e2eWait, func() bool { stored, network := r.onSIM(); return stored == 0 && network == 0 }) {
		t.Fatalf("the daemon did not take the SMS off the SIM: %s", r.simSummary())
	}
	filler := fillDisk(t, disk)

	r.mq.start()
	r.waitSMS(want, true, e2eWait)
	// Everything delivered must also be removed: pending back to 0.
	inject(10)
	lastStatus := func() string {
		sts := r.obs.on("status")
		if len(sts) == 0 {
			return ""
		}
		return string(sts[len(sts)-1].Payload)
	}
	if !waitUntil(e2eWait, func() bool {
		st := lastStatus()
		return strings.Contains(st, `"store_full":true`) && strings.Contains(st, `"pending":0`)
	}) {
		t.Errorf("last status %s, want store_full and pending 0", lastStatus())
	}
	if !r.gw.running() {
		t.Fatalf("simgate exited on a full disk (%v)", r.gw.exitErr)
	}
	// Room again: the 10 that waited on the SIM arrive.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r.waitSMS(want, true, e2eWait)
	if !waitUntil(e2eWait, func() bool { return !strings.Contains(lastStatus(), `"store_full":true`) }) {
		t.Errorf("store_full still set once the disk has room: %s", lastStatus())
	}
}
