package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ring"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// source is an ordered outbox the publish loop drains: queued inbound
// messages, queued results, or buffered events.
type source[T any] struct {
	name    string
	tracker int
	signal  <-chan struct{}
	// after returns up to n items following the one with key after, or from
	// the front when after is nil.
	after func(after []byte, n int) ([]T, error)
	key   func(T) []byte
	// render gives the topic and payload of an item; an error marks a
	// record that cannot be published, which bad sets aside.
	render func(T) (topic string, payload []byte, err error)
	bad    func(T, error) error
	// ack removes delivered items; it runs on the acker's goroutine.
	ack func([]T) error
	// pace, when set, reports whether ack's calls may be spaced out
	// now, for an ack that is a commit of the queue's writer (see acker).
	pace  func() bool
	count *atomic.Uint64
	// delivered, when set, sees the items the broker acknowledged.
	delivered func([]T)
}

// publishLoop publishes src in order and has an item removed only once the
// broker has acknowledged it (QoS 1 PUBACK). A failed or lost publish is
// retried from the first unacknowledged item, so delivery is at least once.
// After pubStop it keeps going until src is empty, the connection is down,
// or abort.
//
// Removal is committed behind the publishing, grouped, by an acker: the
// loop remembers the last acknowledged key and reads past it. A crash before
// a removal is committed only publishes that item again.
//
// Up to RelayConfig.PublishWindow items are in flight at once, handed to
// paho in order on one connection. When the connection dies, the items not
// acknowledged on it are published again from the first of them, and
// paho resends those it holds in the order they were stored (resumeStore);
// the first delivery of each is therefore in order. The one Publish that
// can be waiting for paho's writer at that moment, and would go out ahead
// of those resends, is held back by the next connection (Relay.handOver).
func publishLoop[T any](abort context.Context, r *Relay, src source[T], pubStop <-chan struct{}) {
	log := r.log.With("outbox", src.name)
	acks := startAcker(src, log)
	defer acks.close()
	w := &window[T]{r: r, src: src, log: log, acks: acks, bo: backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Spread: backoff.Below}}
	defer w.reset()
	draining := false
	for abort.Err() == nil {
		if !draining {
			select {
			case <-pubStop:
				draining = true
			default:
			}
		}
		up, _ := r.conn.state()
		if !up {
			// Whatever is in flight is published again, from the first
			// item not acknowledged, once the connection is back.
			w.reset()
			if draining {
				return
			}
			select {
			case <-r.conn.wait():
			case <-pubStop:
				draining = true
			case <-abort.Done():
			}
			continue
		}
		if err := w.fill(abort); err != nil {
			log.Error("cannot read outbox", "err", err)
			backoff.Wait(abort.Done(), w.bo.Next())
			continue
		}
		if len(w.inflight) == 0 {
			if w.bad != nil {
				// An unreadable record is set aside once everything
				// before it is delivered.
				if err := src.bad(*w.bad, w.badErr); err != nil {
					log.Error("cannot set aside unreadable record", "err", err)
					backoff.Wait(abort.Done(), w.bo.Next())
				}
				w.bad, w.badErr = nil, nil
				continue
			}
			if draining {
				return
			}
			select {
			case <-src.signal:
			case <-pubStop:
				draining = true
			case <-abort.Done():
			}
			continue
		}
		// Wait for the oldest PUBACK; new items join the window meanwhile
		// while it has room.
		var more <-chan struct{}
		if len(w.inflight) < r.cfg.PublishWindow && w.bad == nil {
			more = src.signal
		}
		stop := pubStop
		if draining {
			stop = nil // closed: it would wake this wait at once
		}
		select {
		case <-w.inflight[0].token.Done():
		case <-more:
			continue
		case <-stop:
			draining = true
			continue
		case <-abort.Done():
			return
		}
		if err := w.acked(); err != nil {
			w.reset()
			if abort.Err() != nil {
				return
			}
			d := w.bo.Next()
			log.Warn("publish failed; retrying from the first unacknowledged item", "err", err, "retry_in", d.Round(time.Millisecond))
			backoff.Wait(abort.Done(), d)
		}
	}
}

