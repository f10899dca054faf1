package modem

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Parsers of the module socket answers and URCs. Every one takes bytes the
// modem sent, so each returns an error for anything it does not understand
// and never panics (FuzzSocketParsers).

// addrPort reads a quoted or bare IP address and a port number, as modules
// print a datagram's sender.
func addrPort(ip, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(unquote(strings.TrimSpace(ip))))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", ip, err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(unquote(strings.TrimSpace(port))))
	if err != nil || p < 0 || p > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %q is not a port number", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// qiurc is a Quectel +QIURC URC.
type qiurc struct {
	Kind string // recv, closed, pdpdeact, incoming full, ...
	ID   int    // connectID (recv, closed) or contextID (pdpdeact); -1 if absent
	// Len is the length a direct-push "recv" announces, -1 in buffer mode.
	Len  int
	From netip.AddrPort // direct push only
}

// parseQIURC reads `+QIURC: "recv",<id>[,<len>,"<ip>",<port>]`,
// `+QIURC: "closed",<id>` and `+QIURC: "pdpdeact",<ctx>`.
func parseQIURC(line string) (qiurc, error) {
	f, err := fields(line, "+QIURC:")
	if err != nil {
		return qiurc{}, fmt.Errorf("parse +QIURC: %w", err)
	}
	q := qiurc{Kind: unquote(f[0]), ID: -1, Len: -1}
	if len(f) >= 2 {
		if q.ID, err = field(f, 1); err != nil {
			return q, fmt.Errorf("parse %q: %w", line, err)
		}
	}
	if q.Kind != "recv" || len(f) < 3 {
		return q, nil
	}
	if q.Len, err = field(f, 2); err != nil || q.Len < 0 {
		return q, fmt.Errorf("parse %q: bad length", line)
	}
	if len(f) >= 5 {
		if q.From, err = addrPort(f[3], f[4]); err != nil {
			return q, fmt.Errorf("parse %q: %w", line, err)
		}
	}
	return q, nil
}

// parseQIRD reads the head of one AT+QIRD datagram,
// `+QIRD: <len>,"<ip>",<port>`, or `+QIRD: 0` when the buffer is empty.
func parseQIRD(head string) (n int, from netip.AddrPort, err error) {
	f, err := fields(head, "+QIRD:")
	if err == nil {
		n, err = field(f, 0)
	}
	if err == nil && n < 0 {
		err = fmt.Errorf("negative length")
	}
	if err == nil && n > 0 {
		if len(f) < 3 {
			err = fmt.Errorf("no sender")
		} else {
			from, err = addrPort(f[1], f[2])
		}
	}
	if err != nil {
		return 0, netip.AddrPort{}, fmt.Errorf("parse %q: %w", head, err)
	}
	return n, from, nil
}

// parseQIACT finds context ctx in AT+QIACT? lines
// (`+QIACT: <ctx>,<state>,<type>,"<ip>"`) and reports whether it is active
// and its address.
func parseQIACT(lines []string, ctx int) (active bool, ip string) {
	for _, l := range lines {
		f, err := fields(l, "+QIACT:")
		if err != nil || len(f) < 2 {
			continue
		}
		if id, err := field(f, 0); err != nil || id != ctx {
			continue
		}
		state, err := field(f, 1)
		if err != nil || state != 1 {
			return false, ""
		}
		if len(f) >= 4 {
			ip = unquote(f[3])
		}
		return true, ip
	}
	return false, ""
}

// parseQISTATE reports whether AT+QISTATE=1,<id> shows socket id open and
// listening on port in the wanted access mode (0 buffer, 1 direct push).
// `+QISTATE: <id>,"<service>","<ip>",<rport>,<lport>,<state>,<ctx>,<srv>,<mode>,"<port>"`.
func parseQISTATE(lines []string, id, port, mode int) bool {
	for _, l := range lines {
		f, err := fields(l, "+QISTATE:")
		if err != nil || len(f) < 9 {
			continue
		}
		n, err0 := field(f, 0)
		lport, err1 := field(f, 4)
		state, err2 := field(f, 5)
		m, err3 := field(f, 8)
		if err0 != nil || err1 != nil || err2 != nil || err3 != nil || n != id {
			continue
		}
		return strings.EqualFold(unquote(f[1]), "UDP SERVICE") && lport == port && (state == 2 || state == 3) && m == mode
	}
	return false
}

// parseOpenResult reads `<prefix> <id>,<err>` (+QIOPEN, +CIPOPEN) or
// `<prefix> <err>` (+NETOPEN): the id (-1 when absent) and the error code
// (0 is success).
func parseOpenResult(line, prefix string) (id, code int, err error) {
	f, err := fields(line, prefix)
	if err != nil {
		return 0, 0, fmt.Errorf("parse %s: %w", prefix, err)
	}
	switch len(f) {
	case 1:
		code, err = field(f, 0)
		id = -1
	case 2:
		if id, err = field(f, 0); err == nil {
			code, err = field(f, 1)
		}
	default:
		err = fmt.Errorf("want 1 or 2 fields")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", line, err)
	}
	return id, code, nil
}

// parseRecvFrom reads SIM7600's `RECV FROM:<ip>:<port>` (IPv6 addresses
// have colons of their own; the port follows the last one).
func parseRecvFrom(line string) (netip.AddrPort, error) {
	rest, ok := strings.CutPrefix(line, "RECV FROM:")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q does not start with %q", line, "RECV FROM:")
	}
	rest = strings.TrimSpace(rest)
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("parse %q: no port", line)
	}
	ap, err := addrPort(strings.Trim(rest[:i], "[]"), rest[i+1:])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("parse %q: %w", line, err)
	}
	return ap, nil
}

