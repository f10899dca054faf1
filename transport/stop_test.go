package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
)

// stopBound is the contract of a stop with the short grace used here: Run
// returns within ShutdownGrace plus its bounded tail (see ShutdownGrace),
// far below this whatever the broker and the device are doing. Time the
// test process spent unscheduled (a loaded machine stalls it for seconds
// at once, every relay of the test alike) is not the stop's, and is
// measured and left out.
const stopBound = 2 * time.Second

// schedWatch measures when the process was not running: a goroutine that
// should wake every tick notes each wake-up that came late.
type schedWatch struct {
	mu   sync.Mutex
	gaps [][2]time.Time
	stop chan struct{}
	done chan struct{}
}

const schedTick = 5 * time.Millisecond

func startSchedWatch() *schedWatch {
	w := &schedWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(schedTick):
			}
			now := time.Now()
			if now.Sub(last) > 10*schedTick {
				w.mu.Lock()
				w.gaps = append(w.gaps, [2]time.Time{last.Add(schedTick), now})
				w.mu.Unlock()
			}
			last = now
		}
	}()
	return w
}

func (w *schedWatch) close() {
	close(w.stop)
	<-w.done
}

// summary returns how many stalls there were and the longest.
func (w *schedWatch) summary() (n int, longest time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.gaps {
		longest = max(longest, g[1].Sub(g[0]))
	}
	return len(w.gaps), longest
}

// stalled returns how much of [from, to] the process spent unscheduled.
func (w *schedWatch) stalled(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Duration
	for _, g := range w.gaps {
		a, b := g[0], g[1]
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

// faultProxy sits between the relay and the broker. It can withhold
// everything the broker sends (CONNACK, SUBACK, PUBACK) while the
// connection stays open, and cut every connection, which makes paho
// reconnect.
type faultProxy struct {
	l      net.Listener
	target string

	mu      sync.Mutex
	conns   map[*proxied]struct{}
	stalled chan struct{} // closed while traffic flows
	wg      sync.WaitGroup
}

type proxied struct {
	client, broker net.Conn
	done           chan struct{}
	once           sync.Once
}

func (p *proxied) close() {
	p.once.Do(func() {
		close(p.done)
		p.client.Close()
		p.broker.Close()
	})
}

func newFaultProxy(target string) (*faultProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &faultProxy{l: l, target: target, conns: map[*proxied]struct{}{}, stalled: make(chan struct{})}
	close(p.stalled)
	p.wg.Go(p.accept)
	return p, nil
}

func (p *faultProxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *faultProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxied{client: c, broker: b, done: make(chan struct{})}
		p.mu.Lock()
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() {
			defer pc.close()
			_, _ = io.Copy(b, c) // the relay's bytes always reach the broker
		})
		p.wg.Go(func() {
			defer pc.close()
			p.fromBroker(pc)
		})
	}
}

// fromBroker forwards the broker's bytes, holding them while stalled.
func (p *faultProxy) fromBroker(pc *proxied) {
	buf := make([]byte, 32<<10)
	for {
		n, err := pc.broker.Read(buf)
		if n > 0 {
			p.mu.Lock()
			flowing := p.stalled
			p.mu.Unlock()
			select {
			case <-flowing:
			case <-pc.done:
				return
			}
			if _, werr := pc.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall withholds the broker's bytes until flow.
func (p *faultProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stalled:
		p.stalled = make(chan struct{})
	default:
	}
}

func (p *faultProxy) flow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stalled:
	default:
		close(p.stalled)
	}
}

// cut closes every connection through the proxy.
func (p *faultProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = map[*proxied]struct{}{}
	p.mu.Unlock()
	for pc := range conns {
		pc.close()
	}
}

func (p *faultProxy) close() {
	p.l.Close()
	p.cut()
	p.flow()
	p.wg.Wait()
}

// stopBroker records, for the stop test, what the broker received under
// the prefix stop/ and which requests each relay acknowledged.
type stopBroker struct {
	mochi.HookBase
	mu     sync.Mutex
	msgs   map[string][]msg               // by prefix
	sentID map[string]map[uint16]string   // client -> packet id -> request id
	acked  map[string]map[string]struct{} // client -> request ids acknowledged
}

