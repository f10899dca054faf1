package modem

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/simgate/simgate/internal/gw"

	"github.com/warthog618/sms/encoding/tpdu"
	"github.com/warthog618/sms/encoding/ucs2"
)

// deliver is a decoded SMS-DELIVER: who sent it, when, and its user data
// still in its alphabet, so that segments are joined before text decoding
// (an emoji's surrogate pair or a GSM escape may straddle two segments).
type deliver struct {
	From   string
	SentAt time.Time
	Alpha  tpdu.Alphabet
	UD     []byte // unpacked septets, UCS-2 bytes or octets
	UDH    tpdu.UserDataHeader
	// Concatenation, when Total > 1.
	Ref, Seq, Total int
	Ref16           bool
	TPDU            []byte // the TPDU without the SMSC address
}

// concatKey identifies the message a segment belongs to.
func (d *deliver) concatKey() string {
	bits := 8
	if d.Ref16 {
		bits = 16
	}
	return fmt.Sprintf("sms/%s/%d/%d/%d", d.From, bits, d.Ref, d.Total)
}

// splitPDU separates the SMSC address in front of a PDU read from the modem
// from the TPDU. tpduLen is the <length> field of +CMGR/+CMGL (TPDU octets),
// or 0 when unknown.
func splitPDU(hexPDU string, tpduLen int) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(hexPDU))
	if err != nil {
		return nil, fmt.Errorf("PDU is not hex: %w", err)
	}
	if len(b) == 0 {
		return nil, errors.New("empty PDU")
	}
	if tpduLen > 0 && len(b) == tpduLen {
		return b, nil // the modem left the SMSC address out
	}
	smsc := 1 + int(b[0])
	if smsc >= len(b) {
		return nil, fmt.Errorf("SMSC address length %d leaves no TPDU in %d octets", b[0], len(b))
	}
	if tpduLen > 0 && len(b)-smsc != tpduLen {
		return nil, fmt.Errorf("TPDU is %d octets, the modem announced %d", len(b)-smsc, tpduLen)
	}
	return b[smsc:], nil
}

// decodeDeliver decodes an SMS-DELIVER TPDU. It never panics on bad bytes.
func decodeDeliver(tp []byte) (d *deliver, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("malformed TPDU: %v", r)
		}
	}()
	if len(tp) > 0 && tp[0]&0x03 != 0 {
		return nil, fmt.Errorf("TPDU type %d (first octet 0x%02X) is not an SMS-DELIVER", tp[0]&0x03, tp[0])
	}
	var t tpdu.TPDU
	t.Direction = tpdu.MT
	if err := t.UnmarshalBinary(tp); err != nil {
		return nil, fmt.Errorf("decode TPDU: %w", err)
	}
	if st := t.SmsType(); st != tpdu.SmsDeliver {
		return nil, fmt.Errorf("TPDU is an %v, not an SMS-DELIVER", st)
	}
	alpha, err := t.Alphabet()
	if err != nil {
		return nil, fmt.Errorf("data coding scheme 0x%02X: %w", byte(t.DCS), err)
	}
	if t.DCS.Compressed() {
		return nil, fmt.Errorf("data coding scheme 0x%02X: compressed text is not supported", byte(t.DCS))
	}
	d = &deliver{
		From:   t.OA.Number(),
		SentAt: t.SCTS.Time,
		Alpha:  alpha,
		UD:     append([]byte(nil), t.UD...),
		UDH:    t.UDH,
		TPDU:   append([]byte(nil), tp...),
	}
	if ie, ok := t.UDH.IE(0x08); ok && len(ie.Data) == 4 {
		d.Ref, d.Total, d.Seq, d.Ref16 = int(binary.BigEndian.Uint16(ie.Data[:2])), int(ie.Data[2]), int(ie.Data[3]), true
	} else if ie, ok := t.UDH.IE(0x00); ok && len(ie.Data) == 3 {
		d.Ref, d.Total, d.Seq = int(ie.Data[0]), int(ie.Data[1]), int(ie.Data[2])
	}
	// 23.040 9.2.3.24.1: a receiver ignores a concatenation element whose
	// values are out of range, so such a segment is a message on its own.
	if d.Total < 2 || d.Seq < 1 || d.Seq > d.Total {
		d.Ref, d.Seq, d.Total, d.Ref16 = 0, 0, 0, false
	}
	return d, nil
}

