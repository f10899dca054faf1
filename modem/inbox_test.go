package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"
)

// recordEvents is an eventer that keeps what it is told.
type recordEvents []gw.Event

func (r *recordEvents) event(typ, msg string, fields map[string]any) {
	*r = append(*r, gw.Event{Type: typ, Message: msg, Fields: fields})
}

// refusingSink refuses every Put while refuse is set and keeps the rest.
type refusingSink struct {
	refuse bool
	got    []gw.Inbound
}

func (s *refusingSink) Put(_ context.Context, m gw.Inbound) error {
	if s.refuse {
		return errors.New("store full")
	}
	s.got = append(s.got, m)
	return nil
}

// TestInboxDropsOldest: datagrams the Sink refuses are held, at
// most maxHeldDatagrams of them; beyond that the oldest go, each with an
// ip_dropped event, and the rest reach the Sink in arrival order once it
// takes them.
func TestInboxDropsOldest(t *testing.T) {
	var evs recordEvents
	sink := &refusingSink{refuse: true}
	b := newInbox(6969, nil, time.Hour, time.Hour, slog.New(slog.DiscardHandler), &evs, sink)
	ctx := context.Background()
	from := netip.MustParseAddrPort("100.64.0.1:6969")
	const extra = 3
	for i := range maxHeldDatagrams + extra {
		b.take(ctx, from, fmt.Appendf(nil, "dg %d", i))
	}
	if n := b.held.Len(); n != maxHeldDatagrams {
		t.Fatalf("held %d datagrams, want %d", n, maxHeldDatagrams)
	}
	var dropped []string
	for _, e := range evs {
		if e.Type == gw.EventIPDropped {
			dropped = append(dropped, e.Fields["id"].(string))
		}
	}
	if len(dropped) != extra {
		t.Fatalf("%d ip_dropped events, want %d: %v", len(dropped), extra, evs)
	}
	if n := countType(evs, gw.EventIPStoreFailed); n != 1 {
		t.Errorf("%d ip_store_failed events, want 1 for the whole refusal", n)
	}

	sink.refuse = false
	b.retry(ctx)
	if b.held.Len() != 0 || len(sink.got) != maxHeldDatagrams {
		t.Fatalf("after the Sink took them: %d held, %d stored", b.held.Len(), len(sink.got))
	}
	// The newest are kept, in order; what was dropped is none of them.
	stored := map[string]bool{}
	for i, m := range sink.got {
		if want := fmt.Sprintf("dg %d", i+extra); string(m.Payload) != want {
			t.Fatalf("stored #%d is %q, want %q", i, m.Payload, want)
		}
		stored[m.ID] = true
	}
	for _, id := range dropped {
		if stored[id] {
			t.Errorf("%s was reported dropped and stored", id)
		}
	}
}

func countType(evs []gw.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}
