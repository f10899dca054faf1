package at

import (
	"bytes"
	"strconv"
	"strings"
)

// FrameSpec says how a framed line splits the buffered bytes.
type FrameSpec struct {
	// Head is how many bytes form the text head, its line end included.
	Head int
	// Len is how many raw bytes follow the head.
	Len int
	// Tail is expected right after the raw bytes and skipped when present
	// (the closing quote of +USORF).
	Tail string
}

// A Framer recognises a line that announces raw bytes. It is given the bytes
// buffered from the start of a line and returns ok when they start a framed
// line, or more when it cannot tell until more bytes arrive. A Framer must
// not keep buf.
type Framer func(buf []byte) (spec FrameSpec, ok, more bool)

// maxFrame bounds an announced length: nothing simgate reads is larger, and
// a corrupt length must not make the engine wait for megabytes.
const maxFrame = 64 << 10

// maxHead bounds the text head of a framed line.
const maxHead = 256

// LineFramer frames "<prefix>...<CR><LF>" followed by raw bytes whose count
// length reads from the comma-separated fields after the prefix. length
// returns ok false when the line announces no bytes; the line is then an
// ordinary text line.
func LineFramer(prefix string, length func(fields []string) (n int, ok bool)) Framer {
	return func(buf []byte) (FrameSpec, bool, bool) {
		if more, ok := hasPrefix(buf, prefix); !ok {
			return FrameSpec{}, false, more
		}
		// Only a head's worth is searched: a long line read in small pieces
		// would otherwise be searched from its start on every read.
		i := bytes.IndexAny(buf[:min(len(buf), maxHead)], "\r\n")
		if i < 0 {
			return FrameSpec{}, false, len(buf) < maxHead
		}
		head := i + 1
		if buf[i] == '\r' {
			if i+1 == len(buf) {
				return FrameSpec{}, false, true // the LF may still come
			}
			if buf[i+1] == '\n' {
				head = i + 2
			}
		}
		n, ok := length(SplitFields(string(buf[len(prefix):i])))
		if !ok || n <= 0 || n > maxFrame {
			return FrameSpec{}, false, false
		}
		return FrameSpec{Head: head, Len: n}, true, false
	}
}

// InlineFramer frames "<prefix><f0>,...,<fk-1>," followed directly by raw
// bytes (optionally in quotes), where field lenField holds their count:
// "+USORF: 0,\"1.2.3.4\",6969,5,\"hello\"" or "+CARECV: 5,hello".
func InlineFramer(prefix string, fields, lenField int, quoted bool) Framer {
	return func(buf []byte) (FrameSpec, bool, bool) {
		if more, ok := hasPrefix(buf, prefix); !ok {
			return FrameSpec{}, false, more
		}
		var got []string
		start, inQuote := len(prefix), false
		for i := len(prefix); i < len(buf); i++ {
			if i > maxHead {
				return FrameSpec{}, false, false
			}
			c := buf[i]
			switch {
			case c == '"':
				inQuote = !inQuote
			case c == '\r' || c == '\n':
				return FrameSpec{}, false, false
			case c == ',' && !inQuote:
				got = append(got, strings.TrimSpace(string(buf[start:i])))
				start = i + 1
				if len(got) < fields {
					continue
				}
				n, err := strconv.Atoi(strings.Trim(got[lenField], `"`))
				if err != nil || n <= 0 || n > maxFrame {
					return FrameSpec{}, false, false
				}
				head := i + 1
				if !quoted {
					return FrameSpec{Head: head, Len: n}, true, false
				}
				if head == len(buf) {
					return FrameSpec{}, false, true
				}
				if buf[head] != '"' {
					return FrameSpec{}, false, false
				}
				return FrameSpec{Head: head + 1, Len: n, Tail: `"`}, true, false
			}
		}
		return FrameSpec{}, false, len(buf) <= maxHead
	}
}

// hasPrefix reports whether buf starts with prefix, or could once more
// bytes arrive.
func hasPrefix(buf []byte, prefix string) (more, ok bool) {
	if len(buf) < len(prefix) {
		return strings.HasPrefix(prefix, string(buf)), false
	}
	return false, string(buf[:len(prefix)]) == prefix
}

// Framers of the module socket commands. Quectel buffer mode announces data
// with `+QIURC: "recv",<id>` (no length, an ordinary URC); direct push sends
// `+QIURC: "recv",<id>,<n>[,"<ip>",<port>]` and the bytes.
var (
	// QuectelRecvPush frames the direct-push +QIURC "recv" URC.
	QuectelRecvPush = LineFramer("+QIURC:", func(f []string) (int, bool) {
		if len(f) < 3 || f[0] != `"recv"` {
			return 0, false
		}
		return atoiOK(f[2])
	})
	// QuectelRead frames AT+QIRD's answer "+QIRD: <n>,\"<ip>\",<port>".
	// "+QIRD: 0" (nothing left) stays an ordinary line.
	QuectelRead = LineFramer("+QIRD:", func(f []string) (int, bool) { return atoiOK(f[0]) })
	// SIMComReceive frames SIM7600's push "+RECEIVE,<link>,<len>" (some
	// firmware writes "+RECEIVE: <link>,<len>").
	SIMComReceive = LineFramer("+RECEIVE", func(f []string) (int, bool) {
		if len(f) > 0 {
			f[0] = strings.TrimSpace(strings.TrimLeft(f[0], ":"))
		}
		if len(f) > 0 && f[0] == "" {
			f = f[1:] // "+RECEIVE,0,5": the text before the first comma is empty
		}
		if len(f) < 2 {
			return 0, false
		}
		return atoiOK(f[1])
	})
	// UbloxReadFrom frames AT+USORF's answer
	// "+USORF: <s>,\"<ip>\",<port>,<len>,\"<data>\"".
	UbloxReadFrom = InlineFramer("+USORF:", 4, 3, true)
	// SIMComCARecv frames SIM7080's AT+CARECV answer "+CARECV: <len>,<data>".
	SIMComCARecv = InlineFramer("+CARECV:", 1, 0, false)
	// SIM7080Recv frames AT+CARECV's answer in both its forms:
	// "+CARECV: <len>,<data>" and, with AT+CASRIP=1,
	// "+CARECV: <ip>,<port>,<len>,<data>". "+CARECV: 0" (nothing to read)
	// stays an ordinary line.
	SIM7080Recv Framer = sim7080Recv
)

var carecvWithSender = InlineFramer("+CARECV:", 3, 2, false)

// sim7080Recv tries the short form first: its first field is a number,
// which an address never is, so the two cannot be confused.
func sim7080Recv(buf []byte) (FrameSpec, bool, bool) {
	if spec, ok, more := SIMComCARecv(buf); ok || more {
		return spec, ok, more
	}
	return carecvWithSender(buf)
}

func atoiOK(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil
}
