package transport

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/simgate/simgate/internal/gw"

	bolt "go.etcd.io/bbolt"
)

// Observer receives what the relay measures, for metrics. Either function
// may be nil. They run on the relay's goroutines, so they must be quick and
// must not block.
type Observer struct {
	// Puback is called for every message the broker acknowledged, with its
	// outbox ("inbound", "results", "events") and the time from handing it
	// to the MQTT client to its PUBACK.
	Puback func(outbox string, d time.Duration)
	// DeviceCall is called after every call to the device, with the
	// channel (gw.ChannelSMS or gw.ChannelIP), how long it took and
	// its error (nil when sent).
	DeviceCall func(channel string, d time.Duration, err error)
	// Event is called for every event queued for P/events, with its type:
	// the modem's, the queue's and the relay's own.
	Event func(typ string)
}

// ChannelStats counts one channel's traffic since the relay started.
type ChannelStats struct {
	// In counts inbound messages (P/sms/in, P/ip/in) the broker
	// acknowledged; a redelivery after a lost PUBACK counts again.
	In uint64
	// LastIn is when the last of them was received from the modem or
	// socket; zero before the first.
	LastIn time.Time
	// Requests by what the queue did with them: Queued waits for the
	// device; Rejected (malformed, over the limit, not allowed) and Full
	// (the queue was full) got a failed result; Duplicates were dropped.
	Queued, Rejected, Full, Duplicates uint64
	// Sent and Failed count device calls by their result.
	Sent, Failed uint64
	// LastOut is when the last request was sent; zero before the first.
	LastOut time.Time
}

// channelCounters is ChannelStats kept with atomics, indexed by outSMS and
// outIP.
type channelCounters struct {
	in      atomic.Uint64
	lastIn  atomic.Int64 // Unix nanoseconds
	admit   [admitRejected + 1]atomic.Uint64
	sent    atomic.Uint64
	failed  atomic.Uint64
	lastOut atomic.Int64
}

// Channel returns the counters of channel (gw.ChannelSMS or
// gw.ChannelIP); an unknown channel has none.
func (r *Relay) Channel(channel string) ChannelStats {
	i, err := outIndex(channel)
	if err != nil {
		return ChannelStats{}
	}
	c := &r.channels[i]
	return ChannelStats{
		In:         c.in.Load(),
		LastIn:     unixTime(c.lastIn.Load()),
		Queued:     c.admit[admitQueued].Load(),
		Rejected:   c.admit[admitRejected].Load(),
		Full:       c.admit[admitFull].Load(),
		Duplicates: c.admit[admitDuplicate].Load(),
		Sent:       c.sent.Load(),
		Failed:     c.failed.Load(),
		LastOut:    unixTime(c.lastOut.Load()),
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// countInbound counts delivered inbound messages by channel.
func (r *Relay) countInbound(items []storedInbound) {
	for _, it := range items {
		i, err := outIndex(it.msg.Channel)
		if err != nil {
			continue
		}
		r.channels[i].in.Add(1)
		if !it.msg.ReceivedAt.IsZero() {
			r.channels[i].lastIn.Store(it.msg.ReceivedAt.UnixNano())
		}
	}
}

func (r *Relay) countAdmit(it *admit) {
	if i, err := outIndex(it.Req.Channel); err == nil {
		r.channels[i].admit[it.Outcome].Add(1)
	}
}

// observeSend counts one device call that produced a result (not one cut
// short by shutdown) and reports its duration.
func (r *Relay) observeSend(ch int, d time.Duration, err error) {
	c := &r.channels[ch]
	if err == nil {
		c.sent.Add(1)
		c.lastOut.Store(time.Now().UnixNano())
	} else {
		c.failed.Add(1)
	}
	if f := r.cfg.Observer.DeviceCall; f != nil {
		f(outChannel(ch), d, err)
	}
}

func (r *Relay) observePuback(outbox string, d time.Duration) {
	if f := r.cfg.Observer.Puback; f != nil {
		f(outbox, d)
	}
}

func outChannel(ch int) string {
	if ch == outIP {
		return gw.ChannelIP
	}
	return gw.ChannelSMS
}

// QueueAges says when the oldest item of each kind waiting in the queue was
// received; zero when there is none. They are wall-clock times (the
// received_at of the message or request), so a clock set after they were
// stored makes an age look longer or shorter than it is.
type QueueAges struct {
	Inbound     time.Time // oldest message waiting for the broker
	OutboundSMS time.Time // oldest request waiting for the modem
	OutboundIP  time.Time
}

// Ages reads the head of each outbox. An unreadable head record counts as
// having no time; the relay sets it aside when it reaches it.
func (q *Queue) Ages() (QueueAges, error) {
	var a QueueAges
	err := q.db.View(func(tx *bolt.Tx) error {
		if _, v := tx.Bucket(bucketIn).Cursor().First(); v != nil {
			if m, err := decodeInbound(v); err == nil {
				a.Inbound = m.ReceivedAt
			}
		}
		for ch, dst := range []*time.Time{&a.OutboundSMS, &a.OutboundIP} {
			if _, v := tx.Bucket(outBucket(ch)).Cursor().First(); v != nil {
				if req, err := decodeRequest(v); err == nil {
					*dst = req.ReceivedAt
				}
			}
		}
		return nil
	})
	if err != nil {
		return QueueAges{}, fmt.Errorf("read queue ages: %w", err)
	}
	return a, nil
}
