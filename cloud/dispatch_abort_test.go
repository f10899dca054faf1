package cloud

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/simgate/simgate/transport"
)

// A store that fails once the bridge is aborted ends the dispatcher: it
// stops starting workers instead of retrying without pause forever.
func TestDispatchLoopEndsWhenAbortedWithStoreFailing(t *testing.T) {
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil { // every read fails from now on
		t.Fatal(err)
	}
	b := &Bridge{cfg: Config{Workers: 1}, q: q, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	abort, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.dispatchLoop(make(chan struct{}), abort)
	}()
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("dispatchLoop kept retrying a failing store after abort")
	}
}
