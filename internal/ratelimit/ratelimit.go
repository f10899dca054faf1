// Package ratelimit holds back repeats: of events and log lines that come
// in floods (a queue refusing every request, a client sending garbage in a
// loop), a few of each kind go out and the rest are counted. When the
// period ends, one summary stands for everything held back, so a flood is
// never silent and never unbounded.
package ratelimit

import (
	"sort"
	"sync"
	"time"
)

// Defaults used by the gateway for both events and log lines: a burst of
// ordinary size (a dozen rejected requests in a test, a few recovery steps)
// goes out in full; a flood costs at most Burst items and one summary per
// Period for each kind.
const (
	DefaultBurst  = 20
	DefaultPeriod = time.Minute
	// maxKeys bounds the kinds tracked at once; beyond it items pass
	// unlimited rather than be dropped without a count.
	maxKeys = 1024
)

// Timer is what a Limiter needs of a timer (time.Timer, or a test's own).
type Timer interface{ Stop() bool }

// Limiter lets, for each key, the first Burst items of a Period through and
// holds back the rest, keeping the latest one. When the Period of a key
// ends with items held back, Summary is called once with the latest held
// item and how many were held. The zero value is not usable; use New.
type Limiter[T any] struct {
	burst   int
	period  time.Duration
	summary func(key string, latest T, held int)

	// Now and AfterFunc are the clock; tests replace them.
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) Timer

	mu   sync.Mutex
	wins map[string]*window[T]
}

type window[T any] struct {
	start        time.Time
	passed, held int
	latest       T
	timer        Timer
}

// New returns a Limiter; summary is called without the Limiter's lock held,
// from the goroutine that closes the period (a timer's, or Flush's caller).
func New[T any](burst int, period time.Duration, summary func(key string, latest T, held int)) *Limiter[T] {
	return &Limiter[T]{
		burst:   max(burst, 1),
		period:  period,
		summary: summary,
		Now:     time.Now,
		AfterFunc: func(d time.Duration, f func()) Timer {
			return time.AfterFunc(d, f)
		},
		wins: map[string]*window[T]{},
	}
}

// Allow reports whether v, of kind key, may go out now. When it may not, it
// is counted and kept as the latest of its kind for the summary.
func (l *Limiter[T]) Allow(key string, v T) bool {
	l.mu.Lock()
	now := l.Now()
	w := l.wins[key]
	var late *window[T]
	if w != nil && now.Sub(w.start) >= l.period {
		// The timer has not run yet (a busy machine): close the period here
		// so its summary comes before the new period's items.
		late = w
		l.removeLocked(key, w)
		w = nil
	}
	if w == nil && len(l.wins) >= maxKeys {
		l.mu.Unlock()
		l.emit(key, late)
		return true
	}
	if w == nil {
		w = &window[T]{start: now}
		l.wins[key] = w
		w.timer = l.AfterFunc(l.period, func() { l.expire(key, w) })
	}
	ok := w.passed < l.burst
	if ok {
		w.passed++
	} else {
		w.held++
		w.latest = v
	}
	l.mu.Unlock()
	l.emit(key, late)
	return ok
}

// Flush ends every period at once, calling Summary for each key with items
// held back: for a clean stop, so no count is lost.
func (l *Limiter[T]) Flush() {
	l.mu.Lock()
	type closed struct {
		key string
		w   *window[T]
	}
	var all []closed
	for k, w := range l.wins {
		all = append(all, closed{k, w})
		l.removeLocked(k, w)
	}
	l.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })
	for _, c := range all {
		l.emit(c.key, c.w)
	}
}

func (l *Limiter[T]) expire(key string, w *window[T]) {
	l.mu.Lock()
	if l.wins[key] != w {
		l.mu.Unlock()
		return // already closed by Allow or Flush
	}
	l.removeLocked(key, w)
	l.mu.Unlock()
	l.emit(key, w)
}

func (l *Limiter[T]) removeLocked(key string, w *window[T]) {
	delete(l.wins, key)
	w.timer.Stop()
}

func (l *Limiter[T]) emit(key string, w *window[T]) {
	if w != nil && w.held > 0 && l.summary != nil {
		l.summary(key, w.latest, w.held)
	}
}
