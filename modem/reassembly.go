package modem

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/gw"
)

// reassembler holds the parts of concatenated SMS until every part is
// stored, or the wait for the missing ones times out, and then stores the
// message. The parts themselves are in the Sink; it keeps only when each
// set's wait began. It talks to the Sink alone, never to the modem.
type reassembler struct {
	timeout time.Duration // Config.ReassemblyTimeout
	sink    gw.Sink
	log     *slog.Logger
	eventer
	pending map[string]*pendingSet
}

// pendingSet is a concatenated SMS waiting for its other parts.
type pendingSet struct {
	first    time.Time // monotonic; when the first part was seen (or restored)
	complete bool      // every part is held but Assemble failed; retry
}

// hold starts the wait for the set key unless it is waiting already.
func (r *reassembler) hold(key string) {
	if _, ok := r.pending[key]; !ok {
		r.pending[key] = &pendingSet{first: time.Now()}
	}
}

// partID names one stored part exactly: its set, position and bytes.
func partID(key string, seq int, tpdu []byte) string {
	return fmt.Sprintf("%s\x00%d\x00%x", key, seq, tpdu)
}

// assembleComplete assembles every set that has all its parts held, and
// returns the parts of the sets it stored.
func (r *reassembler) assembleComplete(ctx context.Context) map[string]bool {
	delivered := map[string]bool{}
	r.forDueSets(ctx, func(p *pendingSet) bool { return p.complete }, func(key string, held []gw.Segment) {
		if !complete(held) {
			r.pending[key].complete = false
			return
		}
		r.assemble(ctx, key, held, false)
		if _, waiting := r.pending[key]; waiting {
			return // not stored; retried by the next poll
		}
		for _, sg := range held {
			delivered[partID(sg.Key, sg.Seq, sg.TPDU)] = true
		}
	})
	return delivered
}

