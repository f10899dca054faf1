package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/simgate/simgate/modem"
)

// ErrQueueFull is wrapped by every refusal caused by store.max_messages. The
// session leaves a refused SMS on the SIM, the safest place for it.
var ErrQueueFull = errors.New("queue full")

// ErrClosed is returned by a Queue that has been closed.
var ErrClosed = errors.New("queue closed")

// Defaults of StoreConfig.
const (
	DefaultMaxMessages = 10000
	// DefaultDedupWindow outlasts the 24 hours for which the Super SIM cloud
	// redelivers an SMS, so a late copy of a delivered SMS is recognised.
	DefaultDedupWindow = 48 * time.Hour
	DefaultDedupMax    = 20000
)

// StoreConfig configures the durable queue.
type StoreConfig struct {
	// Dir holds the database file queue.db; it is created if missing.
	Dir string
	// MaxMessages bounds what the queue holds: inbound messages, segments of
	// incomplete SMS and outbound requests. Results of accepted requests do
	// not count, so a result is never refused.
	MaxMessages int
	// DedupWindow is how long the id of a delivered message is remembered,
	// so a redelivered copy is dropped; DedupMax caps how many are kept.
	DedupWindow time.Duration
	DedupMax    int
}

func (c *StoreConfig) fill() error {
	if c.Dir == "" {
		return errors.New("store dir is empty")
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.MaxMessages < 1 {
		return fmt.Errorf("store max_messages must be at least 1, got %d", c.MaxMessages)
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMax <= 0 {
		c.DedupMax = DefaultDedupMax
	}
	return nil
}

// Bucket names. Sequenced buckets are keyed by an 8-byte big-endian number
// from the bucket's own NextSequence, so a cursor walks them in commit order
// whatever the wall clock says.
var (
	bucketIn        = []byte("in")         // seq -> modem.Inbound JSON
	bucketInIDs     = []byte("in_ids")     // id -> seq of messages still queued
	bucketSegments  = []byte("segments")   // key NUL seq(4) -> modem.Segment JSON
	bucketOutSMS    = []byte("out_sms")    // seq -> Request JSON
	bucketOutIP     = []byte("out_ip")     // seq -> Request JSON
	bucketOutIDs    = []byte("out_ids")    // id -> channel byte + seq of requests still queued
	bucketResults   = []byte("results")    // seq -> Result JSON
	bucketDone      = []byte("done")       // kind byte + id -> order(8) + unix nanos(8)
	bucketDoneOrder = []byte("done_order") // order -> kind byte + id
	bucketDead      = []byte("dead")       // seq -> bucket name NUL record that could not be decoded
	allBuckets      = append([][]byte{bucketIn, bucketInIDs, bucketSegments, bucketOutSMS, bucketOutIP,
		bucketOutIDs, bucketResults, bucketDone, bucketDoneOrder, bucketDead}, jobBuckets...)
)

// Kinds of remembered ids: inbound message ids and request ids live in
// different namespaces because a user picks request ids.
const (
	doneInbound = 'i'
	doneRequest = 'o'
)

// outbound channels index Queue.counts.out and the signals.
const (
	outSMS = iota
	outIP
	numOut
)

func outIndex(channel string) (int, error) {
	switch channel {
	case modem.ChannelSMS:
		return outSMS, nil
	case modem.ChannelIP:
		return outIP, nil
	}
	return 0, fmt.Errorf("unknown channel %q", channel)
}

func outBucket(i int) []byte {
	if i == outIP {
		return bucketOutIP
	}
	return bucketOutSMS
}

// counts mirrors how many records each bucket holds, so the bound is checked
// without walking the database.
type counts struct {
	in, seg, res, done int
	out                [numOut]int
	jobs, pubs         int // see jobs.go
	// Set by a transaction that adds work, so the commit wakes its
	// reader even when removals in the same batch keep the count level.
	addedIn, addedRes, addedJob, addedPub bool
	addedOut                              [numOut]bool
}

func (c counts) occupancy() int { return c.in + c.seg + c.out[outSMS] + c.out[outIP] + c.jobs }

// QueueStats is a snapshot of what the queue holds.
type QueueStats struct {
	Inbound     int // messages waiting for the broker
	Segments    int // parts of concatenated SMS waiting for their siblings
	OutboundSMS int // requests waiting for the modem
	OutboundIP  int
	Results     int // results waiting for the broker
	// Jobs and Publications are the cloud bridge's (see jobs.go).
	Jobs         int
	Publications int
}

// Pending is everything not yet delivered: messages, requests and results.
func (s QueueStats) Pending() int {
	return s.Inbound + s.OutboundSMS + s.OutboundIP + s.Results + s.Jobs + s.Publications
}

// Queue is the durable store between the modem and the broker. It implements
// modem.Sink. Every write is committed with fsync before the call returns;
// concurrent writes share one commit, so a burst costs a few fsyncs rather
// than one per message.
type Queue struct {
	db  *bolt.DB
	log *slog.Logger
	cfg StoreConfig
	now func() time.Time

	ops        chan *op
	closeMu    sync.RWMutex // held shared while submitting, so Close knows no send is pending
	closed     bool
	stop       chan struct{}
	writerDone chan struct{}

	counts counts                 // owned by the writer goroutine
	snap   atomic.Pointer[counts] // published copy for readers

	sigIn  chan struct{}
	sigRes chan struct{}
	sigOut [numOut]chan struct{}
	sigJob chan struct{}
	sigPub chan struct{}

	onEvent   atomic.Pointer[func(modem.Event)]
	fullMu    sync.Mutex
	lastFull  time.Time // monotonic reading; rate-limits queue_full events
	fullShown bool
}

// maxBatch caps how many writes share one transaction, bounding how long a
// single commit holds the writer.
const maxBatch = 512

// OpenQueue opens (or creates) the queue in cfg.Dir. Only one process may
// hold it: a second one fails after a short wait instead of blocking.
func OpenQueue(cfg StoreConfig, log *slog.Logger) (*Queue, error) {
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	path := filepath.Join(cfg.Dir, "queue.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open queue %s: locked by another process (is another simgate running?): %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	q := &Queue{
		db:         db,
		log:        log,
		cfg:        cfg,
		now:        time.Now,
		ops:        make(chan *op),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		sigIn:      make(chan struct{}, 1),
		sigRes:     make(chan struct{}, 1),
		sigJob:     make(chan struct{}, 1),
		sigPub:     make(chan struct{}, 1),
	}
	for i := range q.sigOut {
		q.sigOut[i] = make(chan struct{}, 1)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		q.counts = counts{
			in:   tx.Bucket(bucketIn).Stats().KeyN,
			seg:  tx.Bucket(bucketSegments).Stats().KeyN,
			res:  tx.Bucket(bucketResults).Stats().KeyN,
			done: tx.Bucket(bucketDoneOrder).Stats().KeyN,
			out:  [numOut]int{tx.Bucket(bucketOutSMS).Stats().KeyN, tx.Bucket(bucketOutIP).Stats().KeyN},
			jobs: tx.Bucket(bucketJobs).Stats().KeyN,
			pubs: tx.Bucket(bucketPubs).Stats().KeyN,
		}
		return nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), db.Close())
	}
	c := q.counts
	q.snap.Store(&c)
	go q.writer()
	log.Info("queue opened", "path", path, "inbound", c.in, "segments", c.seg,
		"outbound", c.out[outSMS]+c.out[outIP], "results", c.res, "max_messages", cfg.MaxMessages)
	return q, nil
}

