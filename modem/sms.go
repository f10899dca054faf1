package modem

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// errStore marks a Sink failure: the SMS stays on the SIM and is retried.
var errStore = errors.New("sink refused the message")

// smsEntry is one SMS read from the SIM with +CMGR or +CMGL.
type smsEntry struct {
	Index int // -1 for a +CMT delivered directly, which is not stored
	Stat  int
	PDU   string
	d     *deliver
	err   error
	tp    []byte // the TPDU, when the PDU split
	// base is the id of the SMS from its content alone; id and occ are
	// what assign gave it (empty for a part or a +CMT).
	base, id string
	occ      int
	// staged is what the drain stores for this entry, in one commit with
	// the rest of run (storeListing); stored and storeErr are how that
	// went.
	staged   *gw.SIMItem
	run      *listingRun
	stored   bool
	storeErr error
}

// listingRun is SMS of one listing stored in one commit, when the first
// of them is handled.
type listingRun struct {
	entries []*smsEntry
	done    bool
}

func newEntry(index, stat, length int, pdu string) *smsEntry {
	e := &smsEntry{Index: index, Stat: stat, PDU: pdu}
	tp, err := splitPDU(pdu, length)
	if err == nil {
		e.tp = tp
		e.d, err = decodeDeliver(tp)
	}
	e.err = err
	return e
}

// smsReceiver receives SMS: it drains the SIM's store in arrival order,
// reassembles concatenated SMS, hands everything to the Sink before
// deleting it from the SIM, and keeps the SIM journal, the +CMTI order and
// the store's fill level. The session routes the SMS URCs to it and runs
// it from its own goroutine only; each call that talks to the modem gets
// the commander of the engine being served.
type smsReceiver struct {
	cfg  smsSettings
	sink gw.Sink
	log  *slog.Logger
	eventer
	// urcs is the session's URC queue: the drain takes the +CMTIs that
	// arrived before its listing and puts the others back.
	urcs urcQueue
	// storeUse reports the SIM store's use for the status.
	storeUse func(gw.StoreUse)

	sets      *reassembler
	restored  bool
	needDrain bool // drain the SIM now (start, SMS DONE, unreadable +CMTI)
	// retryDrain: an SMS is still on the SIM because the sink or CMGD
	// failed. New +CMTIs wait, so nothing overtakes it; the next poll drains.
	retryDrain   bool
	skipped      int
	storageAlarm string
	storeFailing bool

	// order is the +CMTI order of the SMS not handled yet (cmti.go); ids
	// is which id the SMS in each slot has, with the SIM journal
	// (slotids.go).
	order cmtiOrder
	ids   slotIDs

	// Missed +CMTI: a drain asked for while serving (by a +CMTI or the
	// storage poll) found messages no +CMTI announced (suspects); a +CMTI
	// that turns up late clears one.
	liveDrain bool
	suspects  map[int]bool
	missed    int
}

// smsSettings are the parts of Config the receiver uses.
type smsSettings struct {
	// SMS enables receiving; without it the receiver ignores +CMTI.
	SMS               bool
	AllowedSenders    []string
	ReassemblyTimeout time.Duration
}

// urcQueue is the session's queue of URCs not acted on yet.
type urcQueue interface {
	// takeWaiting removes and returns every URC waiting, oldest first.
	takeWaiting() []at.URC
	// putBack queues u again, after those already waiting.
	putBack(u at.URC)
}

func newSMSReceiver(cfg smsSettings, sink gw.Sink, log *slog.Logger, ev eventer, urcs urcQueue, storeUse func(gw.StoreUse)) *smsReceiver {
	return &smsReceiver{
		cfg:      cfg,
		sink:     sink,
		log:      log,
		eventer:  ev,
		urcs:     urcs,
		storeUse: storeUse,
		sets:     &reassembler{timeout: cfg.ReassemblyTimeout, sink: sink, log: log, eventer: ev, pending: map[string]*pendingSet{}},
		order:    newCMTIOrder(),
		ids:      newSlotIDs(),
		suspects: map[int]bool{},
	}
}