// forDueSets calls do, in key order, with the held parts of every pending
// set that due selects; a set whose parts are all gone was assembled
// elsewhere and stops waiting.
func (r *reassembler) forDueSets(ctx context.Context, due func(*pendingSet) bool, do func(key string, held []gw.Segment)) {
	var keys []string
	for key, p := range r.pending {
		if due(p) {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return
	}
	segs, err := r.sink.Segments(ctx)
	if err != nil {
		r.log.Warn("could not load held SMS parts", "err", err)
		return
	}
	sort.Strings(keys)
	for _, key := range keys {
		var held []gw.Segment
		for _, sg := range segs {
			if sg.Key == key {
				held = append(held, sg)
			}
		}
		if len(held) == 0 {
			delete(r.pending, key)
			continue
		}
		do(key, held)
	}
}

// complete reports whether held has every part 1..Total.
func complete(held []gw.Segment) bool {
	if len(held) == 0 {
		return false
	}
	total := held[0].Total
	seen := map[int]bool{}
	for _, h := range held {
		if h.Total == total && h.Seq >= 1 && h.Seq <= total {
			seen[h.Seq] = true
		}
	}
	return len(seen) == total
}

// assemble joins held (ordered by Seq) into one message and stores it,
// dropping the parts. partial marks a message whose wait timed out.
func (r *reassembler) assemble(ctx context.Context, key string, held []gw.Segment, partial bool) {
	var parts []*deliver
	seen := map[int]bool{}
	received := time.Time{}
	for _, h := range held {
		if seen[h.Seq] {
			continue
		}
		d, err := decodeDeliver(h.TPDU)
		if err != nil {
			r.log.Warn("stored SMS part does not decode; left out", "key", key, "part", h.Seq, "err", err)
			continue
		}
		seen[h.Seq] = true
		parts = append(parts, d)
		if received.IsZero() || h.ReceivedAt.Before(received) {
			received = h.ReceivedAt
		}
	}
	m := gw.Inbound{Channel: gw.ChannelSMS, Parts: len(parts), Partial: partial || len(parts) < len(held), ReceivedAt: received.UTC()}
	if len(parts) > 0 {
		payload, binary, err := joinText(parts)
		if err != nil {
			r.log.Warn("SMS parts do not decode as text; delivered as bytes", "key", key, "err", err)
			payload, binary = nil, true
			for _, p := range parts {
				payload = append(payload, p.UD...)
			}
		}
		m.From, m.Payload, m.Binary = parts[0].From, payload, binary
		// The first part's timestamp dates the message, so the id is the
		// same however the parts arrived; without part 1, the earliest.
		m.SentAt = parts[0].SentAt
		if parts[0].Seq != 1 {
			for _, p := range parts[1:] {
				if p.SentAt.Before(m.SentAt) {
					m.SentAt = p.SentAt
				}
			}
		}
		m.SentAt = m.SentAt.UTC()
	} else {
		m.From = senderOfKey(key)
	}
	m.ID = gw.MessageID(m)
	if err := r.sink.Assemble(ctx, m, key); err != nil {
		p := r.pending[key]
		if p == nil {
			p = &pendingSet{first: time.Now()}
			r.pending[key] = p
		}
		p.complete = true // retried by the next poll
		r.log.Warn("could not store a reassembled SMS; retrying", "key", key, "err", err)
		return
	}
	delete(r.pending, key)
	if m.Partial {
		have := make([]int, 0, len(seen))
		for seq := range seen {
			have = append(have, seq)
		}
		slices.Sort(have)
		msg := fmt.Sprintf("concatenated SMS from %s delivered incomplete: parts %v of %d arrived within %s",
			m.From, have, held[0].Total, r.timeout)
		r.log.Warn(msg)
		r.event(gw.EventPartial, msg, map[string]any{"id": m.ID, "from": m.From, "parts": have, "total": held[0].Total})
	}
	r.log.Info("SMS reassembled", "id", m.ID, "from", m.From, "parts", m.Parts, "partial", m.Partial)
}

// senderOfKey returns the sender in a key made by deliver.concatKey.
func senderOfKey(key string) string {
	f := strings.Split(strings.TrimPrefix(key, "sms/"), "/")
	if len(f) <= 3 {
		return ""
	}
	return strings.Join(f[:len(f)-3], "/")
}

// expire assembles sets that are complete (their Assemble failed before)
// or whose wait timed out.
func (r *reassembler) expire(ctx context.Context) {
	r.forDueSets(ctx, func(p *pendingSet) bool {
		return p.complete || time.Since(p.first) >= r.timeout
	}, func(key string, held []gw.Segment) {
		r.assemble(ctx, key, held, !complete(held))
	})
}

// restore loads the parts of concatenated SMS held across a restart, so
// their wait resumes; the first drain assembles complete and overdue sets.
// It reports false when the Sink could not say what it holds.
func (r *reassembler) restore(ctx context.Context) bool {
	segs, err := r.sink.Segments(ctx)
	if err != nil {
		r.log.Warn("could not load held SMS parts; retrying at the next reconnect", "err", err)
		return false
	}
	byKey := map[string][]gw.Segment{}
	var keys []string
	for _, sg := range segs {
		if _, ok := byKey[sg.Key]; !ok {
			keys = append(keys, sg.Key)
		}
		byKey[sg.Key] = append(byKey[sg.Key], sg)
	}
	for _, key := range keys {
		held := byKey[key]
		first := held[0].ReceivedAt
		for _, h := range held {
			if h.ReceivedAt.Before(first) {
				first = h.ReceivedAt
			}
		}
		// Resume the wait where it was, by the wall clock when it looks
		// sane; a Pi that booted at 1970, or a clock that went back, would
		// otherwise time every set out at once or never.
		age := time.Since(first)
		if first.Year() < 2020 || age < 0 {
			age = 0
		}
		age = min(age, r.timeout)
		r.pending[key] = &pendingSet{first: time.Now().Add(-age), complete: complete(held)}
	}
	if len(keys) > 0 {
		r.log.Info("resumed waiting for SMS parts", "messages", len(keys))
	}
	return true
}
