package modem

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// SIMCom SIM7600: AT+NETOPEN, AT+CIPOPEN, datagrams pushed with +RECEIVE.

// simcomLink is the link number simgate uses.
const simcomLink = 0

type simcomSockets struct{}

// simcomErrors are the result codes of +NETOPEN and +CIPOPEN.
var simcomErrors = map[int]string{
	1: "network failure", 2: "network not opened", 3: "wrong parameter", 4: "operation not supported",
	5: "failed to create socket", 6: "failed to bind socket", 8: "busy", 9: "sockets opened",
	10: "timeout", 255: "unknown error",
}

func (simcomSockets) open(ctx context.Context, l sockLink, o sockOpen) (sockInfo, error) {
	id := simcomLink
	netOpen := func() (bool, error) {
		r, err := l.try(ctx, "query data session", at.Cmd{Line: "AT+NETOPEN?"})
		if err != nil {
			return false, err
		}
		for _, line := range r.Lines {
			if _, code, err := parseOpenResult(line, "+NETOPEN:"); err == nil {
				return code == 1, nil
			}
		}
		return false, nil
	}
	address := func() string {
		r, err := l.try(ctx, "read address", at.Cmd{Line: "AT+IPADDR"})
		if err == nil && len(r.Lines) > 0 {
			if ip, err := parseAddrLine(r.Lines[0]); err == nil {
				return ip
			}
		}
		return ""
	}
	if !o.Fresh {
		up, err := netOpen()
		if err != nil {
			return sockInfo{}, err
		}
		if up {
			r, err := l.try(ctx, "query socket", at.Cmd{Line: "AT+CIPOPEN?"})
			if err != nil {
				return sockInfo{}, err
			}
			if parseCIPOPENRead(r.Lines, id, o.Port) {
				return sockInfo{ID: id, IP: address(), Kept: true}, nil
			}
		}
	}
	// The sender of each datagram ("RECV FROM:") is what the allowlist
	// checks and what "from" reports.
	steps := []setup{{"set APN", fmt.Sprintf(`AT+CGDCONT=1,"IP","%s"`, o.APN)}, {"show datagram senders", "AT+CIPSRIP=1"}}
	if o.Fresh {
		steps = append(steps, setup{"close socket", fmt.Sprintf("AT+CIPCLOSE=%d", id)})
	}
	if err := l.trySteps(ctx, steps...); err != nil {
		return sockInfo{}, err
	}
	if o.Fresh {
		r, err := l.do(ctx, "close data session", at.Cmd{Line: "AT+NETCLOSE"})
		switch {
		case isFatal(err):
			return sockInfo{}, err
		case err == nil:
			if _, err := openResult(ctx, l, r, "+NETCLOSE:", -1, 30*time.Second); isFatal(err) {
				return sockInfo{}, err
			}
		}
	}
	up, err := netOpen()
	if err != nil {
		return sockInfo{}, err
	}
	if !up {
		// Bare: the refusal "+IP ERROR: Network is already opened" has no
		// +NETOPEN prefix and must still reach the reply.
		r, err := l.do(ctx, "open data session", at.Cmd{Line: "AT+NETOPEN", Bare: true})
		if err != nil {
			if isFatal(err) || !strings.Contains(strings.Join(r.Lines, " "), "already opened") {
				return sockInfo{}, err
			}
		} else {
			code, err := openResult(ctx, l, r, "+NETOPEN:", -1, at.DefaultTimeout("AT+NETOPEN"))
			if err != nil {
				return sockInfo{}, fmt.Errorf("open data session NETOPEN: %w", err)
			}
			if code != 0 {
				return sockInfo{}, fmt.Errorf("open data session NETOPEN: +NETOPEN error %d (%s)", code, errText(simcomErrors, code))
			}
		}
	}
	if err := l.trySteps(ctx, setup{"close socket", fmt.Sprintf("AT+CIPCLOSE=%d", id)}); err != nil {
		return sockInfo{}, err
	}
	line := fmt.Sprintf(`AT+CIPOPEN=%d,"UDP",,,%d`, id, o.Port)
	r, err := l.do(ctx, "open socket", at.Cmd{Line: line})
	if err != nil {
		return sockInfo{}, fmt.Errorf("%w %s", err, strings.Join(r.Lines, " "))
	}
	code, err := openResult(ctx, l, r, "+CIPOPEN:", id, at.DefaultTimeout(line))
	if err != nil {
		return sockInfo{}, fmt.Errorf("open socket %s: %w", strings.TrimPrefix(line, "AT"), err)
	}
	if code != 0 {
		return sockInfo{}, fmt.Errorf("open socket %s: +CIPOPEN error %d (%s)", strings.TrimPrefix(line, "AT"), code, errText(simcomErrors, code))
	}
	return sockInfo{ID: id, IP: address()}, nil
}

func (simcomSockets) sendCmd(sock int, host string, port int, payload []byte) at.Cmd {
	return at.Cmd{Line: fmt.Sprintf(`AT+CIPSEND=%d,%d,"%s",%d`, sock, len(payload), host, port), Data: payload}
}

// maxSend: AT+CIPSEND takes at most 1500 bytes for UDP.
func (simcomSockets) maxSend() int { return 1500 }

func (simcomSockets) urc(u at.URC) sockEvent {
	line := u.Line
	switch {
	case strings.HasPrefix(line, "RECV FROM:"):
		from, err := parseRecvFrom(line)
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		return sockEvent{kind: sockSource, id: -1, from: from}
	case strings.HasPrefix(line, "+RECEIVE"):
		id, n, err := parseReceive(line)
		switch {
		case err != nil:
			return sockEvent{kind: sockBad, id: -1, err: err}
		case u.Data != nil:
			return sockEvent{kind: sockData, id: id, data: u.Data}
		case n == 0:
			return sockEvent{kind: sockData, id: id, data: []byte{}}
		}
		return sockEvent{kind: sockBad, id: id, err: fmt.Errorf("%q announced %d bytes that did not follow", line, n)}
	case strings.HasPrefix(line, "+IPCLOSE:"):
		f, err := fields(line, "+IPCLOSE:")
		id, err1 := field(f, 0)
		if err != nil || err1 != nil {
			return sockEvent{kind: sockBad, id: -1, err: fmt.Errorf("parse %q: not <link>,<reason>", line)}
		}
		// Reason 0 is a close simgate asked for (AT+CIPCLOSE).
		if reason, err := field(f, 1); err == nil && reason == 0 {
			return sockEvent{kind: sockInfoURC, id: id}
		}
		return sockEvent{kind: sockClosed, id: id}
	case strings.HasPrefix(line, "+CIPEVENT:"):
		if strings.Contains(strings.ToUpper(line), "NETWORK CLOSED") {
			return sockEvent{kind: sockDeact, id: -1}
		}
		return sockEvent{kind: sockInfoURC, id: -1}
	case strings.HasPrefix(line, "+CIPERROR:"), strings.HasPrefix(line, "+CIPSEND:"), strings.HasPrefix(line, "+CIPCLOSE:"),
		strings.HasPrefix(line, "+NETCLOSE:"), strings.HasPrefix(line, "+NETOPEN:"), strings.HasPrefix(line, "+CIPOPEN:"):
		return sockEvent{kind: sockInfoURC, id: -1}
	}
	return sockEvent{kind: sockNone}
}

// read: the SIM7600 pushes every datagram; nothing waits to be read.
func (simcomSockets) read(context.Context, sockLink, *sockEvent) ([]datagram, bool, error) {
	return nil, false, nil
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