// received reports whether a +CMGL/+CMGR <stat> is a received message
// (0 unread, 1 read); 2 and 3 are outgoing messages stored on the SIM.
func received(stat int) bool { return stat == 0 || stat == 1 }

// cmti acts on a +CMTI: the SMS it announces is read by a drain.
func (s *smsReceiver) cmti(line string) {
	if !s.cfg.SMS {
		return
	}
	_, idx, err := parseCMTI(line)
	if err != nil {
		s.log.Warn("unreadable new-SMS indication; draining the store", "line", line, "err", err)
		s.needDrain = true
		return
	}
	if s.suspects[idx] {
		// A drain has read this SMS already; its +CMTI was late, not
		// missing.
		delete(s.suspects, idx)
		return
	}
	// The new SMS is read by a drain, not by AT+CMGR=<idx>: SMS the module
	// stored without announcing them (while it hung, or with +CMTI lost)
	// may be older, and the drain hands everything over in the order it
	// was sent. While a refused SMS waits for the next poll (retryDrain),
	// new ones wait behind it.
	s.order.add(idx)
	if !s.retryDrain {
		if !s.needDrain {
			s.liveDrain = true
		}
		s.needDrain = true
	}
}

// storeReady notes that the SIM's SMS store is readable (SMS DONE):
// anything stored while the module booted has had no +CMTI.
func (s *smsReceiver) storeReady() {
	if s.cfg.SMS {
		s.needDrain = true
	}
}

// requestDrain has the SIM drained at the next step (the modem was just
// initialised or recovered: SMS may wait unannounced).
func (s *smsReceiver) requestDrain() { s.storeReady() }

// drainDue reports whether a drain is wanted now.
func (s *smsReceiver) drainDue() bool { return s.needDrain }

// restoreOnce loads what a restart left (restore) until it succeeded once.
func (s *smsReceiver) restoreOnce(ctx context.Context) {
	if !s.restored {
		s.restore(ctx)
	}
}

// directSMS takes a +CMT URC (only when someone configured CNMI mt=2 in
// modem.init: such an SMS is not stored, so it cannot be read again).
func (s *smsReceiver) directSMS(ctx context.Context, c commander, u at.URC) error {
	if !s.cfg.SMS || len(u.Extra) == 0 {
		return nil
	}
	f, _ := fields(u.Line, "+CMT:")
	length, err := field(f, len(f)-1)
	if err != nil {
		length = 0
	}
	return s.handle(ctx, c, newEntry(-1, 0, length, u.Extra[0]))
}

