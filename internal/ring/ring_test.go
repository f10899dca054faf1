package ring

import (
	"slices"
	"strings"
	"testing"
)

func TestPushDrops(t *testing.T) {
	size := func(s string) int { return len(s) }
	for _, tc := range []struct {
		name        string
		b           Bounds[string]
		push        []string
		wantDropped []int // per push
		want        []string
		wantCost    int
	}{
		{
			name:        "unbounded",
			push:        []string{"a", "b", "c", "d", "e"},
			wantDropped: []int{0, 0, 0, 0, 0},
			want:        []string{"a", "b", "c", "d", "e"},
		},
		{
			name:        "by count",
			b:           Bounds[string]{Len: 2},
			push:        []string{"a", "b", "c", "d"},
			wantDropped: []int{0, 0, 1, 1},
			want:        []string{"c", "d"},
		},
		{
			name:        "by cost",
			b:           Bounds[string]{Cost: 5, CostOf: size},
			push:        []string{"aa", "bb", "c", "dddd"},
			wantDropped: []int{0, 0, 0, 2},
			want:        []string{"c", "dddd"},
			wantCost:    5,
		},
		{
			name:        "count and cost, whichever is hit",
			b:           Bounds[string]{Len: 3, Cost: 6, CostOf: size},
			push:        []string{"a", "b", "c", "d", "eeeee"},
			wantDropped: []int{0, 0, 0, 1, 2},
			want:        []string{"d", "eeeee"},
			wantCost:    6,
		},
		{
			name:        "an item over the cost alone is dropped",
			b:           Bounds[string]{Cost: 3, CostOf: size},
			push:        []string{"a", "toolong"},
			wantDropped: []int{0, 2},
			want:        nil,
		},
		{
			name:        "KeepLast keeps an item over the cost alone",
			b:           Bounds[string]{Cost: 3, CostOf: size, KeepLast: true},
			push:        []string{"a", "toolong", "b"},
			wantDropped: []int{0, 1, 1},
			want:        []string{"b"},
			wantCost:    1,
		},
		{
			name:        "cost without CostOf is no bound",
			b:           Bounds[string]{Cost: 1},
			push:        []string{"aaa", "bbb"},
			wantDropped: []int{0, 0},
			want:        []string{"aaa", "bbb"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var onDrop []string
			b := tc.b
			b.OnDrop = func(s string) { onDrop = append(onDrop, s) }
			q := New(b)
			var dropped []int
			for _, s := range tc.push {
				dropped = append(dropped, q.Push(s))
			}
			if !slices.Equal(dropped, tc.wantDropped) {
				t.Errorf("dropped per push = %v, want %v", dropped, tc.wantDropped)
			}
			if got := slices.Collect(q.All()); !slices.Equal(got, tc.want) {
				t.Errorf("held = %q, want %q", got, tc.want)
			}
			if q.Len() != len(tc.want) || q.Cost() != tc.wantCost {
				t.Errorf("Len, Cost = %d, %d; want %d, %d", q.Len(), q.Cost(), len(tc.want), tc.wantCost)
			}
			// OnDrop saw exactly the pushed items no longer held, oldest first.
			want := tc.push[:len(tc.push)-len(tc.want)]
			if !slices.Equal(onDrop, want) {
				t.Errorf("OnDrop saw %q, want %q", onDrop, want)
			}
		})
	}
}

// TestOrderAcrossWrap pushes and pops around the end of the circular
// buffer many times and checks nothing is lost or reordered.
func TestOrderAcrossWrap(t *testing.T) {
	q := New(Bounds[int]{Len: 5})
	next, want := 0, 0
	for round := range 50 {
		for range round%4 + 1 {
			if d := q.Push(next); d != 0 {
				want += d
			}
			next++
		}
		for range round % 3 {
			v, ok := q.Pop()
			if !ok {
				break
			}
			if v != want {
				t.Fatalf("round %d: popped %d, want %d", round, v, want)
			}
			want++
		}
	}
	for v := range q.All() {
		if v != want {
			t.Fatalf("left %d, want %d", v, want)
		}
		want++
	}
	if want != next {
		t.Errorf("items accounted for: %d, pushed %d", want, next)
	}
	if len(q.buf) > 6 {
		t.Errorf("capacity %d grew past Len+1 = 6", len(q.buf))
	}
}

func TestPeekPopDrainClear(t *testing.T) {
	q := New(Bounds[string]{CostOf: func(s string) int { return len(s) }})
	if _, ok := q.Peek(); ok {
		t.Error("Peek on an empty queue reported an item")
	}
	if _, ok := q.Pop(); ok {
		t.Error("Pop on an empty queue reported an item")
	}
	if got := q.Drain(); got != nil {
		t.Errorf("Drain on an empty queue = %q, want nil", got)
	}
	q.Push("one")
	q.Push("three")
	if v, ok := q.Peek(); !ok || v != "one" || q.Len() != 2 {
		t.Errorf("Peek = %q, %v (Len %d); want \"one\", true (Len 2)", v, ok, q.Len())
	}
	if v, ok := q.Pop(); !ok || v != "one" || q.Cost() != 5 {
		t.Errorf("Pop = %q, %v (Cost %d); want \"one\", true (Cost 5)", v, ok, q.Cost())
	}
	q.Push("four")
	if got := q.Drain(); !slices.Equal(got, []string{"three", "four"}) {
		t.Errorf("Drain = %q, want [three four]", got)
	}
	if q.Len() != 0 || q.Cost() != 0 {
		t.Errorf("after Drain: Len %d, Cost %d; want 0, 0", q.Len(), q.Cost())
	}
	q.Push("x")
	q.Clear()
	if q.Len() != 0 || q.Cost() != 0 {
		t.Errorf("after Clear: Len %d, Cost %d; want 0, 0", q.Len(), q.Cost())
	}
}

// TestReleasesMemory checks that popped slots are zeroed and a large
// emptied array is let go, as the queue holds payloads of megabytes.
func TestReleasesMemory(t *testing.T) {
	q := New(Bounds[*string]{})
	for range 2 * shrinkCap {
		s := strings.Repeat("x", 10)
		q.Push(&s)
	}
	q.Pop() // the oldest sat at index 0: nothing was popped before
	if q.buf[0] != nil {
		t.Errorf("popped slot still refers to its item")
	}
	for q.Len() > 0 {
		q.Pop()
	}
	if q.buf != nil {
		t.Errorf("emptied queue keeps an array of %d", len(q.buf))
	}
}

func TestAllStopsEarly(t *testing.T) {
	q := New(Bounds[int]{})
	for i := range 5 {
		q.Push(i)
	}
	var got []int
	for v := range q.All() {
		if v == 2 {
			break
		}
		got = append(got, v)
	}
	if !slices.Equal(got, []int{0, 1}) {
		t.Errorf("got %v, want [0 1]", got)
	}
}

func TestZeroValue(t *testing.T) {
	var q Queue[int]
	for i := range 100 {
		if d := q.Push(i); d != 0 {
			t.Fatalf("zero-value queue dropped %d", d)
		}
	}
	if q.Len() != 100 {
		t.Errorf("Len = %d, want 100", q.Len())
	}
}
