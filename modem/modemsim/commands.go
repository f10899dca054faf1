package modemsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Command operations.
const (
	opExec = iota // AT+X
	opSet         // AT+X=...
	opRead        // AT+X?
	opTest        // AT+X=?
)

// command is one command of a command line.
type command struct {
	name string // upper case: "+CMGF", "E", "&F", "S3"
	op   int
	num  int    // basic commands: the number after the letter (ATE1)
	rawA string // the argument text of a set command, as typed
	args []arg
}

// arg is one comma-separated argument of a set command.
type arg struct {
	text   string // without quotes
	quoted bool
	empty  bool
}

func (c *command) String() string {
	switch c.op {
	case opSet:
		return c.name + "=" + c.rawA
	case opRead:
		return c.name + "?"
	case opTest:
		return c.name + "=?"
	}
	if c.num >= 0 && !strings.HasPrefix(c.name, "+") {
		return fmt.Sprintf("%s%d", c.name, c.num)
	}
	return c.name
}

// parseLine splits what follows "AT" into commands: basic commands run
// together (E0V1), extended ones are separated by ';' (+CMGF=0;+CNMI=...).
func parseLine(body string) ([]*command, error) {
	var cmds []*command
	i := 0
	for i < len(body) {
		ch := body[i]
		switch {
		case ch == ' ' || ch == ';':
			i++
		case ch == '+' || ch == '^' || ch == '$' || ch == '#' || ch == '%':
			c, n, err := parseExtended(body[i:])
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, c)
			i += n
		case isLetter(ch) || ch == '&':
			c, n, err := parseBasic(body[i:])
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, c)
			i += n
		default:
			return nil, fmt.Errorf("unexpected %q", ch)
		}
	}
	return cmds, nil
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// parseExtended reads one extended command; it returns the bytes used.
func parseExtended(s string) (*command, int, error) {
	i := 1
	for i < len(s) && (isLetter(s[i]) || isDigit(s[i]) || s[i] == '_' || s[i] == '.') {
		i++
	}
	if i == 1 {
		return nil, 0, errors.New("empty command name")
	}
	c := &command{name: strings.ToUpper(s[:i]), num: -1}
	switch {
	case strings.HasPrefix(s[i:], "=?"):
		c.op = opTest
		i += 2
	case strings.HasPrefix(s[i:], "="):
		c.op = opSet
		i++
		start := i
		inQuote := false
		for i < len(s) && (inQuote || s[i] != ';') {
			if s[i] == '"' {
				inQuote = !inQuote
			}
			i++
		}
		if inQuote {
			return nil, 0, errors.New("unterminated string")
		}
		c.rawA = s[start:i]
		c.args = splitArgs(c.rawA)
	case strings.HasPrefix(s[i:], "?"):
		c.op = opRead
		i++
	}
	// Anything but ';' or the end of line after the command is a syntax error.
	if i < len(s) && s[i] != ';' {
		return nil, 0, fmt.Errorf("junk after %s", c.name)
	}
	return c, i, nil
}

// parseBasic reads one basic command: a letter (or &letter) and an
// optional number, or S<n>=<v> / S<n>?.
func parseBasic(s string) (*command, int, error) {
	i := 1
	name := strings.ToUpper(s[:1])
	if s[0] == '&' {
		if len(s) < 2 || !isLetter(s[1]) {
			return nil, 0, errors.New("bad & command")
		}
		name = "&" + strings.ToUpper(s[1:2])
		i = 2
	}
	c := &command{name: name, num: -1}
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j > i {
		n, err := strconv.Atoi(s[i:j])
		if err != nil {
			return nil, 0, fmt.Errorf("bad number: %w", err)
		}
		c.num = n
	}
	i = j
	if name == "S" {
		if c.num < 0 {
			return nil, 0, errors.New("register command S without a register number")
		}
		c.name = fmt.Sprintf("S%d", c.num)
		switch {
		case strings.HasPrefix(s[i:], "?"):
			c.op = opRead
			i++
		case strings.HasPrefix(s[i:], "="):
			c.op = opSet
			i++
			k := i
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			c.rawA = s[i:k]
			c.args = splitArgs(c.rawA)
			i = k
		}
	}
	if name == "D" {
		// Dial takes the rest of the line.
		c.rawA = s[i:]
		return c, len(s), nil
	}
	return c, i, nil
}

// splitArgs splits on commas outside quotes.
func splitArgs(s string) []arg {
	var out []arg
	start := 0
	inQuote := false
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] == '"' {
			inQuote = !inQuote
		}
		if i == len(s) || (s[i] == ',' && !inQuote) {
			t := strings.TrimSpace(s[start:i])
			a := arg{text: t, empty: t == ""}
			if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
				a.text, a.quoted = t[1:len(t)-1], true
			}
			out = append(out, a)
			start = i + 1
		}
	}
	return out
}

