package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func openTestQueue(t testing.TB, dir string, max int) *Queue {
	t.Helper()
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: max}, nil)
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sms(i int) gw.Inbound {
	m := gw.Inbound{
		Channel:    gw.ChannelSMS,
		From:       "000",
		Payload:    []byte(fmt.Sprintf("command %d", i)),
		Parts:      1,
		SentAt:     t0.Add(time.Duration(i) * time.Second),
		ReceivedAt: t0.Add(time.Duration(i)*time.Second + 500*time.Millisecond),
	}
	m.ID = gw.MessageID(m)
	return m
}

func udp(i int) gw.Inbound {
	m := gw.Inbound{
		Channel:    gw.ChannelIP,
		From:       "100.64.0.1:6969",
		Port:       6969,
		Payload:    []byte{0, byte(i), 0xff, '\r', '\n'},
		Binary:     true,
		ReceivedAt: t0.Add(time.Duration(i) * time.Second),
	}
	m.ID = gw.MessageID(m)
	return m
}

func headIDs(t *testing.T, q *Queue) []string {
	t.Helper()
	items, err := q.headInbound(1 << 20)
	if err != nil {
		t.Fatalf("headInbound: %v", err)
	}
	ids := []string{}
	for _, it := range items {
		if it.err != nil {
			t.Fatalf("stored message %d: %v", it.seq, it.err)
		}
		ids = append(ids, it.msg.ID)
	}
	return ids
}

func ids(ms ...gw.Inbound) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestQueuePut(t *testing.T) {
	a, b, c := sms(1), udp(2), sms(3)
	tests := []struct {
		name    string
		puts    []gw.Inbound
		deliver int // ack this many from the head before the last put
		want    []string
	}{
		{"order kept", []gw.Inbound{a, b, c}, 0, ids(a, b, c)},
		{"duplicate of queued", []gw.Inbound{a, b, a}, 0, ids(a, b)},
		{"duplicate of delivered", []gw.Inbound{a, b, a}, 2, []string{}},
		{"new after delivered", []gw.Inbound{a, b, c}, 2, ids(c)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := openTestQueue(t, t.TempDir(), 100)
			ctx := context.Background()
			for i, m := range tt.puts {
				if i == len(tt.puts)-1 && tt.deliver > 0 {
					items, err := q.headInbound(tt.deliver)
					if err != nil {
						t.Fatal(err)
					}
					if err := q.ackInbound(ctx, items); err != nil {
						t.Fatal(err)
					}
				}
				if err := q.Put(ctx, m); err != nil {
					t.Fatalf("Put %d: %v", i, err)
				}
			}
			if diff := cmp.Diff(tt.want, headIDs(t, q)); diff != "" {
				t.Errorf("queued ids (-want +got):\n%s", diff)
			}
			if got := q.Stats().Inbound; got != len(tt.want) {
				t.Errorf("Stats().Inbound = %d, want %d", got, len(tt.want))
			}
		})
	}
}

func TestQueuePutInvalid(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	tests := []struct {
		name string
		m    gw.Inbound
	}{
		{"no id", gw.Inbound{Channel: gw.ChannelSMS}},
		{"bad channel", gw.Inbound{ID: "x", Channel: "fax"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := q.Put(context.Background(), tt.m); err == nil {
				t.Error("Put succeeded, want error")
			}
		})
	}
	if got := q.Stats().Inbound; got != 0 {
		t.Errorf("Stats().Inbound = %d, want 0", got)
	}
}