// drain reads every SMS on the SIM (AT+CMGL=4) and handles them in the
// order they arrived (arrivalOrder).
func (s *smsReceiver) drain(ctx context.Context, c commander) error {
	// The journal must not name a slot already deleted when the list is
	// taken: listing marks a new SMS there as read, and a read SMS the
	// journal names is taken for the one stored before.
	if err := s.saveJournal(ctx); err != nil {
		s.needDrain, s.retryDrain = false, true
		s.log.Warn("could not commit the SIM journal; the SIM is listed at the next poll", "err", err)
		return fmt.Errorf("%w: commit the SIM journal: %w", errStore, err)
	}
	r, err := c.do(ctx, "list", at.Cmd{Line: "AT+CMGL=4", Trailing: 1})
	if err != nil {
		// Retry at the next poll rather than at once: a module refusing
		// now (SIM busy) would otherwise be asked again in a tight loop.
		s.needDrain, s.retryDrain = false, true
		return err
	}
	suspect := s.liveDrain
	s.liveDrain = false
	entries := parseList(r.Lines, s.log.Warn)
	s.takeAnnouncements(entries)
	s.ids.prune(entries)
	entries = s.arrivalOrder(entries)
	if err := s.assign(ctx, entries); err != nil {
		s.needDrain, s.retryDrain = false, true
		return s.storeFailed(err, entries[0])
	}
	s.needDrain, s.retryDrain = false, false
	// Sets held complete (the process stopped between storing the last
	// part and assembling) go first: their parts were read before anything
	// still on the SIM, so assembling them later would put newer messages
	// ahead of them.
	delivered := s.sets.assembleComplete(ctx)
	// Storing a run takes its SMS off the +CMTI order; which were
	// announced is decided as the list was taken.
	announcedAtList := s.order.announced()
	// What the listing holds is stored in one commit before anything is
	// deleted from the SIM; the loop below acts on each SMS in order as
	// if it had been stored alone.
	s.storeListing(ctx, entries, delivered)
	skipped := 0
	for _, e := range entries {
		if !received(e.Stat) {
			skipped++
			continue
		}
		if e.alreadyDelivered(delivered) {
			s.log.Info("SMS part already delivered; deleting it from the SIM", "key", e.d.concatKey(), "part", e.d.Seq, "index", e.Index)
			if err := s.delete(ctx, c, e.Index); err != nil {
				return err
			}
			continue
		}
		// While the module is serving, an SMS on the SIM that no +CMTI
		// announced is a missed notification, unless its +CMTI is merely
		// late (handleURC clears it then).
		if suspect && !announcedAtList[e.Index] {
			s.suspects[e.Index] = true
		}
		if err := s.handle(ctx, c, e); err != nil {
			return err
		}
	}
	s.skipped = skipped
	// Every +CMTI acted on before the list was taken is accounted for.
	s.order.reset()
	s.sets.expire(ctx)
	// The last deletion is committed now rather than with the next SMS, so
	// that the next list finds the journal clean (see the top).
	if err := s.saveJournal(ctx); err != nil {
		s.log.Warn("could not commit the SIM journal; retried before the next list", "err", err)
	}
	return nil
}

// alreadyDelivered reports whether e is a part of a set just assembled that
// is still on the SIM (the process stopped before deleting it): stored again
// it would start a new set that can never complete.
func (e *smsEntry) alreadyDelivered(delivered map[string]bool) bool {
	return e.d != nil && e.d.Total > 0 && delivered[partID(e.d.concatKey(), e.d.Seq, e.d.TPDU)]
}

// storeListing stages what handle stores for each SMS of a listing, in
// runs that each go to the sink in one Sink.PutSIM when handle reaches
// their first SMS: a burst costs one commit instead of one per SMS. A run
// ends with a part that completes its set, because handle assembles the
// message after deleting that part, and the message must be queued ahead
// of the SMS after it; so the listing is one run unless it completes a
// concatenated SMS.
func (s *smsReceiver) storeListing(ctx context.Context, entries []*smsEntry, delivered map[string]bool) {
	now := time.Now().UTC()
	var staged []*smsEntry
	parts := false
	for _, e := range entries {
		if !received(e.Stat) || e.alreadyDelivered(delivered) {
			continue
		}
		if _, ok := e.statusReport(); ok {
			continue
		}
		if e.err == nil && !s.allowed(e.d.From) {
			continue
		}
		item := e.toStore(now)
		e.staged = &item
		parts = parts || item.Part != nil
		staged = append(staged, e)
	}
	// The parts held already tell which part completes a set; unknown,
	// every part ends its run.
	var held map[string][]gw.Segment
	if parts {
		segs, err := s.sink.Segments(ctx)
		if err != nil {
			s.log.Warn("could not load held SMS parts; storing the listing in smaller commits", "err", err)
		} else {
			held = map[string][]gw.Segment{}
			for _, sg := range segs {
				held[sg.Key] = append(held[sg.Key], sg)
			}
		}
	}
	run := &listingRun{}
	for _, e := range staged {
		run.entries = append(run.entries, e)
		e.run = run
		if p := e.staged.Part; p != nil {
			ends := held == nil
			if !ends && !slices.ContainsFunc(held[p.Key], func(h gw.Segment) bool { return h.Seq == p.Seq }) {
				held[p.Key] = append(held[p.Key], *p)
			}
			if !ends && complete(held[p.Key]) {
				delete(held, p.Key)
				ends = true
			}
			if ends {
				run = &listingRun{}
			}
		}
	}
}

