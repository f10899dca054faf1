package modemsim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/warthog618/sms/encoding/tpdu"
)

// Storage status of a slot, as numbered in PDU mode.
const (
	statRecUnread = iota
	statRecRead
	statStoUnsent
	statStoSent
	statAll
)

var statNames = []string{"REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"}

// slot is one used SMS storage location on the SIM.
type slot struct {
	status int
	from   string
	tpdu   []byte
}

func (sl *slot) state(index int, smsc string) StoredSMS {
	st := StoredSMS{
		Index:  index,
		Status: statNames[sl.status],
		From:   sl.from,
		PDU:    strings.ToUpper(hex.EncodeToString(append(smscPrefix(smsc), sl.tpdu...))),
	}
	if info, err := describe(sl.tpdu, tpdu.MT); err == nil {
		st.Text, st.Encoding = info.text, info.enc
		st.ConcatRef, st.Seq, st.Total = info.ref, info.seq, info.total
	}
	return st
}

func smsCommands() map[string]spec {
	return map[string]spec{
		"+CMGF": {fn: (*Sim).cmdCMGF, phase: phaseSIM},
		"+CSMS": {fn: (*Sim).cmdCSMS, phase: phaseSMSDone, sms: true},
		"+CPMS": {fn: (*Sim).cmdCPMS, phase: phaseSMSDone, sms: true},
		"+CNMI": {fn: (*Sim).cmdCNMI, phase: phaseSMSDone, sms: true},
		"+CNMA": {fn: (*Sim).cmdCNMA, phase: phaseSMSDone, sms: true},
		"+CSCA": {fn: (*Sim).cmdCSCA, phase: phaseSMSDone, sms: true},
		"+CSMP": {fn: (*Sim).cmdCSMP, phase: phaseSMSDone, sms: true},
		"+CSDH": {fn: (*Sim).cmdAccept, phase: phaseSMSDone, sms: true},
		"+CMGR": {fn: (*Sim).cmdCMGR, phase: phaseSMSDone, sms: true},
		"+CMGL": {fn: (*Sim).cmdCMGL, phase: phaseSMSDone, sms: true},
		"+CMGD": {fn: (*Sim).cmdCMGD, phase: phaseSMSDone, sms: true},
		"+CMGS": {fn: (*Sim).cmdCMGS, phase: phaseSMSDone, sms: true},
	}
}

func (s *Sim) cmdCMGF(c *command, r *reply) error {
	return numberSetting(c, r, "+CMGF", &s.set.cmgf, 1, "(0,1)")
}

