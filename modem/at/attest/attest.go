// Package attest is a scripted fake modem port for tests of code that
// speaks AT: each step names the exact bytes the code must write next and
// the bytes the "modem" answers. A write that differs from the script fails
// the test at once, and steps left over when the test ends fail it too.
package attest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// Step is one exchange of the script.
type Step struct {
	// Write is what the code must write next. Empty means Read follows the
	// previous step at once, with no write in between (a URC, boot noise).
	Write string
	// Read is what the modem sends once Write was seen.
	Read string
}

// Port is an io.ReadWriteCloser that plays a script.
type Port struct {
	t     testing.TB
	mu    sync.Mutex
	cond  *sync.Cond
	steps []Step
	next  int
	got   []byte // written since the last matched step
	rbuf  []byte
	chunk int
	// closed ends reads (io.EOF) and writes; ended means the test is over
	// and must not be reported to any more.
	closed, ended bool
	failed        error
	all           bytes.Buffer
	left          chan struct{} // closed when every step has been played
}

// New returns a port that plays steps. The test fails if steps are left
// when it ends.
func New(t testing.TB, steps ...Step) *Port {
	p := &Port{t: t, left: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.mu.Lock()
	p.steps = append(p.steps, steps...)
	p.advance()
	p.mu.Unlock()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.next < len(p.steps) && p.failed == nil {
			t.Errorf("attest: %d scripted steps left; next wants write %q", len(p.steps)-p.next, p.steps[p.next].Write)
		}
		p.ended, p.closed = true, true
		p.cond.Broadcast()
	})
	return p
}

// Chunk makes every read return at most n bytes, so lines arrive split.
func (p *Port) Chunk(n int) *Port {
	p.mu.Lock()
	p.chunk = n
	p.mu.Unlock()
	return p
}

// Append adds steps to the script.
func (p *Port) Append(steps ...Step) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == len(p.steps) {
		p.left = make(chan struct{})
	}
	p.steps = append(p.steps, steps...)
	p.advance()
}

// Send makes the modem send b now, outside the script.
func (p *Port) Send(b string) {
	p.mu.Lock()
	p.rbuf = append(p.rbuf, b...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Written is everything written so far.
func (p *Port) Written() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

// Wait blocks until every step has been played, failing the test after
// timeout. The timeout only keeps a broken test from hanging.
func (p *Port) Wait(timeout time.Duration) {
	p.t.Helper()
	p.mu.Lock()
	left := p.left
	p.mu.Unlock()
	select {
	case <-left:
	case <-time.After(timeout):
		p.mu.Lock()
		defer p.mu.Unlock()
		want := ""
		if p.next < len(p.steps) {
			want = p.steps[p.next].Write
		}
		p.t.Fatalf("attest: script not played within %s; next wants write %q, have %q", timeout, want, p.got)
	}
}

// Read returns what the modem sent, blocking until there is some.
func (p *Port) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.rbuf) == 0 && !p.closed {
		p.cond.Wait()
	}
	if len(p.rbuf) == 0 {
		return 0, io.EOF
	}
	n := len(b)
	if p.chunk > 0 && n > p.chunk {
		n = p.chunk
	}
	n = copy(b[:n], p.rbuf)
	p.rbuf = p.rbuf[n:]
	return n, nil
}

// ErrScript is returned by Write when the bytes differ from the script.
var ErrScript = errors.New("attest: write differs from the script")

// Write checks b against the script.
func (p *Port) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, io.ErrClosedPipe
	}
	if p.failed != nil {
		return 0, p.failed
	}
	p.all.Write(b)
	p.got = append(p.got, b...)
	for len(p.got) > 0 {
		if p.next == len(p.steps) {
			return 0, p.fail(fmt.Errorf("%w: wrote %q after the script ended", ErrScript, p.got))
		}
		want := p.steps[p.next].Write
		if len(p.got) < len(want) {
			if !bytes.HasPrefix([]byte(want), p.got) {
				return 0, p.fail(fmt.Errorf("%w: step %d wants %q, got %q", ErrScript, p.next, want, p.got))
			}
			return len(b), nil
		}
		if !bytes.HasPrefix(p.got, []byte(want)) {
			return 0, p.fail(fmt.Errorf("%w: step %d wants %q, got %q", ErrScript, p.next, want, p.got))
		}
		p.got = p.got[len(want):]
		p.rbuf = append(p.rbuf, p.steps[p.next].Read...)
		p.next++
		p.advance()
		p.cond.Broadcast()
	}
	return len(b), nil
}

// Close ends the port: reads return io.EOF once drained.
func (p *Port) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

// advance plays the steps that need no write.
func (p *Port) advance() {
	for p.next < len(p.steps) && p.steps[p.next].Write == "" {
		p.rbuf = append(p.rbuf, p.steps[p.next].Read...)
		p.next++
	}
	p.cond.Broadcast()
	if p.next == len(p.steps) {
		select {
		case <-p.left:
		default:
			close(p.left)
		}
	}
}

func (p *Port) fail(err error) error {
	p.failed = err
	if !p.ended {
		p.t.Errorf("%v", err)
	}
	return err
}