// putStaged stores the staged entries of batch with the journal.
func (s *smsReceiver) putStaged(ctx context.Context, batch []*smsEntry) {
	if len(batch) == 0 {
		return
	}
	items := make([]gw.SIMItem, len(batch))
	seqs := map[int]uint64{}
	for i, e := range batch {
		items[i] = *e.staged
		if seq, ok := s.order.take(e.Index); ok {
			seqs[e.Index] = seq
		}
	}
	n, err := s.sink.PutSIM(ctx, items, s.journalNow())
	if err == nil && n < len(items) {
		err = fmt.Errorf("sink stored %d of %d SMS", n, len(items))
	}
	for i, e := range batch {
		if i >= n {
			if seq, ok := seqs[e.Index]; ok {
				s.order.put(e.Index, seq)
			}
			e.storeErr = err
			continue
		}
		e.stored = true
		e.staged.Held = items[i].Held
		if m := e.staged.Message; m != nil {
			s.ids.stored(e.Index, e.PDU, m, e.base)
		}
	}
	switch {
	case n == len(items):
		s.ids.committed()
	case n > 0:
		// The sink did not commit the journal with a prefix: what it
		// refused must stay announced, in order, across a restart.
		if err := s.sink.SaveJournal(ctx, s.journalNow()); err != nil {
			s.ids.dirty = true
			s.log.Warn("could not commit the SIM journal; retried before the next list", "err", err)
		} else {
			s.ids.committed()
		}
	}
}

// toStore is what handle stores for e, which it does not reject: a part,
// or a message (undecodable when its PDU or its text does not decode).
func (e *smsEntry) toStore(now time.Time) gw.SIMItem {
	if e.err == nil && e.d.Total > 0 {
		d := e.d
		return gw.SIMItem{Part: &gw.Segment{Key: d.concatKey(), Seq: d.Seq, Total: d.Total, TPDU: d.TPDU, ReceivedAt: now}}
	}
	m, _ := e.message(now)
	e.identify(&m)
	return gw.SIMItem{Message: &m}
}

// takeAnnouncements takes the +CMTIs that arrived before the list's answer
// and are still waiting to be handled: the SMS they announce are in the
// list, and their order is the arrival order. Other URCs wait as before.
func (s *smsReceiver) takeAnnouncements(entries []*smsEntry) {
	listed := map[int]bool{}
	for _, e := range entries {
		listed[e.Index] = true
	}
	for _, u := range s.urcs.takeWaiting() {
		if strings.HasPrefix(u.Line, "+CMTI:") && s.cfg.SMS {
			if _, idx, err := parseCMTI(u.Line); err == nil && listed[idx] && !s.suspects[idx] {
				if !s.order.has(idx) {
					s.order.add(idx)
				}
				continue
			}
		}
		s.urcs.putBack(u)
	}
}

