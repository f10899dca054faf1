// Package modemtest holds what the tests of modem, transport and the
// binaries share to stand in for parts of a gateway: a Sink that keeps
// everything in memory.
package modemtest

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/simgate/simgate/internal/gw"
)

// MemorySink is a gw.Sink that keeps everything in memory: for tests,
// never for a gateway that must survive power loss.
type MemorySink struct {
	mu      sync.Mutex
	msgs    []gw.Inbound
	ids     map[string]bool
	segs    map[string][]gw.Segment
	journal gw.SIMJournal
	fail    error
	changed chan struct{}
}

// NewMemorySink returns an empty MemorySink.
func NewMemorySink() *MemorySink {
	return &MemorySink{ids: map[string]bool{}, segs: map[string][]gw.Segment{}, changed: make(chan struct{})}
}

// SetFail makes every method return err (nil: succeed again), to test how
// callers handle a full or broken store.
func (m *MemorySink) SetFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Put stores msg once per ID.
func (m *MemorySink) Put(ctx context.Context, msg gw.Inbound) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.put(msg)
	return nil
}

func (m *MemorySink) put(msg gw.Inbound) {
	if !m.ids[msg.ID] {
		m.ids[msg.ID] = true
		m.msgs = append(m.msgs, msg)
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// PutSegment stores s once per Key and Seq and returns the segments held
// under its key, ordered by Seq.
func (m *MemorySink) PutSegment(ctx context.Context, s gw.Segment) ([]gw.Segment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	return m.putSegment(s), nil
}

func (m *MemorySink) putSegment(s gw.Segment) []gw.Segment {
	held := m.segs[s.Key]
	if !slices.ContainsFunc(held, func(h gw.Segment) bool { return h.Seq == s.Seq }) {
		held = append(held, s)
		sort.Slice(held, func(i, j int) bool { return held[i].Seq < held[j].Seq })
		m.segs[s.Key] = held
	}
	return slices.Clone(held)
}

// Assemble stores msg and drops the segments under key.
func (m *MemorySink) Assemble(ctx context.Context, msg gw.Inbound, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	delete(m.segs, key)
	m.put(msg)
	return nil
}

// Segments returns every segment held, ordered by Key then Seq.
func (m *MemorySink) Segments(ctx context.Context) ([]gw.Segment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	var out []gw.Segment
	for _, held := range m.segs {
		out = append(out, held...)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].Key, out[j].Key); c != 0 {
			return c < 0
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// Messages returns the stored messages in the order they were stored.
func (m *MemorySink) Messages() []gw.Inbound {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// Wait returns the stored messages once there are at least n, or ctx's
// error with those stored so far.
func (m *MemorySink) Wait(ctx context.Context, n int) ([]gw.Inbound, error) {
	for {
		m.mu.Lock()
		msgs, changed := slices.Clone(m.msgs), m.changed
		m.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ctx.Done():
			return msgs, ctx.Err()
		case <-changed:
		}
	}
}

// PutSIM stores items like Put and PutSegment and keeps j, all at once or
// (SetFail) none.
func (m *MemorySink) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, m.fail
	}
	for i := range items {
		it := &items[i]
		switch {
		case it.Message != nil:
			m.put(*it.Message)
		case it.Part != nil:
			it.Held = m.putSegment(*it.Part)
		}
	}
	m.journal = j.Clone()
	return len(items), nil
}

// SaveJournal keeps a copy of j.
func (m *MemorySink) SaveJournal(ctx context.Context, j gw.SIMJournal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.journal = j.Clone()
	return nil
}

// Journal returns a copy of the journal last saved.
func (m *MemorySink) Journal(ctx context.Context) (gw.SIMJournal, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return gw.SIMJournal{}, m.fail
	}
	return m.journal.Clone(), nil
}

// Known reports whether id was stored.
func (m *MemorySink) Known(ctx context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	return m.ids[id], nil
}
