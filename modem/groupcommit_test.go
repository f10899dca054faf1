package modem

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at/attest"
	"github.com/simgate/simgate/modem/modemtest"
)

// commitSink is a MemorySink that counts its commits (every call that
// writes) and records, at each commit, whether the session had already
// deleted an SMS from the SIM.
type commitSink struct {
	*modemtest.MemorySink
	port *attest.Port

	mu      sync.Mutex
	commits []string // the method of each commit
	early   []string // commits that came after an AT+CMGD
}

func (c *commitSink) commit(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits = append(c.commits, what)
	if strings.Contains(c.port.Written(), "AT+CMGD=") {
		c.early = append(c.early, what)
	}
}

func (c *commitSink) Put(ctx context.Context, m gw.Inbound) error {
	c.commit("Put")
	return c.MemorySink.Put(ctx, m)
}

func (c *commitSink) PutSegment(ctx context.Context, s gw.Segment) ([]gw.Segment, error) {
	c.commit("PutSegment")
	return c.MemorySink.PutSegment(ctx, s)
}

func (c *commitSink) PutSIM(ctx context.Context, items []gw.SIMItem, j gw.SIMJournal) (int, error) {
	c.commit(fmt.Sprintf("PutSIM(%d)", len(items)))
	return c.MemorySink.PutSIM(ctx, items, j)
}

func (c *commitSink) SaveJournal(ctx context.Context, j gw.SIMJournal) error {
	c.commit("SaveJournal")
	return c.MemorySink.SaveJournal(ctx, j)
}

func (c *commitSink) Assemble(ctx context.Context, m gw.Inbound, key string) error {
	c.commit("Assemble")
	return c.MemorySink.Assemble(ctx, m, key)
}

// One listing of many SMS is stored with one commit, before the first of
// them is deleted from the SIM; the journal that commit carries no longer
// announces them.
func TestSessionDrainGroupCommit(t *testing.T) {
	const n = 20
	var entries []string
	var dels []attest.Step
	var want []gw.Inbound
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("burst %02d", i)
		sent := t0.Add(time.Duration(i) * time.Second)
		entries = append(entries, entry(i, 0, mt{from: "000", sent: sent, dcs: 0x00, ud: septets(text)}))
		dels = append(dels, del(i))
		want = append(want, sms("000", text, sent, 1))
	}
	port := attest.New(t, initSteps(list())...)
	sink := &commitSink{MemorySink: modemtest.NewMemorySink(), port: port}
	r := newRig(t, defaultConfig(), sink, port)
	r.mem = sink.MemorySink
	port.Wait(wait)
	port.Append(append([]attest.Step{list(entries...)}, dels...)...)
	var cmti strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&cmti, "\r\n+CMTI: \"SM\",%d\r\n", i)
	}
	port.Send(cmti.String())
	got := r.messages(n)
	port.Wait(wait)
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	sink.mu.Lock()
	commits, early := sink.commits, sink.early
	sink.mu.Unlock()
	if diff := cmp.Diff([]string{fmt.Sprintf("PutSIM(%d)", n)}, commits); diff != "" {
		t.Errorf("commits for one listing (-want +got):\n%s", diff)
	}
	if len(early) > 0 {
		t.Errorf("commits after an SMS was deleted from the SIM: %v", early)
	}
	if j, _ := sink.Journal(context.Background()); len(j.Announced) != 0 {
		t.Errorf("journal still announces %v after they were stored", j.Announced)
	}
}

// A sink that stores only a prefix of the listing (the queue filled up)
// gets the rest's announcement order committed at once, and nothing beyond
// the prefix is deleted.
func TestSessionDrainGroupCommitPrefix(t *testing.T) {
	m := func(text string) mt { return mt{from: "000", sent: t0, dcs: 0x00, ud: septets(text)} }
	mem := modemtest.NewMemorySink()
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, defaultConfig(), &failNth{MemorySink: mem, n: 2}, port)
	r.mem = mem
	port.Wait(wait)
	port.Append(list(entry(1, 0, m("three")), entry(2, 0, m("two")), entry(3, 0, m("one"))), del(3))
	port.Send("\r\n+CMTI: \"SM\",3\r\n+CMTI: \"SM\",2\r\n+CMTI: \"SM\",1\r\n")
	r.messages(1)
	r.event(gw.EventStoreFailed)
	port.Wait(wait)
	r.stop()
	j, err := mem.Journal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{2, 1}, j.Announced); diff != "" {
		t.Errorf("announced after a prefix was stored (-want +got):\n%s", diff)
	}
}
