package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// admission is what happened to one request offered to the queue.
type admission int

const (
	admitQueued    admission = iota // stored, waiting for the modem
	admitDuplicate                  // its id is queued or was completed recently: dropped
	admitFull                       // refused: queue full; a failed result was stored
	admitRejected                   // invalid; a failed result was stored
)

// admit is one request taken from the broker. Reject, when set, is why it
// was refused before reaching the queue; Req.ID and Req.Channel are set
// either way so the failed result can name it.
type admit struct {
	Req     Request
	Reject  string
	Outcome admission // set by Queue.admit
	// committed is set once the outcome is durable, so a retried batch
	// does not store it twice.
	committed bool
}

// admit stores a batch of requests, and failed results for the ones that are
// invalid or do not fit, in the order given. Only after it returns may the
// requests be acknowledged to the broker. A commit that fails for lack of
// space is split in halves, down to one request, so what fits is stored; on
// an error, calling admit again with the same items stores only the rest.
func (q *Queue) admit(ctx context.Context, items []*admit) error {
	var todo []*admit
	for _, it := range items {
		if !it.committed {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return q.admitChunk(ctx, todo)
}

func (q *Queue) admitChunk(ctx context.Context, items []*admit) error {
	full := false
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		full = false
		ids := tx.Bucket(bucketOutIDs)
		for _, it := range items {
			if it.Reject != "" {
				it.Outcome = admitRejected
				if err := q.putResult(tx, c, Result{ID: it.Req.ID, Channel: it.Req.Channel, Status: StatusFailed, Error: it.Reject}); err != nil {
					return err
				}
				continue
			}
			ch, err := outIndex(it.Req.Channel)
			if err != nil {
				return err
			}
			if ids.Get([]byte(it.Req.ID)) != nil || isDone(tx, doneRequest, it.Req.ID) {
				it.Outcome = admitDuplicate
				continue
			}
			if q.storeFull.Load() {
				it.Outcome = admitFull
				if err := q.putResult(tx, c, Result{ID: it.Req.ID, Channel: it.Req.Channel, Status: StatusFailed, Error: "store full: the disk under store.dir is full"}); err != nil {
					return err
				}
				continue
			}
			if c.requests() >= q.cfg.MaxRequests {
				it.Outcome, full = admitFull, true
				if err := q.putResult(tx, c, Result{ID: it.Req.ID, Channel: it.Req.Channel, Status: StatusFailed, Error: "queue full"}); err != nil {
					return err
				}
				continue
			}
			val, err := json.Marshal(it.Req)
			if err != nil {
				return fmt.Errorf("encode request %s: %w", it.Req.ID, err)
			}
			b := tx.Bucket(outBucket(ch))
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("sequence: %w", err)
			}
			k := seqKey(seq)
			if err := b.Put(k, val); err != nil {
				return fmt.Errorf("store request %s: %w", it.Req.ID, err)
			}
			if err := ids.Put([]byte(it.Req.ID), append([]byte{byte(ch)}, k...)); err != nil {
				return fmt.Errorf("index request %s: %w", it.Req.ID, err)
			}
			c.out[ch]++
			c.addedOut[ch] = true
			it.Outcome = admitQueued
		}
		return nil
	})
	if full {
		q.fullEvent(dirRequests, "requests")
	}
	if err == nil {
		for _, it := range items {
			it.committed = true
		}
		return nil
	}
	if isNoSpace(err) && len(items) > 1 {
		half := len(items) / 2
		// In order: the second half is tried only once the first is in,
		// so what is stored is always a prefix of the batch.
		if err := q.admitChunk(ctx, items[:half]); err != nil {
			return err
		}
		return q.admitChunk(ctx, items[half:])
	}
	return fmt.Errorf("queue requests: %w", err)
}

