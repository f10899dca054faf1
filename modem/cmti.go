package modem

import (
	"cmp"
	"slices"
)

// cmtiOrder is the order the module announced SMS in (+CMTI), for each SIM
// index whose SMS is not handled yet: the arrival order, which SIM indexes
// are not (the SIM reuses freed slots).
type cmtiOrder struct {
	seq  map[int]uint64
	last uint64
}

func newCMTIOrder() cmtiOrder { return cmtiOrder{seq: map[int]uint64{}} }

// add records an announcement at idx, after every one before it.
func (o *cmtiOrder) add(idx int) {
	o.last++
	o.seq[idx] = o.last
}

// has reports whether idx was announced and is not handled yet.
func (o *cmtiOrder) has(idx int) bool {
	_, ok := o.seq[idx]
	return ok
}

// before reports whether idx a was announced before idx b.
func (o *cmtiOrder) before(a, b int) bool { return o.seq[a] < o.seq[b] }

// take forgets idx and returns its place, for put to restore if storing
// its SMS fails.
func (o *cmtiOrder) take(idx int) (uint64, bool) {
	seq, ok := o.seq[idx]
	delete(o.seq, idx)
	return seq, ok
}

// put gives idx back the place take returned.
func (o *cmtiOrder) put(idx int, seq uint64) { o.seq[idx] = seq }

// forget drops idx: its SMS is handled.
func (o *cmtiOrder) forget(idx int) { delete(o.seq, idx) }

// reset forgets every announcement: a listing accounted for them all.
func (o *cmtiOrder) reset() { clear(o.seq) }

// announced returns the set of indexes announced and not handled yet.
func (o *cmtiOrder) announced() map[int]bool {
	out := make(map[int]bool, len(o.seq))
	for idx := range o.seq {
		out[idx] = true
	}
	return out
}

// indexes returns the indexes announced and not handled yet, in
// announcement order; nil when there are none.
func (o *cmtiOrder) indexes() []int {
	var out []int
	for idx := range o.seq {
		out = append(out, idx)
	}
	slices.SortFunc(out, func(a, b int) int { return cmp.Compare(o.seq[a], o.seq[b]) })
	return out
}
