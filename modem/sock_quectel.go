package modem

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/simgate/simgate/modem/at"
)

// Quectel BG95/BG96/EC25: AT+QICSGP, AT+QIACT, a "UDP SERVICE" socket.

// quectelConnID is the connectID simgate uses; one socket is all it needs.
const quectelConnID = 0

// quectelSockets drives the socket; DirectPush is Config.IPDirectPush.
type quectelSockets struct{ DirectPush bool }

// quectelErrors are the TCP/IP result codes of +QIOPEN that say something
// a user can act on.
var quectelErrors = map[int]string{
	550: "unknown error", 551: "operation blocked", 552: "invalid parameters",
	553: "memory not enough", 554: "create socket failed", 555: "operation not supported",
	556: "socket bind failed (port in use?)", 561: "open PDP context failed",
	563: "socket identity has been used", 567: "socket has been closed", 568: "operation busy",
	569: "operation timeout", 570: "PDP context broken down", 572: "operation not allowed",
	573: "APN not configured", 574: "port busy",
}

func (f quectelSockets) open(ctx context.Context, l sockLink, o sockOpen) (sockInfo, error) {
	mode := 0 // buffer: the module keeps datagrams until AT+QIRD
	if f.DirectPush {
		mode = 1
	}
	id := quectelConnID
	if !o.Fresh {
		r, err := l.try(ctx, "query socket", at.Cmd{Line: fmt.Sprintf("AT+QISTATE=1,%d", id)})
		if err != nil {
			return sockInfo{}, err
		}
		if parseQISTATE(r.Lines, id, o.Port, mode) {
			r, err := l.try(ctx, "query data session", at.Cmd{Line: "AT+QIACT?"})
			if err != nil {
				return sockInfo{}, err
			}
			if active, ip := parseQIACT(r.Lines, 1); active {
				return sockInfo{ID: id, IP: ip, Kept: true}, nil
			}
		}
	}
	steps := []setup{{"set APN", fmt.Sprintf(`AT+QICSGP=1,1,"%s","","",1`, o.APN)}}
	if o.Fresh {
		// After "pdpdeact" the host must close its sockets and deactivate
		// the context before activating it again.
		steps = append(steps, setup{"close socket", fmt.Sprintf("AT+QICLOSE=%d", id)}, setup{"deactivate data session", "AT+QIDEACT=1"})
	}
	if err := l.trySteps(ctx, steps...); err != nil {
		return sockInfo{}, err
	}
	r, err := l.do(ctx, "query data session", at.Cmd{Line: "AT+QIACT?"})
	if err != nil {
		return sockInfo{}, err
	}
	active, ip := parseQIACT(r.Lines, 1)
	if !active {
		if _, err := l.do(ctx, "activate data session", at.Cmd{Line: "AT+QIACT=1"}); err != nil {
			return sockInfo{}, err
		}
		if r, err = l.do(ctx, "query data session", at.Cmd{Line: "AT+QIACT?"}); err != nil {
			return sockInfo{}, err
		}
		_, ip = parseQIACT(r.Lines, 1)
	}
	// Echoed send data would come back among the replies.
	if err := l.trySteps(ctx, setup{"disable send echo", "AT+QISDE=0"}, setup{"close socket", fmt.Sprintf("AT+QICLOSE=%d", id)}); err != nil {
		return sockInfo{}, err
	}
	line := fmt.Sprintf(`AT+QIOPEN=1,%d,"UDP SERVICE","127.0.0.1",0,%d,%d`, id, o.Port, mode)
	r, err = l.do(ctx, "open socket", at.Cmd{Line: line})
	if err != nil {
		return sockInfo{}, err
	}
	code, err := openResult(ctx, l, r, "+QIOPEN:", id, at.DefaultTimeout(line))
	if err != nil {
		return sockInfo{}, fmt.Errorf("open socket %s: %w", strings.TrimPrefix(line, "AT"), err)
	}
	if code != 0 {
		return sockInfo{}, fmt.Errorf("open socket %s: +QIOPEN error %d (%s)", strings.TrimPrefix(line, "AT"), code, errText(quectelErrors, code))
	}
	return sockInfo{ID: id, IP: ip}, nil
}

func (quectelSockets) sendCmd(sock int, host string, port int, payload []byte) at.Cmd {
	return at.Cmd{
		Line:  fmt.Sprintf(`AT+QISEND=%d,%d,"%s",%d`, sock, len(payload), host, port),
		Data:  payload,
		Final: []string{"SEND OK"},
		Fail:  []string{"SEND FAIL"},
	}
}

// maxSend: AT+QISEND takes at most 1460 bytes.
func (quectelSockets) maxSend() int { return 1460 }

func (quectelSockets) urc(u at.URC) sockEvent {
	switch {
	case strings.HasPrefix(u.Line, "+QIURC:"):
		q, err := parseQIURC(u.Line)
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		switch q.Kind {
		case "recv":
			switch {
			case u.Data != nil:
				return sockEvent{kind: sockData, id: q.ID, from: q.From, data: u.Data}
			case q.Len == 0:
				return sockEvent{kind: sockData, id: q.ID, from: q.From, data: []byte{}}
			case q.Len > 0:
				return sockEvent{kind: sockBad, id: q.ID, err: fmt.Errorf("%q announced %d bytes that did not follow", u.Line, q.Len)}
			}
			return sockEvent{kind: sockReadable, id: q.ID}
		case "closed":
			return sockEvent{kind: sockClosed, id: q.ID}
		case "pdpdeact":
			return sockEvent{kind: sockDeact, id: q.ID}
		}
		return sockEvent{kind: sockInfoURC, id: q.ID}
	case strings.HasPrefix(u.Line, "+QIOPEN:"):
		return sockEvent{kind: sockInfoURC, id: -1}
	}
	return sockEvent{kind: sockNone}
}

// read takes one datagram with AT+QIRD; the module raises "recv" again
// only once a read has found the buffer empty ("+QIRD: 0").
func (f quectelSockets) read(ctx context.Context, l sockLink, ev *sockEvent) ([]datagram, bool, error) {
	if f.DirectPush {
		return nil, false, nil // nothing is buffered in direct push mode
	}
	id := ev.id
	if id < 0 {
		id = quectelConnID
	}
	r, err := l.do(ctx, "read socket", at.Cmd{Line: fmt.Sprintf("AT+QIRD=%d,1500", id), Framer: at.QuectelRead})
	if err != nil {
		return nil, false, err
	}
	out := l.datagrams(r.Payloads, func(head string) (netip.AddrPort, error) {
		_, from, err := parseQIRD(head)
		return from, err
	})
	return out, len(out) > 0, nil
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
