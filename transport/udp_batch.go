package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/simgate/simgate/internal/gw"

	bolt "go.etcd.io/bbolt"
)

// BatchSink is a gw.Sink that can store several messages in one durable
// commit, in the order given. The UDP receiver uses it to keep arrival order
// without paying one fsync per datagram; Queue implements it.
type BatchSink interface {
	gw.Sink
	// PutBatch stores ms in one commit, in order. It returns one error per
	// message (nil when it was stored or its ID was already known), or a
	// non-nil error alone when the commit failed, in which case none of ms
	// was stored.
	PutBatch(ctx context.Context, ms []gw.Inbound) ([]error, error)
}

var _ BatchSink = (*Queue)(nil)

// PutBatch stores ms in one fsync'd commit, in the order given, so a burst
// keeps its arrival order and costs one sync. Each message is treated as Put
// treats it: a known ID is accepted without a second copy, and a message
// beyond store.max_messages is refused with an error wrapping ErrQueueFull
// (so are the ones after it: the commit only adds). A message that cannot
// be encoded is refused alone.
func (q *Queue) PutBatch(ctx context.Context, ms []gw.Inbound) ([]error, error) {
	res := make([]error, len(ms))
	vals := make([][]byte, len(ms))
	for i, m := range ms {
		v, err := encodeInbound(m)
		if err != nil {
			res[i] = fmt.Errorf("put %s: %w", m.ID, err)
			continue
		}
		vals[i] = v
	}
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		for i, m := range ms {
			if vals[i] == nil {
				continue
			}
			// The op may run again after a rollback: every result is set
			// on each run.
			err := q.putTx(tx, c, m.ID, vals[i], true)
			res[i] = nil
			if r := refused(err); r != nil {
				res[i] = fmt.Errorf("put %s: %w", m.ID, r)
				continue
			}
			if err != nil {
				return fmt.Errorf("put %s: %w", m.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put batch of %d: %w", len(ms), err)
	}
	for _, r := range res {
		if errors.Is(r, ErrQueueFull) {
			q.fullEvent(dirReceived, "messages")
			break
		}
	}
	return res, nil
}
