package modem

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/ring"
)

// maxHeldDatagrams bounds the datagrams kept in memory while the Sink
// refuses them. A module pushes datagrams whether or not the host can store
// them; beyond this bound the oldest are dropped, loudly.
const maxHeldDatagrams = 1000

// putter is the part of the Sink the inbox hands datagrams to.
type putter interface {
	Put(ctx context.Context, m gw.Inbound) error
}

// inbox hands the datagrams read from the module's socket to the Sink, in
// arrival order, and holds the ones it refuses (bounded; the oldest go
// first) until it takes them. It runs on the session's goroutine.
type inbox struct {
	port    int            // Config.IPPort, the port IP Commands arrive on
	sources []netip.Prefix // Config.AllowedSources
	log     *slog.Logger
	ev      eventer
	sink    putter

	held         *ring.Queue[gw.Inbound]
	timer        *time.Timer      // the next offer of what is held
	delay        *backoff.Backoff // between offers
	storeFailing bool             // the refusal was reported
}

// newInbox returns an inbox for datagrams to port from sources (any when
// empty), retrying refused ones after retryMin to retryMax.
func newInbox(port int, sources []netip.Prefix, retryMin, retryMax time.Duration, log *slog.Logger, ev eventer, sink putter) *inbox {
	b := &inbox{port: port, sources: sources, log: log, ev: ev, sink: sink, delay: backoff.New(retryMin, retryMax, backoff.Around)}
	// Beyond maxHeldDatagrams the oldest go, loudly.
	b.held = ring.New(ring.Bounds[gw.Inbound]{Len: maxHeldDatagrams, OnDrop: func(m gw.Inbound) {
		msg := fmt.Sprintf("IP Command %s from %s lost: the store refused it and %d more are waiting in memory", m.ID, m.From, maxHeldDatagrams)
		b.log.Error(msg)
		b.ev.event(gw.EventIPDropped, msg, map[string]any{"id": m.ID, "from": m.From})
	}})
	return b
}

// holding reports whether datagrams wait for the Sink; reads are put off
// meanwhile, so the module keeps the rest.
func (b *inbox) holding() bool { return b.held.Len() > 0 }

// retryC fires when what is held is due to be offered again; retry
// offers it.
func (b *inbox) retryC() <-chan time.Time { return timerC(b.timer) }

func (b *inbox) retry(ctx context.Context) {
	b.timer = nil
	b.flush(ctx)
}

// allowed reports whether ip.allowed_sources lets from through.
func (b *inbox) allowed(from netip.AddrPort) bool {
	if len(b.sources) == 0 {
		return true
	}
	if !from.IsValid() {
		return false
	}
	a := from.Addr().Unmap()
	for _, p := range b.sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// take takes one received datagram: checked against the allowlist, then
// handed to the Sink before anything else happens to it.
func (b *inbox) take(ctx context.Context, from netip.AddrPort, data []byte) {
	src := ""
	if from.IsValid() {
		src = from.String()
	}
	if !b.allowed(from) {
		msg := fmt.Sprintf("IP Command from %s dropped: source not in ip.allowed_sources", orUnknown(src))
		b.log.Warn(msg, "bytes", len(data))
		b.ev.event(gw.EventSourceRejected, msg, map[string]any{"from": src, "bytes": len(data)})
		return
	}
	if len(data) > gw.MaxUDPPayload {
		// The same rule as ip.mode os: an IP Command holds at most 1300
		// bytes, and a module reads up to 1500 (a framed push up to 64 KiB).
		msg := fmt.Sprintf("IP Command from %s dropped: it is %d bytes, one IP Command holds at most %d", orUnknown(src), len(data), gw.MaxUDPPayload)
		b.log.Warn(msg)
		b.ev.event(gw.EventIPOversize, msg, map[string]any{"from": src, "port": b.port, "size": len(data)})
		return
	}
	m := gw.Inbound{Channel: gw.ChannelIP, From: src, Port: b.port, Payload: data, Binary: !gw.IsText(data), ReceivedAt: time.Now().UTC()}
	m.ID = gw.MessageID(m)
	b.held.Push(m)
	if b.held.Len() == 1 {
		b.flush(ctx)
	}
}

// flush hands held datagrams to the Sink in order. A refusal keeps
// them and retries after a jittered, doubling delay.
func (b *inbox) flush(ctx context.Context) {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	for {
		m, ok := b.held.Peek()
		if !ok {
			break
		}
		if err := b.sink.Put(ctx, m); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := b.delay.Next()
			b.timer = time.NewTimer(wait)
			b.log.Warn("could not store an IP Command; keeping it and retrying", "id", m.ID, "held", b.held.Len(), "retry_in", wait, "err", err)
			if !b.storeFailing {
				b.storeFailing = true
				msg := fmt.Sprintf("could not store the IP Command from %s (%d bytes); it is kept in memory and retried: %v", m.From, len(m.Payload), err)
				b.ev.event(gw.EventIPStoreFailed, msg, map[string]any{"id": m.ID, "from": m.From})
			}
			return
		}
		b.log.Info("IP Command received", "id", m.ID, "from", m.From, "bytes", len(m.Payload))
		b.held.Pop()
	}
	b.storeFailing = false
	b.delay.Reset()
}

// flushAtExit gives datagrams still held a last chance when Run ends:
// they exist nowhere else.
func (b *inbox) flushAtExit() {
	if b.held.Len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.flush(ctx)
	for _, m := range b.held.Drain() {
		b.log.Error("IP Command lost at shutdown: the store refused it", "id", m.ID, "from", m.From, "bytes", len(m.Payload))
	}
}