// window is the publish loop's sliding window: items published on one
// connection, in order, awaiting their PUBACKs.
type window[T any] struct {
	r    *Relay
	src  source[T]
	log  *slog.Logger
	acks *acker[T]
	bo   backoff.Backoff

	last     []byte // key of the last item the broker acknowledged
	epoch    uint64 // the connection the items in flight went out on
	inflight []sent[T]
	// bad is an item that cannot be rendered; nothing after it is
	// published until it is set aside.
	bad    *T
	badErr error
	done   func() // ends the busy mark of the PUBACK being waited for
}

type sent[T any] struct {
	item  T
	token paho.Token
	at    time.Time
}

// fill publishes items after the last one in flight until the window is
// full.
func (w *window[T]) fill(abort context.Context) error {
	r := w.r
	if len(w.inflight) == 0 {
		w.epoch = r.conn.currentEpoch()
	}
	room := r.cfg.PublishWindow - len(w.inflight)
	if room <= 0 || w.bad != nil || r.conn.currentEpoch() != w.epoch {
		// A new connection: what is in flight completes (paho resends
		// it) or is published again, before anything newer goes out.
		return nil
	}
	after := w.last
	if n := len(w.inflight); n > 0 {
		after = w.src.key(w.inflight[n-1].item)
	}
	items, err := w.src.after(after, room)
	if err != nil {
		return err
	}
	msgs := make([]outgoing, 0, len(items))
	for i := range items {
		topic, payload, err := w.src.render(items[i])
		if err != nil {
			w.bad, w.badErr = &items[i], err
			break
		}
		msgs = append(msgs, outgoing{topic: topic, payload: payload})
	}
	epoch := w.epoch
	// An error is a stop: nothing more goes out.
	handed, _ := r.publishSeq(abort, msgs, func() bool { return r.conn.currentEpoch() == epoch })
	for i, h := range handed {
		if len(w.inflight) == 0 {
			w.done = r.busy(w.src.tracker)
		}
		w.inflight = append(w.inflight, sent[T]{item: items[i], token: h.token, at: h.at})
	}
	return nil
}

// acked takes the leading items whose PUBACK is in, once the oldest one's
// token has completed, and has them removed from the outbox.
func (w *window[T]) acked() error {
	r := w.r
	if err := w.inflight[0].token.Error(); err != nil {
		return err
	}
	if r.conn.currentEpoch() != w.epoch {
		// A completed token may have been completed by paho's resume, not
		// by a PUBACK.
		return errors.New("connection lost before every PUBACK was seen")
	}
	n := 0
	for n < len(w.inflight) && tokenDone(w.inflight[n].token) && w.inflight[n].token.Error() == nil {
		n++
	}
	items := make([]T, n)
	for i, s := range w.inflight[:n] {
		items[i] = s.item
		r.observePuback(w.src.name, time.Since(s.at))
	}
	w.last = w.src.key(items[n-1])
	w.acks.add(items)
	w.src.count.Add(uint64(n))
	if w.src.delivered != nil {
		w.src.delivered(items)
	}
	w.inflight = append(w.inflight[:0], w.inflight[n:]...)
	w.done()
	w.done = func() {}
	if len(w.inflight) > 0 {
		// The next PUBACK's wait starts now, so a steady stream is not
		// mistaken for a stalled one.
		w.done = w.r.busy(w.src.tracker)
	}
	w.bo.Reset()
	return nil
}

// reset forgets what is in flight: it is published again from the first
// item not acknowledged.
func (w *window[T]) reset() {
	w.inflight = nil
	w.bad, w.badErr = nil, nil
	if w.done != nil {
		w.done()
	}
	w.done = func() {}
}

func tokenDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// acker commits removals of delivered items on its own goroutine, grouping
// whatever accumulated while the previous commit was syncing.
//
// For an outbox in the queue, a removal is a commit of the queue's one
// writer, and it costs about as long as the commit of a batch of new
// messages: a removal alone takes the writer from the UDP and SMS intake
// for a whole sync, and the intake's next batch waits behind it. Removals
// are not urgent (one not yet committed at a crash only means a duplicate),
// so after a commit that took d the acker gathers for ackSpacing×d more
// before the next one: removals then take at most about a quarter of the
// writer's time however fast the broker acknowledges, and a lone removal
// after a quiet spell is committed at once. They do not wait while the
// queue is short of room (source.pace).
type acker[T any] struct {
	ch   chan []T
	done chan struct{}
	// now and after are the clock, replaceable in tests.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

// ackAttempts bounds retries of a failing removal: the items then stay
// queued and are delivered again after a restart.
const ackAttempts = 5

// ackSpacing is the pause after a removal commit, in units of how long
// that commit took; ackMaxPause caps it for a store that syncs slowly.
const (
	ackSpacing  = 3
	ackMaxPause = time.Second
)

func startAcker[T any](src source[T], log *slog.Logger) *acker[T] {
	a := newAcker[T]()
	a.start(src, log)
	return a
}

func newAcker[T any]() *acker[T] {
	return &acker[T]{ch: make(chan []T, 1024), done: make(chan struct{}), now: time.Now, after: time.After}
}

func (a *acker[T]) start(src source[T], log *slog.Logger) {
	go func() {
		defer close(a.done)
		var next time.Time // no paced commit before it, unless closing
		for open := true; open; {
			batch, ok := <-a.ch
			if !ok {
				return
			}
			if src.pace != nil && src.pace() {
				batch, open = a.gatherUntil(batch, next)
			}
			if open {
				batch, open = a.gather(batch)
			}
			start := a.now()
			a.commit(src, log, batch)
			if src.pace != nil {
				end := a.now()
				next = end.Add(min(ackSpacing*end.Sub(start), ackMaxPause))
			}
		}
	}()
}

// gatherUntil adds to batch what arrives before until, or until the
// channel is closed; it reports whether the channel is still open.
func (a *acker[T]) gatherUntil(batch []T, until time.Time) ([]T, bool) {
	d := until.Sub(a.now())
	if d <= 0 {
		return batch, true
	}
	t := a.after(d)
	for {
		select {
		case more, ok := <-a.ch:
			if !ok {
				return batch, false
			}
			batch = append(batch, more...)
		case <-t:
			return batch, true
		}
	}
}

// gather adds to batch what is waiting now; it reports whether the
// channel is still open.
func (a *acker[T]) gather(batch []T) ([]T, bool) {
	for {
		select {
		case more, ok := <-a.ch:
			if !ok {
				return batch, false
			}
			batch = append(batch, more...)
		default:
			return batch, true
		}
	}
}

// commit removes batch, retrying a failure a few times.
func (a *acker[T]) commit(src source[T], log *slog.Logger, batch []T) {
	bo := backoff.Backoff{Min: 50 * time.Millisecond, Max: time.Second, Spread: backoff.Below}
	for attempt := 1; ; attempt++ {
		err := src.ack(batch)
		if err == nil {
			return
		}
		if errors.Is(err, ErrClosed) || attempt == ackAttempts {
			log.Error("delivered items stay queued and will be delivered again", "count", len(batch), "err", err)
			return
		}
		log.Warn("cannot remove delivered items; retrying", "count", len(batch), "err", err)
		time.Sleep(bo.Next())
	}
}

func (a *acker[T]) add(items []T) { a.ch <- append([]T(nil), items...) }

// close commits what is pending and waits for it.
func (a *acker[T]) close() {
	close(a.ch)
	<-a.done
}

func (r *Relay) inboundSource() source[storedInbound] {
	return bucketSource(r, bucketIn, source[storedInbound]{
		name:      "inbound",
		tracker:   trackInbound,
		signal:    r.q.sigIn,
		after:     r.q.inboundAfter,
		ack:       func(items []storedInbound) error { return r.q.ackInbound(context.Background(), items) },
		pace:      r.unhurried,
		count:     &r.published,
		delivered: r.countInbound,
	}, func(it storedInbound) (string, []byte, error) {
		b, err := renderInbound(it.msg)
		return r.topic(inboundTopic(it.msg)), b, err
	})
}

func (r *Relay) resultSource() source[storedResult] {
	return bucketSource(r, bucketResults, source[storedResult]{
		name:    "results",
		tracker: trackResults,
		signal:  r.q.sigRes,
		after:   r.q.resultsAfter,
		ack:     func(items []storedResult) error { return r.q.ackResults(context.Background(), items) },
		pace:    r.unhurried,
		count:   &r.results,
	}, func(it storedResult) (string, []byte, error) {
		b, err := renderResult(it.res)
		return r.topic(resultTopic(it.res.Channel)), b, err
	})
}

// unhurried reports whether removals may wait (see acker): not while the
// disk is full, nor while received messages fill half of
// store.max_messages, where a removal waiting could have the next datagram
// refused.
func (r *Relay) unhurried() bool {
	st := r.q.Stats()
	return !st.StoreFull && st.Inbound+st.Segments < r.q.cfg.MaxMessages/2
}

// bucketRecord is a record read from one of the queue's buckets.
type bucketRecord interface {
	// stored gives the record's key, and why it could not be decoded.
	stored() (key []byte, err error)
}

func (it storedInbound) stored() ([]byte, error) { return it.key, it.err }
func (it storedResult) stored() ([]byte, error)  { return it.key, it.err }

// bucketSource completes src, an outbox over one of the queue's buckets,
// with render for the records that decoded: a record that did not, or that
// cannot be rendered, is set aside in that bucket's quarantine.
func bucketSource[T bucketRecord](r *Relay, bucket []byte, src source[T], render func(T) (string, []byte, error)) source[T] {
	src.key = func(it T) []byte {
		k, _ := it.stored()
		return k
	}
	src.render = func(it T) (string, []byte, error) {
		if _, err := it.stored(); err != nil {
			return "", nil, err
		}
		return render(it)
	}
	src.bad = func(it T, err error) error {
		k, _ := it.stored()
		return r.q.quarantine(context.Background(), bucket, k, err)
	}
	return src
}

func (r *Relay) eventSource() source[bufferedEvent] {
	return source[bufferedEvent]{
		name:    "events",
		tracker: trackEvents,
		signal:  r.events.sig,
		after:   func(after []byte, n int) ([]bufferedEvent, error) { return r.events.after(keySeq(after), n), nil },
		key:     func(e bufferedEvent) []byte { return seqKey(e.seq) },
		render: func(e bufferedEvent) (string, []byte, error) {
			return r.topic(TopicEvents), renderEvent(e.ev), nil
		},
		bad: func(bufferedEvent, error) error { return errors.New("events are always renderable") },
		ack: func(items []bufferedEvent) error {
			r.events.drop(items[len(items)-1].seq)
			return nil
		},
		count: &r.eventsPublished,
	}
}

// connState tracks whether the MQTT connection is open, and whether the
// broker has acknowledged the subscriptions on it. wait returns a channel
// that is closed while it is open.
//
// Open is enough to publish. Ready (open and subscribed) is what the relay
// reports as connected and announces as online: on a session the broker
// does not have yet, a request published before the SUBACK has no
// subscriber and the broker drops it, so announcing earlier would invite
// requests that are lost.
type connState struct {
	mu         sync.Mutex
	up         bool
	subscribed bool // SUBACK seen in this epoch
	since      time.Time
	epoch      uint64 // counts connections lost
	ch         chan struct{}
}

func (c *connState) init() { c.ch = make(chan struct{}) }

// set records the connection opening or closing and reports whether the
// relay is ready now.
func (c *connState) set(up bool) (ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if up == c.up {
		return c.up && c.subscribed
	}
	c.up = up
	if up {
		c.since = time.Now()
		close(c.ch)
	} else {
		c.epoch++
		c.subscribed = false
		c.ch = make(chan struct{})
	}
	return c.up && c.subscribed
}

// subscribedIn records the SUBACK of a subscription made in epoch, unless
// that connection is gone, and reports whether the relay is ready now.
func (c *connState) subscribedIn(epoch uint64) (ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch == c.epoch {
		c.subscribed = true
	}
	return c.up && c.subscribed
}

// ready reports whether the connection is open and subscribed.
func (c *connState) ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up && c.subscribed
}

