package modem

import (
	"context"
	"log/slog"
	"sync"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ring"
)

// maxQueuedEvents bounds events waiting for a slow OnEvent.
const maxQueuedEvents = 1000

// notifier delivers events and status snapshots from a goroutine of its
// own, so a slow callback never stalls the modem.
type notifier struct {
	onEvent  func(gw.Event)
	onStatus func(gw.Status)
	log      *slog.Logger

	mu      sync.Mutex
	events  *ring.Queue[gw.Event] // bounded by maxQueuedEvents, the oldest go first
	status  *gw.Status
	dropped int
	wake    chan struct{}
}

func newNotifier(onEvent func(gw.Event), onStatus func(gw.Status), log *slog.Logger) *notifier {
	return &notifier{onEvent: onEvent, onStatus: onStatus, log: log, wake: make(chan struct{}, 1),
		events: ring.New(ring.Bounds[gw.Event]{Len: maxQueuedEvents})}
}

func (n *notifier) event(e gw.Event) {
	n.mu.Lock()
	n.dropped += n.events.Push(e)
	n.mu.Unlock()
	n.poke()
}

// statusChanged replaces any snapshot not yet delivered: only the latest
// matters.
func (n *notifier) statusChanged(s gw.Status) {
	n.mu.Lock()
	n.status = &s
	n.mu.Unlock()
	n.poke()
}

func (n *notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx ends, then delivers what is left.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			n.flush()
			return
		case <-n.wake:
			n.flush()
		}
	}
}

func (n *notifier) flush() {
	for {
		n.mu.Lock()
		events, st, dropped := n.events.Drain(), n.status, n.dropped
		n.status, n.dropped = nil, 0
		n.mu.Unlock()
		if dropped > 0 {
			n.log.Warn("event queue full, dropped the oldest events", "dropped", dropped)
		}
		if len(events) == 0 && st == nil {
			return
		}
		for _, e := range events {
			if n.onEvent != nil {
				n.onEvent(e)
			}
		}
		if st != nil && n.onStatus != nil {
			n.onStatus(*st)
		}
	}
}
