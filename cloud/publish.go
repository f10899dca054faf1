package cloud

import (
	"context"
	"errors"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/transport"
)

// publishLoop publishes the queue's publications in commit order, one at a
// time, and has each removed only after its PUBACK, so delivery is at least
// once and in order: results and from_sim messages alike. One message in
// flight keeps order across a lost connection (a publish waiting in paho
// would otherwise go out before paho's resends). Removals are committed
// behind the publishing, in groups. After stop it goes on until the queue
// is empty or the connection is down, or abort.
func (b *Bridge) publishLoop(stop <-chan struct{}, abort context.Context) {
	acks := make(chan transport.StoredPublication, 1024)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		b.ackLoop(acks)
	}()
	defer func() { close(acks); <-ackDone }()
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Below)
	var last []byte
	draining := false
	for abort.Err() == nil {
		if !draining {
			select {
			case <-stop:
				draining = true
			default:
			}
		}
		up, epoch := b.conn.state()
		if !up {
			if draining {
				return
			}
			select {
			case <-b.conn.wait():
			case <-stop:
				draining = true
			case <-abort.Done():
			}
			continue
		}
		items, err := b.q.PublicationsAfter(last, 1)
		if err != nil {
			b.log.Error("cannot read publications", "err", err)
			if backoff.Sleep(abort, bo.Next()) != nil {
				return // aborted: what is left stays stored for next time
			}
			continue
		}
		if len(items) == 0 {
			if draining {
				return
			}
			select {
			case <-b.q.PublicationSignal():
			case <-stop:
				draining = true
			case <-abort.Done():
			}
			continue
		}
		it := items[0]
		if it.Err() != nil {
			b.log.Error("unreadable publication set aside", "err", it.Err())
			if err := b.q.SetAsidePublication(abort, it); err != nil {
				b.log.Error("cannot set publication aside", "err", err)
				if backoff.Sleep(abort, bo.Next()) != nil {
					return
				}
			}
			continue
		}
		t := b.client.Publish(it.Topic, 1, it.Retain, it.Payload)
		err = transport.WaitToken(abort, t, 0)
		if _, now := b.conn.state(); err == nil && now != epoch {
			err = errors.New("connection lost before the PUBACK was seen")
		}
		if err != nil {
			if abort.Err() != nil {
				return
			}
			d := bo.Next()
			b.log.Warn("publish failed; retrying", "topic", it.Topic, "err", err, "retry_in", d.Round(time.Millisecond))
			if backoff.Sleep(abort, d) != nil {
				return
			}
			continue
		}
		bo.Reset()
		b.Published.Add(1)
		last = it.Position()
		acks <- it
	}
}

// ackLoop removes acknowledged publications, whatever queued up while the
// previous removal was being committed in one go.
func (b *Bridge) ackLoop(acks <-chan transport.StoredPublication) {
	for it := range acks {
		batch := []transport.StoredPublication{it}
	more:
		for len(batch) < 512 {
			select {
			case x, ok := <-acks:
				if !ok {
					break more
				}
				batch = append(batch, x)
			default:
				break more
			}
		}
		if err := b.q.AckPublications(context.Background(), batch); err != nil {
			// Left in the queue: published again after a restart.
			b.log.Error("cannot remove published messages", "err", err)
		}
	}
}
