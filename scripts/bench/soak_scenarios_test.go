package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/transport"
	bolt "go.etcd.io/bbolt"
)

// makeStore writes a small bbolt file with n committed transactions.
func makeStore(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("in"))
			if err != nil {
				return err
			}
			return b.Put([]byte(fmt.Sprint("k", i)), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func keys(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte("in")).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Each damage does to a bbolt file what the soak says it does.
func TestDamageStore(t *testing.T) {
	path := makeStore(t, 3)
	if _, err := damageStore(path, "meta"); err != nil {
		t.Fatal(err)
	}
	if n := keys(t, path); n != 2 {
		t.Errorf("after spoiling the newer meta page: %d keys, want the 2 of the older transaction", n)
	}

	path = makeStore(t, 3)
	detail, err := damageStore(path, "page")
	if err != nil || !strings.Contains(detail, "root bucket") {
		t.Fatalf("page damage: %q, %v", detail, err)
	}
	reads := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false // bbolt panics on a page that is not what it expects
			}
		}()
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			return false
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("in"))
			if b == nil {
				return errors.New("no bucket")
			}
			return b.ForEach(func(_, _ []byte) error { return nil })
		}) == nil
	}()
	if reads {
		t.Error("the root bucket's page was overwritten, yet the data still reads")
	}

	path = makeStore(t, 1)
	if _, err := damageStore(path, "empty"); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Errorf("empty damage left %v, %v", st, err)
	}
}

// storedMarkers finds the messages a real queue holds, by marker.
func TestStoredMarkers(t *testing.T) {
	dir := t.TempDir()
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir, MaxMessages: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []gw.Inbound{
		{ID: "sms-1", Channel: gw.ChannelSMS, From: "000", Payload: []byte(smsText(marker("s", 1)))},
		{ID: "ip-1", Channel: gw.ChannelIP, From: "100.64.0.1:6969", Payload: ipPayload(marker("u", 7)), Binary: true},
	} {
		if err := q.Put(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := storedMarkers(filepath.Join(dir, "queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"sms/in bm-s-1": true, "ip/in bm-u-7": true}, got); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
}
