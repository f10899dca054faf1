package modemsim

import (
	"testing"
	"time"
)

// TestLineSchedule checks the UART model's schedule: back-to-back bytes
// go out at the baud rate whenever the writer wakes, an idle line starts
// when bytes are handed over, and a stall is not made up for.
func TestLineSchedule(t *testing.T) {
	if newLine(0) != nil {
		t.Error("newLine(0) paces")
	}
	l := newLine(115200)
	if bt := l.time(1); bt != 86805*time.Nanosecond {
		t.Fatalf("one byte at 115200 baud: %v", bt)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s: due %v after t0, want %v", what, got.Sub(t0), want.Sub(t0))
		}
	}
	// 128 bytes handed over at once, written in two chunks of 64: the
	// second is due 128 byte times after t0, however late the writer woke
	// for the first (the schedule does not ask the clock).
	check("first chunk", l.due(t0, 64), t0.Add(l.time(64)))
	check("second chunk", l.due(t0, 64), t0.Add(l.time(128)))
	// Bytes handed over while the line was busy follow on at once.
	check("queued while busy", l.due(t0.Add(time.Millisecond), 6), t0.Add(l.time(134)))
	// An idle line starts when bytes come.
	idle := t0.Add(time.Second)
	check("after idle", l.due(idle, 17), idle.Add(l.time(17)))
	// A stall (the host did not read) moves the line on; the bytes after
	// it take their full time from then.
	stall := idle.Add(time.Second)
	l.stalled(stall)
	check("after a stall", l.due(idle, 10), stall.Add(l.time(10)))
	// A stall that ended before the line was free changes nothing.
	l.stalled(stall)
	check("stall in the past", l.due(idle, 1), stall.Add(l.time(11)))
}
