package modem

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// step is one command a scriptWire expects, and its answer.
type step struct {
	line  string
	reply at.Reply
	err   error
}

// scriptWire is the engine as the session's parts see it, answering a
// script: each command must be the next one expected, written exactly,
// and done fails the test if steps remain. URCs are handed to awaitURC
// in order.
type scriptWire struct {
	t     *testing.T
	steps []step
	urcs  []at.URC
	sent  []at.Cmd
	done  chan struct{}
}

func newScript(t *testing.T, steps ...step) *scriptWire {
	return &scriptWire{t: t, steps: steps, done: make(chan struct{})}
}

func (w *scriptWire) Do(_ context.Context, c at.Cmd) (at.Reply, error) {
	w.t.Helper()
	w.sent = append(w.sent, c)
	if len(w.steps) == 0 {
		w.t.Fatalf("unexpected command %q: the script is done", c.Line)
	}
	st := w.steps[0]
	w.steps = w.steps[1:]
	if c.Line != st.line {
		w.t.Fatalf("command %q, want %q", c.Line, st.line)
	}
	return st.reply, st.err
}

func (w *scriptWire) do(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	r, err := w.Do(ctx, c)
	if err != nil {
		return r, &OpError{Op: op + " " + strings.TrimPrefix(c.Line, "AT"), Err: err}
	}
	return r, nil
}

func (w *scriptWire) awaitURC(_ context.Context, what string, _ time.Duration, match func(at.URC) bool) (at.URC, error) {
	for len(w.urcs) > 0 {
		u := w.urcs[0]
		w.urcs = w.urcs[1:]
		if match(u) {
			return u, nil
		}
	}
	return at.URC{}, fmt.Errorf("no %s: %w", what, errNoURC)
}

func (w *scriptWire) Done() <-chan struct{} { return w.done }

// finish fails the test when scripted steps remain.
func (w *scriptWire) finish() {
	w.t.Helper()
	if len(w.steps) > 0 {
		w.t.Errorf("%d scripted commands not sent, first %q", len(w.steps), w.steps[0].line)
	}
}

func newTestLadder(evs *recordEvents, rec *gw.Recovery) *ladder {
	l := newLadder(ladderSettings{port: "/dev/ttyTEST", retryMin: time.Millisecond, retryMax: 4 * time.Millisecond, portGone: time.Hour},
		discardLog(), evs, func(f func(*gw.Recovery)) { f(rec) })
	l.probeTimeout = time.Millisecond
	return l
}

// TestLadderSteps climbs the ladder one step per failure: a probe that
// gets no answer leads to a re-init, a failed re-init to a reset written
// without resynchronisation, a port lost within the reset's limit costs no
// step, a passed poll ends the recovery. Each step is one event and one
// counter.
func TestLadderSteps(t *testing.T) {
	var evs recordEvents
	var rec gw.Recovery
	l := newTestLadder(&evs, &rec)
	ctx := context.Background()
	silent := fmt.Errorf("read signal: %w", at.ErrTimeout)

	w := newScript(t, step{line: "AT", err: at.ErrTimeout}, step{line: "AT", err: at.ErrTimeout}, step{line: "AT", err: at.ErrTimeout})
	next, _ := l.onPort(ctx, w, silent, false)
	w.finish()
	if next != levelReinit {
		t.Fatalf("after an unanswered probe: step %s, want re-init", levelNames[next])
	}
	for _, c := range w.sent {
		if c.Timeout != time.Millisecond {
			t.Errorf("probe %q timeout %s, want the probe timeout", c.Line, c.Timeout)
		}
	}

	w = newScript(t, step{line: "AT+CFUN=15"})
	l.reset = "AT+CFUN=15"
	next, _ = l.onPort(ctx, w, fmt.Errorf("initialise: %w", at.ErrTimeout), true)
	w.finish()
	if next != levelReset || !w.sent[0].SkipSync || !l.resetting {
		t.Fatalf("after a failed re-init: step %s, SkipSync %v, resetting %v; want a reset written at once", levelNames[next], w.sent[0].SkipSync, l.resetting)
	}
	l.portDown(at.ErrClosed, true, true)
	if l.level != levelReset {
		t.Errorf("a port lost after the reset moved the ladder to %s", levelNames[l.level])
	}
	if l.failure() != nil {
		t.Errorf("failure %v before the last step", l.failure())
	}
	l.recovered()

	var types []string
	for _, e := range evs {
		types = append(types, e.Type+":"+e.Fields["step"].(string))
	}
	want := "recovery_probe:probe recovery_reinit:re-init recovery_reset:reset recovery_done:reset"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if rec.Probes != 1 || rec.Reinits != 1 || rec.Resets != 1 || rec.Reopens != 0 {
		t.Errorf("counters %+v, want one probe, re-init and reset", rec)
	}
	if !strings.Contains(evs[2].Message, "AT+CFUN=15") {
		t.Errorf("reset event %q does not name the profile's reset", evs[2].Message)
	}
	if l.recovering() {
		t.Error("still recovering after a passed poll")
	}
}