func (q *Queue) putResult(tx *bolt.Tx, c *counts, r Result) error {
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result %s: %w", r.ID, err)
	}
	b := tx.Bucket(bucketResults)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("sequence: %w", err)
	}
	if err := b.Put(seqKey(seq), val); err != nil {
		return fmt.Errorf("store result %s: %w", r.ID, err)
	}
	c.res++
	c.addedRes = true
	return nil
}

// storedRequest is the request at the front of one channel.
type storedRequest struct {
	key []byte
	req Request
	err error // set when the record could not be decoded
}

// headRequest returns the oldest request of channel ch, if any.
func (q *Queue) headRequest(ch int) (storedRequest, bool, error) {
	var out storedRequest
	found := false
	err := q.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(outBucket(ch)).Cursor().First()
		if k == nil {
			return nil
		}
		found = true
		out.key = append([]byte(nil), k...)
		out.req, out.err = decodeRequest(v)
		return nil
	})
	if err != nil {
		return storedRequest{}, false, fmt.Errorf("read requests: %w", err)
	}
	return out, found, nil
}

// complete replaces a request by its result in one commit: from then on the
// result is what waits for the broker, and the modem is never asked to send
// the request again.
func (q *Queue) complete(ctx context.Context, ch int, sr storedRequest, r Result) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(outBucket(ch))
		if b.Get(sr.key) == nil {
			return nil
		}
		if err := b.Delete(sr.key); err != nil {
			return fmt.Errorf("delete request: %w", err)
		}
		c.out[ch]--
		if err := tx.Bucket(bucketOutIDs).Delete([]byte(sr.req.ID)); err != nil {
			return fmt.Errorf("unindex request: %w", err)
		}
		if err := q.markDone(tx, c, doneRequest, sr.req.ID); err != nil {
			return err
		}
		if err := rememberReport(tx, r); err != nil {
			return err
		}
		return q.putResult(tx, c, r)
	})
	if err != nil {
		return fmt.Errorf("complete request %s: %w", sr.req.ID, err)
	}
	return nil
}

// storedResult is one result waiting for the broker.
type storedResult struct {
	key []byte
	res Result
	err error
}

// resultsAfter returns up to n results after key after (from the front
// when after is nil), in the order they were committed.
func (q *Queue) resultsAfter(after []byte, n int) ([]storedResult, error) {
	return readAfter(q, bucketResults, "results", after, n, func(k, v []byte) storedResult {
		r, err := decodeResult(v)
		return storedResult{key: append([]byte(nil), k...), res: r, err: err}
	})
}

// ackResults removes published results, split like ackInbound when the
// disk is full.
func (q *Queue) ackResults(ctx context.Context, items []storedResult) error {
	return splitOnNoSpace(ctx, items, q.ackResultsOnce)
}

func (q *Queue) ackResultsOnce(ctx context.Context, items []storedResult) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		return deleteStored(tx.Bucket(bucketResults), items, func(it storedResult) []byte { return it.key }, "result", &c.res)
	})
	if err != nil {
		return fmt.Errorf("ack results: %w", err)
	}
	return nil
}

// splitOnNoSpace runs once over items and, when the commit fails for lack
// of space, again over each half: a smaller transaction needs fewer fresh
// pages, and each one frees pages for the next.
func splitOnNoSpace[T any](ctx context.Context, items []T, once func(context.Context, []T) error) error {
	err := once(ctx, items)
	if isNoSpace(err) && len(items) > 1 {
		half := len(items) / 2
		return errors.Join(splitOnNoSpace(ctx, items[:half], once), splitOnNoSpace(ctx, items[half:], once))
	}
	return err
}

// deleteStored deletes the records of items still in b and counts them off
// n; one already gone (acknowledged twice) is skipped.
func deleteStored[T any](b *bolt.Bucket, items []T, key func(T) []byte, what string, n *int) error {
	for _, it := range items {
		k := key(it)
		if b.Get(k) == nil {
			continue
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete %s: %w", what, err)
		}
		*n--
	}
	return nil
}
