package at

import (
	"bytes"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/warthog618/modem/trace"
)

// traceShown bounds the bytes of one read or write shown in the wire log;
// the rest are only counted ("more"), so a 64 KiB socket payload costs one
// short line.
const traceShown = 128

// The directions of the wire log, set as trace's formats so that Printf
// knows which way the bytes went.
const (
	traceRead  = "read"
	traceWrite = "write"
)

// traced wraps port so that every read and write is logged at debug level
// on log (see Config.Trace).
func traced(port io.ReadWriter, log *slog.Logger) io.ReadWriter {
	w := &wireLog{log: log}
	return trace.New(port, trace.WithLogger(w),
		trace.WithReadFormat(traceRead), trace.WithWriteFormat(traceWrite))
}

// wireLog is the trace.Logger of the wire log: trace hands it the bytes of
// one read or write, which it redacts, shortens and logs as one line.
type wireLog struct {
	log *slog.Logger
	mu  sync.Mutex
	// rx redacts the bytes read: a command the modem echoes may arrive in
	// pieces. Every write is a whole command line or a command's data, so
	// each starts afresh.
	rx redactor
}

// Printf is called by trace with the direction as format and the bytes as
// the only argument; anything else it is given is not shown.
func (w *wireLog) Printf(format string, v ...any) {
	var b []byte
	if len(v) == 1 {
		b, _ = v[0].([]byte)
	}
	var shown []byte
	if format == traceRead {
		w.mu.Lock()
		shown = w.rx.redact(nil, b)
		w.mu.Unlock()
	} else {
		var r redactor
		shown = r.redact(nil, b)
	}
	attrs := []any{"dir", format, "len", len(b)}
	if all := len(shown); all > traceShown {
		shown = shown[:traceShown]
		// A character cut in two does not make the text binary.
		for !utf8.Valid(shown) && len(shown) > traceShown-utf8.UTFMax {
			shown = shown[:len(shown)-1]
		}
		attrs = append(attrs, "more", all-len(shown))
	}
	// Text goes as it is, for the handler to quote (text) or escape
	// (JSON) its control bytes; bytes that are not UTF-8 as hex, which
	// every handler shows as they are.
	if utf8.Valid(shown) {
		attrs = append(attrs, "bytes", string(shown))
	} else {
		attrs = append(attrs, "hex", hex.EncodeToString(shown))
	}
	w.log.Debug("wire", attrs...)
}

// secretRule says which parameters of an AT command are secrets.
type secretRule struct {
	cmd string // "+CPIN=", upper case, the "=" included
	// secret reports whether parameter i (from 0) is a secret; second is
	// the parameter at index 1 (up to 8 bytes), for commands whose
	// parameters mean different things by their second one.
	secret func(i int, second string) bool
}

// secretRules are the commands of 27.007 and of the supported modules that
// carry a PIN or a password; none of those reaches the wire log.
var secretRules = []secretRule{
	{"+CPIN=", func(int, string) bool { return true }},                   // <pin>[,<newpin>]
	{"+CPWD=", func(i int, _ string) bool { return i >= 1 }},             // <fac>,<oldpwd>,<newpwd>
	{"+CLCK=", func(i int, _ string) bool { return i == 2 }},             // <fac>,<mode>,<passwd>
	{"+CGAUTH=", func(i int, _ string) bool { return i >= 2 }},           // <cid>,<auth>,<user>,<passwd> (SIMCom: swapped)
	{"+QICSGP=", func(i int, _ string) bool { return i == 3 || i == 4 }}, // Quectel: <id>,<type>,<apn>,<user>,<passwd>
	{"+CNCFG=", func(i int, _ string) bool { return i == 3 || i == 4 }},  // SIM7080: <pdp>,<type>,<apn>,<user>,<passwd>
	{"+CSTT=", func(i int, _ string) bool { return i == 1 || i == 2 }},   // SIMCom: <apn>,<user>,<passwd>
	{"+CSOCKAUTH=", func(i int, _ string) bool { return i >= 2 }},        // SIM7600: <cid>,<auth>,<passwd>,<user>
	{"+UAUTHREQ=", func(i int, _ string) bool { return i >= 2 }},         // u-blox: <cid>,<auth>,<user>,<passwd>
	// u-blox: <profile>,<param>,<value>; param 2 is the user, 3 the password.
	{"+UPSD=", func(i int, second string) bool { return i == 2 && (second == "2" || second == "3") }},
}

