package at

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warthog618/modem/info"
)

// maxLine bounds a line without a line end; beyond it the bytes are dropped
// as garbage so a modem spewing noise cannot grow memory without limit.
const maxLine = 16 << 10

// active is the command the machine is sorting lines for.
type active struct {
	cmd     Cmd
	prefix  string
	probe   bool // a resynchronisation probe: finals before its info may be stale
	gotInfo bool
	// staleSeen: the probe dropped a final result as an abandoned
	// command's (see machine.owed), so the modem is answering.
	staleSeen bool
	prompted  bool
	trailing  int
	reply     Reply
	done      bool
	err       error
}

// frame is a length-framed read in progress.
type frame struct {
	spec FrameSpec
	head string
	data []byte
	urc  bool // framed by a URC framer rather than the command's
}

// machine turns bytes from the modem into replies and URCs. It does no I/O:
// bytes to write (prompt data, ESC) collect in write, URCs in out, and a
// finished command is marked done. The engine's owner goroutine drives it.
type machine struct {
	urcs []URCSpec
	buf  []byte
	// scanned is how many bytes at the front of buf are known to hold no
	// line end, so a line arriving in many small reads is searched once,
	// not again from its start on every read.
	scanned int
	// examined counts the bytes the line-end search has looked at; tests
	// use it to check that the work is linear in the bytes fed.
	examined int64
	cur      *active
	fr       *frame

	urcWant int // further lines the held URC still needs
	urcHeld URC
	// escPending: a command that waits for a prompt was abandoned, so a
	// prompt arriving later must be cancelled with ESC, or the modem would
	// take the next command line as message data.
	escPending bool

	lastDone *active // the command that most recently got its final result
	// owed counts abandoned commands whose final result has not been seen:
	// each may still send one. A probe takes a final result before its
	// information line as one of those while any is owed, and an error as
	// its own once none is: a module that answers the probe with ERROR
	// (without "+CMEE: <n>") is in step all the same. A bare OK is always
	// taken as a leftover, so a late answer the count missed cannot end
	// the probe and shift every later reply by one.
	owed   int
	echoes int64 // echoed command lines seen

	out   []URC
	write []byte
	// writeDelay is waited before write goes out (Cmd.PromptDelay).
	writeDelay time.Duration
	stale      []string // lines dropped as leftovers of an abandoned command
}

func newMachine(urcs []URCSpec) *machine { return &machine{urcs: urcs} }

// begin makes c the running command.
func (m *machine) begin(c Cmd, probe bool) *active {
	p := c.Prefix
	if p == "" {
		p = derivePrefix(c.Line)
	}
	m.cur = &active{cmd: c, prefix: p, probe: probe}
	return m.cur
}

// abandon gives up on the running command (timeout, cancellation). Its late
// reply lines become unknown URCs and its final result is dropped as stale.
func (m *machine) abandon() {
	if c := m.cur; c != nil {
		if c.cmd.Data != nil && !c.prompted {
			m.escPending = true
		}
		m.owed++
	}
	m.cur = nil
}

// forgetOwed forgets the final results owed by abandoned commands: the
// module restarted (it answers none written before its boot), or it
// answered and then stayed silent for a whole probe timeout.
func (m *machine) forgetOwed() { m.owed = 0 }

// staleFinal drops line as the final result of an abandoned command.
func (m *machine) staleFinal(line string) {
	m.owed = max(m.owed-1, 0)
	m.stale = append(m.stale, line)
}

// feed consumes bytes read from the modem.
func (m *machine) feed(p []byte) {
	m.buf = append(m.buf, p...)
	for m.step() {
	}
	if len(m.buf) == 0 {
		m.buf = m.buf[:0:0] // let a large read's array go
		m.scanned = 0
	}
}

// consume drops n bytes from the front of buf.
func (m *machine) consume(n int) {
	m.buf = m.buf[n:]
	m.scanned = max(m.scanned-n, 0)
}