// Close waits for writes in progress and closes the database. Calls after
// Close fail with ErrClosed.
func (q *Queue) Close() error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return nil
	}
	q.closed = true
	q.closeMu.Unlock()
	close(q.stop)
	<-q.writerDone
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("close queue: %w", err)
	}
	return nil
}

// Stats returns what the queue holds as of the last commit.
func (q *Queue) Stats() QueueStats {
	c := q.snap.Load()
	return QueueStats{
		Inbound:      c.in,
		Segments:     c.seg,
		OutboundSMS:  c.out[outSMS],
		OutboundIP:   c.out[outIP],
		Results:      c.res,
		Jobs:         c.jobs,
		Publications: c.pubs,
	}
}

// SetEventHandler sets where the queue reports events users should hear
// about (queue full, records it could not read). The relay installs itself.
func (q *Queue) SetEventHandler(fn func(modem.Event)) {
	if fn == nil {
		q.onEvent.Store(nil)
		return
	}
	q.onEvent.Store(&fn)
}

func (q *Queue) event(typ, msg string, fields map[string]any) {
	ev := modem.Event{Type: typ, Message: msg, Time: q.now().UTC(), Fields: fields}
	if fn := q.onEvent.Load(); fn != nil {
		(*fn)(ev)
	}
}

// fullEvent reports a refusal, at most once a minute while the queue stays
// full, so a modem re-reading its SIM does not flood P/events.
func (q *Queue) fullEvent(what string) {
	q.fullMu.Lock()
	show := !q.fullShown || time.Since(q.lastFull) > time.Minute
	if show {
		q.fullShown, q.lastFull = true, time.Now()
	}
	q.fullMu.Unlock()
	q.log.Warn("queue full: refusing new work", "what", what, "max_messages", q.cfg.MaxMessages)
	if show {
		q.event("queue_full", fmt.Sprintf("queue holds store.max_messages=%d; new %s refused until the broker takes some", q.cfg.MaxMessages, what),
			map[string]any{"max_messages": q.cfg.MaxMessages})
	}
}