func (b *stopBroker) ID() string { return "stop-test" }

func (b *stopBroker) Provides(x byte) bool {
	return x == mochi.OnQosPublish || x == mochi.OnQosComplete
}

// OnQosPublish notes which request went to a relay under which packet id.
func (b *stopBroker) OnQosPublish(cl *mochi.Client, pk packets.Packet, _ int64, _ int) {
	if !strings.HasSuffix(pk.TopicName, "/out") {
		return
	}
	var req struct{ ID string }
	if json.Unmarshal(pk.Payload, &req) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sentID[cl.ID] == nil {
		b.sentID[cl.ID] = map[uint16]string{}
	}
	b.sentID[cl.ID][pk.PacketID] = req.ID
}

// OnQosComplete notes a PUBACK from a relay.
func (b *stopBroker) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.sentID[cl.ID][pk.PacketID]
	if !ok {
		return
	}
	if b.acked[cl.ID] == nil {
		b.acked[cl.ID] = map[string]struct{}{}
	}
	b.acked[cl.ID][id] = struct{}{}
}

func (b *stopBroker) inline(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	parts := strings.SplitN(pk.TopicName, "/", 3)
	if len(parts) < 3 {
		return
	}
	prefix := parts[0] + "/" + parts[1]
	b.mu.Lock()
	b.msgs[prefix] = append(b.msgs[prefix], msg{Topic: parts[2], Payload: string(pk.Payload), Retained: pk.FixedHeader.Retain})
	b.mu.Unlock()
}

// seen returns the ids in payloads the broker received on prefix/suffix.
func (b *stopBroker) seen(prefix, suffix string) map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	for _, m := range b.msgs[prefix] {
		if m.Topic != suffix {
			continue
		}
		var v struct{ ID string }
		if json.Unmarshal([]byte(m.Payload), &v) == nil {
			out[v.ID] = true
		}
	}
	return out
}

// lastStatus returns the last P/status the broker received for prefix.
func (b *stopBroker) lastStatus(prefix string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.msgs[prefix]) - 1; i >= 0; i-- {
		if m := b.msgs[prefix][i]; m.Topic == TopicStatus {
			return m.Payload, true
		}
	}
	return "", false
}

func (b *stopBroker) ackedBy(client string) map[string]struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.acked[client])
}

// stopPhases are where a stop lands.
var stopPhases = []string{"connect", "reconnect", "publish", "puback", "device", "device-deaf"}

// TestRelayStopsAnywhere stops the relay 500 times at random points of
// connecting (CONNACK withheld), reconnecting (connections cut, the next
// CONNACK sometimes withheld), publishing, waiting for a PUBACK (withheld)
// and a device call (one that honours its context, and one that ignores
// it). Every stop must return within stopBound, and nothing may be lost:
// each message queued for the broker was either acknowledged by it or is
// still queued, each request the relay acknowledged to the broker is still
// queued or has its result, and the status left behind is not online.
func TestRelayStopsAnywhere(t *testing.T) {
	rounds := 500
	if testing.Short() {
		rounds = 100
	}
	rec := &stopBroker{msgs: map[string][]msg{}, sentID: map[string]map[uint16]string{}, acked: map[string]map[string]struct{}{}}
	addr := freeAddr(t)
	srv, err := startBroker("tcp://"+addr, testLogger(t), func(s *mochi.Server) error {
		if err := s.AddHook(rec, nil); err != nil {
			return err
		}
		return s.Subscribe("stop/#", 1, rec.inline)
	})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	pub := publisher(t, "tcp://"+addr)
	sched := startSchedWatch()
	defer sched.close()

	type outcome struct {
		phase string
		took  time.Duration
	}
	results := make(chan outcome, rounds)
	jobs := make(chan int)
	var wg sync.WaitGroup
	const workers = 20
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				phase := stopPhases[rand.N(len(stopPhases))]
				took, err := stopRound(t, rec, sched, addr, pub, i, phase)
				if err != nil {
					t.Errorf("round %d (%s): %v", i, phase, err)
				}
				results <- outcome{phase, took}
			}
		})
	}
	for i := range rounds {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(results)

	var all []time.Duration
	byPhase := map[string][]time.Duration{}
	for o := range results {
		all = append(all, o.took)
		byPhase[o.phase] = append(byPhase[o.phase], o.took)
	}
	t.Logf("%d stops: %s", len(all), durationSummary(all))
	n, longest := sched.summary()
	t.Logf("the process went unscheduled for more than %s %d times, the longest %s", 10*schedTick, n, longest.Round(time.Millisecond))
	for _, ph := range stopPhases {
		t.Logf("  %-11s %s", ph, durationSummary(byPhase[ph]))
	}
}