// intArg returns argument i as an integer in [lo, hi]; def when absent or
// empty (def < lo marks a mandatory argument).
func (c *command) intArg(i, def, lo, hi int) (int, error) {
	if i >= len(c.args) || c.args[i].empty {
		if def < lo {
			return 0, errParam
		}
		return def, nil
	}
	if c.args[i].quoted {
		return 0, errParam
	}
	n, err := strconv.Atoi(c.args[i].text)
	if err != nil || n < lo || n > hi {
		return 0, errParam
	}
	return n, nil
}

// strArg returns argument i as a string, quoted or not; def when absent.
func (c *command) strArg(i int, def string) string {
	if i >= len(c.args) || c.args[i].empty {
		return def
	}
	return c.args[i].text
}

// atError is a final result code that reports a failure.
type atError struct {
	kind int // errKindPlain, errKindCME, errKindCMS
	code int
}

const (
	errKindPlain = iota
	errKindCME
	errKindCMS
)

func (e *atError) Error() string {
	switch e.kind {
	case errKindCME:
		return fmt.Sprintf("+CME ERROR: %d", e.code)
	case errKindCMS:
		return fmt.Sprintf("+CMS ERROR: %d", e.code)
	}
	return "ERROR"
}

func cme(code int) error { return &atError{kind: errKindCME, code: code} }
func cms(code int) error { return &atError{kind: errKindCMS, code: code} }

var (
	errPlain   = &atError{kind: errKindPlain}
	errParam   = cme(50)
	errUnknown = cme(100)
)

// cmeText and cmsText are the verbose (AT+CMEE=2) texts of the codes used.
var cmeText = map[int]string{
	3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
	13: "SIM failure", 14: "SIM busy", 30: "no network service", 50: "incorrect parameters",
	100: "unknown", 550: "unknown error", 552: "invalid parameters", 554: "create socket failed",
	555: "operation not supported", 561: "open PDP context failed", 562: "close PDP context failed",
	563: "socket identity has been used", 567: "socket has been closed", 570: "PDP context broken down",
}

var cmsText = map[int]string{
	300: "ME failure", 302: "operation not allowed", 303: "operation not supported",
	304: "invalid PDU mode parameter", 305: "invalid text mode parameter", 314: "SIM busy",
	321: "invalid memory index", 322: "SIM memory full", 330: "SMSC address unknown",
	331: "no network service", 332: "network timeout", 340: "no +CNMA acknowledgement expected",
	500: "unknown error",
}

// errorText renders err as the final result the current AT+CMEE asks for.
func (s *Sim) errorText(err error) string {
	var e *atError
	if !errors.As(err, &e) {
		e = &atError{kind: errKindCME, code: 50}
	}
	if e.kind == errKindPlain || s.set.cmee == 0 {
		return "ERROR"
	}
	prefix, texts := "+CME ERROR: ", cmeText
	if e.kind == errKindCMS {
		prefix, texts = "+CMS ERROR: ", cmsText
	}
	if s.set.cmee == 2 {
		if t, ok := texts[e.code]; ok {
			return prefix + t
		}
	}
	return prefix + strconv.Itoa(e.code)
}

// handler executes one command, adding information lines to r. It returns
// nil for OK or an error for the final result.
type handler func(s *Sim, c *command, r *reply) error

// spec describes a command: its handler, the profiles that know it (nil:
// all) and the boot phase it needs.
type spec struct {
	fn       handler
	profiles []string
	phase    int
	sms      bool // before SMS DONE it answers the profile's busy error
	// setOnly commands run only in their set form (AT+X=...); the test
	// form answers test when it is given, and every other form ERROR.
	setOnly bool
	test    string
}

var commandTable map[string]spec

func init() {
	commandTable = map[string]spec{}
	for name, sp := range basicCommands() {
		commandTable[name] = sp
	}
	for name, sp := range smsCommands() {
		commandTable[name] = sp
	}
	for name, sp := range socketCommands() {
		commandTable[name] = sp
	}
	for name, sp := range managerCommands() {
		commandTable[name] = sp
	}
}

// dispatch runs one command. Caller holds mu.
func (s *Sim) dispatch(c *command, r *reply) error {
	sp, ok := commandTable[c.name]
	if ok && sp.profiles != nil {
		ok = false
		for _, p := range sp.profiles {
			if p == s.prof.name {
				ok = true
			}
		}
	}
	if !ok && c.name == s.prof.iccidCmd {
		sp, ok = spec{fn: (*Sim).cmdICCID, phase: phaseSIM}, true
	}
	if !ok {
		// Logged at info, so a host's needs show without -v: a host that
		// depends on a command modemsim lacks is what makes it less real.
		s.log.Info("unknown command", "command", "AT"+c.String())
		return errUnknown
	}
	if s.faults.errorOn(c) {
		s.log.Debug("fault: ERROR instead of running the command", "cmd", c.String())
		return errPlain
	}
	if s.phase < sp.phase {
		if sp.sms && s.prof.busyCMS != 0 {
			return cms(s.prof.busyCMS)
		}
		return cme(14)
	}
	if sp.setOnly && c.op != opSet {
		if c.op == opTest && sp.test != "" {
			r.line(sp.test)
			return nil
		}
		return errPlain
	}
	return sp.fn(s, c, r)
}
