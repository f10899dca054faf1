package modem

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// SIMCom SIM7080G (Cat-M): AT+CNACT for the data session, an AT+CASERVER
// UDP server (AT+CAOPEN on firmware without it), +CADATAIND and AT+CARECV.

// sim7080CID is the connection simgate uses; sim7080PDP the data session.
const (
	sim7080CID = 0
	sim7080PDP = 0
)

// sim7080MaxIO is the most AT+CASEND sends and AT+CARECV returns at once.
const sim7080MaxIO = 1460

// sim7080Sockets drives the SIM7080. Open selects the socket kind:
// "server" (AT+CASERVER), "client" (AT+CAOPEN to ip.cloud) or "" for
// AT+CASERVER with AT+CAOPEN when the firmware refuses it.
type sim7080Sockets struct{ Open string }

// sim7080Errors are the <result> codes of +CAOPEN.
var sim7080Errors = map[int]string{
	1: "socket creation failed", 2: "bind failed", 3: "port busy", 4: "sent failed",
	20: "connection failed", 21: "network not active (AT+CNACT)", 22: "network unreachable",
	23: "connection rejected", 24: "connection closed", 25: "connection timed out",
}

func (f sim7080Sockets) open(ctx context.Context, l sockLink, o sockOpen) (sockInfo, error) {
	id := sim7080CID
	session := func() (bool, string, error) {
		r, err := l.try(ctx, "query data session", at.Cmd{Line: "AT+CNACT?"})
		if err != nil {
			return false, "", err
		}
		up, ip := parseCNACT(r.Lines, sim7080PDP)
		return up, ip, nil
	}
	if !o.Fresh {
		up, ip, err := session()
		if err != nil {
			return sockInfo{}, err
		}
		if up {
			r, err := l.try(ctx, "query socket", at.Cmd{Line: "AT+CASTATE?"})
			if err != nil {
				return sockInfo{}, err
			}
			if parseCASTATERead(r.Lines, id) {
				return sockInfo{ID: id, IP: ip, Kept: true}, nil
			}
		}
	}
	// The sender of each datagram in +CARECV is what the allowlist checks
	// and what "from" reports.
	steps := []setup{
		{"set APN", fmt.Sprintf(`AT+CGDCONT=1,"IP","%s"`, o.APN)},
		{"set data session APN", fmt.Sprintf(`AT+CNCFG=%d,1,"%s"`, sim7080PDP, o.APN)},
		{"show datagram senders", "AT+CASRIP=1"},
	}
	if o.Fresh {
		steps = append(steps, setup{"close socket", fmt.Sprintf("AT+CACLOSE=%d", id)})
	}
	if err := l.trySteps(ctx, steps...); err != nil {
		return sockInfo{}, err
	}
	if o.Fresh {
		r, err := l.do(ctx, "close data session", at.Cmd{Line: fmt.Sprintf("AT+CNACT=%d,0", sim7080PDP)})
		switch {
		case isFatal(err):
			return sockInfo{}, err
		case err == nil:
			// The module confirms with "+APP PDP: 0,DEACTIVE": taken here,
			// it is not mistaken for the network ending the new session.
			if _, err := openResultAPP(ctx, l, r, false); isFatal(err) {
				return sockInfo{}, err
			}
		}
		// Refused: there was no session to close.
	}
	up, ip, err := session()
	if err != nil {
		return sockInfo{}, err
	}
	if !up {
		line := fmt.Sprintf("AT+CNACT=%d,1", sim7080PDP)
		r, err := l.do(ctx, "open data session", at.Cmd{Line: line})
		if err != nil {
			return sockInfo{}, err
		}
		// OK comes first; "+APP PDP: 0,ACTIVE" once the network agreed.
		if _, err := openResultAPP(ctx, l, r, true); err != nil {
			return sockInfo{}, fmt.Errorf("open data session CNACT: %w", err)
		}
		if _, ip, err = session(); err != nil {
			return sockInfo{}, err
		}
	}
	if err := l.trySteps(ctx, setup{"close socket", fmt.Sprintf("AT+CACLOSE=%d", id)}); err != nil {
		return sockInfo{}, err
	}
	host, port, err := cloudAddr(o.Cloud)
	if err != nil {
		return sockInfo{}, err
	}
	if f.Open != "client" {
		line := fmt.Sprintf(`AT+CASERVER=%d,%d,"UDP",%d`, id, sim7080PDP, o.Port)
		_, err := l.do(ctx, "open socket", at.Cmd{Line: line})
		switch {
		case err == nil:
			// Replies go to ip.cloud; a server socket has no peer of its own.
			remote := fmt.Sprintf(`AT+CACFG="REMOTEADDR",%d,%s,%d`, id, host, port)
			if _, err := l.do(ctx, "set reply address", at.Cmd{Line: remote, Prefix: "+CACFG:"}); err != nil {
				return sockInfo{}, err
			}
			return sockInfo{ID: id, IP: ip}, nil
		case isFatal(err) || f.Open == "server":
			return sockInfo{}, fmt.Errorf("open socket %s: %w", strings.TrimPrefix(line, "AT"), err)
		}
		l.log.Warn("the module refused a UDP server socket (AT+CASERVER); opening a UDP socket to ip.cloud instead, whose local port the module picks", "err", err)
	}
	line := fmt.Sprintf(`AT+CAOPEN=%d,%d,"UDP","%s",%d`, id, sim7080PDP, host, port)
	r, err := l.do(ctx, "open socket", at.Cmd{Line: line})
	if err != nil {
		return sockInfo{}, fmt.Errorf("open socket %s: %w", strings.TrimPrefix(line, "AT"), err)
	}
	code, err := openResult(ctx, l, r, "+CAOPEN:", id, at.DefaultTimeout(line))
	if err != nil {
		return sockInfo{}, fmt.Errorf("open socket %s: %w", strings.TrimPrefix(line, "AT"), err)
	}
	if code != 0 {
		return sockInfo{}, fmt.Errorf("open socket %s: +CAOPEN error %d (%s)", strings.TrimPrefix(line, "AT"), code, errText(sim7080Errors, code))
	}
	return sockInfo{ID: id, IP: ip}, nil
}

