package modemsim

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/simgate/simgate/internal/gw"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/gsm7"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// Encodings of an SMS.
const (
	encGSM7 = "gsm7"
	encUCS2 = "ucs2"
	enc8Bit = "8bit"
)

// DCS values for the three encodings (23.038 general data coding, class
// none, uncompressed).
var dcsOf = map[string]byte{encGSM7: 0x00, enc8Bit: 0x04, encUCS2: 0x08}

// delivery is one SMS-DELIVER segment on its way from the network.
type delivery struct {
	tpdu   []byte
	from   string
	silent bool // stored without a +CMTI
}

// segLimits returns how many units (septets, or octets for ucs2 and 8bit)
// fit in one segment with no UDH and with a concatenation UDH.
func segLimits(enc string, ref16 bool) (single, concat int) {
	udh := 6 // UDHL + IEI + IEDL + ref + total + seq
	if ref16 {
		udh = 7
	}
	switch enc {
	case encGSM7:
		// 140 octets hold 160 septets; the UDH and its fill bits take
		// whole septets.
		return 160, (140*8 - udh*8) / 7
	case encUCS2:
		return 140, (140 - udh) &^ 1
	default:
		return 140, 140 - udh
	}
}

// encodeUnits converts the message to the units its encoding splits on:
// unpacked septets (escape sequences included), UTF-16BE octets or raw data.
func encodeUnits(m *SMS) (enc string, units []byte, err error) {
	enc = m.Encoding
	if enc == "" {
		switch {
		case m.Data != nil:
			enc = enc8Bit
		default:
			if _, err := gw.EncodeGSM7([]byte(m.Text)); err == nil {
				enc = encGSM7
			} else {
				enc = encUCS2
			}
		}
	}
	switch enc {
	case encGSM7:
		if !utf8.ValidString(m.Text) {
			return "", nil, errors.New("text is not valid UTF-8")
		}
		u, err := gw.EncodeGSM7([]byte(m.Text))
		if err != nil {
			return "", nil, fmt.Errorf("text does not fit the GSM 7-bit alphabet: %w", err)
		}
		return enc, u, nil
	case encUCS2:
		if !utf8.ValidString(m.Text) {
			return "", nil, errors.New("text is not valid UTF-8")
		}
		u16 := utf16.Encode([]rune(m.Text))
		b := make([]byte, 2*len(u16))
		for i, v := range u16 {
			binary.BigEndian.PutUint16(b[2*i:], v)
		}
		return enc, b, nil
	case enc8Bit:
		if m.Data == nil && m.Text != "" {
			return enc, []byte(m.Text), nil
		}
		return enc, append([]byte(nil), m.Data...), nil
	}
	return "", nil, fmt.Errorf("encoding %q: want gsm7, ucs2 or 8bit", m.Encoding)
}

// splitUnits cuts units into parts segments of at most limit units each,
// as even as possible, never inside a GSM escape sequence or a UTF-16
// surrogate pair.
func splitUnits(enc string, units []byte, parts, limit int) ([][]byte, error) {
	step := 1
	if enc == encUCS2 {
		step = 2
	}
	cut := func(end int) int {
		switch enc {
		case encGSM7:
			// Do not leave an escape at the end of a segment.
			esc := 0
			for k := end - 1; k >= 0 && units[k] == 0x1b; k-- {
				esc++
			}
			if esc%2 == 1 {
				end--
			}
		case encUCS2:
			if end >= 2 && end < len(units) {
				if v := binary.BigEndian.Uint16(units[end-2:]); v >= 0xd800 && v < 0xdc00 {
					end -= 2
				}
			}
		}
		return end
	}
	var segs [][]byte
	start := 0
	for i := range parts {
		left := parts - i
		remaining := (len(units) - start) / step
		size := (remaining + left - 1) / left * step
		size = min(size, limit/step*step)
		end := min(start+size, len(units))
		if i < parts-1 {
			end = cut(end)
		}
		if end <= start {
			return nil, fmt.Errorf("message too short for %d parts", parts)
		}
		segs = append(segs, units[start:end])
		start = end
	}
	if start < len(units) {
		return nil, fmt.Errorf("message too long for %d parts", parts)
	}
	return segs, nil
}