func (c *connState) currentEpoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

func (c *connState) state() (bool, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.since
}

func (c *connState) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// inMsg is a request as paho delivered it, not yet acknowledged.
type inMsg struct {
	channel string
	msg     paho.Message
	at      time.Time
}

// maxFIFOBytes bounds the payload bytes of QoS 0 requests waiting in the
// intake FIFO. QoS 1 requests are bounded by the broker, which sends only so
// many before they are acknowledged (and acknowledging is the intake's
// job); a QoS 0 request has no acknowledgement, so while the store is stuck
// a publisher could fill memory with them.
const maxFIFOBytes = 1 << 20

// requestFIFO hands requests from paho's goroutine to the intake loop.
// Beyond maxFIFOBytes it drops QoS 0 requests, which their publisher sent
// at most once, and reports each drop through dropped.
type requestFIFO struct {
	mu      sync.Mutex
	items   []inMsg
	bytes   int // payload bytes held
	sig     chan struct{}
	dropped func(inMsg) // called without the lock held; may be nil
}

func (f *requestFIFO) init() { f.sig = make(chan struct{}, 1) }

func msgBytes(m inMsg) int {
	if m.msg == nil {
		return 0
	}
	return len(m.msg.Payload())
}

// push queues m, or drops it when it is QoS 0 and the FIFO holds
// maxFIFOBytes already. It reports whether m was queued.
func (f *requestFIFO) push(m inMsg) bool {
	n := msgBytes(m)
	f.mu.Lock()
	if m.msg != nil && m.msg.Qos() == 0 && f.bytes+n > maxFIFOBytes {
		f.mu.Unlock()
		if f.dropped != nil {
			f.dropped(m)
		}
		return false
	}
	f.items = append(f.items, m)
	f.bytes += n
	f.mu.Unlock()
	poke(f.sig)
	return true
}