func TestQueueRoundTrip(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	m := sms(7)
	m.Partial, m.Parts = true, 3
	if err := q.Put(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	items, err := q.headInbound(1)
	if err != nil || len(items) != 1 {
		t.Fatalf("headInbound = %v, %v", items, err)
	}
	if diff := cmp.Diff(m, items[0].msg); diff != "" {
		t.Errorf("stored message (-want +got):\n%s", diff)
	}
}

func TestQueueFull(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 3)
	var mu sync.Mutex
	var events []string
	q.SetEventHandler(func(ev gw.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev.Type)
	})
	ctx := context.Background()
	for i := range 3 {
		if err := q.Put(ctx, sms(i)); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	err := q.Put(ctx, sms(3))
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Put beyond max_messages = %v, want ErrQueueFull", err)
	}
	// A message already held is still accepted: re-reading the SIM after a
	// restart must not fail for messages that are safe.
	if err := q.Put(ctx, sms(1)); err != nil {
		t.Errorf("Put of a queued id when full = %v, want nil", err)
	}
	if _, err := q.PutSegment(ctx, gw.Segment{Key: "k", Seq: 1, Total: 2, TPDU: []byte{1}}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("PutSegment when full = %v, want ErrQueueFull", err)
	}
	mu.Lock()
	if diff := cmp.Diff([]string{"queue_full"}, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	mu.Unlock()
	items, err := q.headInbound(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ackInbound(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, sms(3)); err != nil {
		t.Errorf("Put after space was freed = %v", err)
	}
	if diff := cmp.Diff(ids(sms(1), sms(2), sms(3)), headIDs(t, q)); diff != "" {
		t.Errorf("queued ids (-want +got):\n%s", diff)
	}
}

func TestQueueReopenKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []gw.Inbound
	for i := range 10 {
		m := sms(i)
		if i%3 == 0 {
			m = udp(i)
		}
		want = append(want, m)
		if err := q.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	items, err := q.headInbound(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ackInbound(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, sms(99)); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}

	q2 := openTestQueue(t, dir, 100)
	if diff := cmp.Diff(ids(want[4:]...), headIDs(t, q2)); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	// Delivered ids are still remembered, and new messages go after the
	// old ones whatever their timestamps.
	early := sms(-100)
	for _, m := range []gw.Inbound{want[0], early} {
		if err := q2.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(append(ids(want[4:]...), early.ID), headIDs(t, q2)); diff != "" {
		t.Errorf("after reopen and put (-want +got):\n%s", diff)
	}
	if got, want := q2.Stats(), (QueueStats{Inbound: 7}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestQueueLocked(t *testing.T) {
	dir := t.TempDir()
	openTestQueue(t, dir, 10)
	if q, err := OpenQueue(StoreConfig{Dir: dir}, nil); err == nil {
		q.Close()
		t.Fatal("second OpenQueue of the same dir succeeded")
	}
}

func TestQueueConcurrentPut(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10000)
	const writers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Every writer also puts a message another writer puts, so
				// duplicates race inside the same commit.
				for _, n := range []int{w*each + i, ((w+1)%writers)*each + i} {
					if err := q.Put(context.Background(), sms(n)); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Put: %v", err)
	}
	got := headIDs(t, q)
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("id %s stored twice", id)
		}
		seen[id] = true
	}
	if len(got) != writers*each {
		t.Errorf("stored %d messages, want %d", len(got), writers*each)
	}
}

func TestQueueSegments(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	seg := func(key string, seq, total int) gw.Segment {
		return gw.Segment{Key: key, Seq: seq, Total: total, TPDU: []byte{byte(seq), 0x00, 0x1a}, ReceivedAt: t0}
	}
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		put  gw.Segment
		want []int // seqs held under the key afterwards
	}{
		{seg("000/7/3", 3, 3), []int{3}},
		{seg("000/7/3", 1, 3), []int{1, 3}},
		{seg("000/7/3", 1, 3), []int{1, 3}}, // duplicate
		{seg("000/7", 1, 2), []int{1}},      // a key that prefixes another
		{seg("000/7/3", 2, 3), []int{1, 2, 3}},
	}
	for i, s := range steps {
		held, err := q.PutSegment(ctx, s.put)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var got []int
		for _, h := range held {
			if h.Key != s.put.Key {
				t.Errorf("step %d: segment of key %q returned for %q", i, h.Key, s.put.Key)
			}
			got = append(got, h.Seq)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("step %d: held seqs (-want +got):\n%s", i, diff)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openTestQueue(t, dir, 100)
	all, err := q.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []gw.Segment{seg("000/7", 1, 2), seg("000/7/3", 1, 3), seg("000/7/3", 2, 3), seg("000/7/3", 3, 3)}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("Segments after reopen (-want +got):\n%s", diff)
	}
	m := sms(1)
	m.Parts = 3
	if err := q.Assemble(ctx, m, "000/7/3"); err != nil {
		t.Fatal(err)
	}
	all, err = q.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:1], all); diff != "" {
		t.Errorf("Segments after Assemble (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ids(m), headIDs(t, q)); diff != "" {
		t.Errorf("queued after Assemble (-want +got):\n%s", diff)
	}
	if got, want := q.Stats(), (QueueStats{Inbound: 1, Segments: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestQueueAssembleWhenFull(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 2)
	ctx := context.Background()
	for seq := 1; seq <= 2; seq++ {
		if _, err := q.PutSegment(ctx, gw.Segment{Key: "k", Seq: seq, Total: 2, TPDU: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Assemble(ctx, sms(1), "k"); err != nil {
		t.Fatalf("Assemble with the queue full of its own segments: %v", err)
	}
	if got, want := q.Stats(), (QueueStats{Inbound: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestQueueSegmentInvalid(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	for _, s := range []gw.Segment{
		{Key: "", Seq: 1, Total: 1},
		{Key: "k", Seq: 0, Total: 1},
		{Key: "k", Seq: 3, Total: 2},
		{Key: "k", Seq: 1, Total: 300},
	} {
		if _, err := q.PutSegment(context.Background(), s); err == nil {
			t.Errorf("PutSegment(%+v) succeeded, want error", s)
		}
	}
}

func TestQueueDedupBounds(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		advance time.Duration // clock moves before re-putting
		want    []int         // of messages 0..4, which are accepted again
	}{
		{"all remembered", 10, time.Hour, []int{}},
		// The cap counts the message delivered to trigger pruning too.
		{"cap forgets oldest", 3, 0, []int{0, 1, 2}},
		{"window forgets all", 10, 49 * time.Hour, []int{0, 1, 2, 3, 4}},
		{"clock set back keeps all", 10, -1000 * time.Hour, []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := OpenQueue(StoreConfig{Dir: t.TempDir(), MaxMessages: 100, DedupMax: tt.max}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			now := t0
			q.now = func() time.Time { return now }
			ctx := context.Background()
			for i := range 5 {
				if err := q.Put(ctx, sms(i)); err != nil {
					t.Fatal(err)
				}
			}
			items, err := q.headInbound(5)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.ackInbound(ctx, items); err != nil {
				t.Fatal(err)
			}
			now = now.Add(tt.advance)
			// Pruning runs when something is delivered.
			if err := q.Put(ctx, udp(100)); err != nil {
				t.Fatal(err)
			}
			items, err = q.headInbound(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.ackInbound(ctx, items); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 5 {
				if err := q.Put(ctx, sms(i)); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tt.want {
				want = append(want, sms(i).ID)
			}
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, headIDs(t, q)); diff != "" {
				t.Errorf("accepted again (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueueRequests(t *testing.T) {
	q, err := OpenQueue(StoreConfig{Dir: t.TempDir(), MaxMessages: 3, MaxRequests: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	if err := q.Put(ctx, sms(1)); err != nil {
		t.Fatal(err)
	}
	req := func(id, ch string) *admit {
		return &admit{Req: Request{ID: id, Channel: ch, To: "000", Payload: []byte(id)}}
	}
	items := []*admit{
		req("a", gw.ChannelSMS),
		req("b", gw.ChannelIP),
		req("a", gw.ChannelSMS), // duplicate in the same batch
		{Req: Request{ID: "bad", Channel: gw.ChannelSMS}, Reject: "payload is missing"},
		req("c", gw.ChannelSMS), // beyond max_requests (a + b)
	}
	if err := q.admit(ctx, items); err != nil {
		t.Fatal(err)
	}
	var got []admission
	for _, it := range items {
		got = append(got, it.Outcome)
	}
	if diff := cmp.Diff([]admission{admitQueued, admitQueued, admitDuplicate, admitRejected, admitFull}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if got, want := q.Stats(), (QueueStats{Inbound: 1, OutboundSMS: 1, OutboundIP: 1, Results: 2}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	sr, ok, err := q.headRequest(outSMS)
	if err != nil || !ok || sr.err != nil {
		t.Fatalf("headRequest = %+v, %v, %v", sr, ok, err)
	}
	if diff := cmp.Diff(items[0].Req, sr.req); diff != "" {
		t.Errorf("stored request (-want +got):\n%s", diff)
	}
	ref := 42
	if err := q.complete(ctx, outSMS, sr, Result{ID: "a", Channel: gw.ChannelSMS, Status: StatusSent, Reference: &ref}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := q.headRequest(outSMS); ok {
		t.Error("request still queued after complete")
	}
	// The same id again is a duplicate, even though it left the queue.
	again := []*admit{req("a", gw.ChannelSMS)}
	if err := q.admit(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again[0].Outcome != admitDuplicate {
		t.Errorf("completed id admitted again: outcome %v", again[0].Outcome)
	}

	results, err := q.headResults(10)
	if err != nil {
		t.Fatal(err)
	}
	var gotRes []Result
	for _, r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		gotRes = append(gotRes, r.res)
	}
	wantRes := []Result{
		{ID: "bad", Channel: gw.ChannelSMS, Status: StatusFailed, Error: "payload is missing"},
		{ID: "c", Channel: gw.ChannelSMS, Status: StatusFailed, Error: "queue full"},
		{ID: "a", Channel: gw.ChannelSMS, Status: StatusSent, Reference: &ref},
	}
	if diff := cmp.Diff(wantRes, gotRes); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if err := q.ackResults(ctx, results[:2]); err != nil {
		t.Fatal(err)
	}
	if got := q.Stats().Results; got != 1 {
		t.Errorf("results after ack = %d, want 1", got)
	}
}

// TestQueueDirectionsBoundedApart fills each direction to its bound and
// checks the other still takes work: a flood of requests never makes the
// gateway refuse a received SMS, nor the reverse.
func TestQueueDirectionsBoundedApart(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 2)
	ctx := context.Background()
	flood := []*admit{
		{Req: Request{ID: "r1", Channel: gw.ChannelSMS, To: "000", Payload: []byte("x")}},
		{Req: Request{ID: "r2", Channel: gw.ChannelIP, Payload: []byte("x")}},
		{Req: Request{ID: "r3", Channel: gw.ChannelIP, Payload: []byte("x")}},
	}
	if err := q.admit(ctx, flood); err != nil {
		t.Fatal(err)
	}
	if flood[2].Outcome != admitFull {
		t.Fatalf("third request outcome %v, want admitFull (max 2)", flood[2].Outcome)
	}
	for i := range 2 {
		if err := q.Put(ctx, sms(i)); err != nil {
			t.Fatalf("Put %d with the requests full: %v", i, err)
		}
	}
	if _, err := q.PutSegment(ctx, gw.Segment{Key: "k", Seq: 1, Total: 2, TPDU: []byte{1}}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("PutSegment beyond max_messages = %v, want ErrQueueFull", err)
	}
	// Received side full now; a request still fits once one is done.
	sr, ok, err := q.headRequest(outSMS)
	if err != nil || !ok {
		t.Fatalf("headRequest: %v %v", ok, err)
	}
	if err := q.complete(ctx, outSMS, sr, Result{ID: "r1", Channel: gw.ChannelSMS, Status: StatusSent}); err != nil {
		t.Fatal(err)
	}
	more := []*admit{{Req: Request{ID: "r4", Channel: gw.ChannelSMS, To: "000", Payload: []byte("x")}}}
	if err := q.admit(ctx, more); err != nil {
		t.Fatal(err)
	}
	if more[0].Outcome != admitQueued {
		t.Errorf("request with the received side full: outcome %v, want admitQueued", more[0].Outcome)
	}
}

func TestQueueQuarantine(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	ctx := context.Background()
	var events []string
	q.SetEventHandler(func(ev gw.Event) { events = append(events, ev.Type) })
	if err := q.Put(ctx, sms(1)); err != nil {
		t.Fatal(err)
	}
	// Overwrite the record with garbage, as a damaged disk might.
	if err := q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIn).Put(seqKey(1), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(ctx, sms(2)); err != nil {
		t.Fatal(err)
	}
	items, err := q.headInbound(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].err == nil || items[1].err != nil {
		t.Fatalf("headInbound errors = %v, want only the first unreadable", items)
	}
	if err := q.quarantine(ctx, bucketIn, items[0].key, items[0].err); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ids(sms(2)), headIDs(t, q)); diff != "" {
		t.Errorf("after quarantine (-want +got):\n%s", diff)
	}
	var dead int
	if err := q.db.View(func(tx *bolt.Tx) error {
		dead = tx.Bucket(bucketDead).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if dead != 1 {
		t.Errorf("dead records = %d, want 1", dead)
	}
	if diff := cmp.Diff([]string{"store_corrupt"}, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// A commit that removes one result and adds another leaves the count level;
// the result publisher must still be woken, or the new result waits until
// something else happens to poke it.
func TestQueueAddWakesReaderWhenCountLevel(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	ctx := context.Background()
	add := func(id string) {
		t.Helper()
		if err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
			return q.putResult(tx, c, Result{ID: id, Channel: "sms", Status: StatusSent})
		}); err != nil {
			t.Fatal(err)
		}
	}
	add("first")
	head, err := q.headResults(1)
	if err != nil || len(head) != 1 {
		t.Fatalf("headResults = %v, %v", head, err)
	}
	<-q.sigRes // consume the wake-up of the first result
	err = q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		if err := tx.Bucket(bucketResults).Delete(head[0].key); err != nil {
			return err
		}
		c.res--
		return q.putResult(tx, c, Result{ID: "second", Channel: "sms", Status: StatusSent})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Stats().Results; got != 1 {
		t.Fatalf("Results = %d, want 1", got)
	}
	select {
	case <-q.sigRes:
	default:
		t.Fatal("a result added in a commit that also removed one did not wake the publisher")
	}
}

// TestQueuePublisherWokenBeforeMarkSync checks that a commit of taken work
// wakes the publish loop as soon as bbolt has synced it, while the
// transaction mark is still being synced, and that the writer hears of it
// only after the mark is durable (the SMS leaves the SIM only then).
func TestQueuePublisherWokenBeforeMarkSync(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 10)
	syncing, release := make(chan struct{}), make(chan struct{})
	q.hwm.sync = func(f *os.File) error {
		close(syncing)
		<-release
		return f.Sync()
	}
	put := make(chan error, 1)
	go func() { put <- q.Put(context.Background(), sms(1)) }()
	select {
	case <-syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("the mark was never synced")
	}
	select {
	case <-q.sigIn:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the publish loop was not woken while the mark was synced")
	}
	if got := headIDs(t, q); !cmp.Equal(got, ids(sms(1))) {
		t.Errorf("readable while the mark syncs: %v, want %v", got, ids(sms(1)))
	}
	select {
	case err := <-put:
		t.Fatalf("Put returned (%v) before the mark was durable", err)
	default:
	}
	close(release)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
}

// TestQueueSIMJournal checks that the SIM journal commits with the SMS it
// records, survives a reopen, and that Known sees queued and delivered
// ids.
func TestQueueSIMJournal(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	q, err := OpenQueue(StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := q.Journal(ctx); err != nil || len(j.Slots) != 0 || len(j.Announced) != 0 {
		t.Fatalf("fresh journal %+v, %v", j, err)
	}
	m := gw.Inbound{ID: "sms-a", Channel: gw.ChannelSMS, From: "000", Payload: []byte("reboot"), ReceivedAt: time.Now()}
	j := gw.SIMJournal{Slots: map[int]gw.SlotID{3: {PDU: "abcd", ID: "sms-a"}}, Announced: []int{7, 4}}
	if n, err := q.PutSIM(ctx, []gw.SIMItem{{Message: &m}}, j); err != nil || n != 1 {
		t.Fatalf("PutSIM(message) = %d, %v", n, err)
	}
	seg := gw.Segment{Key: "sms/000/8/1/2", Seq: 1, Total: 2, TPDU: []byte{1}, ReceivedAt: time.Now()}
	j2 := gw.SIMJournal{Slots: j.Slots, Announced: []int{4}}
	items := []gw.SIMItem{{Part: &seg}}
	if n, err := q.PutSIM(ctx, items, j2); err != nil || n != 1 || len(items[0].Held) != 1 {
		t.Fatalf("PutSIM(part): %d %v %v", n, items[0].Held, err)
	}
	for id, want := range map[string]bool{"sms-a": true, "sms-b": false} {
		if got, err := q.Known(ctx, id); err != nil || got != want {
			t.Errorf("Known(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTestQueue(t, dir, 0)
	got, err := q.Journal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j2, got); diff != "" {
		t.Errorf("journal after reopen (-want +got):\n%s", diff)
	}
	if err := q.SaveJournal(ctx, gw.SIMJournal{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Journal(ctx); len(got.Slots) != 0 || len(got.Announced) != 0 {
		t.Errorf("journal after SaveJournal(empty) = %+v", got)
	}
	if ok, _ := q.Known(ctx, "sms-a"); !ok {
		t.Error("a queued message is not Known after a reopen")
	}
}
