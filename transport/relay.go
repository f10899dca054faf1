package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ratelimit"
)

// Defaults of RelayConfig.
const (
	DefaultStatusInterval = 60 * time.Second
	DefaultShutdownGrace  = 5 * time.Second
	DefaultSendTimeout    = 3 * time.Minute
	DefaultPublishWindow  = 64
	DefaultStallTimeout   = 5 * time.Minute
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	MQTT MQTTConfig
	// Version is published in P/status.
	Version string
	// StatusInterval is how often P/status is refreshed when nothing changes.
	StatusInterval time.Duration
	// ShutdownGrace bounds how long Run, once its context is cancelled,
	// waits for in-flight work: a device call, PUBACKs, requests received
	// but not yet queued. What is not done by then stays queued. The
	// retained offline status then gets up to min(ShutdownGrace, 1 s) for
	// its PUBACK and the disconnect 250 ms, so Run returns within about
	// ShutdownGrace + 1.5 s whatever the broker and the device do.
	ShutdownGrace time.Duration
	// SendTimeout bounds one device call; a modem takes up to 120 s for an
	// SMS on a poor network.
	SendTimeout time.Duration
	// PublishWindow is how many messages of one outbox may await their
	// PUBACK at once (default DefaultPublishWindow). One PUBACK round trip
	// then carries a window of messages instead of one. Order holds
	// whatever the window, also when the connection drops mid-window (see
	// handOver); a message leaves the queue only once its PUBACK is in.
	// The default, 64, publishes a burst committed in one go (the UDP
	// intake commits up to hundreds of datagrams at once) in a round trip
	// or two, and stays under what brokers accept unacknowledged from one
	// client: AWS IoT Core takes 100, mochi-mqtt 1024 by default, and
	// mosquitto does not limit it for an MQTT 3.1.1 client (its
	// max_inflight_messages bounds what it sends).
	PublishWindow int
	// StallTimeout is how long a PUBACK may be missing on an open
	// connection, or a device call may overrun SendTimeout, before Healthy
	// reports the relay stuck.
	StallTimeout time.Duration
	// Observer receives PUBACK and device-call timings and event types
	// (observe.go).
	Observer Observer
}