func (s *Sim) cmdCSMS(c *command, r *reply) error {
	switch c.op {
	case opSet:
		n, err := c.intArg(0, -1, 0, 1)
		if err != nil {
			return cms(302)
		}
		s.set.csms = n
		r.line("+CSMS: 1,1,1")
	case opRead:
		r.line(fmt.Sprintf("+CSMS: %d,1,1,1", s.set.csms))
	case opTest:
		r.line("+CSMS: (0,1)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) used() int {
	n := 0
	for _, sl := range s.store {
		if sl != nil {
			n++
		}
	}
	return n
}

func (s *Sim) cmdCPMS(c *command, r *reply) error {
	u, t := s.used(), len(s.store)
	switch c.op {
	case opSet:
		if len(c.args) == 0 || len(c.args) > 3 {
			return cms(302)
		}
		for i := range c.args {
			mem := strings.ToUpper(c.strArg(i, "SM"))
			if mem != "SM" {
				// This SIM-only module has no ME storage.
				return cms(302)
			}
		}
		r.line(fmt.Sprintf("+CPMS: %d,%d,%d,%d,%d,%d", u, t, u, t, u, t))
	case opRead:
		r.line(fmt.Sprintf(`+CPMS: "SM",%d,%d,"SM",%d,%d,"SM",%d,%d`, u, t, u, t, u, t))
	case opTest:
		r.line(`+CPMS: ("SM"),("SM"),("SM")`)
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCNMI(c *command, r *reply) error {
	switch c.op {
	case opSet:
		his := []int{3, 3, 3, 2, 1}
		var v [5]int
		for i := range v {
			n, err := c.intArg(i, 0, 0, his[i])
			if err != nil {
				return cms(302)
			}
			v[i] = n
		}
		s.set.cnmi = v
	case opRead:
		v := s.set.cnmi
		r.line(fmt.Sprintf("+CNMI: %d,%d,%d,%d,%d", v[0], v[1], v[2], v[3], v[4]))
	case opTest:
		r.line("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCSCA(c *command, r *reply) error {
	switch c.op {
	case opRead:
		toa := 129
		if strings.HasPrefix(s.opts.SMSC, "+") {
			toa = 145
		}
		r.line(fmt.Sprintf(`+CSCA: "%s",%d`, s.opts.SMSC, toa))
	case opSet, opTest:
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCSMP(c *command, r *reply) error {
	if c.op == opRead {
		r.line("+CSMP: 17,167,0,0")
	}
	return nil
}

// slotIndex converts a storage index of the host to a slot number.
func (s *Sim) slotIndex(index int) (int, bool) {
	i := index - s.prof.indexBase
	return i, i >= 0 && i < len(s.store)
}

func (s *Sim) cmdCMGR(c *command, r *reply) error {
	switch c.op {
	case opTest:
		return nil
	case opSet:
	default:
		return errPlain
	}
	s.count(CounterCMGR)
	idx, err := c.intArg(0, -1, 0, 1<<20)
	if err != nil {
		return cms(321)
	}
	i, ok := s.slotIndex(idx)
	if !ok {
		return cms(321)
	}
	sl := s.store[i]
	if sl == nil {
		if s.opts.EmptyRead == "ok" {
			return nil
		}
		return cms(321)
	}
	if s.set.cmgf == 0 {
		r.group(fmt.Sprintf("+CMGR: %d,,%d", sl.status, len(sl.tpdu)), s.pduHex(sl))
	} else {
		info, err := describe(sl.tpdu, tpdu.MT)
		if err != nil {
			return cms(500)
		}
		r.group(fmt.Sprintf(`+CMGR: "%s","%s",,"%s"`, statNames[sl.status], info.from, textTime(info.scts)), s.textBody(info))
	}
	if sl.status == statRecUnread {
		sl.status = statRecRead
	}
	return nil
}

func (s *Sim) pduHex(sl *slot) string {
	return strings.ToUpper(hex.EncodeToString(append(smscPrefix(s.opts.SMSC), sl.tpdu...)))
}

// textTime formats an SCTS as text mode shows it: "yy/MM/dd,hh:mm:ss±zz"
// with the zone in quarter hours.
func textTime(t time.Time) string {
	_, off := t.Zone()
	q := off / 900
	sign := "+"
	if q < 0 {
		sign, q = "-", -q
	}
	return t.Format("06/01/02,15:04:05") + fmt.Sprintf("%s%02d", sign, q)
}

// textBody renders a message body in text mode per AT+CSCS.
func (s *Sim) textBody(info segInfo) string {
	switch {
	case info.enc == enc8Bit:
		return info.text
	case s.set.cscs == "UCS2":
		u := utf16.Encode([]rune(info.text))
		b := make([]byte, 2*len(u))
		for i, v := range u {
			binary.BigEndian.PutUint16(b[2*i:], v)
		}
		return strings.ToUpper(hex.EncodeToString(b))
	}
	return info.text
}

func (s *Sim) cmdCMGL(c *command, r *reply) error {
	if c.op == opTest {
		if s.set.cmgf == 0 {
			r.line("+CMGL: (0-4)")
		} else {
			r.line(`+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")`)
		}
		return nil
	}
	if c.op == opRead {
		return errPlain
	}
	s.count(CounterCMGL)
	want := statRecUnread
	if c.op == opSet {
		if s.set.cmgf == 0 {
			n, err := c.intArg(0, 0, 0, 4)
			if err != nil {
				return cms(302)
			}
			want = n
		} else {
			a := strings.ToUpper(c.strArg(0, "REC UNREAD"))
			want = -1
			for i, n := range statNames {
				if n == a {
					want = i
				}
			}
			if want < 0 {
				return cms(302)
			}
		}
	}
	for i, sl := range s.store {
		if sl == nil || (want != statAll && sl.status != want) {
			continue
		}
		idx := i + s.prof.indexBase
		if s.set.cmgf == 0 {
			r.group(fmt.Sprintf("+CMGL: %d,%d,,%d", idx, sl.status, len(sl.tpdu)), s.pduHex(sl))
		} else {
			info, err := describe(sl.tpdu, tpdu.MT)
			if err != nil {
				continue
			}
			r.group(fmt.Sprintf(`+CMGL: %d,"%s","%s",,"%s"`, idx, statNames[sl.status], info.from, textTime(info.scts)), s.textBody(info))
		}
		if sl.status == statRecUnread {
			sl.status = statRecRead
		}
	}
	return nil
}

func (s *Sim) cmdCMGD(c *command, r *reply) error {
	if c.op == opTest {
		lo := s.prof.indexBase
		r.line(fmt.Sprintf("+CMGD: (%d-%d),(0-4)", lo, lo+len(s.store)-1))
		return nil
	}
	if c.op != opSet {
		return errPlain
	}
	s.count(CounterCMGD)
	idx, err := c.intArg(0, -1, 0, 1<<20)
	if err != nil {
		return cms(321)
	}
	flag, err := c.intArg(1, 0, 0, 4)
	if err != nil {
		return cms(302)
	}
	freed := false
	if flag == 0 {
		i, ok := s.slotIndex(idx)
		if !ok {
			return cms(321)
		}
		freed = s.store[i] != nil
		s.store[i] = nil
	} else {
		// delflag 1: read; 2: read and sent; 3: read, sent and unsent; 4: all.
		del := map[int][]int{1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}[flag]
		for i, sl := range s.store {
			if sl == nil {
				continue
			}
			for _, st := range del {
				if sl.status == st {
					s.store[i] = nil
					freed = true
				}
			}
		}
	}
	if freed {
		// The module tells the network memory is available again (SMMA);
		// what the network held back is delivered now.
		r.then(s.deliverQueuedLocked)
	}
	return nil
}

func (s *Sim) cmdCNMA(c *command, r *reply) error {
	if c.op == opTest {
		r.line("+CNMA: (0-2)")
		return nil
	}
	n := 0
	if c.op == opSet {
		var err error
		if n, err = c.intArg(0, 0, 0, 2); err != nil {
			return cms(302)
		}
	}
	if s.set.csms != 1 || s.cmtWait == nil {
		return cms(340)
	}
	s.count(CounterCNMA)
	d := s.cmtWait
	s.cmtWait = nil
	if s.cmtTimer != nil {
		s.cmtTimer.Stop()
		s.cmtTimer = nil
	}
	if n == 2 {
		// A negative acknowledgement: the network keeps the message.
		s.netQueue = append(s.netQueue, d)
	}
	r.then(s.nextCMTLocked)
	return nil
}

// cmdCMGS sends an SMS: "\r\n> ", then the PDU in hex (or text in text
// mode) ended by Ctrl-Z; ESC cancels.
func (s *Sim) cmdCMGS(c *command, r *reply) error {
	if c.op == opTest {
		return nil
	}
	if c.op != opSet {
		return errPlain
	}
	if s.set.cmgf == 0 {
		n, err := c.intArg(0, -1, 7, 164)
		if err != nil || len(c.args) != 1 {
			return cms(304)
		}
		s.startData(modeText, 0, s.set.echo, func(data []byte, cancelled bool, r *reply) error {
			if cancelled {
				return nil
			}
			tp, smsc, info, err := decodeSubmit(string(data), n)
			if err != nil {
				s.log.Debug("bad SMS-SUBMIT", "err", err)
				return cms(304)
			}
			return s.submit(tp, smsc, info, r)
		})
	} else {
		da := c.strArg(0, "")
		if da == "" {
			return cms(305)
		}
		s.startData(modeText, 0, s.set.echo, func(data []byte, cancelled bool, r *reply) error {
			if cancelled {
				return nil
			}
			text := string(data)
			if s.set.cscs == "UCS2" {
				b, err := hex.DecodeString(text)
				if err != nil || len(b)%2 != 0 {
					return cms(305)
				}
				u := make([]uint16, len(b)/2)
				for i := range u {
					u[i] = binary.BigEndian.Uint16(b[2*i:])
				}
				text = string(utf16.Decode(u))
			}
			tp, err := submitText(da, text, s.mr)
			if err != nil {
				return cms(305)
			}
			info, err := describe(tp, tpdu.MO)
			if err != nil {
				return cms(305)
			}
			return s.submit(tp, "", info, r)
		})
	}
	r.prompt = "\r\n> "
	return nil
}

// submit sends one SMS-SUBMIT to the network and records it.
func (s *Sim) submit(tp []byte, smsc string, info segInfo, r *reply) error {
	if s.faults.SendError != 0 {
		return cms(s.faults.SendError)
	}
	if !registered(s.regStat()) {
		return cms(331)
	}
	mr := s.mr
	s.mr = (s.mr + 1) % 256
	s.sentSMS = append(s.sentSMS, SentSMS{
		To:        info.to,
		Text:      info.text,
		Data:      info.data,
		Encoding:  info.enc,
		Reference: mr,
		PDU:       strings.ToUpper(hex.EncodeToString(tp)),
		SMSC:      smsc,
		ConcatRef: info.ref,
		Seq:       info.seq,
		Total:     info.total,
	})
	if info.enc == enc8Bit {
		s.sentSMS[len(s.sentSMS)-1].Text = ""
	}
	s.sentSMS = trim(s.sentSMS)
	if s.hooks.SMS != nil {
		s.hooks.SMS(s.sentSMS[len(s.sentSMS)-1])
	}
	s.count(CounterCMGS)
	s.scheduleReport(tp, mr, info.to)
	r.line(fmt.Sprintf("+CMGS: %d", mr))
	r.delay = s.opts.SendDelay
	return nil
}

// nextRef returns the next concatenation reference.
func (s *Sim) nextRef(ref16 bool) int {
	if ref16 {
		s.ref16 = (s.ref16 + 1) % 65536
		return s.ref16
	}
	s.ref8 = (s.ref8 + 1) % 256
	return s.ref8
}

// InjectSMS makes the network deliver m. Each segment is stored on the SIM
// and indicated as AT+CNMI asks (+CMTI, or +CMT without storing); the
// storage indexes are returned. A segment that does not fit makes it
// return ErrStoreFull: the module says nothing, and the network keeps the
// segment and delivers it once a slot is freed. While the module is off,
// booting, unplugged or unregistered the network holds every segment and
// delivers it when it can; those segments have no index yet.
func (s *Sim) InjectSMS(m SMS) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("inject sms: simulator closed")
	}
	var one []*delivery
	if len(m.TPDU) > 0 {
		if len(m.TPDU) > 164 {
			return nil, fmt.Errorf("inject sms: tpdu of %d bytes: an SMS holds at most 164", len(m.TPDU))
		}
		one = []*delivery{{tpdu: append([]byte(nil), m.TPDU...), from: m.From}}
	} else {
		var err error
		if one, err = buildDeliver(m, s.nextRef, time.Now()); err != nil {
			return nil, fmt.Errorf("inject sms: %w", err)
		}
	}
	if m.Copies < 0 || m.Copies > 255 {
		return nil, fmt.Errorf("inject sms: copies %d: want 0..255", m.Copies)
	}
	var dels []*delivery
	for range max(m.Copies, 1) {
		for _, d := range one {
			c := *d
			c.silent = m.Silent
			dels = append(dels, &c)
		}
	}
	idx := []int{}
	if s.opts.DeliveryGap > 0 {
		// One at a time, in order behind what the network holds already;
		// the indexes are not known yet.
		s.netQueue = append(s.netQueue, dels...)
		s.deliverQueuedLocked()
		return idx, nil
	}
	full := false
	for _, d := range dels {
		if !s.canReceive() {
			s.netQueue = append(s.netQueue, d)
			continue
		}
		i, err := s.deliverLocked(d)
		if err != nil {
			full = true
			continue
		}
		if i >= 0 {
			idx = append(idx, i)
		}
	}
	if full {
		return idx, fmt.Errorf("inject sms: %w", ErrStoreFull)
	}
	return idx, nil
}

// canReceive tells whether the network can deliver an SMS now.
func (s *Sim) canReceive() bool {
	return !s.closed && s.phase >= phaseSMSDone && registered(s.regStat())
}

// deliverLocked hands one segment to the module: a +CMT, or a stored SMS
// with an optional +CMTI. It returns the storage index, or -1 when the
// segment was not stored. Caller holds mu.
func (s *Sim) deliverLocked(d *delivery) (int, error) {
	mode, mt := s.set.cnmi[0], s.set.cnmi[1]
	if mt == 2 && mode != 0 {
		if s.set.csms == 1 && s.cmtWait != nil {
			s.cmtQueue = append(s.cmtQueue, d)
			return -1, nil
		}
		s.sendCMT(d)
		return -1, nil
	}
	free := -1
	for i, sl := range s.store {
		if sl == nil {
			free = i
			break
		}
	}
	if free < 0 {
		s.count(CounterRefusedFull)
		s.netQueue = append(s.netQueue, d)
		return -1, ErrStoreFull
	}
	s.store[free] = &slot{status: statRecUnread, from: d.from, tpdu: d.tpdu}
	idx := free + s.prof.indexBase
	if (mt == 1 || mt == 3) && mode != 0 && !d.silent {
		s.urc(fmt.Sprintf(`+CMTI: "SM",%d`, idx))
		s.count(CounterCMTI)
	}
	return idx, nil
}

// sendCMT delivers a segment directly: "+CMT: ,<len>" and the PDU. With
// AT+CSMS=1 the host must acknowledge it with AT+CNMA in time.
func (s *Sim) sendCMT(d *delivery) {
	sl := &slot{tpdu: d.tpdu}
	s.emit([]byte(fmt.Sprintf("\r\n+CMT: ,%d\r\n%s\r\n", len(d.tpdu), s.pduHex(sl))))
	s.count(CounterCMT)
	if s.set.csms != 1 {
		return
	}
	s.cmtWait = d
	gen := s.bootGen
	s.cmtTimer = time.AfterFunc(s.opts.AckTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.bootGen != gen || s.cmtWait != d {
			return
		}
		s.ackTimeoutLocked()
	})
}

// ackTimeoutLocked is 27.005's reaction to a missing +CNMA: routing to the
// host is switched off (<mt> and <ds> to 0) and the network, having got no
// acknowledgement, delivers the message again, now to storage.
func (s *Sim) ackTimeoutLocked() {
	s.count(CounterAckTimeouts)
	s.set.cnmi[1], s.set.cnmi[3] = 0, 0
	pending := append([]*delivery{s.cmtWait}, s.cmtQueue...)
	s.cmtWait, s.cmtQueue, s.cmtTimer = nil, nil, nil
	for _, d := range pending {
		if _, err := s.deliverLocked(d); err != nil {
			s.log.Debug("redelivery after ack timeout refused", "err", err)
		}
	}
}

// nextCMTLocked sends the next direct delivery once the previous one was
// acknowledged.
func (s *Sim) nextCMTLocked() {
	if s.cmtWait != nil || len(s.cmtQueue) == 0 {
		return
	}
	d := s.cmtQueue[0]
	s.cmtQueue = s.cmtQueue[1:]
	if _, err := s.deliverLocked(d); err != nil {
		s.log.Debug("queued delivery refused", "err", err)
	}
}

// cmtAbandonLocked returns unacknowledged direct deliveries to the network
// when the module goes away.
func (s *Sim) cmtAbandonLocked() {
	if s.cmtTimer != nil {
		s.cmtTimer.Stop()
		s.cmtTimer = nil
	}
	if s.cmtWait != nil {
		s.netQueue = append(s.netQueue, s.cmtWait)
	}
	s.netQueue = append(s.netQueue, s.cmtQueue...)
	s.cmtWait, s.cmtQueue = nil, nil
}

// deliverQueuedLocked delivers what the network holds, in order.
func (s *Sim) deliverQueuedLocked() {
	if !s.canReceive() || len(s.netQueue) == 0 {
		return
	}
	if s.opts.DeliveryGap > 0 {
		s.deliverNextLocked()
		return
	}
	q := s.netQueue
	s.netQueue = nil
	for _, d := range q {
		if _, err := s.deliverLocked(d); err != nil {
			s.log.Debug("held delivery refused", "err", err)
		}
	}
}

// deliverNextLocked delivers the first segment the network holds and
// schedules the next one Options.DeliveryGap later. A segment the full SIM
// refuses goes back to the front and waits, with the rest behind it, for
// the next chance (a registration, a boot). Caller holds mu.
func (s *Sim) deliverNextLocked() {
	if s.gapTimer != nil || !s.canReceive() || len(s.netQueue) == 0 {
		return
	}
	d := s.netQueue[0]
	rest := s.netQueue[1:]
	s.netQueue = nil
	if _, err := s.deliverLocked(d); err != nil {
		// deliverLocked put d back in the (emptied) queue.
		s.netQueue = append(s.netQueue, rest...)
		return
	}
	s.netQueue = append(s.netQueue, rest...)
	// The gap follows every delivery, also the last one held: the next
	// injection waits for it too.
	s.gapTimer = time.AfterFunc(s.opts.DeliveryGap, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.gapTimer = nil
		// While the module cannot receive, nothing is delivered here; the
		// boot or registration that makes it able to calls again.
		s.deliverNextLocked()
	})
}
