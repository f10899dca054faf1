package at

import (
	"bytes"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/simgate/simgate/modem/at/attest"
)

// goroutineID is the calling goroutine's number as stack traces print it.
func goroutineID() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b)) // "goroutine 7 [running]: ..."
	return f[1]
}

// waitingIn reports whether goroutine id is blocked (not running or
// runnable) inside function fn.
func waitingIn(id, fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		head, body, _ := strings.Cut(string(g), "\n")
		if !strings.HasPrefix(head, "goroutine "+id+" [") {
			continue
		}
		state := strings.TrimSuffix(strings.TrimPrefix(head, "goroutine "+id+" ["), "]:")
		state, _, _ = strings.Cut(state, ",") // "[select, 2 minutes]"
		return state != "running" && state != "runnable" && strings.Contains(body, fn+"(")
	}
	return false
}

// holdUntilCloseWaits is called by an engine goroutine once the engine has
// stopped. It returns when the goroutine id (the one calling Close) is
// seen blocked inside Close, that is Close waits for the caller, and
// reports false when Close returned first instead.
func holdUntilCloseWaits(id string, closeReturned *atomic.Bool) bool {
	for {
		if waitingIn(id, "simgate/modem/at.(*Engine).Close") {
			return true
		}
		if closeReturned.Load() {
			return false
		}
		runtime.Gosched()
	}
}

// Close waits for a URC handler that is still running, so whatever its
// caller tears down after Close is no longer in use by OnURC.
func TestCloseWaitsForDispatch(t *testing.T) {
	port := attest.New(t, attest.Step{Read: "\r\n+CMTI: \"SM\",1\r\n"})
	t.Cleanup(func() { port.Close() })
	id := goroutineID()
	var closeReturned, waited atomic.Bool
	entered, handled := make(chan struct{}), make(chan struct{})
	engc := make(chan *Engine, 1)
	eng := New(port, Config{OnURC: func(URC) {
		defer close(handled)
		close(entered)
		e := <-engc
		<-e.Done() // Close has stopped the owner goroutine
		waited.Store(holdUntilCloseWaits(id, &closeReturned))
	}})
	engc <- eng
	<-entered
	eng.Close()
	closeReturned.Store(true)
	<-handled
	if !waited.Load() {
		t.Error("Close returned while OnURC was still running")
	}
}

// closingPort is a port whose Read, once the port is closed, holds on
// until its engine's Close is seen waiting for it.
type closingPort struct {
	id            string
	closeReturned *atomic.Bool
	once          sync.Once
	closed        chan struct{}
	readReturned  chan struct{}
	waited        atomic.Bool
}

func (p *closingPort) Read([]byte) (int, error) {
	defer close(p.readReturned)
	<-p.closed
	p.waited.Store(holdUntilCloseWaits(p.id, p.closeReturned))
	return 0, io.EOF
}

func (p *closingPort) Write(b []byte) (int, error) { return len(b), nil }

func (p *closingPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// After Closing and the port's own Close, Engine.Close also waits for the
// goroutine reading the port: none of the engine's goroutines outlives it.
func TestCloseWaitsForReader(t *testing.T) {
	var closeReturned atomic.Bool
	p := &closingPort{id: goroutineID(), closeReturned: &closeReturned,
		closed: make(chan struct{}), readReturned: make(chan struct{})}
	eng := New(p, Config{PullURCs: true})
	eng.Closing()
	p.Close()
	eng.Close()
	closeReturned.Store(true)
	<-p.readReturned
	if !p.waited.Load() {
		t.Error("Close returned while the reading goroutine was still in Read")
	}
}

// Without Closing, Close does not wait for a read the port's owner has not
// ended: the port stays open and Close returns.
func TestCloseWithoutClosingDoesNotWaitForRead(t *testing.T) {
	port := attest.New(t)
	eng := New(port, Config{})
	eng.Close() // a hang here fails the test by its timeout
	port.Close()
}