func (c *RelayConfig) fill() error {
	if err := c.MQTT.fill(); err != nil {
		return err
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.PublishWindow <= 0 {
		c.PublishWindow = DefaultPublishWindow
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	return nil
}

// Loops of the relay whose waits Healthy watches.
const (
	trackInbound = iota
	trackResults
	trackEvents
	trackSendSMS
	trackSendIP
	trackStatus
	numTrackers
)

var trackerNames = [numTrackers]string{"inbound publisher", "result publisher", "event publisher",
	"SMS sender", "IP sender", "status publisher"}

// heartbeatEvery is how often Run proves it is alive; Healthy allows three.
const heartbeatEvery = 5 * time.Second

// Bounds of the last steps of a stop, after ShutdownGrace.
const (
	// stragglerWait is how long Run waits, once ShutdownGrace is over, for
	// a loop that has not returned (a device call that ignores its
	// context) before it goes on without it.
	stragglerWait = 250 * time.Millisecond
	// offlineWait caps the wait for the PUBACK of the offline status.
	offlineWait = time.Second
	// disconnectQuiesce is what paho gets to send DISCONNECT.
	disconnectQuiesce = 250
)

// Relay moves commands between a modem session, the durable queue and the
// broker: inbound messages from the queue to P/sms/in and P/ip/in in commit
// order; requests from P/sms/out and P/ip/out into the queue and then to the
// device; results, events and status back to the broker.
type Relay struct {
	cfg    RelayConfig
	q      *Queue
	dev    Device
	log    *slog.Logger
	client paho.Client

	conn         connState
	fifo         requestFIFO
	drops        dropReport
	events       eventBuffer
	eventLimit   *ratelimit.Limiter[gw.Event]
	statusPoke   chan struct{}
	connectedSig chan struct{}
	// stopping is closed when Run begins to stop; it ends subscription
	// retries on paho's goroutines.
	stopping chan struct{}
	// statusMu orders P/status publishes, see publishStatus.
	statusMu   sync.Mutex
	statusPrev chan struct{}
	conns      brokerConns
	// handMu lets one Publish at a time into paho, so at most one can be
	// waiting for paho's writer when a connection dies; handing is that
	// one (see handOver).
	handMu  sync.Mutex
	handing atomic.Pointer[handOff]

	started   atomic.Bool
	running   atomic.Bool
	base      time.Time // monotonic origin for the trackers
	heartbeat atomic.Int64
	trackers  [numTrackers]atomic.Int64 // when a wait began, 0 when idle

	published       atomic.Uint64
	results         atomic.Uint64
	eventsPublished atomic.Uint64
	channels        [numOut]channelCounters // observe.go
}

// NewRelay checks the configuration and prepares the MQTT client; nothing
// connects until Run. Files named in cfg.MQTT (password, CA, client
// certificate) are read here, so a mistake is reported at start.
func NewRelay(cfg RelayConfig, q *Queue, dev Device, log *slog.Logger) (*Relay, error) {
	if q == nil || dev == nil {
		return nil, errors.New("new relay: queue and device are required")
	}
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Relay{
		cfg:          cfg,
		q:            q,
		dev:          dev,
		log:          log.With("component", "relay"),
		statusPoke:   make(chan struct{}, 1),
		connectedSig: make(chan struct{}, 1),
		stopping:     make(chan struct{}),
		statusPrev:   closedChan(),
		base:         time.Now(),
	}
	r.conn.init()
	r.fifo.init()
	r.fifo.dropped = r.requestDropped
	r.events.init(eventBufferSize)
	r.eventLimit = ratelimit.New(ratelimit.DefaultBurst, ratelimit.DefaultPeriod, func(_ string, latest gw.Event, held int) {
		r.queueEvent(heldEvents(latest, held, ratelimit.DefaultPeriod))
	})
	opts, err := clientOptions(cfg.MQTT)
	if err != nil {
		return nil, fmt.Errorf("new relay: %w", err)
	}
	opts.SetDefaultPublishHandler(r.onMessage)
	opts.SetOnConnectHandler(r.onConnect)
	opts.SetConnectionLostHandler(r.onConnectionLost)
	opts.SetReconnectingHandler(r.onReconnecting)
	opts.SetConnectionNotificationHandler(r.onNotification)
	opts.SetStore(&resumeStore{MemoryStore: paho.NewMemoryStore(), resumed: r.onResumed, stored: r.onStored})
	r.conns.dial = opts.CustomOpenConnectionFn
	opts.SetCustomOpenConnectionFn(r.conns.open)
	r.client = paho.NewClient(opts)
	// From now on the queue's events (queue full, unreadable records) are
	// buffered for P/events, even before Run connects.
	q.SetEventHandler(r.Event)
	q.SetStateHandler(r.StatusChanged)
	return r, nil
}

// topic is the full topic for a suffix.
func (r *Relay) topic(suffix string) string { return r.cfg.MQTT.topic(suffix) }

// RelayStats are counters for monitoring and benchmarks.
type RelayStats struct {
	Published uint64 // inbound messages acknowledged by the broker
	Results   uint64 // results acknowledged by the broker
	Events    uint64 // events acknowledged by the broker
	Pending   int    // everything not yet delivered (QueueStats.Pending)
	// Connected is true while the connection is open and the broker has
	// acknowledged the subscriptions to P/sms/out and P/ip/out, so a
	// request published now reaches the relay.
	Connected bool
	Queue     QueueStats
}

// Stats returns the relay's counters.
func (r *Relay) Stats() RelayStats {
	qs := r.q.Stats()
	return RelayStats{
		Published: r.published.Load(),
		Results:   r.results.Load(),
		Events:    r.eventsPublished.Load(),
		Pending:   qs.Pending(),
		Connected: r.conn.ready(),
		Queue:     qs,
	}
}

// Event queues ev for P/events. It never blocks; while the broker is away
// the newest events are kept, up to a bound. Every event source comes
// through here, so repeats are limited here: a flood of one type costs at
// most a burst and one summary with the count per period.
func (r *Relay) Event(ev gw.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	// Metrics count every event, also those the limit holds back.
	if f := r.cfg.Observer.Event; f != nil {
		f(ev.Type)
	}
	if r.eventLimit.Allow(ev.Type, ev) {
		r.queueEvent(ev)
	}
}

func (r *Relay) queueEvent(ev gw.Event) {
	r.log.Info("event: "+ev.Type, "message", ev.Message)
	if dropped := r.events.push(ev); dropped {
		r.log.Warn("event buffer full: oldest event dropped", "size", eventBufferSize)
	}
}

// StatusChanged asks for P/status to be refreshed. It never blocks.
func (r *Relay) StatusChanged() { poke(r.statusPoke) }

func (r *Relay) mono() int64 { return int64(time.Since(r.base)) + 1 }

// busy marks loop i as waiting on the broker or the device until the
// returned function is called.
func (r *Relay) busy(i int) func() {
	r.trackers[i].Store(r.mono())
	return func() { r.trackers[i].Store(0) }
}

// Healthy reports whether the relay is making progress, for the systemd
// watchdog: Run is alive, no PUBACK has been missing for StallTimeout on an
// open connection, and no device call outlived its timeout.
func (r *Relay) Healthy() error {
	if !r.running.Load() {
		return errors.New("relay is not running")
	}
	now := r.mono()
	if d := time.Duration(now - r.heartbeat.Load()); d > 3*heartbeatEvery {
		return fmt.Errorf("relay loop has not moved for %s", d.Round(time.Second))
	}
	up, since := r.conn.state()
	for i := range r.trackers {
		start := r.trackers[i].Load()
		if start == 0 {
			continue
		}
		waited := time.Duration(now - start)
		limit := r.cfg.StallTimeout
		switch i {
		case trackSendSMS, trackSendIP:
			// The device was given SendTimeout; StallTimeout more means
			// it ignores its context.
			limit = r.cfg.SendTimeout + r.cfg.StallTimeout
		default:
			// Waiting for a broker that is away is not being stuck.
			if !up {
				continue
			}
			waited = min(waited, time.Since(since))
		}
		if waited > limit {
			return fmt.Errorf("%s has waited %s", trackerNames[i], waited.Round(time.Second))
		}
	}
	return nil
}

// Run connects to the broker and relays until ctx is cancelled. It then
// stops taking work, finishes what is in flight within ShutdownGrace,
// publishes the retained offline status and disconnects. Whatever was not
// delivered stays in the queue for the next run. Every step of the stop is
// bounded (see ShutdownGrace), whether the broker is connecting,
// reconnecting, withholding acknowledgements or gone. A Relay runs once;
// the only error is calling Run again.
func (r *Relay) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("relay: Run called twice")
	}
	r.heartbeat.Store(r.mono())
	r.running.Store(true)
	defer r.running.Store(false)
	r.log.Info("relay starting", "url", r.cfg.MQTT.shownURL(), "client_id", r.cfg.MQTT.ClientID, "prefix", r.cfg.MQTT.TopicPrefix)

	connCtx, cancelConn := context.WithCancel(ctx)
	defer cancelConn()
	connDone := make(chan struct{})
	go func() {
		defer close(connDone)
		r.connectLoop(connCtx)
	}()

	stop := make(chan struct{})
	pubStop := make(chan struct{})
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()

	var work, pubs sync.WaitGroup
	work.Go(func() { r.intakeLoop(abortCtx, stop) })
	work.Go(func() { r.sendLoop(abortCtx, stop, outSMS) })
	work.Go(func() { r.sendLoop(abortCtx, stop, outIP) })
	work.Go(func() { r.statusLoop(abortCtx, stop) })
	pubs.Go(func() { publishLoop(abortCtx, r, r.inboundSource(), pubStop) })
	pubs.Go(func() { publishLoop(abortCtx, r, r.resultSource(), pubStop) })
	pubs.Go(func() { publishLoop(abortCtx, r, r.eventSource(), pubStop) })

	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			r.heartbeat.Store(r.mono())
		case <-ctx.Done():
		}
	}

	r.log.Info("relay stopping: finishing in-flight work", "grace", r.cfg.ShutdownGrace)
	close(r.stopping)
	// No connection attempt starts from here on; one under way is closed
	// by paho's Disconnect once it completes.
	cancelConn()
	<-connDone
	deadline := time.Now().Add(r.cfg.ShutdownGrace)
	grace := time.AfterFunc(r.cfg.ShutdownGrace, abort)
	defer grace.Stop()
	close(stop)
	r.awaitLoops(&work, deadline.Add(stragglerWait), trackSendSMS, trackSendIP, trackStatus)
	r.eventLimit.Flush() // counts held back go out with the last events
	close(pubStop)
	r.awaitLoops(&pubs, deadline.Add(stragglerWait), trackInbound, trackResults, trackEvents)
	r.goOffline()
	st := r.Stats()
	r.log.Info("relay stopped", "pending", st.Pending, "published", st.Published, "results", st.Results)
	return nil
}

