package lifecycle_test

import (
	"context"
	"fmt"

	"github.com/simgate/simgate/internal/lifecycle"
)

// A daemon's wiring: the store first, the work that writes to it after,
// so the work stops before the store closes.
func Example() {
	var l lifecycle.List
	step := func(name string) lifecycle.Part {
		return lifecycle.Part{
			Name:  name,
			Start: func(context.Context) error { fmt.Println("start", name); return nil },
			Stop:  func(context.Context) error { fmt.Println("stop", name); return nil },
		}
	}
	// The order is said once: each part needs those above it.
	l.Add(step("queue"), step("modem session"), step("relay"))
	if err := l.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	if err := l.Stop(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// start queue
	// start modem session
	// start relay
	// stop relay
	// stop modem session
	// stop queue
}

// A serve loop as a part: Go starts it, Stop cancels it and waits.
func ExampleGo() {
	var l lifecycle.List
	var serve *lifecycle.Task
	l.Add(lifecycle.Part{
		Name: "server",
		Start: func(ctx context.Context) error {
			serve = lifecycle.Go(ctx, func(ctx context.Context) error {
				<-ctx.Done()
				fmt.Println("server: stopping")
				return nil
			})
			return nil
		},
		Stop: func(ctx context.Context) error { return serve.Stop(ctx) },
	})
	if err := l.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(l.Stop())
	// Output:
	// server: stopping
	// <nil>
}
