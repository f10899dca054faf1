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

	"github.com/simgate/simgate/internal/gw"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
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
	// MaxMessages bounds the received side of the queue: inbound messages
	// and segments of incomplete SMS. MaxRequests (default MaxMessages)
	// bounds the outbound requests apart from it, so a flood of requests
	// never makes the gateway refuse a received command. Results of
	// accepted requests count in neither, so a result is never refused.
	MaxMessages int
	MaxRequests int
	// DedupWindow is how long the id of a delivered message is remembered,
	// so a redelivered copy is dropped; DedupMax caps how many are kept.
	DedupWindow time.Duration
	DedupMax    int
	// ReserveBytes is disk space held back in Dir so that delivered
	// messages can still be removed when the disk fills up (default
	// DefaultReserveBytes; negative: none).
	ReserveBytes int64
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
	if c.MaxRequests == 0 {
		c.MaxRequests = c.MaxMessages
	}
	if c.MaxRequests < 1 {
		return fmt.Errorf("store max_requests must be at least 1, got %d", c.MaxRequests)
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMax <= 0 {
		c.DedupMax = DefaultDedupMax
	}
	if c.ReserveBytes == 0 {
		c.ReserveBytes = DefaultReserveBytes
	}
	return nil
}

// Bucket names. Sequenced buckets are keyed by an 8-byte big-endian number
// from the bucket's own NextSequence, so a cursor walks them in commit order
// whatever the wall clock says.
var (
	bucketIn        = []byte("in")         // seq -> gw.Inbound JSON
	bucketInIDs     = []byte("in_ids")     // id -> seq of messages still queued
	bucketSegments  = []byte("segments")   // key NUL seq(4) -> gw.Segment JSON
	bucketOutSMS    = []byte("out_sms")    // seq -> Request JSON
	bucketOutIP     = []byte("out_ip")     // seq -> Request JSON
	bucketOutIDs    = []byte("out_ids")    // id -> channel byte + seq of requests still queued
	bucketResults   = []byte("results")    // seq -> Result JSON
	bucketDone      = []byte("done")       // kind byte + id -> order(8) + unix nanos(8)
	bucketDoneOrder = []byte("done_order") // order -> kind byte + id
	bucketDead      = []byte("dead")       // seq -> bucket name NUL record that could not be decoded
	allBuckets      = append([][]byte{bucketIn, bucketInIDs, bucketSegments, bucketOutSMS, bucketOutIP,
		bucketOutIDs, bucketResults, bucketDone, bucketDoneOrder, bucketDead, bucketSIM, bucketReports}, jobBuckets...)
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
	case gw.ChannelSMS:
		return outSMS, nil
	case gw.ChannelIP:
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

// received is what store.max_messages bounds; requests what MaxRequests
// bounds (the cloud bridge's jobs are requests too). Each direction has its
// own bound.
func (c counts) received() int { return c.in + c.seg }
func (c counts) requests() int { return c.out[outSMS] + c.out[outIP] + c.jobs }

// QueueStats is a snapshot of what the queue holds.
type QueueStats struct {
	Inbound     int // messages waiting for the broker
	Segments    int // parts of concatenated SMS waiting for their siblings
	OutboundSMS int // requests waiting for the modem
	OutboundIP  int
	Results     int // results waiting for the broker
	// StoreFull is set while the disk under store.dir is full: new work
	// is refused, deliveries go on.
	StoreFull bool
	// StoreCorrupt is set when a damaged queue.db was found and set aside
	// (at this start or an earlier one: while CorruptFile is in store.dir).
	StoreCorrupt bool
	CorruptFile  string
	// Jobs and Publications are the cloud bridge's (see jobs.go).
	Jobs         int
	Publications int
}

// Pending is everything not yet delivered: messages, requests and results.
func (s QueueStats) Pending() int {
	return s.Inbound + s.OutboundSMS + s.OutboundIP + s.Results + s.Jobs + s.Publications
}

// Queue is the durable store between the modem and the broker. It implements
// gw.Sink. Every write is committed with fsync before the call returns;
// concurrent writes share one commit, so a burst costs a few fsyncs rather
// than one per message.
type Queue struct {
	db  *bolt.DB
	log *slog.Logger
	cfg StoreConfig
	now func() time.Time

	hwm       *hwmFile
	hwmFailed bool // owned by the writer: the mark could not be written
	reserve   reserve
	storeFull atomic.Bool
	lastProbe time.Time // owned by the writer
	// reserveMissing is set while the reserve file is not in place.
	// Owned by the writer once open returns.
	reserveMissing bool
	onState        atomic.Pointer[func()]
	// damage is what was found at open; reported once through the event
	// handler. corruptFile is the newest set-aside file in the directory.
	damage      *StoreDamage
	damageShown atomic.Bool
	corruptFile string

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

	onEvent   atomic.Pointer[func(gw.Event)]
	fullMu    sync.Mutex
	lastFull  [numDirs]time.Time // monotonic reading; rate-limits queue_full events
	fullShown [numDirs]bool
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
	path := filepath.Join(cfg.Dir, dbName)
	hwm, mark, markOK, err := openHWM(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	if !markOK {
		log.Warn("queue: the transaction mark is unreadable; the store's transaction ids are not checked this time", "file", filepath.Join(cfg.Dir, hwmName))
	}
	db, damage, err := openStore(path, mark)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), hwm.close())
	}
	q := &Queue{
		db:         db,
		log:        log,
		cfg:        cfg,
		now:        time.Now,
		hwm:        hwm,
		reserve:    reserve{path: filepath.Join(cfg.Dir, reserveName), size: reserveSize(cfg.Dir, cfg.ReserveBytes)},
		damage:     damage,
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
		return nil
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), db.Close(), hwm.close())
	}
	if err := q.recount(); err != nil {
		return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), db.Close(), hwm.close())
	}
	if damage != nil && damage.SetAside != "" {
		damage.Salvaged = salvage(damage.SetAside, db, log)
		if err := q.recount(); err != nil {
			return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), db.Close(), hwm.close())
		}
	}
	if damage != nil {
		log.Error("QUEUE DAMAGED: started a new queue.db; what the damaged one held is lost unless salvaged",
			"reason", damage.Reason, "set_aside", damage.SetAside, "salvaged_records", damage.Salvaged)
	}
	if files := setAsideFiles(cfg.Dir); len(files) > 0 {
		q.corruptFile = files[len(files)-1]
		if damage == nil {
			log.Warn("a damaged queue file set aside earlier is still in store.dir; status shows store_corrupt until it is removed", "file", q.corruptFile)
		}
	}
	if err := db.View(func(tx *bolt.Tx) error { return hwm.set(uint64(tx.ID()), true) }); err != nil {
		return nil, errors.Join(fmt.Errorf("open queue %s: %w", path, err), db.Close(), hwm.close())
	}
	if err := q.reserve.fill(); err != nil {
		// Measured again before each commit: new work is refused once
		// less than the reserve is left.
		q.reserveMissing = true
		log.Warn("no disk reserve for the queue: the disk under store.dir has too little room", "err", err)
	}
	c := q.counts
	q.snap.Store(&c)
	go q.writer()
	log.Info("queue opened", "path", path, "inbound", c.in, "segments", c.seg,
		"outbound", c.out[outSMS]+c.out[outIP], "results", c.res, "max_messages", cfg.MaxMessages, "max_requests", cfg.MaxRequests)
	return q, nil
}