// awaitLoops waits for wg until deadline. The loops return by themselves
// once abort fires at the end of ShutdownGrace; one that does not is stuck
// in a call that ignores cancellation, and the stop goes on without it:
// what it holds is still queued, and a result it records later is kept.
func (r *Relay) awaitLoops(wg *sync.WaitGroup, deadline time.Time, trackers ...int) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	var stuck []string
	for _, i := range trackers {
		if r.trackers[i].Load() != 0 {
			stuck = append(stuck, trackerNames[i])
		}
	}
	r.log.Error("relay stopping without waiting any longer for a call that ignores cancellation; its work stays queued", "stuck", stuck)
}

// goOffline leaves {"online":false} retained and disconnects. It publishes
// the offline status, then ends the connection without DISCONNECT, so the
// broker also publishes the will: the will comes after everything this
// connection carried, so it has the last word even over an older "online"
// that paho resends from its store after a reconnect, which a clean
// DISCONNECT (discarding the will) would leave retained. The same close
// ends a connection attempt under way, which paho cannot cancel. A broker
// that does not acknowledge in time is logged, not returned.
func (r *Relay) goOffline() {
	if r.client.IsConnectionOpen() {
		wait := min(offlineWait, r.cfg.ShutdownGrace)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		t, err := r.publishStatus(ctx, []byte(OfflinePayload))
		if err == nil {
			err = waitToken(ctx, t, 0)
		}
		cancel()
		if err != nil {
			r.log.Warn("offline status not acknowledged; the will stands in for it", "wait", wait, "err", err)
		}
	}
	r.closeConn()
	// Paho's own shutdown: no reconnect follows, its goroutines end.
	r.client.Disconnect(disconnectQuiesce)
	r.conn.set(false)
}