// secretWindow is the longest command of secretRules.
var secretWindow = func() int {
	n := 0
	for _, r := range secretRules {
		n = max(n, len(r.cmd))
	}
	return n
}()

// redactor copies bytes, replacing the secret parameters of the commands
// of secretRules with "***". It keeps its place across calls, so a command
// split over several reads is redacted all the same. The zero value is
// ready.
type redactor struct {
	win     []byte // the line's last bytes, to spot a command
	rule    *secretRule
	field   int
	inQuote bool
	second  []byte
	hidden  bool // the current parameter's "***" was written
}

// redact appends b, redacted, to dst.
func (r *redactor) redact(dst, b []byte) []byte {
	for len(b) > 0 {
		if r.rule == nil {
			// Only a "=" can start a command's parameters: what comes
			// before it is copied at once, not byte by byte, as a socket
			// payload read 4 KiB at a time is.
			seg := b
			if i := bytes.IndexByte(b, '='); i >= 0 {
				seg = b[:i+1]
			}
			dst = append(dst, seg...)
			r.look(seg)
			b = b[len(seg):]
			continue
		}
		c := b[0]
		b = b[1:]
		switch {
		case isLineEnd(c):
			*r = redactor{win: r.win[:0]}
			dst = append(dst, c)
		case c == '"':
			r.inQuote = !r.inQuote
			dst = append(dst, c)
		case c == ',' && !r.inQuote:
			r.field++
			r.hidden = false
			dst = append(dst, c)
		default:
			if r.field == 1 && len(r.second) < 8 {
				r.second = append(r.second, c)
			}
			if !r.rule.secret(r.field, string(r.second)) {
				dst = append(dst, c)
			} else if !r.hidden {
				r.hidden = true
				dst = append(dst, "***"...)
			}
		}
	}
	return dst
}

// isLineEnd reports whether c ends a command line: CR, LF, or the Ctrl-Z
// or ESC that ends or cancels a prompt's data.
func isLineEnd(c byte) bool { return c == '\r' || c == '\n' || c == 0x1a || c == 0x1b }

// look keeps in win the last bytes of the line so far, seg included, and
// starts redacting when seg ends with the "=" of a command of secretRules.
func (r *redactor) look(seg []byte) {
	// Only the last secretWindow bytes can matter, and what follows the
	// last line end among them.
	tail := seg[max(0, len(seg)-secretWindow):]
	if len(tail) < len(seg) {
		r.win = r.win[:0]
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if isLineEnd(tail[i]) {
			r.win = r.win[:0]
			tail = tail[i+1:]
			break
		}
	}
	r.win = append(r.win, tail...)
	if n := len(r.win); n > secretWindow {
		r.win = r.win[:copy(r.win, r.win[n-secretWindow:])]
	}
	if len(r.win) == 0 || r.win[len(r.win)-1] != '=' {
		return
	}
	for i := range secretRules {
		if cmd := secretRules[i].cmd; len(r.win) >= len(cmd) && upperEqual(r.win[len(r.win)-len(cmd):], cmd) {
			r.rule = &secretRules[i]
			r.win = r.win[:0]
			return
		}
	}
}

// upperEqual reports whether b, with ASCII letters upper-cased, is s.
func upperEqual(b []byte, s string) bool {
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// redactLine is line with its secrets replaced, for other log lines that
// may show a command (an echo dropped as stale).
func redactLine(line string) string {
	var r redactor
	return string(r.redact(nil, []byte(line)))
}
