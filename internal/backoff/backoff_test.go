package backoff

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// withRand fixes the random draw for one test: "low" draws 0, "high"
// draws the largest value allowed.
func withRand(t *testing.T, high bool) {
	t.Helper()
	saved := randN
	t.Cleanup(func() { randN = saved })
	randN = func(n int64) int64 {
		if high {
			return n - 1
		}
		return 0
	}
}

func TestJitterEnds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		d         time.Duration
		s         Spread
		low, high time.Duration
	}{
		{"around", 4 * time.Second, Around, 3 * time.Second, 5 * time.Second},
		{"below", 4 * time.Second, Below, 2 * time.Second, 4 * time.Second},
		{"above", 4 * time.Second, Above, 4 * time.Second, 6 * time.Second},
		{"around 1ns", 1, Around, 0, 0},
		{"below 1ns", 1, Below, 0, 0},
		{"above 1ns", 1, Above, 1, 1},
		{"zero", 0, Around, 0, 0},
		{"negative", -time.Second, Below, -time.Second, -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withRand(t, false)
			if got := Jitter(tc.d, tc.s); got != tc.low {
				t.Errorf("lowest Jitter(%v) = %v, want %v", tc.d, got, tc.low)
			}
			withRand(t, true)
			if got := Jitter(tc.d, tc.s); got != tc.high {
				t.Errorf("highest Jitter(%v) = %v, want %v", tc.d, got, tc.high)
			}
		})
	}
}

// TestJitterRandom checks the real source stays within the ends and does
// spread: gateways restarted together must not all draw the same delay.
func TestJitterRandom(t *testing.T) {
	const d = time.Second
	for _, s := range []Spread{Around, Below, Above} {
		seen := map[time.Duration]bool{}
		ends := map[Spread][2]time.Duration{
			Around: {750 * time.Millisecond, 1250 * time.Millisecond},
			Below:  {500 * time.Millisecond, time.Second},
			Above:  {time.Second, 1500 * time.Millisecond},
		}[s]
		lo, hi := ends[0], ends[1]
		for range 200 {
			got := Jitter(d, s)
			if got < lo || got > hi {
				t.Fatalf("spread %d: Jitter(%v) = %v, outside [%v, %v]", s, d, got, lo, hi)
			}
			seen[got] = true
		}
		if len(seen) < 100 {
			t.Errorf("spread %d: 200 draws gave only %d distinct delays", s, len(seen))
		}
	}
}

func TestDouble(t *testing.T) {
	for _, tc := range []struct {
		min, max time.Duration
		n        int
		want     time.Duration
	}{
		{time.Second, time.Minute, 0, time.Second},
		{time.Second, time.Minute, 1, 2 * time.Second},
		{time.Second, time.Minute, 5, 32 * time.Second},
		{time.Second, time.Minute, 6, time.Minute},
		{time.Second, time.Minute, 1000, time.Minute},
		{time.Minute, time.Second, 0, time.Second},
		{time.Second, time.Minute, -1, time.Second},
	} {
		if got := Double(tc.min, tc.max, tc.n); got != tc.want {
			t.Errorf("Double(%v, %v, %d) = %v, want %v", tc.min, tc.max, tc.n, got, tc.want)
		}
	}
}

func TestBackoffSteps(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Spread
		high bool
		want []time.Duration
	}{
		{"below high", Below, true, []time.Duration{100, 200, 400, 800, 1000, 1000}},
		{"below low", Below, false, []time.Duration{50, 100, 200, 400, 500, 500}},
		{"around low", Around, false, []time.Duration{75, 150, 300, 600, 750, 750}},
		{"above high", Above, true, []time.Duration{150, 300, 600, 1200, 1500, 1500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withRand(t, tc.high)
			b := New(100, 1000, tc.s)
			var got []time.Duration
			for range tc.want {
				got = append(got, b.Next())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("steps = %v, want %v", got, tc.want)
			}
			b.Reset()
			if d, want := b.Next(), tc.want[0]; d != want {
				t.Errorf("after Reset, Next = %v, want %v", d, want)
			}
		})
	}
}

func TestBackoffMinAboveMax(t *testing.T) {
	withRand(t, true)
	b := New(10, 6, Below)
	if got := []time.Duration{b.Next(), b.Next()}; !slices.Equal(got, []time.Duration{10, 6}) {
		t.Errorf("steps = %v, want [10ns 6ns]", got)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep that ran out = %v, want nil", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context = %v, want context.Canceled", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on an ended context = %v, want context.Canceled", err)
	}

	// Ending the context while asleep wakes the sleeper.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Sleep(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep cancelled while asleep = %v, want context.Canceled", err)
	}
}

func TestWait(t *testing.T) {
	if !Wait(nil, time.Millisecond) {
		t.Error("Wait with a nil channel did not run out")
	}
	if !Wait(make(chan struct{}), 0) {
		t.Error("Wait(0) on an open channel = false, want true")
	}
	closed := make(chan struct{})
	close(closed)
	if Wait(closed, time.Hour) {
		t.Error("Wait on a closed channel = true, want false")
	}
	if Wait(closed, 0) {
		t.Error("Wait(0) on a closed channel = true, want false")
	}
}
