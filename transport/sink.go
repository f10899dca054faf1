package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/simgate/simgate/internal/gw"

	bolt "go.etcd.io/bbolt"
)

var _ gw.Sink = (*Queue)(nil)

// Put stores m for the broker. A message whose ID is still queued, or was
// delivered within the dedup window, is accepted without a second copy. When
// the queue is full it returns an error wrapping ErrQueueFull.
func (q *Queue) Put(ctx context.Context, m gw.Inbound) error {
	val, err := encodeInbound(m)
	if err != nil {
		return fmt.Errorf("put %s: %w", m.ID, err)
	}
	err = q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		return q.putTx(tx, c, m.ID, val, true)
	})
	if errors.Is(err, ErrQueueFull) {
		q.fullEvent(dirReceived, "messages")
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", m.ID, err)
	}
	return nil
}

// putTx stores one encoded message unless its id is known; a full queue is
// a refusal. bounded is false for Assemble, whose segments already occupy
// their place in the queue.
func (q *Queue) putTx(tx *bolt.Tx, c *counts, id string, val []byte, bounded bool) error {
	ids := tx.Bucket(bucketInIDs)
	if ids.Get([]byte(id)) != nil || isDone(tx, doneInbound, id) {
		return nil
	}
	if bounded && q.storeFull.Load() {
		return refuse(ErrStoreFull)
	}
	if bounded && c.received() >= q.cfg.MaxMessages {
		return refuse(q.fullError(dirReceived))
	}
	in := tx.Bucket(bucketIn)
	seq, err := in.NextSequence()
	if err != nil {
		return fmt.Errorf("sequence: %w", err)
	}
	k := seqKey(seq)
	if err := in.Put(k, val); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := ids.Put([]byte(id), k); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	c.in++
	c.addedIn = true
	return nil
}

// segmentKey orders segments by message key, then by position. The key is
// followed by NUL and a fixed-width position, so an exact match is the
// prefix plus a length check.
func segmentKey(key string, seq int) []byte {
	k := make([]byte, len(key)+5)
	copy(k, key)
	binary.BigEndian.PutUint32(k[len(key)+1:], uint32(seq))
	return k
}

func isSegmentOf(k []byte, key string) bool {
	return len(k) == len(key)+5 && bytes.HasPrefix(k, []byte(key)) && k[len(key)] == 0
}

// PutSegment stores s and returns every segment held under s.Key, ordered
// by Seq. A segment already held is not stored twice; a new one is refused
// with ErrQueueFull when the queue is full.
func (q *Queue) PutSegment(ctx context.Context, s gw.Segment) ([]gw.Segment, error) {
	val, err := encodeSegment(s)
	if err != nil {
		return nil, fmt.Errorf("put segment %s/%d: %w", s.Key, s.Seq, err)
	}
	var held []gw.Segment
	err = q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		var err error
		held, err = q.segmentTx(tx, c, s.Key, s.Seq, val)
		return err
	})
	if errors.Is(err, ErrQueueFull) {
		q.fullEvent(dirReceived, "SMS segments")
	}
	if err != nil {
		return nil, fmt.Errorf("put segment %s/%d: %w", s.Key, s.Seq, err)
	}
	return held, nil
}

// segmentTx stores one encoded segment unless it is held, and returns the
// segments held under its key, ordered by Seq; a full queue is a refusal.
func (q *Queue) segmentTx(tx *bolt.Tx, c *counts, key string, seq int, val []byte) ([]gw.Segment, error) {
	b := tx.Bucket(bucketSegments)
	k := segmentKey(key, seq)
	if b.Get(k) == nil {
		if q.storeFull.Load() {
			return nil, refuse(ErrStoreFull)
		}
		if c.received() >= q.cfg.MaxMessages {
			return nil, refuse(q.fullError(dirReceived))
		}
		if err := b.Put(k, val); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		c.seg++
	}
	var held []gw.Segment
	cur := b.Cursor()
	prefix := []byte(key)
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		if !isSegmentOf(k, key) {
			continue
		}
		seg, err := decodeSegment(v)
		if err != nil {
			// Left in place and reported by Segments; the message is
			// reassembled from the segments that can be read.
			q.log.Error("unreadable stored segment", "key", key, "err", err)
			continue
		}
		held = append(held, seg)
	}
	sort.SliceStable(held, func(i, j int) bool { return held[i].Seq < held[j].Seq })
	return held, nil
}

