package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder notes the order in which parts start and stop.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) note(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}

func (r *recorder) steps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// part returns a Part that records its start and stop, failing with the
// given errors.
func (r *recorder) part(name string, startErr, stopErr error) Part {
	return Part{
		Name:  name,
		Start: func(context.Context) error { r.note("start " + name); return startErr },
		Stop:  func(context.Context) error { r.note("stop " + name); return stopErr },
	}
}

func TestStartStopOrder(t *testing.T) {
	var r recorder
	var l List
	l.Add(r.part("queue", nil, nil), r.part("broker", nil, nil))
	l.Add(Part{Name: "nothing to do"}, r.part("relay", nil, nil))
	if err := l.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := l.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	want := []string{"start queue", "start broker", "start relay", "stop relay", "stop broker", "stop queue"}
	if got := r.steps(); !slices.Equal(got, want) {
		t.Errorf("steps\n got %q\nwant %q", got, want)
	}
	// A second Stop has nothing left to stop.
	if err := l.Stop(); err != nil || len(r.steps()) != len(want) {
		t.Errorf("second Stop: %v, steps %q", err, r.steps()[len(want):])
	}
}

// A part that fails to start stops, in reverse, those started before it,
// and none after it starts; its error comes back as it is.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	var r recorder
	var l List
	boom := errors.New("http.listen: address in use")
	l.Add(r.part("queue", nil, nil), r.part("session", nil, nil), r.part("http", boom, nil), r.part("relay", nil, nil))
	err := l.Start(context.Background())
	var se *StartError
	if !errors.As(err, &se) || se.Part != "http" || se.Err != boom || se.Stop != nil || err.Error() != boom.Error() {
		t.Errorf("Start = %#v, want a StartError of http with the part's own error %v", err, boom)
	}
	want := []string{"start queue", "start session", "start http", "stop session", "stop queue"}
	if got := r.steps(); !slices.Equal(got, want) {
		t.Errorf("steps\n got %q\nwant %q", got, want)
	}
}

// The stops after a failed start are reported with the start error.
func TestStartFailureJoinsStopErrors(t *testing.T) {
	var r recorder
	var l List
	startErr, stopErr := errors.New("no broker"), errors.New("queue file locked")
	l.Add(r.part("queue", nil, stopErr), r.part("relay", startErr, nil))
	err := l.Start(context.Background())
	if !errors.Is(err, startErr) || !errors.Is(err, stopErr) {
		t.Errorf("Start = %v, want both %v and %v", err, startErr, stopErr)
	}
	if got, want := err.Error(), "no broker\nstop queue: queue file locked"; got != want {
		t.Errorf("Start = %q, want %q", got, want)
	}
}

// Stop errors are joined, named, logged, and all parts are stopped even
// when some fail; LogOnly parts are logged only.
func TestStopErrors(t *testing.T) {
	var r recorder
	var buf bytes.Buffer
	l := List{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	e1, e2, e3 := errors.New("close failed"), errors.New("still busy"), errors.New("listener gone")
	broker := r.part("broker", nil, e3)
	broker.LogOnly = true
	l.Add(r.part("queue", nil, e1), broker, r.part("session", nil, e2), r.part("relay", nil, nil))
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := l.Stop()
	if !errors.Is(err, e1) || !errors.Is(err, e2) || errors.Is(err, e3) {
		t.Errorf("Stop = %v, want %v and %v but not the LogOnly %v", err, e1, e2, e3)
	}
	if got, want := err.Error(), "stop session: still busy\nstop queue: close failed"; got != want {
		t.Errorf("Stop = %q, want %q", got, want)
	}
	if got, want := r.steps()[4:], []string{"stop relay", "stop session", "stop broker", "stop queue"}; !slices.Equal(got, want) {
		t.Errorf("stops %q, want %q", got, want)
	}
	for _, line := range []string{"component=queue", "component=session", "component=broker", "listener gone"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, buf.String())
		}
	}
}

// A stop that hangs is given up on at its bound and reported; the parts
// before it are still stopped.
func TestStopThatHangsIsBounded(t *testing.T) {
	var r recorder
	var buf bytes.Buffer
	l := List{Log: slog.New(slog.NewTextHandler(&buf, nil)), StopWithin: time.Hour}
	release := make(chan struct{})
	defer close(release)
	hung := Part{
		Name:       "session",
		Stop:       func(context.Context) error { <-release; return nil }, // ignores its ctx
		StopWithin: 10 * time.Millisecond,
	}
	l.Add(r.part("queue", nil, nil), hung, r.part("relay", nil, nil))
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := l.Stop()
	if !errors.Is(err, ErrStopTimeout) || !strings.HasPrefix(err.Error(), "stop session: ") {
		t.Errorf("Stop = %v, want session's ErrStopTimeout", err)
	}
	if got, want := r.steps()[2:], []string{"stop relay", "stop queue"}; !slices.Equal(got, want) {
		t.Errorf("stops %q, want %q", got, want)
	}
	if !strings.Contains(buf.String(), "component=session") {
		t.Errorf("the hung part is not named in the log:\n%s", buf.String())
	}
}

// A stop that honours its ctx and gives up is reported as overrunning
// too, not as a bare context error.
func TestStopGivingUpOnCtx(t *testing.T) {
	var l List
	l.StopWithin = 10 * time.Millisecond
	l.Add(Part{Name: "relay", Stop: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(); !errors.Is(err, ErrStopTimeout) {
		t.Errorf("Stop = %v, want ErrStopTimeout", err)
	}
}

// Parts added after a Start are started by the next Start, and Stop
// covers both.
func TestStartAgain(t *testing.T) {
	var r recorder
	var l List
	l.Add(r.part("a", nil, nil))
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Add(r.part("b", nil, nil))
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := r.steps(), []string{"start a", "start b", "stop b", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}
}

func TestTask(t *testing.T) {
	boom := errors.New("serial port gone")
	// Stop cancels and returns run's error.
	tk := Go(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return boom })
	if err := tk.Stop(context.Background()); err != boom {
		t.Errorf("Stop = %v, want %v", err, boom)
	}
	// An error taken is not returned again by Stop.
	tk = Go(context.Background(), func(context.Context) error { return boom })
	<-tk.Done()
	if err := tk.Take(); err != boom {
		t.Errorf("Take = %v, want %v", err, boom)
	}
	if err := tk.Stop(context.Background()); err != nil {
		t.Errorf("Stop after Take = %v, want nil", err)
	}
	// A run that ignores cancellation is left when ctx ends.
	release := make(chan struct{})
	tk = Go(context.Background(), func(context.Context) error { <-release; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tk.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop of a wedged run = %v, want context.Canceled", err)
	}
	close(release)
	<-tk.Done()
	// The parent's end reaches run.
	parent, cancelParent := context.WithCancel(context.Background())
	tk = Go(parent, func(ctx context.Context) error { <-ctx.Done(); return nil })
	cancelParent()
	<-tk.Done()
}
