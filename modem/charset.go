package modem

import (
	"unicode"
	"unicode/utf8"

	"github.com/warthog618/sms/encoding/gsm7/charset"
)

// warthog618/sms builds its GSM 7-bit tables lazily on first use, writing
// package variables without a lock, so two goroutines encoding at once race
// (a session decoding while the relay checks a request). Building every
// table here, before any goroutine runs, leaves only reads afterwards.
func init() {
	charset.DefaultDecoder()
	charset.DefaultEncoder()
	charset.DefaultExtDecoder()
	charset.DefaultExtEncoder()
	for nli := charset.Start; nli < charset.End; nli++ {
		charset.NewDecoder(nli)
		charset.NewEncoder(nli)
		charset.NewExtDecoder(nli)
		charset.NewExtEncoder(nli)
	}
}

// IsText reports whether a datagram reads as text: valid UTF-8 with no
// control characters other than tab, CR and LF. IP Commands carry raw bytes;
// ones that read as text are published with encoding "text" so people can
// read them, the rest as base64.
func IsText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n' {
			return false
		}
		b = b[n:]
	}
	return true
}