// arrivalOrder sorts a listing into the order the SMS arrived. Those the
// module announced go in the order of their +CMTI. SMS stored without one
// (while the module hung, while simgate was down, with +CMTI lost) go by
// service centre timestamp, then SIM index, and each goes before the
// first announced SMS sent after it. SIM index order alone is not arrival
// order, since the SIM reuses freed slots; the timestamp is the network's
// clock (1-second resolution), not the Pi's.
func (s *smsReceiver) arrivalOrder(entries []*smsEntry) []*smsEntry {
	var announced, silent []*smsEntry
	for _, e := range entries {
		if s.order.has(e.Index) {
			announced = append(announced, e)
		} else {
			silent = append(silent, e)
		}
	}
	sort.SliceStable(announced, func(i, j int) bool {
		return s.order.before(announced[i].Index, announced[j].Index)
	})
	sort.SliceStable(silent, func(i, j int) bool {
		ti, tj := entryTime(silent[i]), entryTime(silent[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return silent[i].Index < silent[j].Index
	})
	out := make([]*smsEntry, 0, len(entries))
	for len(announced) > 0 || len(silent) > 0 {
		if len(silent) > 0 && (len(announced) == 0 || entryTime(silent[0]).Before(entryTime(announced[0]))) {
			out, silent = append(out, silent[0]), silent[1:]
		} else {
			out, announced = append(out, announced[0]), announced[1:]
		}
	}
	return out
}

// journalNow is the journal to commit: the stored slots and the SIM
// indexes announced but not handled yet, in announcement order.
func (s *smsReceiver) journalNow() gw.SIMJournal {
	return s.ids.snapshot(s.order.indexes())
}

// saveJournal commits the journal if it changed.
func (s *smsReceiver) saveJournal(ctx context.Context) error {
	if !s.ids.dirty {
		return nil
	}
	if err := s.sink.SaveJournal(ctx, s.journalNow()); err != nil {
		return err
	}
	s.ids.committed()
	return nil
}

// message is the Inbound a single SMS or an undecodable one is stored as;
// false for a part of a concatenated SMS. A text that does not decode
// makes the entry undecodable.
func (e *smsEntry) message(now time.Time) (gw.Inbound, bool) {
	if e.err == nil && e.d.Total > 0 {
		return gw.Inbound{}, false
	}
	if e.err == nil {
		payload, binary, err := joinText([]*deliver{e.d})
		if err == nil {
			return gw.Inbound{Channel: gw.ChannelSMS, From: e.d.From, Payload: payload, Binary: binary, Parts: 1,
				SentAt: e.d.SentAt.UTC(), ReceivedAt: now}, true
		}
		e.err = err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(e.PDU))
	if err != nil {
		raw = []byte(e.PDU) // not even hex: kept as the modem sent it
	}
	return gw.Inbound{Channel: gw.ChannelSMS, Payload: raw, Binary: true, Parts: 1, ReceivedAt: now, Undecodable: e.err.Error()}, true
}

// identicalWindow is how long after storing an SMS an identical one (same
// sender, service centre second and content) is taken for another message
// rather than the network delivering the same one again: copies a cloud
// sends within a second reach the SIM seconds apart, one after another
// when the SIM is full; a redelivery of an SMS the network already handed
// over comes after its retry timers, and after a restart there is nothing
// to compare with.
const identicalWindow = time.Minute

// assign gives every SMS of a listing the id it is stored under. An SMS
// the journal names for its slot, and that the module marked read (so it
// was listed before), keeps the id its first listing gave it: the process
// stopped before it was deleted (the journal names only SMS that had an
// identical one beside them). An SMS alone on the SIM, with no identical
// one stored in the last identicalWindow, gets the id of its sender,
// timestamp and content, so a copy the network delivers again later is
// dropped as the duplicate it is. Identical SMS on the SIM at once, or
// within identicalWindow of each other, are separate messages (a cloud
// that repeats a command within a second): each gets the first occurrence
// number whose id is neither taken nor known to the sink.
func (s *smsReceiver) assign(ctx context.Context, entries []*smsEntry) error {
	groups := map[string][]*smsEntry{}
	var bases []string
	for _, e := range entries {
		e.id, e.occ = "", 0
		if !received(e.Stat) || (e.err == nil && !s.allowed(e.d.From)) {
			continue
		}
		m, ok := e.message(time.Time{})
		if !ok {
			continue
		}
		e.base = gw.MessageID(m)
		if _, seen := groups[e.base]; !seen {
			bases = append(bases, e.base)
		}
		groups[e.base] = append(groups[e.base], e)
	}
	used := map[string]bool{}
	for _, e := range entries {
		slot, ok := s.ids.of(e.Index)
		if ok && e.base != "" && e.Stat == 1 && slot.PDU == pduHash(e.PDU) {
			e.id, e.occ = slot.ID, slot.Occurrence
			used[e.id] = true
		}
	}
	s.ids.forgetOld()
	for _, base := range bases {
		group := groups[base]
		if len(group) == 1 && !s.ids.isRecent(base) {
			if e := group[0]; e.id == "" {
				e.id = base
			}
			continue
		}
		n := 0
		for _, e := range group {
			if e.id != "" {
				continue
			}
			m, _ := e.message(time.Time{})
			for ; ; n++ {
				m.Occurrence = n
				id := gw.MessageID(m)
				if used[id] {
					continue
				}
				known, err := s.sink.Known(ctx, id)
				if err != nil {
					return err
				}
				if !known {
					e.id, e.occ = id, n
					used[id] = true
					break
				}
			}
		}
		s.log.Info("identical SMS; each is a message of its own", "count", len(group), "id", base)
	}
	// Only identical SMS need their ids remembered: an SMS alone on the SIM
	// gets the same id from its content after a restart. So ordinary
	// traffic costs the journal nothing beyond the commits it shares.
	for _, e := range entries {
		if e.id == "" || e.id == e.base && len(groups[e.base]) < 2 {
			continue
		}
		s.ids.name(e.Index, gw.SlotID{PDU: pduHash(e.PDU), ID: e.id, Occurrence: e.occ})
	}
	return nil
}

// putSMS stores m, read from SIM slot e, with the journal: the ids given
// to the listing and the order of what is announced but not stored.
func (s *smsReceiver) putSMS(ctx context.Context, e *smsEntry, m gw.Inbound) error {
	if e.Index < 0 {
		return s.sink.Put(ctx, m)
	}
	s.stage(ctx, e, gw.SIMItem{Message: &m})
	return e.storeErr
}

// stage stores the run e is in, or item alone when the drain's
// storeListing did not stage it.
func (s *smsReceiver) stage(ctx context.Context, e *smsEntry, item gw.SIMItem) {
	if e.run == nil {
		e.staged = &item
		e.run = &listingRun{entries: []*smsEntry{e}}
	}
	if !e.run.done {
		e.run.done = true
		s.putStaged(ctx, e.run.entries)
	}
}

func entryTime(e *smsEntry) time.Time {
	if e.d == nil {
		return time.Time{}
	}
	return e.d.SentAt
}

// parseList pairs +CMGL headers with their PDU lines.
func parseList(lines []string, warn func(string, ...any)) []*smsEntry {
	var out []*smsEntry
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "+CMGL:") {
			warn("stray line in +CMGL answer", "line", lines[i])
			continue
		}
		idx, stat, length, err := parseCMGL(lines[i])
		if err != nil {
			warn("unreadable +CMGL header", "line", lines[i], "err", err)
			continue
		}
		if i+1 >= len(lines) || strings.HasPrefix(lines[i+1], "+CMGL:") {
			warn("+CMGL entry without a PDU", "index", idx)
			continue
		}
		i++
		out = append(out, newEntry(idx, stat, length, lines[i]))
	}
	return out
}

