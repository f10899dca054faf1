package systemd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// hangTimeout only stops a broken test from hanging; nothing is asserted
// about how long anything takes.
const hangTimeout = 10 * time.Second

// fakeManager plays systemd's side of sd_notify: a unixgram socket named by
// NOTIFY_SOCKET for the rest of the test.
type fakeManager struct {
	t    *testing.T
	path string
	conn *net.UnixConn
}

func newFakeManager(t *testing.T) *fakeManager {
	t.Helper()
	// Not t.TempDir: socket paths are limited to 108 bytes and test names
	// make those directories long.
	dir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m := &fakeManager{t: t, path: filepath.Join(dir, "notify")}
	m.listen()
	t.Setenv("NOTIFY_SOCKET", m.path)
	return m
}

func (m *fakeManager) listen() {
	m.t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		m.t.Fatal(err)
	}
	m.conn = conn
	m.t.Cleanup(func() { conn.Close() })
}

// drain returns every datagram already queued on the socket, without
// waiting: each send under test has completed before drain is called, so
// what is not queued was not sent.
func (m *fakeManager) drain() []string {
	m.t.Helper()
	rc, err := m.conn.SyscallConn()
	if err != nil {
		m.t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 4096)
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_DONTWAIT)
			return true
		}); err != nil {
			m.t.Fatal(err)
		}
		if errors.Is(rerr, syscall.EAGAIN) {
			return got
		}
		if rerr != nil {
			m.t.Fatal(rerr)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestNotifications(t *testing.T) {
	tests := []struct {
		name  string
		steps func(n *Notifier) error
		want  []string
	}{
		{
			name: "lifecycle",
			steps: func(n *Notifier) error {
				return errors.Join(
					n.Status("opening modem /dev/ttyUSB2"),
					n.Ready(),
					n.Status("registered (roaming), 0 queued"),
					n.Stopping(),
				)
			},
			want: []string{"STATUS=opening modem /dev/ttyUSB2", "READY=1", "STATUS=registered (roaming), 0 queued", "STOPPING=1"},
		},
		{
			name:  "ready is sent once",
			steps: func(n *Notifier) error { return errors.Join(n.Ready(), n.Ready(), n.Ready()) },
			want:  []string{"READY=1"},
		},
		{
			name: "unchanged status is not repeated",
			steps: func(n *Notifier) error {
				return errors.Join(n.Status("a"), n.Status("a"), n.Status("b"), n.Status("a"))
			},
			want: []string{"STATUS=a", "STATUS=b", "STATUS=a"},
		},
		{
			name:  "newline cannot inject an assignment",
			steps: func(n *Notifier) error { return n.Status("operator\nREADY=1\r\nMAINPID=1") },
			want:  []string{"STATUS=operator READY=1 MAINPID=1"},
		},
		{
			name:  "stopping every time",
			steps: func(n *Notifier) error { return errors.Join(n.Stopping(), n.Stopping()) },
			want:  []string{"STOPPING=1", "STOPPING=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeManager(t)
			n := New(nil)
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			if err := tt.steps(n); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, m.drain()); diff != "" {
				t.Errorf("datagrams (-want +got):\n%s", diff)
			}
		})
	}
}

// Outside systemd every call succeeds and does nothing, and the watchdog
// loop does not even start.
func TestNoServiceManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(nil)
	if n.Enabled() {
		t.Error("Enabled() = true without NOTIFY_SOCKET")
	}
	for name, f := range map[string]func() error{
		"Ready": n.Ready, "Stopping": n.Stopping,
		"Status": func() error { return n.Status("x") },
	} {
		if err := f(); err != nil {
			t.Errorf("%s() = %v, want nil", name, err)
		}
	}
	probed := runWatchdog(t, n, func() error { return nil })
	if probed {
		t.Error("Watchdog probed without a service manager")
	}
}

// runWatchdog runs Watchdog with a context that is never cancelled and
// requires it to return by itself; it reports whether probe was called.
func runWatchdog(t *testing.T, n *Notifier, probe func() error) bool {
	t.Helper()
	var mu sync.Mutex
	probed := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(context.Background(), func() error {
			mu.Lock()
			probed = true
			mu.Unlock()
			return probe()
		})
	}()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatal("Watchdog did not return although the watchdog is disabled")
	}
	mu.Lock()
	defer mu.Unlock()
	return probed
}

func TestReadyRetriesAfterFailedSend(t *testing.T) {
	m := newFakeManager(t)
	m.conn.Close()
	if err := os.Remove(m.path); err != nil {
		t.Fatal(err)
	}
	n := New(nil)
	err := n.Ready()
	if err == nil || !strings.HasPrefix(err.Error(), "sd_notify READY: ") {
		t.Fatalf("Ready() with no listener = %v, want an sd_notify READY error", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Ready() error %v does not wrap ENOENT", err)
	}
	m.listen()
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready() after the manager came back: %v", err)
	}
	if diff := cmp.Diff([]string{"READY=1"}, m.drain()); diff != "" {
		t.Errorf("datagrams (-want +got):\n%s", diff)
	}
}

