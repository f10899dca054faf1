package modem

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/gw"
)

// slotIDs remembers which id the SMS in each SIM slot was given, so that
// one read again keeps it: the SIM journal as last committed to the Sink
// (only slots whose SMS had an identical one beside them), the SMS stored
// and not yet deleted in this process, and when an SMS with each content
// id was last stored (identicalWindow).
type slotIDs struct {
	journal gw.SIMJournal
	// dirty is set when the journal changed since it was last committed.
	dirty     bool
	undeleted map[int]gw.SlotID
	recent    map[string]time.Time
}

func newSlotIDs() slotIDs {
	return slotIDs{undeleted: map[int]gw.SlotID{}, recent: map[string]time.Time{}}
}

// load takes the journal a restart left.
func (j *slotIDs) load(journal gw.SIMJournal) { j.journal = journal }

// snapshot is the journal to commit: the stored slots, and the SIM indexes
// announced but not handled yet in the order given.
func (j *slotIDs) snapshot(announced []int) gw.SIMJournal {
	out := j.journal.Clone()
	out.Announced = announced
	return out
}

// committed notes that the journal as it is now is durable.
func (j *slotIDs) committed() { j.dirty = false }

// prune forgets stored slots the listing shows deleted: empty, or holding
// another SMS.
func (j *slotIDs) prune(entries []*smsEntry) {
	if len(j.journal.Slots) == 0 {
		return
	}
	now := map[int]string{}
	for _, e := range entries {
		now[e.Index] = pduHash(e.PDU)
	}
	for idx, slot := range j.journal.Slots {
		if now[idx] != slot.PDU {
			delete(j.journal.Slots, idx)
			j.dirty = true
		}
	}
}

// of returns the id the SMS in slot idx was given, by the journal or by
// this process.
func (j *slotIDs) of(idx int) (gw.SlotID, bool) {
	if slot, ok := j.journal.Slots[idx]; ok {
		return slot, true
	}
	slot, ok := j.undeleted[idx]
	return slot, ok
}

// name records in the journal the id given to the SMS in slot idx.
func (j *slotIDs) name(idx int, slot gw.SlotID) {
	if j.journal.Slots[idx] == slot {
		return
	}
	if j.journal.Slots == nil {
		j.journal.Slots = map[int]gw.SlotID{}
	}
	j.journal.Slots[idx] = slot
	j.dirty = true
}

// stored notes that the SMS in slot idx was stored as m; base is its
// content id ("" for none).
func (j *slotIDs) stored(idx int, pdu string, m *gw.Inbound, base string) {
	j.undeleted[idx] = gw.SlotID{PDU: pduHash(pdu), ID: m.ID, Occurrence: m.Occurrence}
	if base != "" {
		j.recent[base] = time.Now()
	}
}

// deleted forgets slot idx: its SMS left the SIM.
func (j *slotIDs) deleted(idx int) {
	if _, ok := j.journal.Slots[idx]; ok {
		delete(j.journal.Slots, idx)
		j.dirty = true
	}
	delete(j.undeleted, idx)
}

// forgetOld forgets the content ids stored identicalWindow ago or more.
func (j *slotIDs) forgetOld() {
	for base, at := range j.recent {
		if time.Since(at) >= identicalWindow {
			delete(j.recent, base)
		}
	}
}

// isRecent reports whether an SMS with content id base was stored within
// identicalWindow (as of the last forgetOld).
func (j *slotIDs) isRecent(base string) bool {
	_, ok := j.recent[base]
	return ok
}

// pduHash names a PDU as read from the SIM.
func pduHash(pdu string) string {
	sum := sha256.Sum256([]byte(strings.ToUpper(strings.TrimSpace(pdu))))
	return hex.EncodeToString(sum[:8])
}