// closeConn closes the broker connection under paho, or the attempt paho
// is making, which paho itself cannot cancel, and refuses new ones.
func (r *Relay) closeConn() {
	closedOpen, err := r.conns.close()
	switch {
	case err != nil:
		// Already closed by paho in a way that does not say so (WebSocket).
		r.log.Debug("closing the broker connection", "err", err)
	case closedOpen:
		r.log.Debug("broker connection closed without DISCONNECT; the broker publishes the will")
	}
}

// publish hands a message to paho without letting paho hold the caller
// past ctx. Paho's Publish blocks until its writer takes the message, for
// up to the write timeout (30 s) when the connection is wedged or being
// replaced; a stop must not wait for that. A call abandoned this way
// returns on its own within that timeout; its message is not acknowledged,
// so whatever it carried is still queued.
func (r *Relay) publish(ctx context.Context, topic string, retained bool, payload []byte) (paho.Token, error) {
	got := make(chan paho.Token, 1)
	go func() { got <- r.handOver(topic, retained, payload) }()
	select {
	case t := <-got:
		return t, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("handing the message to paho: %w", ctx.Err())
	}
}

// outgoing is a message for publishSeq.
type outgoing struct {
	topic   string
	payload []byte
}

// handed is a message paho took, and when.
type handed struct {
	token paho.Token
	at    time.Time
}

// publishSeq is publish for several messages (QoS 1, not retained), in
// order, with one goroutine handing them all rather than one each: the
// hand-over is a large part of what a message costs the publish loop. It
// asks more before each message and stops at the first false, and stops
// when ctx is done; it returns what paho took, a prefix of msgs. As with
// publish, a message being handed when ctx ends is abandoned, still
// queued; none is handed after publishSeq returns but that one.
func (r *Relay) publishSeq(ctx context.Context, msgs []outgoing, more func() bool) ([]handed, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	got := make(chan handed, len(msgs))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(got)
		for _, m := range msgs {
			select {
			case <-stop:
				return
			default:
			}
			if !more() {
				return
			}
			t := r.handOver(m.topic, false, m.payload)
			got <- handed{token: t, at: time.Now()}
		}
	}()
	out := make([]handed, 0, len(msgs))
	for {
		select {
		case h, ok := <-got:
			if !ok {
				return out, nil
			}
			out = append(out, h)
		case <-ctx.Done():
			return out, fmt.Errorf("handing messages to paho: %w", ctx.Err())
		}
	}
}