// allowed reports whether sms.allowed_senders lets from through.
func (s *smsReceiver) allowed(from string) bool { return gw.SenderAllowed(s.cfg.AllowedSenders, from) }

// handle hands one SMS to the sink and only then deletes it from the SIM.
func (s *smsReceiver) handle(ctx context.Context, c commander, e *smsEntry) error {
	now := time.Now().UTC()
	if rep, ok := e.statusReport(); ok {
		// A status report the module stored (AT+CNMI ds=2) is read by the
		// drain like an SMS; it leaves the SIM once handed over.
		if !s.report(ctx, rep) {
			return nil
		}
		return s.delete(ctx, c, e.Index)
	}
	if e.err == nil && !s.allowed(e.d.From) {
		return s.reject(ctx, c, e, gw.EventSenderRejected,
			fmt.Sprintf("SMS from %s rejected: sender not in sms.allowed_senders", e.d.From),
			map[string]any{"from": e.d.From, "index": e.Index})
	}
	item := e.staged
	if item == nil {
		it := e.toStore(now)
		item = &it
	}
	if item.Message != nil {
		m := *item.Message
		if e.err != nil {
			return s.undecodable(ctx, c, e, m)
		}
		if err := s.putSMS(ctx, e, m); err != nil {
			return s.storeFailed(err, e)
		}
		s.storeOK()
		s.log.Info("SMS received", "id", m.ID, "from", m.From, "index", e.Index)
		return s.delete(ctx, c, e.Index)
	}
	seg := *item.Part
	held, err := s.putPart(ctx, e, seg)
	if err != nil {
		return s.storeFailed(err, e)
	}
	s.storeOK()
	s.log.Info("SMS part received", "key", seg.Key, "part", seg.Seq, "of", seg.Total, "index", e.Index)
	s.sets.hold(seg.Key)
	if err := s.delete(ctx, c, e.Index); err != nil {
		return err
	}
	if complete(held) {
		s.sets.assemble(ctx, seg.Key, held, false)
	}
	return nil
}