// openStore opens queue.db, checked against the transaction mark. A
// damaged file is renamed aside and a new one started: the gateway keeps
// working, and says so loudly, rather than exit and be restarted into the
// same damage by systemd. Only failures that are not damage (a lock held
// by another process, permissions) are returned as errors.
func openStore(path string, mark uint64) (*bolt.DB, *StoreDamage, error) {
	var damage *StoreDamage
	info, err := os.Stat(path)
	exists := err == nil
	switch {
	case err == nil && info.Size() == 0:
		damage = &StoreDamage{Reason: "queue.db is empty (zero length)"}
		if mark > 0 {
			damage.Reason += fmt.Sprintf(" although transaction %d was committed", mark)
		}
	case errors.Is(err, os.ErrNotExist):
		if mark > 0 {
			damage = &StoreDamage{Reason: fmt.Sprintf("queue.db is missing although transaction %d was committed: everything it held is lost", mark)}
		}
	case err != nil:
		return nil, nil, err
	default:
		db, err := openChecked(path, mark)
		var d *errDamaged
		if !errors.As(err, &d) {
			return db, nil, err
		}
		damage = &StoreDamage{Reason: d.reason}
	}
	if damage != nil && exists {
		aside, err := setAside(path, time.Now())
		if err != nil {
			return nil, nil, err
		}
		damage.SetAside = aside
	}
	db, err := bolt.Open(path, 0o600, boltOptions(false))
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, nil, fmt.Errorf("locked by another process (is another simgate running?): %w", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return db, damage, nil
}

// recount sets the counts from the buckets.
func (q *Queue) recount() error {
	return q.db.View(func(tx *bolt.Tx) error {
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
	})
}

// Damage returns what was found wrong with queue.db at open, or nil.
func (q *Queue) Damage() *StoreDamage { return q.damage }

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
	if err := errors.Join(q.db.Close(), q.hwm.close()); err != nil {
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
		StoreFull:    q.storeFull.Load(),
		// Set for the life of the process once a damaged file was set
		// aside; a restart clears it once the file is removed.
		StoreCorrupt: q.corruptFile != "",
		CorruptFile:  q.corruptFile,
	}
}