func durationSummary(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	slices.Sort(d)
	return fmt.Sprintf("n=%d median %s p90 %s max %s", len(d), d[len(d)/2].Round(time.Millisecond),
		d[len(d)*9/10].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// stopRound runs one relay to the stop point of phase, stops it and checks
// the stop. It returns how long the stop took.
func stopRound(t *testing.T, rec *stopBroker, sched *schedWatch, brokerAddr string, pub paho.Client, i int, phase string) (time.Duration, error) {
	prefix := fmt.Sprintf("stop/%d", i)
	client := fmt.Sprintf("stop-%d", i)
	proxy, err := newFaultProxy(brokerAddr)
	if err != nil {
		return 0, err
	}
	defer proxy.close()
	q, err := OpenQueue(StoreConfig{Dir: t.TempDir(), MaxMessages: 1000}, nil)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	dev := newFakeDevice()
	dev.release = make(chan struct{})
	dev.ignore = phase == "device-deaf"
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(dev.release) }) }
	defer release()

	cfg := testRelayConfig(proxy.url())
	cfg.MQTT.ClientID = client
	cfg.MQTT.TopicPrefix = prefix
	cfg.MQTT.ConnectTimeout = time.Second
	cfg.ShutdownGrace = 100 * time.Millisecond
	cfg.SendTimeout = time.Minute
	var logBuf syncBuffer
	r, err := NewRelay(cfg, q, dev, slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		return 0, err
	}

	ctx := context.Background()
	var inbound []string
	put := func(n int) error {
		for range n {
			m := sms(len(inbound))
			m.Payload = fmt.Appendf(nil, "%s #%d", prefix, len(inbound))
			m.ID = fmt.Sprintf("%s-in-%d", client, len(inbound))
			if err := q.Put(ctx, m); err != nil {
				return err
			}
			inbound = append(inbound, m.ID)
		}
		return nil
	}
	var requests []string
	request := func() error {
		id := fmt.Sprintf("%s-req-%d", client, len(requests))
		tok := pub.Publish(prefix+"/"+TopicSMSOut, 1, false, fmt.Sprintf(`{"id":%q,"payload":"x"}`, id))
		if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
			return fmt.Errorf("publish request: %v", tok.Error())
		}
		requests = append(requests, id)
		return nil
	}
	jitter := func(max time.Duration) { time.Sleep(rand.N(max + 1)) }
	ready := func() error {
		deadline := time.Now().Add(waitLimit)
		for !r.Stats().Connected {
			if time.Now().After(deadline) {
				return errors.New("relay never connected")
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	}

	if err := put(rand.N(4)); err != nil {
		return 0, err
	}
	if phase == "connect" {
		proxy.stall()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	switch phase {
	case "connect":
		jitter(30 * time.Millisecond)
	case "reconnect":
		if err := ready(); err != nil {
			return 0, err
		}
		if err := put(rand.N(5)); err != nil {
			return 0, err
		}
		if rand.N(2) == 0 {
			proxy.stall() // the reconnect waits for its CONNACK
		}
		proxy.cut()
		jitter(40 * time.Millisecond)
	case "publish":
		if err := ready(); err != nil {
			return 0, err
		}
		if err := put(5 + rand.N(20)); err != nil {
			return 0, err
		}
		jitter(10 * time.Millisecond)
	case "puback":
		if err := ready(); err != nil {
			return 0, err
		}
		proxy.stall()
		if err := put(1 + rand.N(5)); err != nil {
			return 0, err
		}
		deadline := time.Now().Add(waitLimit)
		for r.trackers[trackInbound].Load() == 0 {
			if time.Now().After(deadline) {
				return 0, errors.New("relay never waited for a PUBACK")
			}
			time.Sleep(time.Millisecond)
		}
		jitter(20 * time.Millisecond)
	case "device", "device-deaf":
		if err := ready(); err != nil {
			return 0, err
		}
		if err := request(); err != nil {
			return 0, err
		}
		select {
		case <-dev.started:
		case <-time.After(waitLimit):
			return 0, errors.New("device never called: the request published once the relay was connected did not reach it")
		}
		if rand.N(3) == 0 {
			if err := request(); err != nil { // one more waits behind it
				return 0, err
			}
		}
		jitter(20 * time.Millisecond)
	}

	start := time.Now()
	cancel()
	var took time.Duration
	select {
	case err := <-done:
		took = time.Since(start)
		if err != nil {
			return took, fmt.Errorf("Run: %w", err)
		}
	case <-time.After(waitLimit):
		return waitLimit, errors.New("Run did not return")
	}
	var errs []error
	stalled := sched.stalled(start, start.Add(took))
	if took > stopBound/2 {
		t.Logf("round %d (%s): slow stop, %s, of which the process was not running %s; relay log:\n%s",
			i, phase, took.Round(time.Millisecond), stalled.Round(time.Millisecond), logBuf.String())
	}
	if took-stalled > stopBound {
		errs = append(errs, fmt.Errorf("stop took %s (%s of it unscheduled), more than %s", took.Round(time.Millisecond), stalled.Round(time.Millisecond), stopBound))
	}

	// Nothing lost: what the broker did not acknowledge is still queued.
	queuedIn, queuedReq, queuedRes, err := queueContents(q)
	if err != nil {
		return took, err
	}
	seenIn := rec.seen(prefix, TopicSMSIn)
	for _, id := range inbound {
		if !seenIn[id] && !queuedIn[id] {
			errs = append(errs, fmt.Errorf("inbound %s neither delivered nor queued", id))
		}
	}
	seenRes := rec.seen(prefix, TopicSMSOutResult)
	for id := range rec.ackedBy(client) {
		if !queuedReq[id] && !queuedRes[id] && !seenRes[id] {
			errs = append(errs, fmt.Errorf("request %s acknowledged by the relay but neither queued nor answered", id))
		}
	}
	if phase == "device" || phase == "device-deaf" {
		if first := requests[0]; !queuedReq[first] && !queuedRes[first] && !seenRes[first] {
			errs = append(errs, fmt.Errorf("request %s in the device call at the stop is gone", first))
		}
	}
	// The device that ignored its context returns only now.
	release()

	// Whatever the broker holds of this relay's connections ends with the
	// proxy; the retained status left behind must not say online.
	proxy.close()
	deadline := time.Now().Add(waitLimit)
	for {
		st, ok := rec.lastStatus(prefix)
		if !ok || st == OfflinePayload {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("status left behind is %s, want %s", st, OfflinePayload))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(errs) > 0 {
		t.Logf("round %d (%s): relay log:\n%s", i, phase, logBuf.String())
	}
	return took, errors.Join(errs...)
}

// queueContents lists the ids of everything in q not yet delivered.
func queueContents(q *Queue) (in, req, res map[string]bool, err error) {
	in, req, res = map[string]bool{}, map[string]bool{}, map[string]bool{}
	items, err := q.inboundAfter(nil, 1<<20)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, it := range items {
		in[it.msg.ID] = true
	}
	results, err := q.resultsAfter(nil, 1<<20)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, it := range results {
		res[it.res.ID] = true
	}
	err = q.db.View(func(tx *bolt.Tx) error {
		for ch := range numOut {
			if err := tx.Bucket(outBucket(ch)).ForEach(func(_, v []byte) error {
				r, err := decodeRequest(v)
				if err != nil {
					return err
				}
				req[r.ID] = true
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return in, req, res, err
}

// syncBuffer is a log destination shared by the relay's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