// identify sets m's id: the one assign gave the entry, else (a +CMT) the
// one its sender, timestamp and content give.
func (e *smsEntry) identify(m *gw.Inbound) {
	m.Occurrence = 0
	m.ID = gw.MessageID(*m)
	if e.id != "" {
		m.ID, m.Occurrence = e.id, e.occ
	}
}

// putPart stores one part read from SIM slot e; the journal it commits
// keeps the announcement order of the rest.
func (s *smsReceiver) putPart(ctx context.Context, e *smsEntry, seg gw.Segment) ([]gw.Segment, error) {
	if e.Index < 0 {
		return s.sink.PutSegment(ctx, seg)
	}
	s.stage(ctx, e, gw.SIMItem{Part: &seg})
	if e.storeErr != nil {
		return nil, e.storeErr
	}
	return e.staged.Held, nil
}

// undecodable stores an SMS that cannot be decoded as it was read, its PDU
// in the payload, so that nothing deleted from the SIM is lost; it is
// published on P/sms/undecodable. Only then is it deleted.
func (s *smsReceiver) undecodable(ctx context.Context, c commander, e *smsEntry, m gw.Inbound) error {
	if err := s.putSMS(ctx, e, m); err != nil {
		return s.storeFailed(err, e)
	}
	s.storeOK()
	msg := fmt.Sprintf("SMS at SIM index %d could not be decoded: %v; it was stored as %s with its PDU and deleted from the SIM", e.Index, e.err, m.ID)
	s.log.Warn(msg)
	s.event(gw.EventUndecodable, msg, map[string]any{"id": m.ID, "index": e.Index, "pdu": e.PDU})
	return s.delete(ctx, c, e.Index)
}

// reject reports an SMS simgate will not deliver, then deletes it so it
// does not fill the SIM; the event carries what identifies it.
func (s *smsReceiver) reject(ctx context.Context, c commander, e *smsEntry, typ, msg string, f map[string]any) error {
	s.log.Warn(msg)
	s.event(typ, msg, f)
	s.order.forget(e.Index)
	return s.delete(ctx, c, e.Index)
}

func (s *smsReceiver) storeFailed(err error, e *smsEntry) error {
	s.retryDrain = true // retried in order by the next poll's drain
	if !s.storeFailing {
		s.storeFailing = true
		msg := fmt.Sprintf("could not store the SMS at SIM index %d; it stays on the SIM and is retried: %v", e.Index, err)
		s.log.Warn(msg)
		s.event(gw.EventStoreFailed, msg, map[string]any{"index": e.Index})
	}
	return fmt.Errorf("%w: %w", errStore, err)
}

func (s *smsReceiver) storeOK() { s.storeFailing = false }

// delete removes an SMS from the SIM after it was handed off.
func (s *smsReceiver) delete(ctx context.Context, c commander, idx int) error {
	if idx < 0 {
		return nil
	}
	_, err := c.do(ctx, "delete", at.Cmd{Line: fmt.Sprintf("AT+CMGD=%d", idx)})
	if err != nil && cmsCode(err) != 321 {
		// It is stored already; reading it again later is harmless (the
		// journal gives it the same id and the sink drops the copy),
		// leaving it would fill the SIM.
		s.retryDrain = true
		return err
	}
	s.ids.deleted(idx)
	return nil
}

