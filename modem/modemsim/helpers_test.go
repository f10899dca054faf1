package modemsim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wait bounds every wait in these tests; it only stops a broken test from
// hanging and is never what a test asserts.
const wait = 10 * time.Second

// capture is a sink that keeps what the module says, for in-process tests
// that check exact bytes without a pty.
type capture struct {
	mu sync.Mutex
	b  []byte
}

func (c *capture) send(b []byte) {
	c.mu.Lock()
	c.b = append(c.b, b...)
	c.mu.Unlock()
}

// take returns and clears what was said.
func (c *capture) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := string(c.b)
	c.b = nil
	return s
}

// engine is a booted simulator with no pty: bytes go in through feed and
// come out in the capture.
type engine struct {
	t   *testing.T
	sim *Sim
	out *capture
}

func newEngine(t *testing.T, o Options) *engine {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 1
	}
	s, err := newSim(o)
	if err != nil {
		t.Fatalf("newSim: %v", err)
	}
	c := &capture{}
	s.mu.Lock()
	s.out = c
	s.bootNow()
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		if !s.closed {
			s.closed = true
			close(s.done)
			s.bootGen++
			s.stopTimersLocked()
		}
		s.mu.Unlock()
	})
	return &engine{t: t, sim: s, out: c}
}

// in feeds raw bytes and returns everything said in response.
func (e *engine) in(b string) string {
	e.sim.feed(nil, []byte(b))
	return e.out.take()
}

// at sends one command line (CR added) and returns the reply.
func (e *engine) at(line string) string { return e.in(line + "\r") }

// quiet sends setup lines, failing the test unless each answers OK.
func (e *engine) quiet(lines ...string) {
	e.t.Helper()
	for _, l := range lines {
		got := e.at(l)
		// OK may be followed by the URC that reports the outcome (+QIOPEN).
		if !strings.Contains(got, "\r\nOK\r\n") && got != "0\r" {
			e.t.Fatalf("%s: got %q, want OK", l, got)
		}
	}
}

// host is a plain line-based client on the pty: what any serial program
// would do, with no knowledge of the simulator.
type host struct {
	t    *testing.T
	f    *os.File
	mu   sync.Mutex
	cond *sync.Cond
	buf  []byte
	err  error
	done chan struct{}
}

func openHost(t *testing.T, path string) *host {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	h := &host{t: t, f: f, done: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	go func() {
		defer close(h.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			h.mu.Lock()
			h.buf = append(h.buf, b[:n]...)
			if err != nil {
				h.err = err
			}
			h.cond.Broadcast()
			h.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *host) close() {
	if err := h.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		h.t.Errorf("close host port: %v", err)
	}
	<-h.done
}

func (h *host) send(s string) {
	h.t.Helper()
	if _, err := h.f.Write([]byte(s)); err != nil {
		h.t.Fatalf("write %q: %v", s, err)
	}
}

// waitUntil waits until pred finds what it wants in the buffer; pred
// returns how many bytes to consume. It fails the test after wait.
func (h *host) waitUntil(what string, pred func([]byte) (int, bool)) []byte {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	timer := time.AfterFunc(wait, func() {
		h.mu.Lock()
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer timer.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		if n, ok := pred(h.buf); ok {
			out := append([]byte(nil), h.buf[:n]...)
			h.buf = h.buf[n:]
			return out
		}
		if h.err != nil || time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: err %v, have %q", what, h.err, h.buf)
		}
		h.cond.Wait()
	}
}

// expect consumes through the first occurrence of s and returns it all.
func (h *host) expect(s string) string {
	h.t.Helper()
	return string(h.waitUntil(quote(s), func(b []byte) (int, bool) {
		i := bytes.Index(b, []byte(s))
		return i + len(s), i >= 0
	}))
}

// readN consumes exactly n bytes.
func (h *host) readN(n int) []byte {
	h.t.Helper()
	return h.waitUntil("bytes", func(b []byte) (int, bool) { return n, len(b) >= n })
}

// finals are the lines that end a command.
func isFinal(l string) bool {
	return l == "OK" || l == "ERROR" || strings.HasPrefix(l, "+CME ERROR:") || strings.HasPrefix(l, "+CMS ERROR:") ||
		l == "SEND OK" || l == "SEND FAIL"
}

// cmd sends a command line and returns its non-empty lines through the
// final result, minus the echo.
func (h *host) cmd(line string) []string {
	h.t.Helper()
	h.send(line + "\r")
	var lines []string
	for {
		l := h.line()
		if l == line {
			continue // echo
		}
		lines = append(lines, l)
		if isFinal(l) {
			return lines
		}
	}
}

// line consumes the next non-empty CRLF-terminated line.
func (h *host) line() string {
	h.t.Helper()
	for {
		b := h.waitUntil("a line", func(b []byte) (int, bool) {
			i := bytes.IndexAny(b, "\r\n")
			if i < 0 {
				return 0, false
			}
			j := i
			for j < len(b) && (b[j] == '\r' || b[j] == '\n') {
				j++
			}
			if j == len(b) && b[j-1] == '\r' {
				// Wait for the LF that may follow.
				return 0, false
			}
			return j, true
		})
		if l := strings.TrimRight(string(b), "\r\n"); l != "" {
			return l
		}
	}
}

// readErr waits until reading fails (the link went away).
func (h *host) readErr() error {
	h.t.Helper()
	deadline := time.Now().Add(wait)
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.err == nil {
		if time.Now().After(deadline) {
			h.t.Fatalf("read did not fail")
		}
		h.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		h.mu.Lock()
	}
	return h.err
}

func quote(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r", `\r`), "\n", `\n`) }

// startSim starts a simulator on a pty in a temporary directory.
func startSim(t *testing.T, o Options) *Sim {
	t.Helper()
	dir := t.TempDir()
	if o.Link == "" {
		o.Link = filepath.Join(dir, "modem")
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.BootDelay == 0 {
		o.BootDelay = 5 * time.Millisecond
	}
	s, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// waitBoot waits until the module has finished booting; it is safe to
// call from any goroutine.
func waitBoot(s *Sim) (State, error) {
	deadline := time.Now().Add(wait)
	for {
		st := s.State()
		if st.BootDone {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, errors.New("module did not boot")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitState polls State until ok, failing after wait.
func waitState(t *testing.T, s *Sim, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := s.State()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: state %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// allBytes is every byte value, for binary-safety checks.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}
