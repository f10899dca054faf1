package at

import (
	"strconv"
	"strings"
	"time"
)

// Cmd is one AT command and what its reply looks like.
type Cmd struct {
	// Line is the command without its line end, e.g. "AT+CMGR=5".
	Line string
	// Timeout bounds the wait for the final result; 0 means DefaultTimeout(Line).
	Timeout time.Duration
	// Prefix marks the command's information lines, e.g. "+CMGR:". Empty
	// means the prefix derived from Line ("AT+CMGR=5" -> "+CMGR:"); commands
	// without one (ATE0, AT) expect no information lines.
	Prefix string
	// Bare accepts information lines without the prefix, for commands such
	// as AT+CGMI, AT+CGSN or ATI that answer with plain text. Lines matching
	// the URC table are still URCs.
	Bare bool
	// Trailing is how many lines after each prefixed line belong to it:
	// 1 for AT+CMGR and AT+CMGL, whose header is followed by the PDU.
	Trailing int
	// Data is written, exactly, once the modem prompts with "> " or "@"
	// (AT+CMGS, AT+QISEND, AT+USOST). A command with Data always waits for a
	// prompt; a final result before it ends the command unwritten.
	Data []byte
	// PromptDelay is waited between the prompt and writing Data: u-blox
	// asks for at least 50 ms after "@", or the first bytes may be lost.
	PromptDelay time.Duration
	// Final lists extra successful final results, e.g. "SEND OK".
	Final []string
	// Fail lists extra failing final results, e.g. "SEND FAIL".
	Fail []string
	// SkipSync writes the command at once even when the engine is out of
	// step with the modem (a command timed out and no resynchronisation
	// probe has been answered since). It is for a module reset sent to a
	// module that stopped answering: the probe would never be answered, so
	// the reset would never be written. The engine stays out of step, and
	// a stale final result may be taken as this command's.
	SkipSync bool
	// Framer recognises information lines followed by raw bytes
	// (+QIRD, +USORF); they are returned in Reply.Payloads.
	Framer Framer
}

// Reply is what a command answered before its final result.
type Reply struct {
	// Lines are the information lines in order: prefixed lines, the lines
	// trailing them and, for Bare commands, plain lines.
	Lines []string
	// Payloads are the length-framed binary answers, in order.
	Payloads []Payload
	// Final is the final result line, e.g. "OK" or "SEND OK".
	Final string
}

// Payload is a line that announced raw bytes, and the bytes.
type Payload struct {
	Head string
	Data []byte
}

// URC is an unsolicited result code: a line the modem sent that is not part
// of a command's reply.
type URC struct {
	// Line is the first line, e.g. `+CMTI: "SM",5`.
	Line string
	// Extra are the lines that belong to it (the PDU line of +CMT).
	Extra []string
	// Data are the raw bytes of a length-framed URC (+QIURC "recv" direct
	// push, +RECEIVE).
	Data []byte
	// Known is false for a line that matched no entry of the URC table:
	// leftovers of an abandoned command, garbage, or a URC simgate does not
	// know. Such lines are never put into a reply.
	Known bool
}

// URCSpec describes one kind of URC.
type URCSpec struct {
	// Prefix starts the URC's first line.
	Prefix string
	// Lines is how many further lines belong to it (1 for +CMT).
	Lines int
	// Framer, when set, recognises the URC when raw bytes follow it.
	Framer Framer
	// IsReply decides, for a line that starts with both this prefix and the
	// running command's prefix, whether it is the command's reply. Nil means
	// it always is. +CEREG needs it: the read form AT+CEREG? answers
	// "+CEREG: 2,5,..." while the URC is "+CEREG: 5,...".
	IsReply func(line string) bool
}

