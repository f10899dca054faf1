package transport

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkQueuePut is one writer: every Put is its own fsync'd commit.
func BenchmarkQueuePut(b *testing.B) {
	q := openTestQueue(b, b.TempDir(), 1<<30)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := q.Put(ctx, sms(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkQueuePutParallel has many writers, as a burst from several
// sources: their Puts share commits.
func BenchmarkQueuePutParallel(b *testing.B) {
	q := openTestQueue(b, b.TempDir(), 1<<30)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Put(ctx, sms(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// BenchmarkRelayThroughput drains a backlog of b.N queued messages to the
// embedded broker: publish, PUBACK, commit the removal.
func BenchmarkRelayThroughput(b *testing.B) {
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			addr := freeAddr(b)
			var got atomic.Int64
			srv, err := startBroker("tcp://"+addr, nil, func(s *mochi.Server) error {
				return s.Subscribe(testPrefix+"/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
					got.Add(1)
				})
			})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			q := openTestQueue(b, b.TempDir(), 1<<30)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				if err := q.Put(ctx, sms(i)); err != nil {
					b.Fatal(err)
				}
			}
			cfg := testRelayConfig("tcp://" + addr)
			cfg.PublishWindow = window
			r := newTestRelay(b, cfg, q, newFakeDevice())
			b.ResetTimer()
			stop := runRelay(b, r)
			eventually(b, "the backlog to drain", func() bool { return q.Stats().Inbound == 0 })
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			if n := r.Stats().Published; n != uint64(b.N) {
				b.Fatalf("published %d, want %d", n, b.N)
			}
		})
	}
}

// BenchmarkRelayEndToEnd puts messages while the relay publishes them, as
// during a burst: the time until the last one is acknowledged by the broker.
func BenchmarkRelayEndToEnd(b *testing.B) {
	addr := freeAddr(b)
	srv, err := startBroker("tcp://"+addr, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	q := openTestQueue(b, b.TempDir(), 1<<30)
	r := newTestRelay(b, testRelayConfig("tcp://"+addr), q, newFakeDevice())
	stop := runRelay(b, r)
	eventually(b, "relay to connect", func() bool { return r.Stats().Connected })
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := q.Put(ctx, sms(i)); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, "every message to be acknowledged", func() bool { return r.Stats().Published == uint64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}