// publishStatus publishes the retained P/status. Status messages reach
// paho one after another in the order asked, even when an earlier caller
// stopped waiting for its call: otherwise an abandoned "online" could
// overtake the final "offline" and stay retained.
func (r *Relay) publishStatus(ctx context.Context, payload []byte) (paho.Token, error) {
	r.statusMu.Lock()
	prev := r.statusPrev
	done := make(chan struct{})
	r.statusPrev = done
	r.statusMu.Unlock()
	got := make(chan paho.Token, 1)
	go func() {
		defer close(done)
		<-prev
		got <- r.handOver(r.topic(TopicStatus), true, payload)
	}()
	select {
	case t := <-got:
		return t, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("publish status: %w", ctx.Err())
	}
}

// handOff is one message being handed to paho: the packet id paho gave it,
// once paho has stored it.
type handOff struct {
	mu    sync.Mutex
	id    uint16
	known bool
}

func (h *handOff) packetID() (uint16, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id, h.known
}

// handOver is the relay's only way into paho's Publish, one call at a time.
//
// Paho's Publish stores the message, then waits for paho's writer to take
// it. When the connection dies meanwhile, the waiting Publish is written
// first on the next connection, ahead of paho's resend of the messages that
// were in flight before it: with several messages in flight, a later one
// would reach the broker before an earlier one that was lost. So when paho
// starts reconnecting while a Publish waits (onReconnecting), the next
// connection drops that one packet if it comes first (brokerConns.fence);
// paho resends it anyway, in order, with DUP set, since it is in paho's
// store. One call at a time makes that the only packet that can wait.
func (r *Relay) handOver(topic string, retained bool, payload []byte) paho.Token {
	r.handMu.Lock()
	defer r.handMu.Unlock()
	h := &handOff{}
	r.handing.Store(h)
	defer r.handing.Store(nil)
	return r.client.Publish(topic, 1, retained, payload)
}

// onStored is called by the store when paho stores an outbound PUBLISH;
// with handMu held that is the message handOver is handing.
func (r *Relay) onStored(id uint16) {
	if h := r.handing.Load(); h != nil {
		h.mu.Lock()
		if !h.known {
			h.id, h.known = id, true
		}
		h.mu.Unlock()
	}
}