// openResultAPP waits for "+APP PDP: 0,ACTIVE" (active) or ",DEACTIVE"
// after AT+CNACT answered r, unless r already holds it.
func openResultAPP(ctx context.Context, l sockLink, r at.Reply, active bool) (string, error) {
	match := func(line string) bool {
		pdp, a, err := parseAPPPDP(line)
		return err == nil && pdp == sim7080PDP && a == active
	}
	for _, line := range r.Lines {
		if match(line) {
			return line, nil
		}
	}
	timeout := at.DefaultTimeout("AT+CNACT")
	if !active {
		timeout = 10 * time.Second // a close the module does not confirm costs no more
	}
	return l.await(ctx, "+APP PDP", timeout, match)
}

// sendCmd: the destination was set with AT+CACFG="REMOTEADDR" (server) or
// AT+CAOPEN (client) when the socket opened; ip.cloud is fixed.
func (sim7080Sockets) sendCmd(sock int, _ string, _ int, payload []byte) at.Cmd {
	return at.Cmd{Line: fmt.Sprintf("AT+CASEND=%d,%d", sock, len(payload)), Data: payload}
}

func (sim7080Sockets) maxSend() int { return sim7080MaxIO }

func (sim7080Sockets) urc(u at.URC) sockEvent {
	line := u.Line
	switch {
	case strings.HasPrefix(line, "+CADATAIND:"):
		id, err := parseIDLine(line, "+CADATAIND:")
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		return sockEvent{kind: sockReadable, id: id}
	case strings.HasPrefix(line, "+CANEW:"):
		// A peer's first datagram to the server: read the server socket,
		// the only one simgate opens.
		if _, _, err := parseCANEW(line); err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		return sockEvent{kind: sockReadable, id: -1}
	case strings.HasPrefix(line, "+CASTATE:"):
		id, st, err := parseCASTATE(line)
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		if st == 1 {
			return sockEvent{kind: sockInfoURC, id: id}
		}
		return sockEvent{kind: sockClosed, id: id}
	case strings.HasPrefix(line, "+APP PDP:"):
		pdp, active, err := parseAPPPDP(line)
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		if active || pdp != sim7080PDP {
			return sockEvent{kind: sockInfoURC, id: -1}
		}
		return sockEvent{kind: sockDeact, id: pdp}
	case strings.HasPrefix(line, "+CAOPEN:"), strings.HasPrefix(line, "+CASEND:"), strings.HasPrefix(line, "+CACLOSE:"):
		return sockEvent{kind: sockInfoURC, id: -1}
	}
	return sockEvent{kind: sockNone}
}