// parseReceive reads the head of a SIM7600 push, `+RECEIVE,<id>,<len>` or
// `+RECEIVE: <id>,<len>`.
func parseReceive(head string) (id, n int, err error) {
	rest, ok := strings.CutPrefix(head, "+RECEIVE")
	if !ok {
		return 0, 0, fmt.Errorf("%q does not start with +RECEIVE", head)
	}
	rest = strings.TrimLeft(rest, ":, ")
	f, _ := fields(rest, "")
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("parse %q: want <id>,<len>", head)
	}
	if id, err = field(f, 0); err == nil {
		n, err = field(f, 1)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", head, err)
	}
	return id, n, nil
}

// parseIDLine reads the first number after prefix: the socket of +IPCLOSE,
// +UUSOCL, +USOCR and +UUSORF, whose further fields callers read with
// parseUUSORF.
func parseIDLine(line, prefix string) (int, error) {
	f, err := fields(line, prefix)
	if err == nil {
		var id int
		if id, err = field(f, 0); err == nil && id >= 0 {
			return id, nil
		}
		if err == nil {
			err = fmt.Errorf("negative id")
		}
	}
	return 0, fmt.Errorf("parse %s: %w", prefix, err)
}

// parseUUSORF reads u-blox `+UUSORF: <socket>,<len>` (also +UUSORD).
func parseUUSORF(line string) (id, n int, err error) {
	prefix, _, _ := strings.Cut(line, ":")
	return parsePair(line, prefix+":")
}

// parsePair reads `<prefix> <a>,<b>`: exactly two numbers, neither
// negative.
func parsePair(line, prefix string) (a, b int, err error) {
	f, err := fields(line, prefix)
	if err == nil && len(f) != 2 {
		err = fmt.Errorf("want 2 fields")
	}
	if err == nil {
		a, err = field(f, 0)
	}
	if err == nil {
		b, err = field(f, 1)
	}
	if err == nil && (a < 0 || b < 0) {
		err = fmt.Errorf("negative field")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse %q: %w", line, err)
	}
	return a, b, nil
}

// parseUSORF reads the head of one u-blox datagram,
// `+USORF: <socket>,"<ip>",<port>,<len>,"`.
func parseUSORF(head string) (id int, from netip.AddrPort, n int, err error) {
	f, err := fields(strings.TrimSuffix(head, `"`), "+USORF:")
	if err == nil && len(f) < 4 {
		err = fmt.Errorf("want 4 fields")
	}
	if err == nil {
		id, err = field(f, 0)
	}
	if err == nil {
		from, err = addrPort(f[1], f[2])
	}
	if err == nil {
		n, err = field(f, 3)
	}
	if err != nil {
		return 0, netip.AddrPort{}, 0, fmt.Errorf("parse %q: %w", head, err)
	}
	return id, from, n, nil
}

// parseAddrLine reads the device address from `+IPADDR: <ip>` (SIM7600)
// or `+CGPADDR: <cid>,"<ip>"`; "" when the module has none (0.0.0.0).
func parseAddrLine(line string) (string, error) {
	prefix, _, _ := strings.Cut(line, ":")
	f, err := fields(line, prefix+":")
	if err != nil {
		return "", fmt.Errorf("parse address: %w", err)
	}
	v := unquote(f[len(f)-1])
	if prefix == "+CGPADDR" && len(f) < 2 {
		return "", fmt.Errorf("parse %q: want <cid>,<address>", line)
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", line, err)
	}
	if a.IsUnspecified() {
		return "", nil
	}
	return a.String(), nil
}

// parseCGACT reports whether AT+CGACT? shows context cid active
// (`+CGACT: <cid>,<state>`).
func parseCGACT(lines []string, cid int) bool {
	for _, l := range lines {
		f, err := fields(l, "+CGACT:")
		if err != nil || len(f) < 2 {
			continue
		}
		if id, err := field(f, 0); err == nil && id == cid {
			st, err := field(f, 1)
			return err == nil && st == 1
		}
	}
	return false
}

// parseCGDCONT returns the APN of context cid in AT+CGDCONT? lines
// (`+CGDCONT: <cid>,"<type>","<apn>",...`), and whether it is defined.
func parseCGDCONT(lines []string, cid int) (apn string, ok bool) {
	for _, l := range lines {
		f, err := fields(l, "+CGDCONT:")
		if err != nil || len(f) < 3 {
			continue
		}
		if id, err := field(f, 0); err == nil && id == cid {
			return unquote(f[2]), true
		}
	}
	return "", false
}

// parseCIPOPENRead reports whether AT+CIPOPEN? shows link id open as a UDP
// socket on port (`+CIPOPEN: <id>,"UDP",,,<port>`; a closed link is
// `+CIPOPEN: <id>`).
func parseCIPOPENRead(lines []string, id, port int) bool {
	for _, l := range lines {
		f, err := fields(l, "+CIPOPEN:")
		if err != nil || len(f) < 5 {
			continue
		}
		n, err0 := field(f, 0)
		p, err1 := field(f, len(f)-1)
		if err0 == nil && err1 == nil && n == id {
			return strings.EqualFold(unquote(f[1]), "UDP") && p == port
		}
	}
	return false
}