// joinText decodes the user data of segments given in order into a payload:
// UTF-8 text, or raw bytes (binary) for 8-bit data.
func joinText(parts []*deliver) (payload []byte, binary bool, err error) {
	same := true
	for _, p := range parts[1:] {
		if p.Alpha != parts[0].Alpha {
			same = false
		}
	}
	if same {
		var ud []byte
		for _, p := range parts {
			ud = append(ud, p.UD...)
		}
		switch parts[0].Alpha {
		case tpdu.Alpha8Bit:
			return ud, true, nil
		case tpdu.AlphaUCS2:
			return decodeUCS2(ud), false, nil
		default:
			text, err := decodeGSM7(ud, parts[0].UDH)
			return text, false, err
		}
	}
	// Mixed alphabets: rare enough to decode segment by segment.
	var out []byte
	for _, p := range parts {
		switch p.Alpha {
		case tpdu.Alpha8Bit:
			out = append(out, p.UD...)
			binary = true
		case tpdu.AlphaUCS2:
			out = append(out, decodeUCS2(p.UD)...)
		default:
			text, err := decodeGSM7(p.UD, p.UDH)
			if err != nil {
				return nil, false, err
			}
			out = append(out, text...)
		}
	}
	return out, binary, nil
}

// decodeUCS2 decodes UTF-16BE leniently: an unpaired surrogate (a segment
// missing from a partial message) becomes U+FFFD instead of failing.
func decodeUCS2(b []byte) []byte {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	s := string(utf16.Decode(u))
	if len(b)%2 == 1 {
		s += "\uFFFD"
	}
	return []byte(s)
}

// decodeGSM7 decodes septets with the default alphabet and extension table,
// or the national language tables the UDH names.
func decodeGSM7(septets []byte, udh tpdu.UserDataHeader) ([]byte, error) {
	out, err := tpdu.DecodeUserData(septets, udh, tpdu.Alpha7Bit, tpdu.WithAllCharsets)
	if err != nil {
		return nil, fmt.Errorf("decode GSM 7-bit text: %w", err)
	}
	return out, nil
}

// encodeSubmit builds the SMS-SUBMIT TPDU for one SMS to to, with TP-SRR
// (a status report requested) set when srr. The message reference is 0:
// the modem assigns it and answers it in +CMGS.
func encodeSubmit(to string, payload []byte, alpha gw.SMSAlphabet, srr bool) ([]byte, error) {
	digits, intl := strings.CutPrefix(to, "+")
	if len(digits) == 0 || len(digits) > 20 || strings.Trim(digits, "0123456789") != "" {
		return nil, fmt.Errorf("destination %q is not a phone number (digits, optionally after +)", to)
	}
	da := tpdu.Address{TOA: 0x81, Addr: digits} // unknown type, ISDN plan: "000" and national numbers
	if intl {
		da.TOA = 0x91
	}
	fo := tpdu.FirstOctet(0x01) // SMS-SUBMIT
	if srr {
		fo |= tpdu.FoSRR
	}
	t := tpdu.TPDU{Direction: tpdu.MO, FirstOctet: fo, DA: da}
	switch alpha {
	case gw.AlphabetGSM7:
		septets, err := gw.EncodeGSM7(payload)
		if err != nil {
			return nil, fmt.Errorf("encode GSM 7-bit: %w", err)
		}
		t.DCS, t.UD = 0x00, septets
	case gw.AlphabetUCS2:
		t.DCS, t.UD = 0x08, ucs2.Encode([]rune(string(payload)))
	case gw.Alphabet8Bit:
		t.DCS, t.UD = 0x04, payload
	default:
		return nil, fmt.Errorf("unknown alphabet %q", alpha)
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode SMS-SUBMIT: %w", err)
	}
	return b, nil
}