// await runs fn, a paho call that may block behind paho's writer, and
// waits for it or for ctx. It reports whether fn returned.
func await(ctx context.Context, fn func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// connectLoop makes the first connection, retrying with jittered backoff
// and logging why each attempt failed. After that paho reconnects by itself.
func (r *Relay) connectLoop(ctx context.Context) {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: r.cfg.MQTT.MaxReconnectInterval, Spread: backoff.Below}
	for {
		t := r.client.Connect()
		select {
		case <-t.Done():
			if t.Error() == nil {
				return
			}
		case <-ctx.Done():
			return
		}
		d := bo.Next()
		r.log.Warn("mqtt connect failed", "url", r.cfg.MQTT.shownURL(), "err", t.Error(), "retry_in", d.Round(time.Millisecond))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// The relay tells paho's connection states apart with three hooks:
//
//   - onReconnecting runs on paho's reconnect goroutine before every
//     attempt, so it always precedes the resume of that attempt: it marks
//     the connection down and starts a new epoch.
//   - onResumed runs when paho takes its snapshot of unacknowledged
//     messages to resend, after the connection is up: only then may the
//     relay publish, because a message published before the snapshot would
//     be in it and be resent (and mutated) by paho concurrently.
//   - onConnect subscribes.
//
// Paho's resume replaces the token of every message it resends and
// completes the old token without error before the broker has acknowledged
// anything. A token that completes in a later epoch than it was published
// in therefore proves nothing, and the publish loop treats it as lost.

// resumeStore is paho's memory store with two changes: it reports when
// resume reads it, and it lists messages in the order they were stored.
// Paho's own store lists them in map order, so a reconnect would resend the
// messages in flight shuffled.
type resumeStore struct {
	*paho.MemoryStore
	resumed func()
	// stored sees the packet id of every outbound PUBLISH stored.
	stored func(id uint16)

	mu    sync.Mutex
	order map[string]uint64
	next  uint64
}

// Put records when key was first stored; paho stores a key again only to
// replace a packet in the same exchange. A PUBLISH is stored as a copy:
// paho's resume sets DUP on the stored packet, and a Publish that was
// waiting for paho's writer when the connection died is written on the
// next connection at the same time, from the packet it was given; sharing
// one packet, the two race.
func (s *resumeStore) Put(key string, m packets.ControlPacket) {
	if p, ok := m.(*packets.PublishPacket); ok {
		cp := *p
		m = &cp
		if s.stored != nil && strings.HasPrefix(key, "o.") {
			s.stored(p.MessageID)
		}
	}
	s.mu.Lock()
	if s.order == nil {
		s.order = make(map[string]uint64)
	}
	if _, ok := s.order[key]; !ok {
		s.next++
		s.order[key] = s.next
	}
	s.mu.Unlock()
	s.MemoryStore.Put(key, m)
}

// Del forgets key.
func (s *resumeStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	delete(s.order, key)
	s.mu.Unlock()
}

// Reset forgets everything.
func (s *resumeStore) Reset() {
	s.MemoryStore.Reset()
	s.mu.Lock()
	s.order = nil
	s.mu.Unlock()
}

// All is called by paho only to resume after a connection is made.
func (s *resumeStore) All() []string {
	keys := s.MemoryStore.All()
	s.mu.Lock()
	sort.SliceStable(keys, func(i, j int) bool { return s.order[keys[i]] < s.order[keys[j]] })
	s.mu.Unlock()
	s.resumed()
	return keys
}

func (r *Relay) onResumed() {
	if r.conn.set(true) {
		poke(r.connectedSig)
	}
}

func (r *Relay) onReconnecting(paho.Client, *paho.ClientOptions) {
	r.conn.set(false)
	if h := r.handing.Load(); h != nil {
		r.conns.arm(h)
	}
}

// onConnect runs on its own goroutine, started by paho for each connection,
// after onReconnecting and before the resume: the epoch it reads is that of
// its connection.
func (r *Relay) onConnect(c paho.Client) {
	r.log.Info("mqtt connected", "url", r.cfg.MQTT.shownURL())
	epoch := r.conn.currentEpoch()
	// Subscribing again on every connection covers a broker that lost the
	// session (restarted without persistence). Messages are routed by the
	// default handler, so no per-topic callback is registered.
	// P/status too, at QoS 0: see onMessage.
	topics := map[string]byte{r.topic(TopicSMSOut): 1, r.topic(TopicIPOut): 1, r.topic(TopicStatus): 0}
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: r.cfg.MQTT.MaxReconnectInterval, Spread: backoff.Below}
	for {
		t := c.SubscribeMultiple(topics, nil)
		var err error
		switch {
		case !t.WaitTimeout(r.cfg.MQTT.ConnectTimeout):
			err = fmt.Errorf("no SUBACK within %s", r.cfg.MQTT.ConnectTimeout)
		case t.Error() != nil:
			err = t.Error()
		}
		if err == nil {
			r.subscribed(t, epoch)
			return
		}
		if r.conn.currentEpoch() != epoch {
			return // the next connection subscribes for itself
		}
		d := bo.Next()
		r.log.Error("mqtt subscribe failed; requests cannot arrive until it succeeds", "err", err, "retry_in", d.Round(time.Millisecond))
		select {
		case <-time.After(d):
		case <-r.stopping:
			return
		}
		if r.conn.currentEpoch() != epoch {
			return
		}
	}
}

// subscribed handles the SUBACK of the connection of epoch. A refusal is
// the broker's final answer (an ACL), so it is reported and the relay goes
// online for what it can still do.
func (r *Relay) subscribed(t paho.Token, epoch uint64) {
	if st, ok := t.(*paho.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code > 2 && topic == r.topic(TopicStatus) {
				r.log.Warn("mqtt subscribe refused by the broker: a late will of an earlier connection stays uncorrected until the next status", "topic", topic, "code", code)
				continue
			}
			if code > 2 {
				r.log.Error("mqtt subscribe refused by the broker", "topic", topic, "code", code)
				r.Event(gw.Event{Type: gw.EventSubscribeRefused, Message: fmt.Sprintf("the broker refused the subscription to %s (code %#x): requests on it will not arrive", topic, code),
					Fields: map[string]any{"topic": topic}})
			}
		}
	}
	if r.conn.subscribedIn(epoch) {
		poke(r.connectedSig)
	}
}

// onConnectionLost only logs: paho calls it on a goroutine of its own that
// may run after the next connection is up, so it must not change state.
// onReconnecting, which paho calls in order, marks the connection down.
func (r *Relay) onConnectionLost(_ paho.Client, err error) {
	select {
	case <-r.stopping:
		r.log.Debug("mqtt connection closed while stopping", "err", err)
	default:
		r.log.Warn("mqtt connection lost; reconnecting", "err", err)
	}
}

