package transport

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// fillQueue stores n SMS in n commits and closes the queue.
func fillQueue(t *testing.T, dir string, n int) {
	t.Helper()
	q, err := OpenQueue(StoreConfig{Dir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := q.Put(context.Background(), sms(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// reopen opens dir again and returns the queue with the events it raised
// once an event handler is set.
func reopen(t *testing.T, dir string) (*Queue, []gw.Event) {
	t.Helper()
	q, err := OpenQueue(StoreConfig{Dir: dir}, testLogger(t))
	if err != nil {
		t.Fatalf("OpenQueue over a damaged store: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	var mu sync.Mutex
	var evs []gw.Event
	q.SetEventHandler(func(ev gw.Event) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	return q, append([]gw.Event(nil), evs...)
}

// checkDamaged checks what every damaged store must give: an open queue
// that works, the file set aside, a store_corrupt event and status flag.
func checkDamaged(t *testing.T, dir string, q *Queue, evs []gw.Event, reason string) {
	t.Helper()
	d := q.Damage()
	if d == nil {
		t.Fatal("damaged store opened without a word: Damage() is nil")
	}
	if !strings.Contains(d.Reason, reason) {
		t.Errorf("damage reason %q, want it to mention %q", d.Reason, reason)
	}
	aside := setAsideFiles(dir)
	if len(aside) != 1 || d.SetAside != aside[0] {
		t.Errorf("set-aside files %v, damage names %q", aside, d.SetAside)
	}
	if len(evs) != 1 || evs[0].Type != "store_corrupt" {
		t.Errorf("events %+v, want one store_corrupt", evs)
	}
	st := q.Stats()
	if !st.StoreCorrupt || st.CorruptFile != d.SetAside {
		t.Errorf("Stats: StoreCorrupt %t CorruptFile %q", st.StoreCorrupt, st.CorruptFile)
	}
	if err := q.Put(context.Background(), sms(100)); err != nil {
		t.Errorf("Put into the new store: %v", err)
	}
}

func TestQueueOpenZeroLength(t *testing.T) {
	dir := t.TempDir()
	fillQueue(t, dir, 3)
	if err := os.Truncate(filepath.Join(dir, dbName), 0); err != nil {
		t.Fatal(err)
	}
	q, evs := reopen(t, dir)
	checkDamaged(t, dir, q, evs, "zero length")
	if !strings.Contains(q.Damage().Reason, "was committed") {
		t.Errorf("reason %q does not say history was lost", q.Damage().Reason)
	}
}

func TestQueueOpenMissingWithHistory(t *testing.T) {
	dir := t.TempDir()
	fillQueue(t, dir, 2)
	if err := os.Remove(filepath.Join(dir, dbName)); err != nil {
		t.Fatal(err)
	}
	q, evs := reopen(t, dir)
	if d := q.Damage(); d == nil || !strings.Contains(d.Reason, "missing") {
		t.Fatalf("Damage() = %+v, want a missing queue.db reported", d)
	}
	if len(evs) != 1 || evs[0].Type != "store_corrupt" {
		t.Errorf("events %+v, want store_corrupt", evs)
	}
}

// TestQueueOpenBadMetaPage damages the meta page of the last transaction,
// which makes bbolt fall back to the one before without a word: the last
// committed SMS would be gone although it was deleted from the SIM.
func TestQueueOpenBadMetaPage(t *testing.T) {
	dir := t.TempDir()
	fillQueue(t, dir, 5)
	path := filepath.Join(dir, dbName)
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
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The meta of transaction N is page N%2; its checksum is at 72.
	if _, err := f.WriteAt([]byte{0xde, 0xad}, int64(txid%2*pageSize+72)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	q, evs := reopen(t, dir)
	checkDamaged(t, dir, q, evs, "rolled it back")
	// What the previous transaction held is salvaged: 4 of the 5.
	if diff := cmp.Diff(ids(sms(0), sms(1), sms(2), sms(3), sms(100)), headIDs(t, q)); diff != "" {
		t.Errorf("queued after salvage (-want +got):\n%s", diff)
	}
}

// livePages returns the root page and the freelist page named by the
// current meta page of a closed store.
func livePages(t *testing.T, path string) (root, freelist int64, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var txid int
	if err := db.View(func(tx *bolt.Tx) error { txid = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	pageSize = db.Info().PageSize
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta := b[txid%2*pageSize:]
	// Page header (16 bytes), then magic, version, page size, flags (16),
	// the root bucket (root page id, sequence), the freelist page id.
	root = int64(binary.LittleEndian.Uint64(meta[32:]))
	freelist = int64(binary.LittleEndian.Uint64(meta[48:]))
	return root, freelist, pageSize
}

// TestQueueOpenRandomPage writes random bytes over a live page, as a
// failing card does: bbolt panics on it ("invalid freelist page", exit 2),
// and systemd's restart would meet the same file forever.
func TestQueueOpenRandomPage(t *testing.T) {
	for _, which := range []string{"root", "freelist"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			fillQueue(t, dir, 40)
			path := filepath.Join(dir, dbName)
			root, freelist, pageSize := livePages(t, path)
			page := root
			if which == "freelist" {
				page = freelist
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, pageSize)
			if _, err := rand.Read(junk); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(junk, page*int64(pageSize)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			q, evs := reopen(t, dir)
			checkDamaged(t, dir, q, evs, "")
		})
	}
}

func TestQueueOpenSoundStoreUntouched(t *testing.T) {
	dir := t.TempDir()
	fillQueue(t, dir, 3)
	q, evs := reopen(t, dir)
	if d := q.Damage(); d != nil {
		t.Fatalf("sound store reported damaged: %+v", d)
	}
	if len(evs) != 0 || q.Stats().StoreCorrupt || len(setAsideFiles(dir)) != 0 {
		t.Errorf("sound store: events %v, stats %+v", evs, q.Stats())
	}
	if diff := cmp.Diff(ids(sms(0), sms(1), sms(2)), headIDs(t, q)); diff != "" {
		t.Errorf("queued (-want +got):\n%s", diff)
	}
}