// restore loads what a restart left: the SIM journal (the ids given and
// the +CMTI order) and the parts of concatenated SMS, whose wait resumes.
func (s *smsReceiver) restore(ctx context.Context) {
	j, err := s.sink.Journal(ctx)
	if err != nil {
		s.log.Warn("could not load the SIM journal; retrying at the next reconnect", "err", err)
		return
	}
	s.ids.load(j)
	// SMS announced before the restart keep their order ahead of any
	// announced from now on.
	for _, idx := range j.Announced {
		if !s.order.has(idx) {
			s.order.add(idx)
		}
	}
	if s.sets.restore(ctx) {
		s.restored = true
	}
}

// poll is the SMS part of the session's poll: it reports missed +CMTIs,
// retries a refused SMS, times out incomplete concatenated SMS and watches
// the store.
func (s *smsReceiver) poll(ctx context.Context, c commander) error {
	if err := s.missedNotifications(ctx, c); err != nil {
		return err
	}
	if s.retryDrain {
		s.needDrain = true
	}
	s.sets.expire(ctx)
	return s.checkStorage(ctx, c)
}

// missedNotifications reports SMS the last storage drain found that no
// +CMTI announced, even late: the module stores SMS but stopped telling
// (a firmware fault, or someone changed +CNMI). Routing them again is the
// repair; the polls keep draining meanwhile, so nothing is lost.
func (s *smsReceiver) missedNotifications(ctx context.Context, c commander) error {
	if len(s.suspects) == 0 {
		return nil
	}
	n := len(s.suspects)
	clear(s.suspects)
	s.missed += n
	_, err := c.do(ctx, "route new SMS", at.Cmd{Line: "AT+CNMI=2,1,0,0,0"})
	msg := fmt.Sprintf("%d SMS reached the SIM without a +CMTI notification (%d since start); they were read by polling, and new-SMS routing (AT+CNMI) is set again", n, s.missed)
	if err != nil {
		msg = fmt.Sprintf("%d SMS reached the SIM without a +CMTI notification (%d since start); they were read by polling, but setting new-SMS routing again failed: %v", n, s.missed, err)
	}
	s.log.Warn(msg)
	s.event(gw.EventMissedNotification, msg, map[string]any{"count": n, "total": s.missed})
	return err
}

// checkStorage reads how full the SIM's SMS store is. A full store refuses
// new SMS silently, so the session drains whatever is left on it and warns
// before it fills.
func (s *smsReceiver) checkStorage(ctx context.Context, c commander) error {
	r, err := c.do(ctx, "read storage", at.Cmd{Line: "AT+CPMS?"})
	if err != nil {
		return err
	}
	if len(r.Lines) == 0 {
		return nil
	}
	used, total, err := parseCPMS(r.Lines[0])
	if err != nil {
		s.log.Warn("unreadable storage answer", "line", r.Lines[0], "err", err)
		return nil
	}
	s.storeUse(gw.StoreUse{Used: used, Total: total})
	alarm := ""
	switch {
	case total > 0 && used >= total:
		alarm = gw.EventStorageFull
	case total > 0 && used*5 >= total*4:
		alarm = gw.EventStorageNearlyFull
	}
	if alarm != "" && alarm != s.storageAlarm {
		msg := fmt.Sprintf("SIM SMS store holds %d of %d messages; draining it", used, total)
		if alarm == gw.EventStorageFull {
			msg = fmt.Sprintf("SIM SMS store is full (%d of %d): the network refuses new SMS until it is drained", used, total)
		}
		s.log.Warn(msg)
		s.event(alarm, msg, map[string]any{"used": used, "total": total})
	}
	s.storageAlarm = alarm
	if used > s.skipped {
		// Nothing should be waiting: every +CMTI has been acted on.
		s.liveDrain = !s.needDrain && !s.retryDrain
		s.needDrain = true
	}
	return nil
}

// hexUpper is the PDU hex modems expect.
func hexUpper(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }
