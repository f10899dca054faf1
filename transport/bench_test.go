package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	paho "github.com/eclipse/paho.mqtt.golang"

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

// BenchmarkRelayMosquitto drains a backlog of b.N queued messages to a
// mosquitto process, whose PUBACKs take a round trip through another
// process (and, on a loaded host, through the scheduler), for several
// publish windows.
func BenchmarkRelayMosquitto(b *testing.B) {
	for _, window := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			m := startMosquitto(b)
			q := openTestQueue(b, b.TempDir(), 1<<30)
			ctx := context.Background()
			ms := make([]gw.Inbound, b.N)
			for i := range ms {
				ms[i] = sms(i)
			}
			for len(ms) > 0 {
				n := min(len(ms), udpMaxBatch)
				if _, err := q.PutBatch(ctx, ms[:n]); err != nil {
					b.Fatal(err)
				}
				ms = ms[n:]
			}
			cfg := testRelayConfig(m.url())
			cfg.PublishWindow = window
			r := newTestRelay(b, cfg, q, newFakeDevice())
			b.ResetTimer()
			cpu0 := cpuTime(b)
			stop := runRelay(b, r)
			eventually(b, "the backlog to drain", func() bool { return r.Stats().Published == uint64(b.N) })
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
			if err := stop(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkUDPMosquitto is the path of make bench's ipos step inside one
// process: datagrams over loopback to the UDP receiver, durably queued,
// published to mosquitto and delivered to a QoS 1 subscriber, with at most
// 256 sent but not yet delivered (as the bench sends). It checks that every
// datagram arrived, first deliveries in the order sent.
func BenchmarkUDPMosquitto(b *testing.B) {
	for _, window := range []int{16, 32, 64, 100} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchUDPMosquitto(b, window) })
	}
}

func benchUDPMosquitto(b *testing.B, window int) {
	const inFlight = 256
	m := startMosquitto(b)
	q := openTestQueue(b, b.TempDir(), 1<<30)
	u, err := NewUDP(UDPConfig{Bind: "127.0.0.1", Cloud: "127.0.0.1:9"}, q, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	uctx, ucancel := context.WithCancel(context.Background())
	udone := make(chan error, 1)
	go func() { udone <- u.Run(uctx) }()
	defer func() {
		ucancel()
		if err := <-udone; err != nil {
			b.Error(err)
		}
	}()

	var (
		mu    sync.Mutex
		seen  = map[int]bool{}
		order []int
		got   atomic.Int64
		sig   = make(chan struct{}, 1)
	)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(m.url()).SetClientID("bench-sub").SetCleanSession(false))
	if t := sub.Connect(); !t.WaitTimeout(waitLimit) || t.Error() != nil {
		b.Fatalf("subscriber connect: %v", t.Error())
	}
	defer sub.Disconnect(0)
	if t := sub.Subscribe(testPrefix+"/ip/in", 1, func(_ paho.Client, msg paho.Message) {
		var v struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal(msg.Payload(), &v); err != nil {
			b.Error(err)
			return
		}
		var i int
		if _, err := fmt.Sscanf(v.Payload, "d%d", &i); err != nil {
			b.Errorf("payload %q: %v", v.Payload, err)
			return
		}
		mu.Lock()
		if !seen[i] {
			seen[i] = true
			order = append(order, i)
			got.Add(1)
		}
		mu.Unlock()
		poke(sig)
	}); !t.WaitTimeout(waitLimit) || t.Error() != nil {
		b.Fatalf("subscribe: %v", t.Error())
	}

	cfg := testRelayConfig(m.url())
	cfg.PublishWindow = window
	r := newTestRelay(b, cfg, q, newFakeDevice())
	stop := runRelay(b, r)
	defer func() {
		if err := stop(); err != nil {
			b.Error(err)
		}
	}()
	eventually(b, "relay to connect", func() bool { return r.Stats().Connected })
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.Port()})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	wait := func(n int64) {
		deadline := time.After(waitLimit)
		for got.Load() < n {
			select {
			case <-sig:
			case <-deadline:
				b.Fatalf("%d of %d datagrams delivered", got.Load(), n)
			}
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	var st [4]int64 // see the metrics below
	for i := 0; i < b.N; i++ {
		wait(int64(i - inFlight + 1))
		us := u.Stats()
		pub := int64(r.Stats().Published)
		st[0] += int64(i) - int64(us.Received)
		st[1] += int64(us.Received) - int64(us.Stored)
		st[2] += int64(us.Stored) - pub
		st[3] += pub - got.Load()
		if _, err := conn.Write([]byte(`d` + strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	wait(int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	// The sender and the subscriber count too: compare runs, not processes.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	// Where the datagrams in flight were, on average, when one was sent:
	// the stage holding most of them is the one that limits the rate.
	for i, unit := range []string{"in-socket", "in-intake", "stored-unacked", "acked-undelivered"} {
		b.ReportMetric(float64(st[i])/float64(b.N), unit)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, i := range order {
		if i != k {
			b.Fatalf("delivery %d is datagram %d, want %d", k, i, k)
		}
	}
}

// cpuTime is the CPU time the process has used, user and system: on a
// shared host a rate follows the load, the CPU a message costs does not.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