func (r *Relay) onNotification(_ paho.Client, n paho.ConnectionNotification) {
	if f, ok := n.(paho.ConnectionNotificationBrokerFailed); ok {
		r.log.Warn("mqtt connection attempt failed", "broker", redactURL(f.Broker.String()), "err", f.Reason)
	}
}

// onMessage runs on paho's router goroutine: it only hands the message to
// the intake FIFO, keeping arrival order and never blocking paho.
func (r *Relay) onMessage(_ paho.Client, m paho.Message) {
	var channel string
	switch m.Topic() {
	case r.topic(TopicSMSOut):
		channel = gw.ChannelSMS
	case r.topic(TopicIPOut):
		channel = gw.ChannelIP
	case r.topic(TopicStatus):
		// The broker publishes the will of a connection it has not yet
		// noticed is gone whenever it notices, which can be after this
		// connection announced itself online: seen here, "offline" is
		// answered with the status again. The relay's own offline status
		// comes after the status loop has stopped, so it stays.
		if string(m.Payload()) == OfflinePayload {
			r.log.Debug("offline status of an earlier connection seen; publishing the status again")
			poke(r.connectedSig)
		}
		m.Ack()
		return
	default:
		// Left over from an older subscription in the persistent session:
		// acknowledged so the broker stops redelivering it.
		r.log.Warn("mqtt message on an unexpected topic ignored", "topic", m.Topic())
		m.Ack()
		return
	}
	r.fifo.push(inMsg{channel: channel, msg: m, at: time.Now().UTC()})
}

// intakeLoop validates requests, commits them to the queue in arrival order
// and only then acknowledges them to the broker.
func (r *Relay) intakeLoop(abort context.Context, stop <-chan struct{}) {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Spread: backoff.Below}
	for abort.Err() == nil {
		msgs := r.fifo.take(maxBatch)
		if len(msgs) == 0 {
			select {
			case <-r.fifo.sig:
				continue
			case <-stop:
				if r.fifo.len() == 0 {
					return
				}
				continue
			case <-abort.Done():
				return
			}
		}
		items := make([]*admit, len(msgs))
		for i, m := range msgs {
			req, err := parseDelivered(m.channel, m.msg)
			req.ReceivedAt = m.at
			items[i] = &admit{Req: req}
			if err != nil {
				items[i].Reject = err.Error()
			}
		}
		for {
			err := r.q.admit(context.Background(), items)
			if err == nil {
				bo.Reset()
				break
			}
			// Not acknowledged: the broker redelivers them to the next
			// session if this one ends first.
			r.log.Error("cannot queue requests", "count", len(items), "err", err)
			if errors.Is(err, ErrClosed) || !backoff.Wait(abort.Done(), bo.Next()) {
				return
			}
		}
		// Paho's Ack waits for its writer like Publish does. Not
		// acknowledged in time, the requests are redelivered and dropped
		// as duplicates.
		acked := await(abort, func() {
			for _, m := range msgs {
				m.msg.Ack()
			}
		})
		for _, it := range items {
			r.reportAdmit(it)
		}
		if !acked {
			return
		}
	}
}

// reportAdmit logs and reports what became of a request, then counts it:
// once counted, its event has been raised.
func (r *Relay) reportAdmit(it *admit) {
	defer r.countAdmit(it)
	log := r.log.With("id", it.Req.ID, "channel", it.Req.Channel)
	fields := map[string]any{"id": it.Req.ID, "channel": it.Req.Channel}
	switch it.Outcome {
	case admitQueued:
		log.Debug("request queued", "bytes", len(it.Req.Payload))
	case admitRejected:
		log.Warn("request rejected", "reason", it.Reject)
		r.Event(gw.Event{Type: gw.EventRequestRejected, Message: fmt.Sprintf("%s/out request %s rejected: %s", it.Req.Channel, it.Req.ID, it.Reject), Fields: fields})
	case admitFull:
		log.Warn("request refused: queue full")
	case admitDuplicate:
		log.Info("duplicate request dropped")
		r.Event(gw.Event{Type: gw.EventRequestDuplicate, Message: fmt.Sprintf("%s/out request %s is already queued or was handled recently; not sent again (use a new id to send again)", it.Req.Channel, it.Req.ID), Fields: fields})
	}
}