// TestLadderGivesUp: a port that stays away beyond the limit after the
// reopen step reaches the last step, whose error Healthy reports until a
// poll passes.
func TestLadderGivesUp(t *testing.T) {
	var evs recordEvents
	var rec gw.Recovery
	l := newTestLadder(&evs, &rec)
	l.set.portGone = 0
	l.portDown(at.ErrClosed, true, true)
	if l.level != levelReopen {
		t.Fatalf("a lost port: step %s, want reopen", levelNames[l.level])
	}
	time.Sleep(time.Millisecond) // the port has now been away for longer than portGone
	l.portDown(at.ErrClosed, false, true)
	if l.level != levelFailed {
		t.Fatalf("port away beyond the limit: step %s, want failed", levelNames[l.level])
	}
	if err := l.failure(); err == nil || !strings.Contains(err.Error(), errGaveUp.Error()) {
		t.Fatalf("failure() = %v, want the give-up error", err)
	}
	l.recovered()
	if err := l.failure(); err != nil {
		t.Errorf("failure() = %v after a passed poll", err)
	}
	if last := evs[len(evs)-1]; last.Type != "recovery_done" || last.Fields["step"] != "failed" {
		t.Errorf("last event %+v, want recovery_done after the failed step", last)
	}
}

// TestQuectelOpenSteps runs a Quectel open over a script: the kept socket
// is checked first, setup refusals do not stop it, and the socket's
// +QIOPEN result arrives as a URC after OK.
func TestQuectelOpenSteps(t *testing.T) {
	refused := &at.CMEError{Code: 3}
	w := newScript(t,
		step{line: "AT+QISTATE=1,0"},
		step{line: `AT+QICSGP=1,1,"super","","",1`, err: refused},
		step{line: "AT+QIACT?", reply: at.Reply{Lines: []string{`+QIACT: 1,1,1,"10.64.12.34"`}}},
		step{line: "AT+QISDE=0", err: refused},
		step{line: "AT+QICLOSE=0"},
		step{line: `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`},
	)
	w.urcs = []at.URC{{Line: "+QIURC: \"recv\",0"}, {Line: "+QIOPEN: 0,0"}}
	info, err := quectelSockets{}.open(context.Background(), sockLink{cmd: w, urcs: w, log: discardLog()}, sockOpen{APN: "super", Port: 6969, Known: -1})
	w.finish()
	if err != nil {
		t.Fatal(err)
	}
	if info != (sockInfo{ID: 0, IP: "10.64.12.34"}) {
		t.Errorf("open = %+v", info)
	}

	// A silent modem stops the open at once.
	w = newScript(t, step{line: "AT+QISTATE=1,0"}, step{line: `AT+QICSGP=1,1,"super","","",1`, err: at.ErrTimeout})
	_, err = quectelSockets{}.open(context.Background(), sockLink{cmd: w, urcs: w, log: discardLog()}, sockOpen{APN: "super", Port: 6969, Known: -1})
	w.finish()
	if !isFatal(err) {
		t.Errorf("open on a silent modem = %v, want the timeout", err)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestUbloxKeepsKnownSocket: a u-blox open that is not fresh asks the
// socket the session used so far how much it holds and keeps it, with
// what it holds to be read.
func TestUbloxKeepsKnownSocket(t *testing.T) {
	w := newScript(t,
		step{line: "AT+USORF=2,0", reply: at.Reply{Lines: []string{"+USORF: 2,5"}}},
		step{line: "AT+CGPADDR=1", reply: at.Reply{Lines: []string{`+CGPADDR: 1,"10.64.12.34"`}}},
	)
	info, err := ubloxSockets{}.open(context.Background(), sockLink{cmd: w, urcs: w, log: discardLog()}, sockOpen{APN: "super", Port: 6969, Known: 2})
	w.finish()
	if err != nil {
		t.Fatal(err)
	}
	if want := (sockInfo{ID: 2, IP: "10.64.12.34", Kept: true, Pending: 5}); info != want {
		t.Errorf("open = %+v, want %+v", info, want)
	}
}
