package modem

import (
	"encoding/hex"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/warthog618/sms/encoding/gsm7"
)

// mt builds SMS-DELIVER PDUs byte by byte from 3GPP 23.040, so tests do not
// decode with the code that builds the PDUs.
type mt struct {
	from string
	sent time.Time
	dcs  byte
	udh  []byte // without UDHL
	ud   []byte // septets (dcs 0x00) or octets
}

func semiOctets(digits string) []byte {
	var out []byte
	for i := 0; i < len(digits); i += 2 {
		lo := digits[i] - '0'
		hi := byte(0xF)
		if i+1 < len(digits) {
			hi = digits[i+1] - '0'
		}
		out = append(out, hi<<4|lo)
	}
	return out
}

func bcd(n int) byte { return byte(n%10)<<4 | byte(n/10) }

func (m mt) tpdu() []byte {
	first := byte(0x04) // SMS-DELIVER, no more messages waiting
	if m.udh != nil {
		first |= 0x40
	}
	digits, intl := strings.CutPrefix(m.from, "+")
	toa := byte(0x81)
	if intl {
		toa = 0x91
	}
	b := []byte{first, byte(len(digits)), toa}
	b = append(b, semiOctets(digits)...)
	t := m.sent.UTC()
	b = append(b, 0x00, m.dcs,
		bcd(t.Year()%100), bcd(int(t.Month())), bcd(t.Day()), bcd(t.Hour()), bcd(t.Minute()), bcd(t.Second()), 0x00)
	var header []byte
	if m.udh != nil {
		header = append([]byte{byte(len(m.udh))}, m.udh...)
	}
	if m.dcs&0x0C == 0 { // GSM 7-bit
		fill := 0
		if len(header) > 0 && (len(header)*8)%7 != 0 {
			fill = 7 - (len(header)*8)%7
		}
		udl := len(m.ud) + (len(header)*8+fill)/7
		b = append(b, byte(udl))
		b = append(b, header...)
		return append(b, gsm7.Pack7Bit(m.ud, fill)...)
	}
	b = append(b, byte(len(header)+len(m.ud)))
	b = append(b, header...)
	return append(b, m.ud...)
}

// pdu is the hex a modem shows: an empty SMSC address, then the TPDU.
func (m mt) pdu() string { return "00" + strings.ToUpper(hex.EncodeToString(m.tpdu())) }

func septets(s string) []byte {
	b, err := gsm7.Encode([]byte(s))
	if err != nil {
		panic(err)
	}
	return b
}

func utf16be(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

func concat8(ref, total, seq int) []byte {
	return []byte{0x00, 0x03, byte(ref), byte(total), byte(seq)}
}
func concat16(ref, total, seq int) []byte {
	return []byte{0x08, 0x04, byte(ref >> 8), byte(ref), byte(total), byte(seq)}
}
