package modemsim

import (
	"strings"
	"time"
)

// Input modes: what the module does with the next byte from the host.
const (
	modeCommand = iota // a command line, ended by CR
	modeText           // after a prompt: text until Ctrl-Z (send) or ESC (cancel)
	modeData           // after a prompt: exactly want raw bytes
)

const (
	ctrlZ = 0x1a
	esc   = 0x1b
	// maxLine is the longest command line accepted; longer lines get ERROR.
	maxLine = 2048
	// maxText bounds text typed after a prompt (an SMS PDU in hex is at
	// most 2*(12+164) characters; Quectel accepts 1460 bytes per send).
	maxText = 4096
)

// dataFunc completes a command after its prompt, with the bytes typed (or
// cancelled when the host sent ESC).
type dataFunc func(data []byte, cancelled bool, r *reply) error

// input is the command line parser's state.
type input struct {
	mode     int
	line     []byte
	overflow bool
	last     string // body of the last command line, for A/
	data     []byte
	want     int
	dataEcho bool
	onData   dataFunc
}

// feed processes bytes from the host. It runs on the link's reader
// goroutine; a reply that takes time (SendDelay) is waited for here, so
// that later input queues behind it as on a real module.
func (s *Sim) feed(l *link, b []byte) {
	for len(b) > 0 {
		s.mu.Lock()
		if s.closed || (l != nil && s.link != l) {
			s.mu.Unlock()
			return
		}
		if s.phase < phaseRDY || s.hung() {
			s.counters[CounterDiscarded] += len(b)
			s.mu.Unlock()
			return
		}
		n, late := s.consume(b)
		gen := s.bootGen
		s.mu.Unlock()
		b = b[n:]
		if late == nil {
			continue
		}
		t := time.NewTimer(late.delay)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return
		}
		s.mu.Lock()
		if s.bootGen == gen && !s.closed {
			s.sendReply(late)
		}
		s.mu.Unlock()
	}
}

// consume handles bytes until they run out or a command's reply must wait;
// it returns how many bytes it used and that reply. Caller holds mu.
func (s *Sim) consume(b []byte) (int, *reply) {
	var echo []byte
	flush := func() {
		if len(echo) > 0 {
			s.emit(echo)
			echo = nil
		}
	}
	defer flush()
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.in.mode {
		case modeCommand:
			if s.set.echo {
				echo = append(echo, c)
			}
			switch c {
			case '\r':
				flush()
				line := string(s.in.line)
				over := s.in.overflow
				s.in.line, s.in.overflow = s.in.line[:0], false
				if r := s.runLine(line, over); r != nil && r.delay > 0 {
					return i + 1, r
				}
			case '\n', 0:
				// LF after CR and NUL padding are noise on a command line.
			case 8, 127:
				if n := len(s.in.line); n > 0 {
					s.in.line = s.in.line[:n-1]
				}
			case '/':
				if len(s.in.line) == 1 && (s.in.line[0] == 'A' || s.in.line[0] == 'a') {
					// "A/" repeats the last command line without a CR.
					flush()
					s.in.line = s.in.line[:0]
					if r := s.runLine("AT"+s.in.last, false); r != nil && r.delay > 0 {
						return i + 1, r
					}
					continue
				}
				fallthrough
			default:
				if len(s.in.line) >= maxLine {
					s.in.overflow = true
					continue
				}
				s.in.line = append(s.in.line, c)
			}
		case modeText:
			switch c {
			case ctrlZ, esc:
				flush()
				if r := s.endData(c == esc); r != nil && r.delay > 0 {
					return i + 1, r
				}
			default:
				if s.in.dataEcho {
					echo = append(echo, c)
				}
				if len(s.in.data) < maxText {
					s.in.data = append(s.in.data, c)
				}
			}
		case modeData:
			if s.in.dataEcho {
				echo = append(echo, c)
			}
			s.in.data = append(s.in.data, c)
			if len(s.in.data) >= s.in.want {
				flush()
				if r := s.endData(false); r != nil && r.delay > 0 {
					return i + 1, r
				}
			}
		}
	}
	return len(b), nil
}

// startData switches to text or data mode after a prompt. Caller holds mu.
func (s *Sim) startData(mode, want int, echo bool, fn dataFunc) {
	s.in.mode = mode
	s.in.want = want
	s.in.data = nil
	s.in.dataEcho = echo
	s.in.onData = fn
}

// endData completes the command waiting for data and answers it.
func (s *Sim) endData(cancelled bool) *reply {
	data, fn := s.in.data, s.in.onData
	s.in = input{last: s.in.last, line: s.in.line[:0]}
	r := &reply{}
	r.block()
	err := fn(data, cancelled, r)
	return s.finish(r, err)
}

