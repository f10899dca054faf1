package ring_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/simgate/simgate/internal/ring"
)

// Events wait for a slow subscriber in a queue of at most three; a flood
// drops the oldest, and the count goes to the log.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	q := ring.New(ring.Bounds[string]{Len: 3})
	dropped := 0
	for _, ev := range []string{"modem_lost", "modem_ready", "sms_received", "sms_sent", "ip_received"} {
		dropped += q.Push(ev)
	}
	if dropped > 0 {
		log.Warn("event queue full, dropped the oldest events", "dropped", dropped)
	}
	fmt.Println(q.Drain())
	// Output:
	// level=WARN msg="event queue full, dropped the oldest events" dropped=2
	// [sms_received sms_sent ip_received]
}

// URCs are bounded in bytes as well as in number, so a module streaming
// long lines cannot take the gateway's memory.
func ExampleBounds_cost() {
	q := ring.New(ring.Bounds[string]{
		Len:    100,
		Cost:   16,
		CostOf: func(s string) int { return len(s) },
	})
	q.Push("+CMTI: \"SM\",1")
	n := q.Push("+CMTI: \"SM\",2")
	fmt.Println(n, q.Len(), q.Cost())
	// Output: 1 1 13
}

// With OnDrop the caller learns which items were lost, to say so for each.
func ExampleBounds_onDrop() {
	q := ring.New(ring.Bounds[int]{Len: 2, OnDrop: func(id int) {
		fmt.Println("lost datagram", id)
	}})
	for id := 1; id <= 4; id++ {
		q.Push(id)
	}
	// Output:
	// lost datagram 1
	// lost datagram 2
}
