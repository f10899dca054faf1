package at

import (
	"context"
	"errors"
	"net"
	"testing"
)

// A command that fails because the port failed finds Done closed: the
// session tells a vanished port from a modem that refused a command by
// looking at Done right after the error, and must not take one for the
// other.
func TestDoneClosedWhenCommandFailsClosed(t *testing.T) {
	for i := range 300 {
		host, dev := net.Pipe()
		eng := New(host, Config{})
		errc := make(chan error, 1)
		go func() {
			_, err := eng.Do(context.Background(), Cmd{Line: "AT"})
			errc <- err
		}()
		buf := make([]byte, 64)
		if _, err := dev.Read(buf); err != nil {
			t.Fatalf("read the command: %v", err)
		}
		dev.Close() // the port vanishes while the command waits
		err := <-errc
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("iteration %d: Do() = %v, want ErrClosed", i, err)
		}
		select {
		case <-eng.Done():
		default:
			t.Fatalf("iteration %d: Do() returned %v while Done was still open", i, err)
		}
		eng.Close()
		host.Close()
	}
}