// Assemble stores m and removes the segments held under key in one commit.
// It is never refused for size: the segments it replaces already hold the
// message's place in the queue.
func (q *Queue) Assemble(ctx context.Context, m gw.Inbound, key string) error {
	val, err := encodeInbound(m)
	if err != nil {
		return fmt.Errorf("assemble %s: %w", m.ID, err)
	}
	err = q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(bucketSegments)
		var drop [][]byte
		cur := b.Cursor()
		prefix := []byte(key)
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			if isSegmentOf(k, key) {
				drop = append(drop, append([]byte(nil), k...))
			}
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("remove segment: %w", err)
			}
			c.seg--
		}
		return q.putTx(tx, c, m.ID, val, false)
	})
	if err != nil {
		return fmt.Errorf("assemble %s: %w", m.ID, err)
	}
	return nil
}

// Segments returns every segment held, ordered by Key then Seq. A segment
// that cannot be decoded is logged and skipped; it stays in the store.
func (q *Queue) Segments(ctx context.Context) ([]gw.Segment, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	var out []gw.Segment
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSegments).ForEach(func(k, v []byte) error {
			s, err := decodeSegment(v)
			if err != nil {
				q.log.Error("unreadable stored segment", "key", fmt.Sprintf("%q", k), "err", err)
				return nil
			}
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// storedInbound is one queued message as read for publishing.
type storedInbound struct {
	seq uint64
	key []byte
	msg gw.Inbound
	err error // set when the record could not be decoded
}

// inboundAfter returns up to n messages after key after (from the front
// of the queue when after is nil), in the order they were committed; the
// relay skips those it has delivered but not yet removed.
func (q *Queue) inboundAfter(after []byte, n int) ([]storedInbound, error) {
	return readAfter(q, bucketIn, "inbound", after, n, func(k, v []byte) storedInbound {
		m, err := decodeInbound(v)
		return storedInbound{seq: keySeq(k), key: append([]byte(nil), k...), msg: m, err: err}
	})
}

// readAfter reads up to n records of bucket after key after. A record that
// does not decode is returned with its error, so the caller can set it
// aside rather than stall behind it.
func readAfter[T any](q *Queue, bucket []byte, what string, after []byte, n int, item func(k, v []byte) T) ([]T, error) {
	var out []T
	err := q.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucket).Cursor()
		for k, v := seekAfter(cur, after); k != nil && len(out) < n; k, v = cur.Next() {
			out = append(out, item(k, v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// ackInbound removes delivered messages and remembers their ids. A commit
// that fails for lack of space is split in halves: a smaller transaction
// needs fewer fresh pages, and each one frees pages for the next.
func (q *Queue) ackInbound(ctx context.Context, items []storedInbound) error {
	return splitOnNoSpace(ctx, items, q.ackInboundOnce)
}

func (q *Queue) ackInboundOnce(ctx context.Context, items []storedInbound) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		in, ids := tx.Bucket(bucketIn), tx.Bucket(bucketInIDs)
		for _, it := range items {
			if in.Get(it.key) == nil {
				continue
			}
			if err := in.Delete(it.key); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			c.in--
			if err := ids.Delete([]byte(it.msg.ID)); err != nil {
				return fmt.Errorf("unindex: %w", err)
			}
			if err := q.markDone(tx, c, doneInbound, it.msg.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack inbound: %w", err)
	}
	return nil
}

// seekAfter positions cur on the first key greater than after (the first
// key when after is nil).
func seekAfter(cur *bolt.Cursor, after []byte) ([]byte, []byte) {
	if after == nil {
		return cur.First()
	}
	k, v := cur.Seek(after)
	if k != nil && bytes.Equal(k, after) {
		return cur.Next()
	}
	return k, v
}

// bucketSIM holds the session's SIM journal under journalKey. It is one of
// allBuckets, so it is created at open and copied when a damaged file is
// salvaged; a write creates it too, whatever opened the file.
var (
	bucketSIM  = []byte("sim")
	journalKey = []byte("journal")
)

func putJournal(tx *bolt.Tx, j gw.SIMJournal) error {
	b, err := tx.CreateBucketIfNotExists(bucketSIM)
	if err != nil {
		return fmt.Errorf("journal bucket: %w", err)
	}
	val, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	if err := b.Put(journalKey, val); err != nil {
		return fmt.Errorf("store journal: %w", err)
	}
	return nil
}

// PutSIM stores the messages and segments of one SIM listing, in order,
// with j, in one transaction: one fsync for the whole listing, shared with
// whatever other writes are waiting. The first item refused (the queue or
// the disk is full) ends the prefix stored, and j is left as it was: it
// says the refused SMS were stored.
func (q *Queue) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	vals := make([][]byte, len(items))
	for i, it := range items {
		var err error
		switch {
		case it.Message != nil:
			vals[i], err = encodeInbound(*it.Message)
		case it.Part != nil:
			vals[i], err = encodeSegment(*it.Part)
		default:
			err = errors.New("neither a message nor a part")
		}
		if err != nil {
			// Nothing after it is stored either, so the order holds.
			return 0, fmt.Errorf("put SIM listing: %s: %w", itemName(it), err)
		}
	}
	n := 0
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		// The op may run again after a rollback: every output is set on
		// each run.
		n = 0
		for i := range items {
			it := &items[i]
			var err error
			if it.Message != nil {
				err = q.putTx(tx, c, it.Message.ID, vals[i], true)
			} else {
				it.Held, err = q.segmentTx(tx, c, it.Part.Key, it.Part.Seq, vals[i])
			}
			if r := refused(err); r != nil {
				return refuse(fmt.Errorf("%s: %w", itemName(*it), r))
			}
			if err != nil {
				return fmt.Errorf("%s: %w", itemName(*it), err)
			}
			n++
		}
		return putJournal(tx, j)
	})
	if errors.Is(err, ErrQueueFull) {
		q.fullEvent(dirReceived, "messages")
	}
	if err != nil {
		return n, fmt.Errorf("put SIM listing: %w", err)
	}
	return n, nil
}

// itemName names a SIM listing's item in errors.
func itemName(it gw.SIMItem) string {
	switch {
	case it.Message != nil:
		return it.Message.ID
	case it.Part != nil:
		return fmt.Sprintf("segment %s/%d", it.Part.Key, it.Part.Seq)
	}
	return "empty item"
}

// SaveJournal commits the SIM journal alone.
func (q *Queue) SaveJournal(ctx context.Context, j gw.SIMJournal) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		return putJournal(tx, j)
	})
	if err != nil {
		return fmt.Errorf("save SIM journal: %w", err)
	}
	return nil
}

// Journal returns the SIM journal last committed; an empty one when none
// was. A journal that cannot be decoded is reported and taken as empty: it
// only orders and deduplicates, and nothing is lost without it.
func (q *Queue) Journal(ctx context.Context) (gw.SIMJournal, error) {
	var j gw.SIMJournal
	if err := ctx.Err(); err != nil {
		return j, fmt.Errorf("journal: %w", err)
	}
	err := q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSIM)
		if b == nil {
			return nil
		}
		v := b.Get(journalKey)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &j); err != nil {
			q.log.Error("unreadable SIM journal; starting a new one", "err", err)
			j = gw.SIMJournal{}
		}
		return nil
	})
	if err != nil {
		return gw.SIMJournal{}, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

// Known reports whether a message with id is queued or was delivered
// within the dedup window.
func (q *Queue) Known(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("known %s: %w", id, err)
	}
	known := false
	err := q.db.View(func(tx *bolt.Tx) error {
		known = tx.Bucket(bucketInIDs).Get([]byte(id)) != nil || isDone(tx, doneInbound, id)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("known %s: %w", id, err)
	}
	return known, nil
}