func (q *Queue) fullError() error {
	return fmt.Errorf("%w: store.max_messages=%d reached", ErrQueueFull, q.cfg.MaxMessages)
}

// op is one write handed to the writer goroutine. fn may run more than once
// (a failed batch is retried op by op after a rollback), so it must set
// every output it has on each run. It returns a refusal (res), which does
// not abort the transaction, or a failure (err), which does.
type op struct {
	fn   func(tx *bolt.Tx, c *counts) (res, err error)
	res  error
	err  error
	done chan struct{}
}

// errSplit aborts a shared transaction so its ops run one by one.
var errSplit = errors.New("split batch")

// do runs fn in a write transaction shared with whatever other writes are
// waiting, and returns once it is committed. Once handed over the write
// always completes: ctx only limits the wait to hand it over.
func (q *Queue) do(ctx context.Context, fn func(tx *bolt.Tx, c *counts) (error, error)) error {
	o := &op{fn: fn, done: make(chan struct{})}
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case q.ops <- o:
	case <-ctx.Done():
		q.closeMu.RUnlock()
		return ctx.Err()
	}
	q.closeMu.RUnlock()
	<-o.done
	if o.err != nil {
		return o.err
	}
	return o.res
}

func (q *Queue) writer() {
	defer close(q.writerDone)
	for {
		var first *op
		select {
		case first = <-q.ops:
		case <-q.stop:
			return
		}
		// Whatever queued up while the previous commit was syncing joins
		// this one: no timer, so a lone write is not delayed.
		batch := []*op{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-q.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		q.run(batch)
	}
}

func (q *Queue) run(batch []*op) {
	c := q.counts
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			o.res, o.err = o.fn(tx, &c)
			if o.err != nil {
				return errSplit
			}
		}
		return nil
	})
	if err == nil {
		q.committed(c)
		for _, o := range batch {
			close(o.done)
		}
		return
	}
	if len(batch) == 1 {
		o := batch[0]
		if o.err == nil {
			o.err = fmt.Errorf("commit: %w", err)
		}
		o.res = nil
		close(o.done)
		return
	}
	for _, o := range batch {
		o.res, o.err = nil, nil
		q.run([]*op{o})
	}
}

