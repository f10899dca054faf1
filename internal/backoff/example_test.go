package backoff_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/simgate/simgate/internal/backoff"
)

// A retry loop: one attempt, then a jittered, doubling wait, until the
// attempt succeeds or the context ends.
func Example() {
	ctx := context.Background()
	bo := backoff.New(time.Millisecond, 8*time.Millisecond, backoff.Below)
	attempts := 0
	connect := func() error {
		attempts++
		if attempts < 3 {
			return errors.New("connection refused")
		}
		return nil
	}
	for {
		err := connect()
		if err == nil {
			break
		}
		if backoff.Sleep(ctx, bo.Next()) != nil {
			return // stopping
		}
	}
	bo.Reset() // it went well: the next outage starts from Min again
	fmt.Println("connected after", attempts, "attempts")
	// Output: connected after 3 attempts
}

// The steps of a recovery ladder: each rung waits twice as long as the one
// before, up to a cap, spread by ±25 %.
func ExampleDouble() {
	for rung := range 5 {
		d := backoff.Double(time.Second, 10*time.Second, rung)
		w := backoff.Jitter(d, backoff.Around)
		fmt.Println(d, w >= d*3/4 && w <= d*5/4)
	}
	// Output:
	// 1s true
	// 2s true
	// 4s true
	// 8s true
	// 10s true
}

// Sleep ends early when the context does.
func ExampleSleep() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := backoff.Sleep(ctx, time.Hour)
	fmt.Println(err)
	// Output: context canceled
}