// read takes one datagram with AT+CARECV; "+CARECV: 0" says the buffer is
// empty. +CADATAIND comes again only for data arriving after that.
func (sim7080Sockets) read(ctx context.Context, l sockLink, ev *sockEvent) ([]datagram, bool, error) {
	id := ev.id
	if id < 0 {
		id = sim7080CID
	}
	r, err := l.do(ctx, "read socket", at.Cmd{Line: fmt.Sprintf("AT+CARECV=%d,%d", id, sim7080MaxIO), Framer: at.SIM7080Recv, Timeout: 10 * time.Second})
	if err != nil {
		return nil, false, err
	}
	out := l.datagrams(r.Payloads, func(head string) (netip.AddrPort, error) {
		from, _, err := parseCARECV(head)
		return from, err
	})
	return out, len(out) > 0, nil
}

// parseCNACT finds data session pdp in AT+CNACT? lines
// (`+CNACT: <pdp>,<status>,"<ip>"`) and reports whether it is active and
// its address.
func parseCNACT(lines []string, pdp int) (active bool, ip string) {
	for _, l := range lines {
		f, err := fields(l, "+CNACT:")
		if err != nil || len(f) < 2 {
			continue
		}
		if id, err := field(f, 0); err != nil || id != pdp {
			continue
		}
		if st, err := field(f, 1); err != nil || st != 1 {
			return false, ""
		}
		if len(f) >= 3 {
			if a, err := netip.ParseAddr(unquote(f[2])); err == nil && !a.IsUnspecified() {
				ip = a.String()
			}
		}
		return true, ip
	}
	return false, ""
}

// parseCASTATE reads `+CASTATE: <cid>,<state>` (state 1 is connected).
func parseCASTATE(line string) (id, state int, err error) {
	return parsePair(line, "+CASTATE:")
}

// parseCASTATERead reports whether AT+CASTATE? lists connection id as
// connected.
func parseCASTATERead(lines []string, id int) bool {
	for _, l := range lines {
		if n, st, err := parseCASTATE(l); err == nil && n == id {
			return st == 1
		}
	}
	return false
}

// parseAPPPDP reads `+APP PDP: <pdp>,ACTIVE` or `+APP PDP: <pdp>,DEACTIVE`.
func parseAPPPDP(line string) (pdp int, active bool, err error) {
	f, err := fields(line, "+APP PDP:")
	if err == nil && len(f) != 2 {
		err = fmt.Errorf("want 2 fields")
	}
	if err == nil {
		pdp, err = field(f, 0)
	}
	if err == nil {
		switch strings.ToUpper(unquote(f[1])) {
		case "ACTIVE":
			active = true
		case "DEACTIVE", "DEACTIVATED", "INACTIVE":
		default:
			err = fmt.Errorf("state %q is neither ACTIVE nor DEACTIVE", f[1])
		}
	}
	if err != nil {
		return 0, false, fmt.Errorf("parse %q: %w", line, err)
	}
	return pdp, active, nil
}

// parseCANEW reads `+CANEW: <cid>,<server cid>`.
func parseCANEW(line string) (id, server int, err error) {
	return parsePair(line, "+CANEW:")
}

// parseCARECV reads the head of one AT+CARECV datagram: `+CARECV: <len>,`
// or, with AT+CASRIP=1, `+CARECV: <ip>,<port>,<len>,`. The sender is
// invalid in the short form.
func parseCARECV(head string) (from netip.AddrPort, n int, err error) {
	f, err := fields(strings.TrimSuffix(strings.TrimSpace(head), ","), "+CARECV:")
	switch {
	case err != nil:
	case len(f) == 1:
		n, err = field(f, 0)
	case len(f) == 3:
		if from, err = addrPort(f[0], f[1]); err == nil {
			n, err = field(f, 2)
		}
	default:
		err = fmt.Errorf("want <len> or <ip>,<port>,<len>")
	}
	if err == nil && n < 0 {
		err = fmt.Errorf("negative length")
	}
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("parse %q: %w", head, err)
	}
	return from, n, nil
}