// committed publishes new counts and wakes whoever waits for new work.
func (q *Queue) committed(c counts) {
	added := c
	c.addedIn, c.addedRes, c.addedJob, c.addedPub, c.addedOut = false, false, false, false, [numOut]bool{}
	q.counts = c
	q.snap.Store(&c)
	if added.addedIn {
		poke(q.sigIn)
	}
	if added.addedRes {
		poke(q.sigRes)
	}
	if added.addedJob {
		poke(q.sigJob)
	}
	if added.addedPub {
		poke(q.sigPub)
	}
	for i := range c.out {
		if added.addedOut[i] {
			poke(q.sigOut[i])
		}
	}
	if c.occupancy() < q.cfg.MaxMessages {
		q.fullMu.Lock()
		q.fullShown = false
		q.fullMu.Unlock()
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

func doneKey(kind byte, id string) []byte {
	return append([]byte{kind}, id...)
}

// markDone remembers id as delivered so a redelivered copy is dropped, and
// forgets the oldest ids beyond the window or the cap.
func (q *Queue) markDone(tx *bolt.Tx, c *counts, kind byte, id string) error {
	done, order := tx.Bucket(bucketDone), tx.Bucket(bucketDoneOrder)
	dk := doneKey(kind, id)
	if old := done.Get(dk); len(old) == 16 {
		if err := order.Delete(old[:8]); err != nil {
			return fmt.Errorf("forget done %s: %w", id, err)
		}
		c.done--
	}
	n, err := order.NextSequence()
	if err != nil {
		return fmt.Errorf("done sequence: %w", err)
	}
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, n)
	binary.BigEndian.PutUint64(v[8:], uint64(q.now().UnixNano()))
	if err := done.Put(dk, v); err != nil {
		return fmt.Errorf("remember done %s: %w", id, err)
	}
	if err := order.Put(seqKey(n), dk); err != nil {
		return fmt.Errorf("remember done %s: %w", id, err)
	}
	c.done++
	return q.pruneDone(tx, c)
}

func (q *Queue) pruneDone(tx *bolt.Tx, c *counts) error {
	done, order := tx.Bucket(bucketDone), tx.Bucket(bucketDoneOrder)
	now := q.now().UnixNano()
	window := q.cfg.DedupWindow.Nanoseconds()
	var drop [][2][]byte
	cur := order.Cursor()
	for k, dk := cur.First(); k != nil; k, dk = cur.Next() {
		over := c.done-len(drop) > q.cfg.DedupMax
		expired := false
		if v := done.Get(dk); len(v) == 16 {
			// An entry stamped in the future (the clock was set back) is
			// kept: only the cap removes it.
			t := int64(binary.BigEndian.Uint64(v[8:]))
			expired = t <= now && now-t > window
		}
		if !over && !expired {
			break
		}
		drop = append(drop, [2][]byte{append([]byte(nil), k...), append([]byte(nil), dk...)})
	}
	for _, d := range drop {
		if err := order.Delete(d[0]); err != nil {
			return fmt.Errorf("prune done: %w", err)
		}
		if v := done.Get(d[1]); len(v) == 16 && string(v[:8]) == string(d[0]) {
			if err := done.Delete(d[1]); err != nil {
				return fmt.Errorf("prune done: %w", err)
			}
		}
		c.done--
	}
	return nil
}

func isDone(tx *bolt.Tx, kind byte, id string) bool {
	return tx.Bucket(bucketDone).Get(doneKey(kind, id)) != nil
}

// quarantine moves a record that cannot be decoded out of the way, into the
// dead bucket where it stays for a person to inspect, so one bad record
// cannot block everything behind it.
func (q *Queue) quarantine(ctx context.Context, bucket []byte, key []byte, reason error) error {
	key = append([]byte(nil), key...)
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) (error, error) {
		b := tx.Bucket(bucket)
		v := b.Get(key)
		if v == nil {
			return nil, nil
		}
		dead := tx.Bucket(bucketDead)
		n, err := dead.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("dead sequence: %w", err)
		}
		rec := append(append(append([]byte(nil), bucket...), 0), v...)
		if err := dead.Put(seqKey(n), rec); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
		if err := b.Delete(key); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
		switch string(bucket) {
		case string(bucketIn):
			c.in--
		case string(bucketSegments):
			c.seg--
		case string(bucketResults):
			c.res--
		case string(bucketOutSMS):
			c.out[outSMS]--
		case string(bucketOutIP):
			c.out[outIP]--
		case string(bucketJobs):
			c.jobs--
		case string(bucketPubs):
			c.pubs--
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("quarantine %s record: %w", bucket, err)
	}
	q.log.Error("unreadable record moved to the dead bucket", "bucket", string(bucket), "err", reason)
	q.event("store_corrupt", fmt.Sprintf("a stored %s record could not be read and was set aside: %v", bucket, reason),
		map[string]any{"bucket": string(bucket)})
	return nil
}