// runLine executes one command line. It returns the reply when it must be
// sent later, else nil (the reply has been sent). Caller holds mu.
func (s *Sim) runLine(line string, overflow bool) *reply {
	body, ok := atBody(line)
	if !ok {
		// Real modules ignore lines that do not start with AT.
		return nil
	}
	r := &reply{}
	if overflow {
		return s.finish(r, errPlain)
	}
	s.in.last = body
	cmds, err := parseLine(body)
	if err != nil {
		s.count(CounterCommands)
		return s.finish(r, errPlain)
	}
	for _, c := range cmds {
		s.count(CounterCommands)
		r.block()
		s.log.Debug("command", "cmd", c.String())
		if err := s.dispatch(c, r); err != nil {
			return s.finish(r, err)
		}
		if r.prompt != "" {
			// Whatever follows a prompting command on the line is ignored.
			s.sendReply(r)
			return nil
		}
	}
	return s.finish(r, nil)
}

// atBody returns what follows the "AT" prefix. Bytes before it (garbage,
// a stray CR) are skipped as modules do.
func atBody(line string) (string, bool) {
	// Byte-wise: the line may hold any bytes, and case folding of invalid
	// UTF-8 would change offsets.
	for i := 0; i+1 < len(line); i++ {
		if (line[i] == 'A' || line[i] == 'a') && (line[i+1] == 'T' || line[i+1] == 't') {
			return line[i+2:], true
		}
	}
	return "", false
}

// finish sets the final result from err and sends the reply, or returns it
// when it has to wait. Caller holds mu.
func (s *Sim) finish(r *reply, err error) *reply {
	if err != nil {
		s.count(CounterErrors)
		r.final = s.errorText(err)
		r.after = nil
	} else if r.final == "" {
		r.final = "OK"
	}
	if r.delay > 0 {
		return r
	}
	s.sendReply(r)
	return nil
}

// reply is the response to one command line: for each command a block of
// groups (lines that stay together, like +CMGR: and its PDU), then a final
// result or a prompt.
type reply struct {
	blocks  [][][]byte
	final   string
	noFinal bool // the final result comes later as a URC-like line
	prompt  string
	delay   time.Duration
	after   []func()
}

func (r *reply) block() { r.blocks = append(r.blocks, nil) }

func (r *reply) add(g []byte) {
	if len(r.blocks) == 0 {
		r.block()
	}
	n := len(r.blocks) - 1
	r.blocks[n] = append(r.blocks[n], g)
}

// line adds one information line.
func (r *reply) line(text string) { r.add([]byte(text)) }

// group adds lines that must not be separated (a header and its PDU).
func (r *reply) group(lines ...string) { r.add([]byte(strings.Join(lines, "\r\n"))) }

// raw adds a header line followed by raw bytes (socket data).
func (r *reply) raw(header string, data []byte) {
	g := append([]byte(header+"\r\n"), data...)
	r.add(g)
}

// then runs fn after the reply has been sent (a URC that follows OK, a
// reset after OK).
func (r *reply) then(fn func()) { r.after = append(r.after, fn) }

// sendReply renders r as a module does (ATV1: "\r\n<line>\r\n" blocks and
// "\r\nOK\r\n"; ATV0: bare lines and numeric codes), with noise URCs between
// groups when that fault is on. Caller holds mu.
func (s *Sim) sendReply(r *reply) {
	var b []byte
	noise := func() {
		if s.faults.URCNoise > 0 && s.rng.Float64() < s.faults.URCNoise {
			b = append(b, "\r\n"+s.noiseURC()+"\r\n"...)
			s.count(CounterNoise)
		}
	}
	noise()
	for _, blk := range r.blocks {
		if len(blk) == 0 {
			continue
		}
		if s.set.verbose {
			b = append(b, "\r\n"...)
		}
		for i, g := range blk {
			if i > 0 {
				noise()
			}
			b = append(b, g...)
			b = append(b, "\r\n"...)
		}
		noise()
	}
	switch {
	case r.prompt != "":
		b = append(b, r.prompt...)
	case r.noFinal || s.set.quiet:
	case s.set.verbose:
		b = append(b, "\r\n"+r.final+"\r\n"...)
	default:
		b = append(b, numericResult(r.final)...)
	}
	s.emit(b)
	after := r.after
	r.after = nil
	for _, fn := range after {
		fn()
	}
}

// numericResult is the ATV0 form of a final result.
func numericResult(final string) string {
	switch final {
	case "OK":
		return "0\r"
	case "ERROR":
		return "4\r"
	default:
		return final + "\r\n"
	}
}