// buildDeliver builds the SMS-DELIVER TPDUs of m, in delivery order.
// nextRef returns the next concatenation reference.
func buildDeliver(m SMS, nextRef func(ref16 bool) int, now time.Time) ([]*delivery, error) {
	if m.From == "" {
		m.From = "000"
	}
	oa, err := address(m.From)
	if err != nil {
		return nil, err
	}
	enc, units, err := encodeUnits(&m)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, errors.New("empty message")
	}
	single, concat := segLimits(enc, m.Ref16)
	step := 1
	if enc == encUCS2 {
		step = 2
	}
	parts := m.Parts
	if parts <= 1 {
		parts = 1
		if len(units) > single {
			parts = (len(units)/step + concat/step - 1) / (concat / step)
			// An escape or surrogate at a boundary may need one more.
			if _, err := splitUnits(enc, units, parts, concat); err != nil {
				parts++
			}
		}
	}
	if parts > 255 {
		return nil, fmt.Errorf("%d parts: at most 255", parts)
	}
	var segs [][]byte
	if parts == 1 {
		segs = [][]byte{units}
	} else if segs, err = splitUnits(enc, units, parts, concat); err != nil {
		return nil, err
	}
	order := m.Order
	if len(order) == 0 {
		for i := range segs {
			order = append(order, i+1)
		}
	}
	if err := checkOrder(order, len(segs)); err != nil {
		return nil, err
	}
	sent := m.SentAt
	if sent.IsZero() {
		sent = now
	}
	ref := 0
	if len(segs) > 1 {
		ref = nextRef(m.Ref16)
	}
	out := make([]*delivery, 0, len(segs))
	for _, seq := range order {
		t := tpdu.TPDU{
			Direction:  tpdu.MT,
			FirstOctet: 0x04, // SMS-DELIVER, TP-MMS: no more messages waiting
			OA:         oa,
			DCS:        tpdu.DCS(dcsOf[enc]),
			SCTS:       tpdu.Timestamp{Time: sent},
			UD:         segs[seq-1],
		}
		if len(segs) > 1 {
			ie := tpdu.InformationElement{ID: 0, Data: []byte{byte(ref), byte(len(segs)), byte(seq)}}
			if m.Ref16 {
				ie = tpdu.InformationElement{ID: 8, Data: []byte{byte(ref >> 8), byte(ref), byte(len(segs)), byte(seq)}}
			}
			t.SetUDH(tpdu.UserDataHeader{ie})
		}
		b, err := t.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode segment %d: %w", seq, err)
		}
		out = append(out, &delivery{tpdu: b, from: m.From})
	}
	return out, nil
}

func checkOrder(order []int, n int) error {
	if len(order) != n {
		return fmt.Errorf("order has %d entries for %d segments", len(order), n)
	}
	seen := make([]bool, n+1)
	for _, v := range order {
		if v < 1 || v > n || seen[v] {
			return fmt.Errorf("order %v is not a permutation of 1..%d", order, n)
		}
		seen[v] = true
	}
	return nil
}

// address builds a TP-OA/TP-DA: digits as an unknown-type number (so "000"
// is 03 81 00 F0), "+digits" as international, anything else alphanumeric.
func address(num string) (tpdu.Address, error) {
	digits := strings.TrimPrefix(num, "+")
	isNum := digits != ""
	for _, c := range digits {
		if !strings.ContainsRune("0123456789*#abc", c) {
			isNum = false
		}
	}
	switch {
	case isNum && strings.HasPrefix(num, "+"):
		return tpdu.Address{TOA: 0x91, Addr: digits}, nil
	case isNum:
		return tpdu.Address{TOA: 0x81, Addr: digits}, nil
	case num != "" && len(num) <= 11:
		enc := gsm7.NewEncoder().WithExtCharset(nil)
		if _, err := enc.Encode([]byte(num)); err != nil {
			return tpdu.Address{}, fmt.Errorf("sender %q: %w", num, err)
		}
		return tpdu.Address{TOA: 0xd0, Addr: num}, nil
	}
	return tpdu.Address{}, fmt.Errorf("sender %q: want digits, +digits or up to 11 GSM characters", num)
}

