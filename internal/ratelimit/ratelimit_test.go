package ratelimit

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock drives a Limiter: time moves only by advance, and timers fire
// only when advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	rest := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			due = append(due, t)
		} else if !t.stopped {
			rest = append(rest, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

func clocked[T any](l *Limiter[T]) *fakeClock {
	c := &fakeClock{now: time.Unix(1000, 0)}
	l.Now, l.AfterFunc = c.Now, c.AfterFunc
	return c
}

type summary struct {
	Key, Latest string
	Held        int
}

func TestLimiter(t *testing.T) {
	var got []summary
	l := New(3, time.Minute, func(key string, latest string, held int) { got = append(got, summary{key, latest, held}) })
	c := clocked(l)
	var passed []string
	offer := func(key string, n int) {
		for i := range n {
			v := fmt.Sprintf("%s%d", key, i)
			if l.Allow(key, v) {
				passed = append(passed, v)
			}
		}
	}
	offer("a", 10)
	offer("b", 2)
	c.advance(30 * time.Second)
	offer("a", 5) // same period: all held
	if diff := cmp.Diff([]string{"a0", "a1", "a2", "b0", "b1"}, passed); diff != "" {
		t.Errorf("passed (-want +got):\n%s", diff)
	}
	if len(got) != 0 {
		t.Errorf("summaries before the period ended: %+v", got)
	}
	c.advance(30 * time.Second)
	// a held 7 + 5; b held nothing and needs no summary.
	if diff := cmp.Diff([]summary{{"a", "a4", 12}}, got); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
	// A new period lets a burst through again.
	passed = nil
	offer("a", 4)
	if diff := cmp.Diff([]string{"a0", "a1", "a2"}, passed); diff != "" {
		t.Errorf("second period passed (-want +got):\n%s", diff)
	}
	l.Flush()
	if diff := cmp.Diff([]summary{{"a", "a4", 12}, {"a", "a3", 1}}, got); diff != "" {
		t.Errorf("after Flush (-want +got):\n%s", diff)
	}
	c.advance(time.Hour) // the flushed period's timer does nothing
	if len(got) != 2 {
		t.Errorf("summaries after the flushed timer: %+v", got)
	}
}

// A period whose timer has not run when the next item comes is closed by
// that item, summary first.
func TestLimiterLateTimer(t *testing.T) {
	var got []summary
	l := New(1, time.Minute, func(key string, latest string, held int) { got = append(got, summary{key, latest, held}) })
	c := clocked(l)
	l.Allow("k", "x")
	l.Allow("k", "y")
	c.mu.Lock()
	c.now = c.now.Add(2 * time.Minute) // time passes, the timer is late
	c.mu.Unlock()
	if !l.Allow("k", "z") {
		t.Error("first item of a new period held back")
	}
	if diff := cmp.Diff([]summary{{"k", "y", 1}}, got); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
}

// Repeated lines of one kind (level, message, component) are limited
// whatever their other attributes; other kinds and debug lines are not;
// the summary line counts what was held and shows the latest.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}), 2, time.Minute)
	c := clocked(h.lim)
	log := slog.New(h)
	relay := log.With("component", "relay")
	for i := range 1000 {
		relay.With("id", fmt.Sprint("r", i)).Warn("request refused: queue full")
		relay.Debug("request seen", "i", i)
	}
	log.Warn("request refused: queue full") // another component: another kind
	relay.Info("request refused: queue full")
	lines := func() []string { return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") }
	var warns, debugs int
	for _, l := range lines() {
		switch {
		case strings.Contains(l, "level=WARN"):
			warns++
		case strings.Contains(l, "level=DEBUG"):
			debugs++
		}
	}
	if warns != 3 || debugs != 1000 {
		t.Errorf("%d warnings (want 2 of the relay's and 1 other), %d debug lines (want 1000)", warns, debugs)
	}
	c.advance(time.Minute)
	all := lines()
	want := `level=WARN msg="request refused: queue full" component=relay id=r999 suppressed=998 period=1m0s`
	if last := all[len(all)-1]; last != want {
		t.Errorf("summary line %q, want %q", last, want)
	}
}
