// Package ring is the gateway's one bounded queue that drops the oldest:
// for what describes the moment (events, URCs, datagrams waiting for a
// store), where a flood must cost bounded memory and the newest matters
// most. Every drop is counted and handed back, so the caller says so in
// its log: a full queue is never silent.
package ring

import "iter"

// shrinkCap is the capacity above which an emptied queue lets its array
// go, so one burst does not pin its memory for the life of the gateway.
const shrinkCap = 64

// Bounds are a Queue's limits. Zero means no limit of that kind.
type Bounds[T any] struct {
	// Len is the most items held.
	Len int
	// Cost is the most total cost held, each item costing CostOf(item)
	// (e.g. its size in bytes). Without CostOf, Cost is ignored.
	Cost   int
	CostOf func(T) int
	// KeepLast keeps the newest item even when it alone exceeds Cost, so
	// a single large item is still delivered; otherwise it is dropped
	// like any other.
	KeepLast bool
	// OnDrop, if set, is called with each item dropped for room, oldest
	// first, from within Push.
	OnDrop func(T)
}

// Queue is a first-in, first-out queue that, when a push takes it over
// its Bounds, drops the oldest items until it is within them again. The
// zero value is an unbounded queue. A Queue is not safe for concurrent
// use: its owners hold their own lock, usually with other state beside it.
type Queue[T any] struct {
	b    Bounds[T]
	buf  []T // circular; len(buf) is the capacity
	head int
	n    int
	cost int
}

// New returns an empty queue with the given bounds.
func New[T any](b Bounds[T]) *Queue[T] {
	return &Queue[T]{b: b}
}

// Len is the number of items held.
func (q *Queue[T]) Len() int { return q.n }

// Cost is the total cost of the items held (0 without Bounds.CostOf).
func (q *Queue[T]) Cost() int { return q.cost }

// Push adds v as the newest item, drops the oldest items while the queue
// is over its bounds, and returns how many it dropped.
func (q *Queue[T]) Push(v T) (dropped int) {
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
	q.cost += q.costOf(v)
	for q.n > 0 && q.over() {
		if q.b.KeepLast && q.n == 1 {
			break
		}
		old, _ := q.Pop()
		dropped++
		if q.b.OnDrop != nil {
			q.b.OnDrop(old)
		}
	}
	return dropped
}

func (q *Queue[T]) over() bool {
	if q.b.Len > 0 && q.n > q.b.Len {
		return true
	}
	return q.b.Cost > 0 && q.b.CostOf != nil && q.cost > q.b.Cost
}

func (q *Queue[T]) costOf(v T) int {
	if q.b.CostOf == nil {
		return 0
	}
	return q.b.CostOf(v)
}

func (q *Queue[T]) grow() {
	c := max(2*len(q.buf), 4)
	if q.b.Len > 0 {
		// One over Len: Push adds before it drops.
		c = min(c, q.b.Len+1)
	}
	buf := make([]T, c)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}

// Peek returns the oldest item without removing it; false when empty.
func (q *Queue[T]) Peek() (T, bool) {
	if q.n == 0 {
		var zero T
		return zero, false
	}
	return q.buf[q.head], true
}

// Pop removes and returns the oldest item; false when empty.
func (q *Queue[T]) Pop() (T, bool) {
	var zero T
	if q.n == 0 {
		return zero, false
	}
	v := q.buf[q.head]
	q.buf[q.head] = zero // let what v refers to go
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.cost -= q.costOf(v)
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > shrinkCap {
			q.buf = nil
		}
	}
	return v, true
}

// Drain removes and returns every item, oldest first (nil when empty).
func (q *Queue[T]) Drain() []T {
	if q.n == 0 {
		return nil
	}
	out := make([]T, 0, q.n)
	for v := range q.All() {
		out = append(out, v)
	}
	q.Clear()
	return out
}

// Clear removes every item.
func (q *Queue[T]) Clear() {
	clear(q.buf)
	if len(q.buf) > shrinkCap {
		q.buf = nil
	}
	q.head, q.n, q.cost = 0, 0, 0
}

// All yields the items held, oldest first, without removing them. The
// queue must not be changed while the loop runs.
func (q *Queue[T]) All() iter.Seq[T] {
	return func(yield func(T) bool) {
		for i := range q.n {
			if !yield(q.buf[(q.head+i)%len(q.buf)]) {
				return
			}
		}
	}
}
