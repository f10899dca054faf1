package transport

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"
)

func TestEventBuffer(t *testing.T) {
	var b eventBuffer
	b.init(3)
	var dropped []bool
	for _, typ := range []string{"a", "b", "c", "d"} {
		dropped = append(dropped, b.push(gw.Event{Type: typ}))
	}
	if diff := cmp.Diff([]bool{false, false, false, true}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	types := func(es []bufferedEvent) []string {
		out := []string{}
		for _, e := range es {
			out = append(out, e.ev.Type)
		}
		return out
	}
	tests := []struct {
		after uint64
		n     int
		want  []string
	}{
		{0, 10, []string{"b", "c", "d"}},
		{0, 2, []string{"b", "c"}},
		{2, 10, []string{"c", "d"}},
		{4, 10, []string{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, types(b.after(tt.after, tt.n))); diff != "" {
			t.Errorf("after(%d, %d) (-want +got):\n%s", tt.after, tt.n, diff)
		}
	}
	// Dropping up to an event already pushed out for space is harmless.
	b.drop(1)
	if got := b.items.Len(); got != 3 {
		t.Errorf("len after drop(1) = %d, want 3", got)
	}
	b.drop(3)
	if diff := cmp.Diff([]string{"d"}, types(b.after(0, 10))); diff != "" {
		t.Errorf("after drop(3) (-want +got):\n%s", diff)
	}
}

func TestRequestFIFO(t *testing.T) {
	var f requestFIFO
	f.init()
	for _, ch := range []string{"sms", "ip", "sms", "ip", "sms"} {
		f.push(inMsg{channel: ch})
	}
	var got []string
	for _, n := range []int{2, 2, 2, 2} {
		for _, m := range f.take(n) {
			got = append(got, m.channel)
		}
	}
	if diff := cmp.Diff([]string{"sms", "ip", "sms", "ip", "sms"}, got); diff != "" {
		t.Errorf("taken (-want +got):\n%s", diff)
	}
	if f.len() != 0 {
		t.Errorf("len = %d, want 0", f.len())
	}
}

// TestRequestFIFOBoundsQoS0 fills the FIFO as a QoS 0 flood does while the
// store is stuck: beyond maxFIFOBytes QoS 0 requests are dropped (and
// reported), QoS 1 ones, which the broker bounds, are kept.
func TestRequestFIFOBoundsQoS0(t *testing.T) {
	var f requestFIFO
	f.init()
	var dropped int
	f.dropped = func(inMsg) { dropped++ }
	body := make([]byte, 4096)
	q0 := &fakeMessage{payload: body, qos: 0}
	q1 := &fakeMessage{payload: body, qos: 1}
	const flood = 2 * maxFIFOBytes / 4096
	for range flood {
		f.push(inMsg{channel: "sms", msg: q0})
	}
	if got, want := f.len(), maxFIFOBytes/4096; got != want {
		t.Errorf("FIFO holds %d QoS 0 requests after a flood of %d, want %d (%d bytes)", got, flood, want, maxFIFOBytes)
	}
	if dropped != flood-maxFIFOBytes/4096 {
		t.Errorf("dropped %d reported, want %d", dropped, flood-maxFIFOBytes/4096)
	}
	if !f.push(inMsg{channel: "sms", msg: q1}) {
		t.Error("QoS 1 request dropped")
	}
	f.take(10)
	if !f.push(inMsg{channel: "sms", msg: q0}) {
		t.Error("QoS 0 request dropped after room was made")
	}
}

func TestConnState(t *testing.T) {
	var c connState
	c.init()
	w := c.wait()
	select {
	case <-w:
		t.Fatal("wait channel closed while down")
	default:
	}
	c.set(true)
	<-w // closed by coming up
	e := c.currentEpoch()
	c.set(true) // no change
	c.set(false)
	c.set(false) // no change
	if got := c.currentEpoch(); got != e+1 {
		t.Errorf("epoch = %d, want %d: one loss", got, e+1)
	}
	if up, _ := c.state(); up {
		t.Error("up after set(false)")
	}
}

// TestConnStateReady checks that the relay counts as connected only once
// the SUBACK of the current connection is in, in either order of SUBACK and
// resume, and never for a SUBACK of a connection already lost.
func TestConnStateReady(t *testing.T) {
	var c connState
	c.init()
	e := c.currentEpoch()
	if c.set(true) {
		t.Error("ready when open but not yet subscribed")
	}
	if !c.subscribedIn(e) || !c.ready() {
		t.Error("not ready after the SUBACK of the open connection")
	}
	if c.set(false) || c.ready() {
		t.Error("ready after the connection was lost")
	}
	if c.subscribedIn(e) {
		t.Error("ready through the SUBACK of a lost connection")
	}
	e = c.currentEpoch()
	if c.subscribedIn(e) {
		t.Error("ready while down")
	}
	if !c.set(true) {
		t.Error("not ready on resume after the SUBACK came first")
	}
}

func TestResumeStoreOrder(t *testing.T) {
	resumed := 0
	s := &resumeStore{MemoryStore: paho.NewMemoryStore(), resumed: func() { resumed++ }}
	s.Open()
	var want []string
	for i := range 50 {
		// Keys that sort differently as text, as paho's message ids do
		// when they wrap around.
		k := fmt.Sprintf("o.%d", (i*37)%101)
		want = append(want, k)
		s.Put(k, packets.NewControlPacket(packets.Publish))
	}
	s.Put(want[0], packets.NewControlPacket(packets.Publish)) // replaced: keeps its place
	s.Del(want[1])
	want = append(want[:1], want[2:]...)
	if diff := cmp.Diff(want, s.All()); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if resumed != 1 {
		t.Errorf("resumed called %d times, want 1", resumed)
	}
	s.Reset()
	if got := s.All(); len(got) != 0 {
		t.Errorf("All after Reset = %v", got)
	}
}

// TestAckerPacesRemovals checks that removals from the queue do not take
// the store's writer for a commit of their own as often as PUBACKs come:
// after a commit that took d, what is delivered within ackSpacing×d (at
// most ackMaxPause) goes in one commit, except while the queue is short of
// room, and closing commits what is pending without waiting for the pause.
func TestAckerPacesRemovals(t *testing.T) {
	var (
		mu    sync.Mutex
		clock = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	timers := make(chan time.Duration, 1)
	fire := make(chan time.Time)
	calls := make(chan []int, 8)
	var short atomic.Bool // the queue is short of room
	src := source[int]{pace: func() bool { return !short.Load() }, ack: func(items []int) error {
		// A commit that takes two seconds of the clock.
		mu.Lock()
		clock = clock.Add(2 * time.Second)
		mu.Unlock()
		calls <- append([]int(nil), items...)
		return nil
	}}
	a := newAcker[int]()
	a.now = now
	a.after = func(d time.Duration) <-chan time.Time {
		timers <- d
		return fire
	}
	a.start(src, testLogger(t))

	next := func(what string) []int {
		t.Helper()
		select {
		case got := <-calls:
			return got
		case <-time.After(waitLimit):
			t.Fatalf("no commit of %s", what)
			return nil
		}
	}
	pause := func() {
		t.Helper()
		select {
		case d := <-timers:
			if d != ackMaxPause {
				t.Errorf("pause after a 2 s commit = %s, want the cap %s", d, ackMaxPause)
			}
		case <-time.After(waitLimit):
			t.Fatal("the acker committed again without pausing")
		}
	}

	a.add([]int{1})
	if got := next("the first removal"); !slices.Equal(got, []int{1}) {
		t.Fatalf("first commit %v, want [1]: a removal after a quiet spell goes at once", got)
	}
	a.add([]int{2})
	pause()
	a.add([]int{3, 4})
	fire <- time.Time{}
	if got := next("the removals during the pause"); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("second commit %v, want [2 3 4]", got)
	}
	// Short of room, a removal does not wait (a pause would block the
	// acker on a timer nobody fires).
	short.Store(true)
	a.add([]int{5})
	if got := next("the removal while short of room"); !slices.Equal(got, []int{5}) {
		t.Fatalf("commit while short of room %v, want [5]", got)
	}
	short.Store(false)
	a.add([]int{6})
	pause()
	a.close() // the timer never fires: closing commits at once
	if got := next("the removal pending at close"); !slices.Equal(got, []int{6}) {
		t.Fatalf("commit at close %v, want [6]", got)
	}
	select {
	case got := <-calls:
		t.Fatalf("extra commit %v", got)
	default:
	}
}

// Removals do not wait once received messages fill half of
// store.max_messages: a datagram could be refused meanwhile.
func TestRelayUnhurried(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 4)
	r := newTestRelay(t, testRelayConfig("tcp://127.0.0.1:1"), q, newFakeDevice())
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		if got := r.unhurried(); got != want {
			t.Errorf("with %d of 4 queued: unhurried %v, want %v", i, got, want)
		}
		if err := q.Put(ctx, sms(i)); err != nil {
			t.Fatal(err)
		}
	}
}