// lineEnd returns the index of the first CR or LF in buf, or -1. Only the
// bytes not searched before are looked at.
func (m *machine) lineEnd() int {
	from := min(m.scanned, len(m.buf))
	m.examined += int64(len(m.buf) - from)
	j := bytes.IndexAny(m.buf[from:], "\r\n")
	if j < 0 {
		m.scanned = len(m.buf)
		return -1
	}
	return from + j
}

// step makes one unit of progress and reports whether it did.
func (m *machine) step() bool {
	if m.fr != nil {
		return m.stepFrame()
	}
	i := 0
	for i < len(m.buf) && (m.buf[i] == 0 || m.buf[i] == '\r' || m.buf[i] == '\n' || m.buf[i] == ' ') {
		i++
	}
	if i > 0 {
		m.consume(i)
		return true
	}
	if len(m.buf) == 0 {
		return false
	}
	if m.buf[0] == '>' || m.buf[0] == '@' {
		if c := m.cur; c != nil && c.cmd.Data != nil && !c.prompted && m.urcWant == 0 {
			m.consumePrompt()
			c.prompted = true
			m.writeDelay = c.cmd.PromptDelay
			m.write = append(m.write, c.cmd.Data...)
			return true
		}
		if m.escPending && (m.cur == nil || m.cur.probe) {
			m.consumePrompt()
			m.escPending = false
			m.write = append(m.write, 0x1b)
			return true
		}
	}
	if m.urcWant == 0 {
		spec, ok, more, urc := m.tryFramers()
		if ok {
			m.fr = &frame{spec: spec, head: cleanLine(m.buf[:spec.Head]), urc: urc}
			m.consume(spec.Head)
			return true
		}
		if more {
			return m.overflow()
		}
	}
	j := m.lineEnd()
	if j < 0 {
		return m.overflow()
	}
	line := cleanLine(m.buf[:j])
	m.consume(j + 1)
	m.line(line)
	return true
}

// consumePrompt drops the prompt character; the space after "> " is
// skipped with the other blanks at a line start.
func (m *machine) consumePrompt() { m.consume(1) }

// overflow drops an unterminated line that has grown past maxLine.
func (m *machine) overflow() bool {
	if len(m.buf) <= maxLine {
		return false
	}
	m.stale = append(m.stale, "dropped "+strconv.Itoa(len(m.buf))+" bytes without a line end")
	m.buf = m.buf[:0:0]
	m.scanned = 0
	return true
}

func (m *machine) tryFramers() (spec FrameSpec, ok, more, urc bool) {
	valid := func(s FrameSpec) bool {
		return s.Head > 0 && s.Head <= len(m.buf) && s.Len > 0 && s.Len <= maxFrame
	}
	if c := m.cur; c != nil && c.cmd.Framer != nil {
		s, k, mo := c.cmd.Framer(m.buf)
		if k && valid(s) {
			return s, true, false, false
		}
		more = more || mo
	}
	for _, u := range m.urcs {
		if u.Framer == nil {
			continue
		}
		s, k, mo := u.Framer(m.buf)
		if k && valid(s) {
			return s, true, false, true
		}
		more = more || mo
	}
	return FrameSpec{}, false, more, false
}

func (m *machine) stepFrame() bool {
	f := m.fr
	if need := f.spec.Len - len(f.data); need > 0 {
		n := min(need, len(m.buf))
		if n == 0 {
			return false
		}
		f.data = append(f.data, m.buf[:n]...)
		m.consume(n)
		return true
	}
	if t := f.spec.Tail; t != "" {
		if len(m.buf) < len(t) && strings.HasPrefix(t, string(m.buf)) {
			return false // the tail may be on its way
		}
		if strings.HasPrefix(string(m.buf[:min(len(t), len(m.buf))]), t) {
			m.consume(len(t))
		}
	}
	m.fr = nil
	c := m.cur
	switch {
	case f.urc:
		m.out = append(m.out, URC{Line: f.head, Data: f.data, Known: true})
	case c != nil:
		c.reply.Payloads = append(c.reply.Payloads, Payload{Head: f.head, Data: f.data})
		c.gotInfo = true
	default:
		m.out = append(m.out, URC{Line: f.head, Data: f.data})
	}
	return true
}