// DefaultURCs are the URCs of the modules simgate supports (27.005/27.007,
// Quectel, SIMCom, u-blox).
func DefaultURCs() []URCSpec {
	reg := func(p string) URCSpec { return URCSpec{Prefix: p, IsReply: RegistrationReadForm} }
	return []URCSpec{
		{Prefix: "+CMTI:"},
		{Prefix: "+CMT:", Lines: 1},
		{Prefix: "+CDSI:"},
		{Prefix: "+CDS:", Lines: 1},
		{Prefix: "+CBM:", Lines: 1},
		reg("+CEREG:"), reg("+CREG:"), reg("+CGREG:"), reg("+C5GREG:"),
		{Prefix: "+CGEV:"},
		{Prefix: "+CPIN:"},
		{Prefix: "+CFUN:"},
		{Prefix: "+CUSD:"},
		{Prefix: "+CIEV:"},
		{Prefix: "+CSCON:"},
		{Prefix: "+CTZV:"},
		{Prefix: "+CTZE:"},
		{Prefix: "+CRING:"},
		{Prefix: "RING"},
		{Prefix: "RDY"},
		{Prefix: "APP RDY"},
		{Prefix: "SMS DONE"},
		{Prefix: "PB DONE"},
		{Prefix: "POWERED DOWN"},
		{Prefix: "NORMAL POWER DOWN"},
		// Quectel
		{Prefix: "+QIURC:", Framer: QuectelRecvPush},
		{Prefix: "+QIND:"},
		{Prefix: "+QUSIM:"},
		{Prefix: "+QIOPEN:"},
		{Prefix: "+QNITZ:"},
		// SIMCom
		{Prefix: "+RECEIVE", Framer: SIMComReceive},
		// SIM7600 names a datagram's sender on a line of its own before
		// +RECEIVE (AT+CIPSRIP=1); it must not be taken into a reply.
		{Prefix: "RECV FROM:"},
		{Prefix: "+IPCLOSE:"},
		{Prefix: "+CIPERROR:"},
		{Prefix: "+CIPCLOSE:"},
		{Prefix: "+NETCLOSE:"},
		{Prefix: "+CIPEVENT:"},
		{Prefix: "+CIPOPEN:"},
		{Prefix: "+CIPSEND:"},
		{Prefix: "+NETOPEN:"},
		{Prefix: "+CADATAIND:"},
		{Prefix: "+CANEW:"},
		// SIM7080: the last boot URC, once SMS storage is usable.
		{Prefix: "SMS Ready"},
		{Prefix: "+CASTATE:"},
		{Prefix: "+APP PDP:"},
		{Prefix: "*PSUTTZ:"},
		{Prefix: "DST:"},
		// u-blox
		{Prefix: "+UUSORF:"},
		{Prefix: "+UUSORD:"},
		{Prefix: "+UUSOCL:"},
		{Prefix: "+UUSOST:"},
		{Prefix: "+UUPSDA:"},
		{Prefix: "+UUPSDD:"},
	}
}

// RegistrationReadForm reports whether a +CEREG:/+CREG:/+CGREG: line is the
// answer to the read command rather than a URC. The read form starts with
// <n> followed by a numeric <stat> ("+CEREG: 2,5,..."); the URC starts with
// <stat> and is alone or followed by a quoted area code ("+CEREG: 5" or
// "+CEREG: 5,\"1A2B\",...").
func RegistrationReadForm(line string) bool {
	_, rest, ok := strings.Cut(line, ":")
	if !ok {
		return false
	}
	f := strings.Split(rest, ",")
	if len(f) < 2 {
		return false
	}
	_, err := strconv.Atoi(strings.TrimSpace(f[1]))
	return err == nil
}

// DefaultTimeout is the time a command may take before the engine gives up,
// from the modules' manuals: network operations take minutes, everything
// else answers in a few seconds.
func DefaultTimeout(line string) time.Duration {
	u := strings.ToUpper(line)
	switch {
	case strings.HasPrefix(u, "AT+CMGS"), strings.HasPrefix(u, "AT+CMSS"):
		return 120 * time.Second
	case strings.HasPrefix(u, "AT+COPS="):
		return 180 * time.Second
	case strings.HasPrefix(u, "AT+QIOPEN"), strings.HasPrefix(u, "AT+QIACT"),
		strings.HasPrefix(u, "AT+QIDEACT"), strings.HasPrefix(u, "AT+NETOPEN"),
		strings.HasPrefix(u, "AT+NETCLOSE"), strings.HasPrefix(u, "AT+CIPOPEN"),
		strings.HasPrefix(u, "AT+CNACT"), strings.HasPrefix(u, "AT+UPSDA"),
		strings.HasPrefix(u, "AT+CGACT"), strings.HasPrefix(u, "AT+CGATT="),
		strings.HasPrefix(u, "AT+CAOPEN"), strings.HasPrefix(u, "AT+CASERVER"):
		return 150 * time.Second
	case strings.HasPrefix(u, "AT+CFUN"):
		return 15 * time.Second
	case strings.HasPrefix(u, "AT+CMGL"), strings.HasPrefix(u, "AT+CMGD="),
		strings.HasPrefix(u, "AT+CPMS"), strings.HasPrefix(u, "AT+QISEND"),
		strings.HasPrefix(u, "AT+CIPSEND"), strings.HasPrefix(u, "AT+USOST"),
		strings.HasPrefix(u, "AT+USOCR"), strings.HasPrefix(u, "AT+QICLOSE"),
		strings.HasPrefix(u, "AT+CASEND"), strings.HasPrefix(u, "AT+CACLOSE"):
		return 30 * time.Second
	}
	return 5 * time.Second
}

// derivePrefix returns the information prefix of a command line:
// "AT+CMGR=5" -> "+CMGR:", "AT+CEREG?" -> "+CEREG:", "ATE0" -> "".
func derivePrefix(line string) string {
	u := strings.ToUpper(line)
	rest, ok := strings.CutPrefix(u, "AT")
	if !ok || rest == "" || (rest[0] != '+' && rest[0] != '$' && rest[0] != '^' && rest[0] != '*' && rest[0] != '#') {
		return ""
	}
	if i := strings.IndexAny(rest, "=?"); i >= 0 {
		rest = rest[:i]
	}
	if len(rest) < 2 {
		return ""
	}
	return rest + ":"
}
