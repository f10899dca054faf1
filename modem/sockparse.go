package modem

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Parsers of the module socket answers and URCs that more than one family
// reads; each family's own are beside it (sock_*.go). Every one takes bytes
// the modem sent, so each returns an error for anything it does not
// understand and never panics (FuzzSocketParsers, FuzzModuleParsers).

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
