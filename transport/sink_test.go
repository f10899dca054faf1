package transport

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// lastTx is the id of the last committed write transaction: each commit
// adds one, so the difference counts commits (each one fsync).
func lastTx(t *testing.T, q *Queue) int {
	t.Helper()
	var id int
	if err := q.db.View(func(tx *bolt.Tx) error { id = int(tx.ID()); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func simItems(n int) []gw.SIMItem {
	var items []gw.SIMItem
	for i := range n {
		if i%4 == 3 {
			items = append(items, gw.SIMItem{Part: &gw.Segment{Key: fmt.Sprintf("sms/000/%d/1/2", i/8), Seq: i/4%2 + 1, Total: 2, TPDU: []byte{byte(i)}, ReceivedAt: t0}})
			continue
		}
		m := gw.Inbound{ID: fmt.Sprintf("sms-%03d", i), Channel: gw.ChannelSMS, From: "000", Payload: []byte(fmt.Sprint(i)), ReceivedAt: t0}
		items = append(items, gw.SIMItem{Message: &m})
	}
	return items
}

// A SIM listing of 100 SMS is one commit, in order, with its journal.
func TestQueuePutSIMOneCommit(t *testing.T) {
	ctx := context.Background()
	q := openTestQueue(t, t.TempDir(), 0)
	items := simItems(100)
	j := gw.SIMJournal{Announced: []int{9}}
	before := lastTx(t, q)
	n, err := q.PutSIM(ctx, items, j)
	if err != nil || n != len(items) {
		t.Fatalf("PutSIM = %d, %v; want %d, nil", n, err, len(items))
	}
	if got := lastTx(t, q) - before; got != 1 {
		t.Errorf("%d commits for one listing, want 1", got)
	}
	if got := len(items[7].Held); got != 2 {
		t.Errorf("second part holds %d segments, want 2", got)
	}
	if got := len(items[3].Held); got != 1 {
		t.Errorf("first part holds %d segments, want 1 (as stored then)", got)
	}
	head, err := q.headInbound(200)
	if err != nil {
		t.Fatal(err)
	}
	var ids, want []string
	for _, h := range head {
		ids = append(ids, h.msg.ID)
	}
	for _, it := range items {
		if it.Message != nil {
			want = append(want, it.Message.ID)
		}
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("queue order (-want +got):\n%s", diff)
	}
	if got, _ := q.Journal(ctx); !cmp.Equal(j, got) {
		t.Errorf("journal %+v, want %+v", got, j)
	}
	// The same listing read again (stored, not yet deleted) adds nothing.
	if n, err := q.PutSIM(ctx, simItems(100), j); err != nil || n != 100 {
		t.Fatalf("PutSIM again = %d, %v", n, err)
	}
	if st := q.Stats(); st.Inbound != len(want) || st.Segments != 25 {
		t.Errorf("stats after a second PutSIM %+v", st)
	}
}

// A full queue stores the prefix that fits and leaves the journal alone.
func TestQueuePutSIMPrefix(t *testing.T) {
	ctx := context.Background()
	q := openTestQueue(t, t.TempDir(), 3)
	old := gw.SIMJournal{Announced: []int{1, 2, 3, 4, 5}}
	if err := q.SaveJournal(ctx, old); err != nil {
		t.Fatal(err)
	}
	items := simItems(5)
	n, err := q.PutSIM(ctx, items, gw.SIMJournal{})
	if n != 3 || !errors.Is(err, ErrQueueFull) {
		t.Fatalf("PutSIM = %d, %v; want 3, queue full", n, err)
	}
	if st := q.Stats(); st.Inbound+st.Segments != 3 {
		t.Errorf("stats %+v, want 3 stored", st)
	}
	if got, _ := q.Journal(ctx); !cmp.Equal(old, got) {
		t.Errorf("journal %+v after a refusal, want %+v", got, old)
	}
}