// smscPrefix is the SMSC address field that precedes the TPDU in +CMGR.
// The number was checked by Options.applyDefaults; should encoding still
// fail, the field says "default SMSC" (00), which is also valid.
func smscPrefix(number string) []byte {
	a := pdumode.SMSCAddress{Address: tpdu.Address{TOA: 0x81, Addr: strings.TrimPrefix(number, "+")}}
	if strings.HasPrefix(number, "+") {
		a.TOA = 0x91
	}
	b, err := a.MarshalBinary()
	if err != nil {
		return []byte{0}
	}
	return b
}

// segInfo describes one decoded segment.
type segInfo struct {
	from, to        string
	enc             string
	text            string
	data            []byte
	ref, seq, total int
	scts            time.Time
}

// describe decodes a TPDU for State and text-mode listings. dir is
// tpdu.MT for SMS-DELIVER, tpdu.MO for SMS-SUBMIT.
func describe(b []byte, dir tpdu.Direction) (segInfo, error) {
	opt := sms.AsMT
	if dir == tpdu.MO {
		opt = sms.AsMO
	}
	t, err := sms.Unmarshal(b, opt)
	if err != nil {
		return segInfo{}, err
	}
	var info segInfo
	info.from = t.OA.Number()
	info.to = t.DA.Number()
	info.scts = t.SCTS.Time
	if total, seq, ref, ok := t.UDH.ConcatInfo(); ok {
		info.total, info.seq, info.ref = total, seq, ref
	}
	alpha, err := t.DCS.Alphabet()
	if err != nil {
		return info, fmt.Errorf("dcs %#02x: %w", byte(t.DCS), err)
	}
	switch alpha {
	case tpdu.AlphaUCS2:
		info.enc = encUCS2
		u := make([]uint16, len(t.UD)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(t.UD[2*i:])
		}
		// A surrogate pair split across segments decodes to U+FFFD here;
		// the whole message decodes once its segments are joined.
		info.text = string(utf16.Decode(u))
	case tpdu.Alpha8Bit:
		info.enc = enc8Bit
		info.data = append([]byte{}, t.UD...)
		info.text = strings.ToUpper(hex.EncodeToString(t.UD))
	default:
		info.enc = encGSM7
		txt, err := tpdu.DecodeUserData(t.UD, t.UDH, alpha)
		if err != nil {
			return info, fmt.Errorf("decode GSM 7-bit text: %w", err)
		}
		info.text = string(txt)
	}
	return info, nil
}

// decodeSubmit parses what the host typed after the +CMGS prompt in PDU
// mode: hex of the SMSC address and an SMS-SUBMIT TPDU of tpduLen octets.
func decodeSubmit(hexPDU string, tpduLen int) (tp []byte, smsc string, info segInfo, err error) {
	raw, err := hex.DecodeString(strings.TrimSpace(hexPDU))
	if err != nil {
		return nil, "", info, fmt.Errorf("pdu is not hex: %w", err)
	}
	if len(raw) < 1 {
		return nil, "", info, errors.New("empty pdu")
	}
	var p pdumode.PDU
	if err := p.UnmarshalBinary(raw); err != nil {
		return nil, "", info, fmt.Errorf("smsc address: %w", err)
	}
	if len(p.TPDU) != tpduLen {
		return nil, "", info, fmt.Errorf("tpdu is %d octets, AT+CMGS announced %d", len(p.TPDU), tpduLen)
	}
	if len(p.TPDU) == 0 || p.TPDU[0]&0x03 != 0x01 {
		return nil, "", info, errors.New("not an SMS-SUBMIT")
	}
	info, err = describe(p.TPDU, tpdu.MO)
	if err != nil {
		return nil, "", info, fmt.Errorf("decode SMS-SUBMIT: %w", err)
	}
	smsc = p.SMSC.Number()
	if p.SMSC.Addr == "" {
		smsc = ""
	}
	return p.TPDU, smsc, info, nil
}

// submitText builds an SMS-SUBMIT for a text-mode AT+CMGS, so that State
// shows a PDU for every sent SMS.
func submitText(to, text string, mr int) ([]byte, error) {
	da, err := address(to)
	if err != nil {
		return nil, err
	}
	enc, units, err := encodeUnits(&SMS{Text: text})
	if err != nil {
		return nil, err
	}
	t := tpdu.TPDU{Direction: tpdu.MO, FirstOctet: 0x01, MR: byte(mr), DA: da, DCS: tpdu.DCS(dcsOf[enc]), UD: units}
	return t.MarshalBinary()
}
