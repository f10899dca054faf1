// Package backoff is the gateway's one way to wait between attempts: a
// capped, doubling delay spread by jitter so that gateways restarted
// together (a power cut, a broker that went away for all of them) do not
// retry in step, and a sleep that ends early when its context does.
//
// Two spreads are in use and both are kept, because callers tune their
// delays around them: Around (±25 %) for the modem's ladder and session
// delays, Below (half to all of the step) for connections to the broker
// and the cloud API, and Above (all to one and a half steps) for the
// ModemManager bus.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Spread is how a delay is spread by jitter.
type Spread int

const (
	// Around spreads d to between 3/4 and 5/4 of itself (±25 %).
	Around Spread = iota
	// Below spreads d to between half of it and all of it, so the cap of
	// a Backoff is never exceeded.
	Below
	// Above spreads d to between all of it and one and a half times it,
	// so the step is always waited in full.
	Above
)

// randN returns a uniform number in [0, n); tests replace it to reach the
// ends of each spread.
var randN = func(n int64) int64 { return rand.Int64N(n) }

// Jitter returns d spread by s. A d of zero or less is returned as it is.
func Jitter(d time.Duration, s Spread) time.Duration {
	if d <= 0 {
		return d
	}
	half := time.Duration(randN(int64(d)/2 + 1))
	switch s {
	case Below:
		return d/2 + half
	case Above:
		return d + half
	default:
		return d*3/4 + half
	}
}

// Double returns min doubled n times, capped at max. It is the step of a
// ladder whose n-th rung waits twice as long as the one before.
func Double(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return clamp(d, max)
}

func clamp(d, max time.Duration) time.Duration {
	if d > max {
		return max
	}
	return d
}

// Backoff hands out the delays of successive failed attempts: the first
// is Min, each later one twice the one before up to Max, each spread by
// Spread. A Backoff is not safe for concurrent use; each retry loop owns
// its own.
type Backoff struct {
	// Min is the first step; Max caps the steps (a Min above Max is used
	// as it is for the first step only).
	Min, Max time.Duration
	// Spread is the jitter applied to every step.
	Spread Spread

	cur time.Duration
}

// New returns a Backoff from min to max spread by s.
func New(min, max time.Duration, s Spread) *Backoff {
	return &Backoff{Min: min, Max: max, Spread: s}
}

// Next returns the delay before the next attempt and doubles the step.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = clamp(2*b.cur, b.Max)
	}
	return Jitter(b.cur, b.Spread)
}

// Reset starts again from Min, as after an attempt that went well.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits for d or until ctx ends, whichever comes first, and returns
// ctx.Err() when ctx ended first (nil when d passed). A d of zero or less
// does not wait.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if !Wait(ctx.Done(), d) {
		return ctx.Err()
	}
	return nil
}

// Wait waits for d or until done is closed, and reports whether d passed.
// It serves loops stopped by a channel rather than a context. A nil done
// never closes.
func Wait(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