func (f *requestFIFO) take(n int) []inMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, len(f.items))
	out := make([]inMsg, n)
	copy(out, f.items)
	for _, m := range out {
		f.bytes -= msgBytes(m)
	}
	clear(f.items[:n])
	f.items = append(f.items[:0], f.items[n:]...)
	return out
}

func (f *requestFIFO) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.items)
}

// dropReport rate-limits what is said about dropped QoS 0 requests: one
// log line per 10 s and one event per minute, each with the count since
// the last one, so a flood cannot become a flood of lines.
type dropReport struct {
	mu               sync.Mutex
	count            int // dropped since the last event
	logCount         int // dropped since the last log line
	lastLog, lastEvt time.Time
}

// requestDropped reports a QoS 0 request the intake FIFO had no room for.
func (r *Relay) requestDropped(m inMsg) {
	d := &r.drops
	now := time.Now()
	d.mu.Lock()
	d.count++
	d.logCount++
	logN, evtN := 0, 0
	if d.lastLog.IsZero() || now.Sub(d.lastLog) >= 10*time.Second {
		logN, d.logCount, d.lastLog = d.logCount, 0, now
	}
	if d.lastEvt.IsZero() || now.Sub(d.lastEvt) >= time.Minute {
		evtN, d.count, d.lastEvt = d.count, 0, now
	}
	d.mu.Unlock()
	if logN > 0 {
		r.log.Warn("QoS 0 requests dropped: the intake is full while the store catches up", "count", logN, "channel", m.channel, "limit_bytes", maxFIFOBytes)
	}
	if evtN > 0 {
		r.Event(gw.Event{Type: gw.EventRequestDropped, Message: fmt.Sprintf("%d QoS 0 %s/out request(s) dropped: %d bytes of requests wait for the store; publish with QoS 1 to have them held by the broker instead", evtN, m.channel, maxFIFOBytes),
			Fields: map[string]any{"channel": m.channel, "count": evtN}})
	}
}

// eventBufferSize bounds events held while the broker is away.
const eventBufferSize = 256

type bufferedEvent struct {
	seq uint64
	ev  gw.Event
}

// eventBuffer keeps the newest events for P/events. Events are not
// persisted: they describe the moment, and the results and logs that matter
// are durable elsewhere.
type eventBuffer struct {
	mu    sync.Mutex
	items *ring.Queue[bufferedEvent] // the newest, oldest first
	next  uint64
	sig   chan struct{}
}

func (b *eventBuffer) init(limit int) {
	b.items = ring.New(ring.Bounds[bufferedEvent]{Len: limit})
	b.sig = make(chan struct{}, 1)
}

// push adds ev and reports whether the oldest event had to be dropped.
func (b *eventBuffer) push(ev gw.Event) (dropped bool) {
	b.mu.Lock()
	b.next++
	dropped = b.items.Push(bufferedEvent{seq: b.next, ev: ev}) > 0
	b.mu.Unlock()
	poke(b.sig)
	return dropped
}

// after returns up to n events with a sequence number above seq.
func (b *eventBuffer) after(seq uint64, n int) []bufferedEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []bufferedEvent
	for e := range b.items.All() {
		if len(out) == n {
			break
		}
		if e.seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// drop removes events up to and including seq; events dropped meanwhile
// for space are simply gone already.
func (b *eventBuffer) drop(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for e, ok := b.items.Peek(); ok && e.seq <= seq; e, ok = b.items.Peek() {
		b.items.Pop()
	}
}