// sendLoop hands one channel's requests to the device, oldest first.
func (r *Relay) sendLoop(abort context.Context, stop <-chan struct{}, ch int) {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Spread: backoff.Below}
	for {
		select {
		case <-stop:
			return
		default:
		}
		sr, ok, err := r.q.headRequest(ch)
		if err != nil {
			r.log.Error("cannot read queued requests", "err", err)
			if !backoff.Wait(stop, bo.Next()) {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-r.q.sigOut[ch]:
			case <-stop:
				return
			}
			continue
		}
		if sr.err != nil {
			if err := r.q.quarantine(context.Background(), outBucket(ch), sr.key, sr.err); err != nil {
				r.log.Error("cannot set aside an unreadable request", "err", err)
				if !backoff.Wait(stop, bo.Next()) {
					return
				}
			}
			continue
		}
		res, abandoned := r.send(abort, ch, sr.req)
		if abandoned {
			// Cut short by shutdown: the request stays queued and is sent
			// again after restart (it may have gone out: at least once).
			r.log.Warn("send interrupted by shutdown; request stays queued", "id", sr.req.ID)
			return
		}
		for {
			err := r.q.complete(context.Background(), ch, sr, res)
			if err == nil {
				bo.Reset()
				break
			}
			r.log.Error("cannot record result", "id", sr.req.ID, "err", err)
			if errors.Is(err, ErrClosed) || !backoff.Wait(abort.Done(), bo.Next()) {
				return
			}
		}
	}
}

// send makes one device call. abandoned is true when shutdown cut it short.
func (r *Relay) send(abort context.Context, ch int, req Request) (res Result, abandoned bool) {
	ctx, cancel := context.WithTimeout(abort, r.cfg.SendTimeout)
	defer cancel()
	tr := trackSendSMS
	if ch == outIP {
		tr = trackSendIP
	}
	done := r.busy(tr)
	defer done()
	res = Result{ID: req.ID, Channel: req.Channel, Status: StatusSent}
	var err error
	start := time.Now()
	switch ch {
	case outSMS:
		var ref int
		ref, err = r.dev.SendSMS(ctx, req.To, req.Payload, req.Binary)
		res.Reference = &ref
	case outIP:
		err = r.dev.SendUDP(ctx, req.Payload)
	}
	if err == nil {
		r.observeSend(ch, time.Since(start), nil)
		r.log.Info("request sent", "id", req.ID, "channel", req.Channel, "bytes", len(req.Payload))
		return res, false
	}
	if abort.Err() != nil {
		return res, true
	}
	r.observeSend(ch, time.Since(start), err)
	res.Status, res.Reference, res.Error = StatusFailed, nil, err.Error()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		res.Error = fmt.Sprintf("no answer from the modem within %s: %v", r.cfg.SendTimeout, err)
	}
	r.log.Warn("request failed", "id", req.ID, "channel", req.Channel, "err", res.Error)
	return res, false
}

// statusLoop publishes the retained P/status on connect, on change and
// every StatusInterval.
func (r *Relay) statusLoop(abort context.Context, stop <-chan struct{}) {
	t := time.NewTicker(r.cfg.StatusInterval)
	defer t.Stop()
	var last []byte
	for {
		force := false
		select {
		case <-stop:
			return
		case <-t.C:
			force = true
		case <-r.connectedSig:
			force = true
		case <-r.statusPoke:
		}
		if !r.conn.ready() {
			continue // published again once subscribed
		}
		done := r.busy(trackStatus)
		st := r.dev.Status()
		full, key, err := renderStatus(r.cfg.Version, st, r.q.Stats(), time.Now())
		if err != nil {
			done()
			r.log.Error("cannot render status", "err", err)
			continue
		}
		if !force && bytes.Equal(key, last) {
			done()
			continue
		}
		var tok paho.Token
		tok, err = r.publishStatus(abort, full)
		if err == nil {
			err = waitToken(abort, tok, r.cfg.MQTT.ConnectTimeout)
		}
		done()
		if err != nil {
			r.log.Warn("status not published", "err", err)
			continue
		}
		last = key
	}
}

// waitToken waits for a paho token, for ctx, and for limit when positive.
func waitToken(ctx context.Context, t paho.Token, limit time.Duration) error {
	var timeout <-chan time.Time
	if limit > 0 {
		tm := time.NewTimer(limit)
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
		return fmt.Errorf("no acknowledgement within %s", limit)
	}
}
