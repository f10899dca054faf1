package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// damageFreelist writes random bytes over the freelist page of a closed
// bbolt file, as a failing SD card does: bbolt panics opening it ("invalid
// freelist page").
func damageFreelist(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var txid int
	if err := db.View(func(tx *bolt.Tx) error { txid = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	pageSize := db.Info().PageSize
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The meta page of the last transaction: page header (16 bytes), magic,
	// version, page size, flags (16), root bucket (16), freelist page id.
	freelist := int64(binary.LittleEndian.Uint64(b[txid%2*pageSize+48:]))
	junk := make([]byte, pageSize)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(junk, freelist*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestE2ECorruptStoreRestart damages queue.db while the daemon is down
// with SMS queued: the daemon used to panic at start (exit 2), which
// Restart=on-failure turns into an endless crash loop. It must start,
// set the file aside, say so on P/events and P/status, salvage what it can
// read and go on relaying.
func TestE2ECorruptStoreRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("hardware-in-loop")
	}
	r := newRig(t, rigOptions{})
	r.waitReady()
	r.mq.stop(syscall.SIGTERM)
	held, _ := burst("held", 10, sentAtBase())
	for _, m := range held {
		r.inject(m)
	}
	if !waitUntil(e2eWait, func() bool { stored, network := r.onSIM(); return stored == 0 && network == 0 }) {
		t.Fatalf("the daemon did not take the SMS off the SIM: %s", r.simSummary())
	}
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("simgate exited with %d on SIGTERM", code)
	}
	damageFreelist(t, filepath.Join(r.conf.StoreDir, "queue.db"))

	r.mq.start()
	r.gw.start()
	if !waitUntil(e2eWait, func() bool {
		for _, m := range r.obs.on("status") {
			if bytes.Contains(m.Payload, []byte(`"store_corrupt":true`)) && bytes.Contains(m.Payload, []byte(`"online":true`)) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no online status with store_corrupt; daemon running: %t", r.gw.running())
	}
	if !waitUntil(e2eWait, func() bool { return hasEvent(r.obs.events(), "store_corrupt") }) {
		t.Errorf("no store_corrupt event; events %v", eventTypes(r.obs.events()))
	}
	aside, _ := filepath.Glob(filepath.Join(r.conf.StoreDir, "queue.db.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("set-aside files %v, want one", aside)
	}
	// Still relaying, and still running a while later.
	after, want := burst("after", 3, sentAtBase().Add(time.Hour))
	for _, m := range after {
		r.inject(m)
	}
	if !waitUntil(e2eWait, func() bool {
		seen := r.obs.smsIDs()
		for _, w := range want {
			if !seen[w.ID] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("SMS after the damaged store was set aside did not arrive; %s", r.simSummary())
	}
	if !r.gw.running() {
		t.Errorf("simgate exited (%v)", r.gw.exitErr)
	}
}