// SetEventHandler sets where the queue reports events users should hear
// about (queue full, records it could not read). The relay installs itself.
// Damage found at open is reported to the first handler set.
func (q *Queue) SetEventHandler(fn func(gw.Event)) {
	if fn == nil {
		q.onEvent.Store(nil)
		return
	}
	q.onEvent.Store(&fn)
	if d := q.damage; d != nil && q.damageShown.CompareAndSwap(false, true) {
		msg := fmt.Sprintf("queue.db was damaged (%s) and a new one was started", d.Reason)
		if d.SetAside != "" {
			msg += fmt.Sprintf("; the damaged file is kept as %s and %d records were salvaged from it", d.SetAside, d.Salvaged)
		}
		q.event(gw.EventStoreCorrupt, msg+"; messages it held may be lost",
			map[string]any{"reason": d.Reason, "set_aside": d.SetAside, "salvaged": d.Salvaged})
	}
}

func (q *Queue) event(typ, msg string, fields map[string]any) {
	ev := gw.Event{Type: typ, Message: msg, Time: q.now().UTC(), Fields: fields}
	if fn := q.onEvent.Load(); fn != nil {
		(*fn)(ev)
	}
}

// Directions of the queue, each with its own bound and its own queue_full
// state.
const (
	dirReceived = iota // inbound messages and segments: store.max_messages
	dirRequests        // outbound requests: MaxRequests
	numDirs
)

// limit is the bound of direction d.
func (q *Queue) limit(d int) int {
	if d == dirRequests {
		return q.cfg.MaxRequests
	}
	return q.cfg.MaxMessages
}

// limitKey names the bound of direction d as a user configures it.
func limitKey(d int) string {
	if d == dirRequests {
		return "max_requests"
	}
	return "max_messages"
}

// fullEvent reports a refusal, at most once a minute while that direction
// stays full, so a modem re-reading its SIM does not flood P/events.
func (q *Queue) fullEvent(d int, what string) {
	if q.storeFull.Load() {
		// store_full said it once; the refusals are counted in status.
		return
	}
	q.fullMu.Lock()
	show := !q.fullShown[d] || time.Since(q.lastFull[d]) > time.Minute
	if show {
		q.fullShown[d], q.lastFull[d] = true, time.Now()
	}
	q.fullMu.Unlock()
	q.log.Warn("queue full: refusing new work", "what", what, limitKey(d), q.limit(d))
	if show {
		q.event(gw.EventQueueFull, fmt.Sprintf("queue holds store.%s=%d; new %s refused until the broker takes some", limitKey(d), q.limit(d), what),
			map[string]any{limitKey(d): q.limit(d)})
	}
}

func (q *Queue) fullError(d int) error {
	return fmt.Errorf("%w: store.%s=%d reached", ErrQueueFull, limitKey(d), q.limit(d))
}

// refusal is an op's answer that refuses its work (a full queue) without
// failing the transaction the op shares: the other writes in it commit.
type refusal struct{ err error }

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse marks err as a refusal; nil stays nil.
func refuse(err error) error {
	if err == nil {
		return nil
	}
	return &refusal{err}
}

// refused returns what err refuses when it is a refusal, else nil.
func refused(err error) error {
	if r, ok := err.(*refusal); ok {
		return r.err
	}
	return nil
}

