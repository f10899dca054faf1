package transport

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/testenv"
)

func bigSMS(i int) gw.Inbound {
	m := sms(i)
	m.Payload = []byte(strings.Repeat(fmt.Sprintf("%04d", i), 256))
	return m
}

// TestQueueFullDisk fills a 1 MiB disk with the broker away, then delivers:
// every delivered message is removed although the disk was full, new work
// is refused meanwhile (store_full), and taken again once there is room.
func TestQueueFullDisk(t *testing.T) {
	disk := testenv.SmallDisk(t, 1<<20)
	dir := filepath.Join(disk, "store")
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 100000, ReserveBytes: 128 << 10}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	var mu sync.Mutex
	var events []string
	q.SetEventHandler(func(ev gw.Event) {
		mu.Lock()
		events = append(events, ev.Type)
		mu.Unlock()
	})
	ctx := context.Background()
	for round := 1; round <= 3; round++ {
		fillAndDrain(t, q, round)
	}
	mu.Lock()
	if len(events) == 0 || events[0] != "store_full" {
		t.Errorf("events %v, want store_full", events)
	}
	mu.Unlock()
	eventually(t, "the store to take work again", func() bool {
		return q.Put(ctx, bigSMS(100000)) == nil
	})
}

// fillAndDrain fills the store until it refuses work as full, checks that
// requests are then refused with a result, and delivers everything: every
// removal must go through although the disk is full.
func fillAndDrain(t *testing.T, q *Queue, round int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "the store to take work", func() bool { return !q.Stats().StoreFull })
	stored := 0
	for i := 0; ; i++ {
		err := q.Put(ctx, bigSMS(round*10000+i))
		if err == nil {
			stored++
			continue
		}
		if errors.Is(err, ErrStoreFull) {
			break
		}
		if !errors.Is(err, ErrQueueFull) {
			// The commit that hit the full disk fails; the SMS stays on
			// the SIM. The next ones are refused as full.
			t.Logf("round %d: Put %d: %v", round, i, err)
		}
		if i > 5000 {
			t.Fatalf("round %d: disk never filled: %d stored", round, stored)
		}
	}
	t.Logf("round %d: %d SMS of 1 KiB stored before the store was full", round, stored)
	if stored == 0 {
		t.Errorf("round %d: nothing stored", round)
	}
	if !q.Stats().StoreFull {
		t.Errorf("round %d: Stats().StoreFull not set", round)
	}
	reqs := make([]*admit, 50)
	for i := range reqs {
		reqs[i] = &admit{Req: Request{ID: fmt.Sprintf("r%d-%d", round, i), Channel: gw.ChannelIP, Payload: []byte("x")}}
	}
	if err := q.admit(ctx, reqs); err != nil {
		t.Fatalf("round %d: admit on a full disk: %v", round, err)
	}
	for _, it := range reqs {
		if it.Outcome != admitFull {
			t.Fatalf("round %d: request %s on a full disk: outcome %v, want admitFull", round, it.Req.ID, it.Outcome)
		}
	}
	for {
		items, err := q.headInbound(16)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		if err := q.ackInbound(ctx, items); err != nil {
			t.Fatalf("round %d: removing delivered messages on a full disk: %v (pending %d)", round, err, q.Stats().Pending())
		}
	}
	res, err := q.headResults(100)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ackResults(ctx, res); err != nil {
		t.Fatal(err)
	}
	if p := q.Stats().Pending(); p != 0 {
		t.Errorf("round %d: pending %d after everything was delivered", round, p)
	}
}
