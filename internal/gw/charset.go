package gw

import (
	"unicode"
	"unicode/utf8"

	// The GSM 7-bit tables are built once, before any goroutine encodes.
	_ "github.com/simgate/simgate/internal/gsmtables"
)

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