// op is one write handed to the writer goroutine. fn may run more than once
// (a failed batch is retried op by op after a rollback), so it must set
// every output it has on each run. It returns a refusal (refuse), which
// does not abort the transaction, or a failure, which does.
type op struct {
	fn func(tx *bolt.Tx, c *counts) error
	// taken marks work taken from outside, whose source forgets it once
	// the commit is reported (an SMS deleted from the SIM, a request
	// acknowledged to the broker): the transaction mark must be durable
	// before then. Other writes (removals, results) would at worst be
	// done again if a damaged file rolled them back.
	taken bool
	res   error
	err   error
	done  chan struct{}
}

// errSplit aborts a shared transaction so its ops run one by one.
var errSplit = errors.New("split batch")

// do runs fn in a write transaction shared with whatever other writes are
// waiting, and returns once it is committed. Once handed over the write
// always completes: ctx only limits the wait to hand it over.
func (q *Queue) do(ctx context.Context, fn func(tx *bolt.Tx, c *counts) error) error {
	return q.submit(ctx, &op{fn: fn, done: make(chan struct{})})
}

// doTaken is do for work taken from outside (see op.taken).
func (q *Queue) doTaken(ctx context.Context, fn func(tx *bolt.Tx, c *counts) error) error {
	return q.submit(ctx, &op{fn: fn, taken: true, done: make(chan struct{})})
}

func (q *Queue) submit(ctx context.Context, o *op) error {
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
	// While the store is full, or has no reserve, room is looked for
	// even when nothing is written, so status clears store_full without
	// waiting for new work. Otherwise the writer sleeps until work comes.
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	for {
		var tick <-chan time.Time
		if q.storeFull.Load() || q.reserveMissing {
			tick = probe.C
		}
		var first *op
		select {
		case first = <-q.ops:
		case <-tick:
			q.probeSpace()
			continue
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
	q.probeSpace()
	c := q.counts
	var txid uint64
	err := q.db.Update(func(tx *bolt.Tx) error {
		txid = uint64(tx.ID())
		for _, o := range batch {
			o.res, o.err = nil, nil
			err := o.fn(tx, &c)
			if r := refused(err); r != nil {
				o.res = r
				continue
			}
			if err != nil {
				o.err = err
				return errSplit
			}
		}
		return nil
	})
	if err == nil {
		// bbolt has synced the commit, so readers may see it now: the
		// publish loop starts on a new message while the mark is synced.
		// Their own writes (a removal once the broker has it) wait for
		// this writer, so none commits before the mark.
		q.committed(c)
		// The mark is durable before a writer hears of the commit: an
		// SMS is deleted from the SIM only once it is durable, and a
		// later open must be able to tell if the file lost this
		// transaction. What a reader acted on before a crash that left
		// the mark behind is still in the file, or still with its source
		// (on the SIM, unacknowledged to the broker): at worst it is
		// delivered again, never lost. A batch of removals only writes
		// the mark; the next sync takes it.
		durable := false
		for _, o := range batch {
			durable = durable || o.taken
		}
		if herr := q.hwm.set(txid, durable); herr != nil && !q.hwmFailed {
			q.hwmFailed = true
			q.log.Error("cannot record the committed transaction; damage to queue.db may go unnoticed at the next start", "err", herr)
		} else if herr == nil {
			q.hwmFailed = false
		}
		for _, o := range batch {
			close(o.done)
		}
		return
	}
	if isNoSpace(err) {
		q.noSpace(err)
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
	q.fullMu.Lock()
	if c.received() < q.cfg.MaxMessages {
		q.fullShown[dirReceived] = false
	}
	if c.requests() < q.cfg.MaxRequests {
		q.fullShown[dirRequests] = false
	}
	q.fullMu.Unlock()
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
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(bucket)
		v := b.Get(key)
		if v == nil {
			return nil
		}
		dead := tx.Bucket(bucketDead)
		n, err := dead.NextSequence()
		if err != nil {
			return fmt.Errorf("dead sequence: %w", err)
		}
		rec := append(append(append([]byte(nil), bucket...), 0), v...)
		if err := dead.Put(seqKey(n), rec); err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
		if err := b.Delete(key); err != nil {
			return fmt.Errorf("quarantine: %w", err)
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
		return nil
	})
	if err != nil {
		return fmt.Errorf("quarantine %s record: %w", bucket, err)
	}
	q.log.Error("unreadable record moved to the dead bucket", "bucket", string(bucket), "err", reason)
	q.event(gw.EventStoreCorrupt, fmt.Sprintf("a stored %s record could not be read and was set aside: %v", bucket, reason),
		map[string]any{"bucket": string(bucket)})
	return nil
}