func TestWatchdogDisabled(t *testing.T) {
	tests := []struct {
		name    string
		usec    string
		pid     string
		wantLog []logLine
	}{
		{name: "no WATCHDOG_USEC", usec: "", pid: "self"},
		{name: "another process's watchdog", usec: "20000", pid: strconv.Itoa(os.Getpid() + 1)},
		{
			name: "unparsable WATCHDOG_USEC", usec: "soon", pid: "self",
			wantLog: []logLine{{Level: "ERROR", Msg: "systemd watchdog disabled: bad watchdog environment",
				Attrs: "err=error converting WATCHDOG_USEC: strconv.Atoi: parsing \"soon\": invalid syntax"}},
		},
		{
			name: "zero WATCHDOG_USEC", usec: "0", pid: "self",
			wantLog: []logLine{{Level: "ERROR", Msg: "systemd watchdog disabled: bad watchdog environment",
				Attrs: "err=error WATCHDOG_USEC must be a positive number"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeManager(t)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			if tt.pid == "self" {
				tt.pid = strconv.Itoa(os.Getpid())
			}
			t.Setenv("WATCHDOG_PID", tt.pid)
			logs := &recorder{}
			n := New(slog.New(logs))
			if runWatchdog(t, n, func() error { return nil }) {
				t.Error("Watchdog probed although the watchdog is disabled")
			}
			if got := m.drain(); len(got) != 0 {
				t.Errorf("datagrams sent: %q", got)
			}
			if diff := cmp.Diff(tt.wantLog, logs.lines()); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchdog scripts the probe's answers and checks, tick by tick, that a
// keep-alive followed each passing probe and none followed a failing one.
func TestWatchdog(t *testing.T) {
	errModem := errors.New("modem: port owner silent for 45s")
	errRelay := errors.New("relay: loop stalled")
	script := []error{nil, nil, errModem, errModem, errModem, nil, errRelay, nil, nil}

	m := newFakeManager(t)
	t.Setenv("WATCHDOG_USEC", "20000") // a probe every 10ms keeps the test short
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	logs := &recorder{}
	n := New(slog.New(logs))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// sentAfter[i] is what the manager received after probe i answered,
	// read at the start of probe i+1 (the keep-alive is sent before the
	// next tick, so it is queued by then).
	var sentAfter [][]string
	call := 0
	probe := func() error {
		if call > 0 {
			sentAfter = append(sentAfter, m.drain())
		}
		if call == len(script) {
			cancel()
			return errors.New("script finished")
		}
		err := script[call]
		call++
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, probe)
	}()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatal("Watchdog did not return after its context was cancelled")
	}

	var want [][]string
	for _, err := range script {
		if err == nil {
			want = append(want, []string{"WATCHDOG=1"})
		} else {
			want = append(want, nil)
		}
	}
	if diff := cmp.Diff(want, sentAfter); diff != "" {
		t.Errorf("keep-alives per probe (-want +got):\n%s", diff)
	}
	if got := m.drain(); len(got) != 0 {
		t.Errorf("sent after the context ended: %q", got)
	}
	wantLog := []logLine{
		{Level: "WARN", Msg: "systemd watchdog: health probe failing, withholding keep-alive", Attrs: "err=" + errModem.Error() + " consecutive=1"},
		{Level: "INFO", Msg: "systemd watchdog: health probe passing again", Attrs: "withheld=3"},
		{Level: "WARN", Msg: "systemd watchdog: health probe failing, withholding keep-alive", Attrs: "err=" + errRelay.Error() + " consecutive=1"},
		{Level: "INFO", Msg: "systemd watchdog: health probe passing again", Attrs: "withheld=1"},
		{Level: "WARN", Msg: "systemd watchdog: health probe failing, withholding keep-alive", Attrs: "err=script finished consecutive=1"},
	}
	if diff := cmp.Diff(wantLog, logs.lines()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// A keep-alive that cannot be delivered is logged once per run of failures.
func TestWatchdogSendFailure(t *testing.T) {
	m := newFakeManager(t)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	logs := &recorder{}
	n := New(slog.New(logs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	call := 0
	probe := func() error {
		call++
		switch call {
		case 1:
			m.conn.Close() // the manager goes away: sends now fail
		case 4:
			cancel()
			return context.Canceled
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Watchdog(ctx, probe)
	}()
	select {
	case <-done:
	case <-time.After(hangTimeout):
		t.Fatal("Watchdog did not return after its context was cancelled")
	}
	got := logs.lines()
	var sendErrors int
	for _, l := range got {
		if l.Msg == "systemd watchdog: cannot send keep-alive" {
			sendErrors++
		}
	}
	if sendErrors != 1 {
		t.Errorf("logged %d send errors for 3 failed sends, want 1; log: %+v", sendErrors, got)
	}
}

func TestWithholdLogRateLimit(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	tests := []struct {
		name    string
		every   int
		results []error
		want    []bool // for each failure: logged?
	}{
		{name: "first of a run", every: 100, results: []error{a, a, a}, want: []bool{true, false, false}},
		{name: "repeats every 3", every: 3, results: []error{a, a, a, a, a, a, a}, want: []bool{true, false, false, true, false, false, true}},
		{name: "new error logged", every: 100, results: []error{a, a, b, b, a}, want: []bool{true, false, true, false, true}},
		{name: "pass resets", every: 100, results: []error{a, a, nil, a}, want: []bool{true, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := withholdLog{every: tt.every}
			var got []bool
			for _, err := range tt.results {
				if err == nil {
					w.pass()
					continue
				}
				got = append(got, w.fail(err))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("logged (-want +got):\n%s", diff)
			}
		})
	}
}

// logLine is a log record reduced to what the tests compare.
type logLine struct {
	Level, Msg, Attrs string
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu  sync.Mutex
	got []logLine
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level < slog.LevelInfo {
		return nil
	}
	var attrs []string
	rec.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a.Key+"="+a.Value.String())
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, logLine{Level: rec.Level.String(), Msg: rec.Message, Attrs: strings.Join(attrs, " ")})
	return nil
}

func (r *recorder) lines() []logLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logLine(nil), r.got...)
}