// line sorts one complete text line.
func (m *machine) line(line string) {
	if line == "" {
		return
	}
	if m.urcWant > 0 {
		m.urcHeld.Extra = append(m.urcHeld.Extra, line)
		if m.urcWant--; m.urcWant == 0 {
			m.out = append(m.out, m.urcHeld)
			m.urcHeld = URC{}
		}
		return
	}
	c := m.cur
	if c == nil {
		if final, _ := finalResult(nil, line); final {
			m.staleFinal(line)
			return
		}
		if strings.HasPrefix(strings.ToUpper(line), "AT") {
			m.stale = append(m.stale, line)
			return
		}
		m.urc(line)
		return
	}
	if final, err := finalResult(c, line); final {
		// A bare OK is never the probe's own answer: AT+CMEE? succeeds
		// with "+CMEE: <n>" first. Only an error can come alone.
		if c.probe && !c.gotInfo && (m.owed > 0 || err == nil) {
			m.staleFinal(line) // an abandoned command's final
			c.staleSeen = true
			return
		}
		if c.probe {
			m.owed = 0 // the modem answered the probe: nothing is in flight
		}
		c.reply.Final, c.err, c.done = line, err, true
		m.lastDone = c
		m.cur = nil
		return
	}
	if isEcho(c, line) {
		m.echoes++
		return
	}
	spec := m.urcSpec(line)
	if c.prefix != "" && strings.HasPrefix(line, c.prefix) &&
		(spec == nil || spec.IsReply == nil || spec.IsReply(line)) {
		c.reply.Lines = append(c.reply.Lines, line)
		c.gotInfo = true
		c.trailing = c.cmd.Trailing
		return
	}
	if spec != nil {
		m.urc(line)
		return
	}
	if c.trailing > 0 || c.cmd.Bare {
		if c.trailing > 0 {
			c.trailing--
		}
		c.reply.Lines = append(c.reply.Lines, line)
		c.gotInfo = true
		return
	}
	m.out = append(m.out, URC{Line: line})
}

// urc emits line as a URC, holding it while its further lines arrive.
func (m *machine) urc(line string) {
	spec := m.urcSpec(line)
	if spec == nil {
		m.out = append(m.out, URC{Line: line})
		return
	}
	if spec.Lines > 0 {
		m.urcHeld = URC{Line: line, Known: true}
		m.urcWant = spec.Lines
		return
	}
	m.out = append(m.out, URC{Line: line, Known: true})
}

func (m *machine) urcSpec(line string) *URCSpec {
	for i := range m.urcs {
		if strings.HasPrefix(line, m.urcs[i].Prefix) {
			return &m.urcs[i]
		}
	}
	return nil
}

// finalResult reports whether line ends command c (or any command, when c
// is nil) and the error it ends with.
func finalResult(c *active, line string) (final bool, err error) {
	switch {
	case line == "OK":
		return true, nil
	case line == "ERROR":
		return true, ErrError
	case info.HasPrefix(line, "+CME ERROR"), info.HasPrefix(line, "+CMS ERROR"):
		return true, parseFinalError(line)
	}
	if c == nil {
		return false, nil
	}
	for _, f := range c.cmd.Final {
		if line == f {
			return true, nil
		}
	}
	for _, f := range c.cmd.Fail {
		if line == f {
			return true, &ResultError{Line: line}
		}
	}
	return false, nil
}

// isEcho reports whether line is the modem echoing the command or its data
// (echo is back on after every module reset).
func isEcho(c *active, line string) bool {
	if strings.EqualFold(line, c.cmd.Line) {
		return true
	}
	return c.cmd.Data != nil && line == cleanLine(c.cmd.Data)
}

// cleanLine turns raw line bytes into text: control characters (NUL, Ctrl-Z,
// ESC, power-up noise) are dropped, invalid UTF-8 is replaced, and spaces
// around the line are trimmed.
func cleanLine(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			continue
		}
		out = append(out, c)
	}
	s := string(out)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(s)
}
