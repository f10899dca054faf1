package modem

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// socketFamily is how one module family runs the UDP socket that IP
// Commands arrive on and leave from. Its methods run on the session's
// goroutine, except sendCmd and maxSend, which only build values.
type socketFamily interface {
	// open brings the data session up (APN Config.APN) and opens a UDP
	// socket listening on Config.IPPort. Unless fresh, a socket left open
	// by an earlier session (a re-init, a daemon restart) is kept, so the
	// datagrams buffered in it are not thrown away; fresh tears everything
	// down first, as the network's "data session ended" demands.
	open(ctx context.Context, l sockLink, fresh bool) (sockInfo, error)
	// sendCmd is the command that sends payload to host:port from sock.
	sendCmd(sock int, host string, port int, payload []byte) at.Cmd
	// maxSend is the largest datagram the module's send command takes.
	maxSend() int
	// urc tells what a URC means for sockets; kind sockNone when it is not
	// a socket URC.
	urc(u at.URC) sockEvent
	// read fetches the next datagram a sockReadable event announced and
	// reports whether more may follow. It may update ev (the bytes still
	// announced).
	read(ctx context.Context, l sockLink, ev *sockEvent) (dgs []datagram, more bool, err error)
}

// sockInfo is an open socket.
type sockInfo struct {
	ID int
	IP string // the device's address in the data session; "" if unknown
	// Kept is set when the socket was already open; data may wait in it.
	Kept bool
	// Pending is how many bytes a kept socket holds, when the module says.
	Pending int
}

// datagram is one received UDP datagram.
type datagram struct {
	from netip.AddrPort
	data []byte
}

type sockEventKind int

const (
	sockNone     sockEventKind = iota // not a socket URC
	sockInfoURC                       // a socket URC with nothing to do
	sockData                          // a datagram pushed in the URC
	sockReadable                      // data waits in the module; read it
	sockSource                        // the sender of the next pushed datagram (SIM7600)
	sockClosed                        // the network closed the socket
	sockDeact                         // the network ended the data session
	sockBad                           // a socket URC that did not parse
)

// sockEvent is what a socket URC means.
type sockEvent struct {
	kind sockEventKind
	id   int // socket (or context for sockDeact); -1 when not said
	from netip.AddrPort
	data []byte
	n    int // bytes announced (sockReadable); 0 when not said
	err  error
}

// sockLink is what a family needs from the session while opening and
// reading: commands on the engine, and waiting for a URC that completes
// one (+QIOPEN, +NETOPEN).
type sockLink struct {
	s   *Session
	eng *at.Engine
}

func (l sockLink) do(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	return l.s.do(ctx, l.eng, op, c)
}

// try runs a command whose failure does not stop the open (a socket that
// is not there to close, an APN the module will not change while attached).
// Only a silent or vanished modem is returned.
func (l sockLink) try(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	r, err := l.do(ctx, op, c)
	if err != nil {
		if isFatal(err) {
			return r, err
		}
		l.s.log.Debug("socket setup command refused", "op", op, "err", err)
	}
	return r, nil
}

func (l sockLink) await(ctx context.Context, what string, timeout time.Duration, match func(line string) bool) (string, error) {
	u, err := l.s.awaitURC(ctx, l.eng, what, timeout, func(u at.URC) bool { return match(u.Line) })
	return u.Line, err
}

// errNoURC is a URC that should have completed an operation and did not
// come; the modem still answers, so it is not a silent modem.
var errNoURC = errors.New("the completing result did not arrive")

// openResult finds the result of an asynchronous open: in the command's
// own reply lines (some firmware answers before OK) or in the URC that
// follows OK.
func openResult(ctx context.Context, l sockLink, r at.Reply, prefix string, id int, timeout time.Duration) (int, error) {
	match := func(line string) bool {
		if !strings.HasPrefix(line, prefix) {
			return false
		}
		got, _, err := parseOpenResult(line, prefix)
		return err == nil && (got == id || got == -1)
	}
	for _, line := range r.Lines {
		if match(line) {
			_, code, err := parseOpenResult(line, prefix)
			return code, err
		}
	}
	line, err := l.await(ctx, prefix, timeout, match)
	if err != nil {
		return 0, err
	}
	_, code, err := parseOpenResult(line, prefix)
	return code, err
}

// Quectel BG95/BG96/EC25: AT+QICSGP, AT+QIACT, a "UDP SERVICE" socket.

// quectelConnID is the connectID simgate uses; one socket is all it needs.
const quectelConnID = 0

type quectelSockets struct{}

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

func (quectelSockets) open(ctx context.Context, l sockLink, fresh bool) (sockInfo, error) {
	cfg := l.s.cfg
	mode := 0 // buffer: the module keeps datagrams until AT+QIRD
	if cfg.IPDirectPush {
		mode = 1
	}
	id := quectelConnID
	if !fresh {
		r, err := l.try(ctx, "query socket", at.Cmd{Line: fmt.Sprintf("AT+QISTATE=1,%d", id)})
		if err != nil {
			return sockInfo{}, err
		}
		if parseQISTATE(r.Lines, id, cfg.IPPort, mode) {
			r, err := l.try(ctx, "query data session", at.Cmd{Line: "AT+QIACT?"})
			if err != nil {
				return sockInfo{}, err
			}
			if active, ip := parseQIACT(r.Lines, 1); active {
				return sockInfo{ID: id, IP: ip, Kept: true}, nil
			}
		}
	}
	if _, err := l.try(ctx, "set APN", at.Cmd{Line: fmt.Sprintf(`AT+QICSGP=1,1,"%s","","",1`, cfg.APN)}); err != nil {
		return sockInfo{}, err
	}
	if fresh {
		// After "pdpdeact" the host must close its sockets and deactivate
		// the context before activating it again.
		if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+QICLOSE=%d", id)}); err != nil {
			return sockInfo{}, err
		}
		if _, err := l.try(ctx, "deactivate data session", at.Cmd{Line: "AT+QIDEACT=1"}); err != nil {
			return sockInfo{}, err
		}
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
	if _, err := l.try(ctx, "disable send echo", at.Cmd{Line: "AT+QISDE=0"}); err != nil {
		return sockInfo{}, err
	}
	if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+QICLOSE=%d", id)}); err != nil {
		return sockInfo{}, err
	}
	line := fmt.Sprintf(`AT+QIOPEN=1,%d,"UDP SERVICE","127.0.0.1",0,%d,%d`, id, cfg.IPPort, mode)
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

func errText(m map[int]string, code int) string {
	if t, ok := m[code]; ok {
		return t
	}
	return "see the module's manual"
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
func (quectelSockets) read(ctx context.Context, l sockLink, ev *sockEvent) ([]datagram, bool, error) {
	if l.s.cfg.IPDirectPush {
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
	var out []datagram
	for _, p := range r.Payloads {
		_, from, err := parseQIRD(p.Head)
		if err != nil {
			// The bytes are framed by length, so they are the datagram
			// even when the sender is unreadable.
			l.s.log.Warn("unreadable datagram head; sender unknown", "head", p.Head, "err", err)
		}
		out = append(out, datagram{from: from, data: p.Data})
	}
	return out, len(out) > 0, nil
}

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

func (simcomSockets) open(ctx context.Context, l sockLink, fresh bool) (sockInfo, error) {
	cfg := l.s.cfg
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
	if !fresh {
		up, err := netOpen()
		if err != nil {
			return sockInfo{}, err
		}
		if up {
			r, err := l.try(ctx, "query socket", at.Cmd{Line: "AT+CIPOPEN?"})
			if err != nil {
				return sockInfo{}, err
			}
			if parseCIPOPENRead(r.Lines, id, cfg.IPPort) {
				return sockInfo{ID: id, IP: address(), Kept: true}, nil
			}
		}
	}
	if _, err := l.try(ctx, "set APN", at.Cmd{Line: fmt.Sprintf(`AT+CGDCONT=1,"IP","%s"`, cfg.APN)}); err != nil {
		return sockInfo{}, err
	}
	// The sender of each datagram ("RECV FROM:") is what the allowlist
	// checks and what "from" reports.
	if _, err := l.try(ctx, "show datagram senders", at.Cmd{Line: "AT+CIPSRIP=1"}); err != nil {
		return sockInfo{}, err
	}
	if fresh {
		if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+CIPCLOSE=%d", id)}); err != nil {
			return sockInfo{}, err
		}
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
	if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+CIPCLOSE=%d", id)}); err != nil {
		return sockInfo{}, err
	}
	line := fmt.Sprintf(`AT+CIPOPEN=%d,"UDP",,,%d`, id, cfg.IPPort)
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

// u-blox SARA-R4: the default bearer, AT+USOCR, +UUSORF and AT+USORF.

// ubloxMaxIO is the most AT+USOST sends and AT+USORF returns at once.
const ubloxMaxIO = 1024

// ubloxSockets drives SARA-R4 and, with PSD set, SARA-R5, whose sockets
// run over an internal packet switched data profile (sock_sarar5.go).
type ubloxSockets struct{ PSD bool }

func (f ubloxSockets) open(ctx context.Context, l sockLink, fresh bool) (sockInfo, error) {
	cfg := l.s.cfg
	known := l.s.dp.sock
	address := func() string {
		if f.PSD {
			return sarar5Address(ctx, l)
		}
		r, err := l.try(ctx, "read address", at.Cmd{Line: "AT+CGPADDR=1"})
		if err == nil && len(r.Lines) > 0 {
			if ip, err := parseAddrLine(r.Lines[0]); err == nil {
				return ip
			}
		}
		return ""
	}
	if !fresh && known >= 0 {
		// AT+USORF=<s>,0 answers how much the socket holds, or an error
		// when it is gone.
		r, err := l.try(ctx, "query socket", at.Cmd{Line: fmt.Sprintf("AT+USORF=%d,0", known)})
		if err != nil {
			return sockInfo{}, err
		}
		if len(r.Lines) > 0 {
			if id, n, err := parseUUSORF(r.Lines[0]); err == nil && id == known {
				return sockInfo{ID: known, IP: address(), Kept: true, Pending: n}, nil
			}
		}
	}
	if f.PSD {
		if err := sarar5Data(ctx, l, fresh); err != nil {
			return sockInfo{}, err
		}
	} else if err := saraR4Data(ctx, l); err != nil {
		return sockInfo{}, err
	}
	// Binary data, not hex.
	if _, err := l.try(ctx, "select binary socket data", at.Cmd{Line: "AT+UDCONF=1,0"}); err != nil {
		return sockInfo{}, err
	}
	if fresh && known >= 0 {
		if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+USOCL=%d", known)}); err != nil {
			return sockInfo{}, err
		}
	}
	create := at.Cmd{Line: fmt.Sprintf("AT+USOCR=17,%d", cfg.IPPort)}
	r, err := l.do(ctx, "open socket", create)
	if err != nil && !isFatal(err) {
		// A socket left by an earlier run holds the port (or every slot):
		// close them all, simgate is the module's only user.
		l.s.log.Info("could not create the socket; closing leftover sockets", "err", err)
		for i := range 7 {
			if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+USOCL=%d", i)}); err != nil {
				return sockInfo{}, err
			}
		}
		r, err = l.do(ctx, "open socket", create)
	}
	if err != nil {
		return sockInfo{}, err
	}
	if len(r.Lines) == 0 {
		return sockInfo{}, fmt.Errorf("open socket USOCR: no +USOCR line in the answer")
	}
	id, err := parseIDLine(r.Lines[0], "+USOCR:")
	if err != nil {
		return sockInfo{}, err
	}
	return sockInfo{ID: id, IP: address()}, nil
}

// saraR4Data brings up the SARA-R4's data session: the default bearer.
func saraR4Data(ctx context.Context, l sockLink) error {
	cfg := l.s.cfg
	// SARA-R4 brings the default bearer up itself when it registers; the
	// APN only needs setting when it differs.
	r, err := l.try(ctx, "read APN", at.Cmd{Line: "AT+CGDCONT?"})
	if err != nil {
		return err
	}
	if apn, ok := parseCGDCONT(r.Lines, 1); !ok || !strings.EqualFold(apn, cfg.APN) {
		if _, err := l.try(ctx, "set APN", at.Cmd{Line: fmt.Sprintf(`AT+CGDCONT=1,"IP","%s"`, cfg.APN)}); err != nil {
			return err
		}
	}
	r, err = l.do(ctx, "query data session", at.Cmd{Line: "AT+CGACT?"})
	if err != nil {
		return err
	}
	if !parseCGACT(r.Lines, 1) {
		if _, err := l.do(ctx, "activate data session", at.Cmd{Line: "AT+CGACT=1,1"}); err != nil {
			return err
		}
	}
	return nil
}

func (ubloxSockets) sendCmd(sock int, host string, port int, payload []byte) at.Cmd {
	return at.Cmd{
		Line: fmt.Sprintf(`AT+USOST=%d,"%s",%d,%d`, sock, host, port, len(payload)),
		Data: payload,
		// The manual asks for 50 ms between "@" and the data.
		PromptDelay: 50 * time.Millisecond,
	}
}

func (ubloxSockets) maxSend() int { return ubloxMaxIO }

func (ubloxSockets) urc(u at.URC) sockEvent {
	line := u.Line
	switch {
	case strings.HasPrefix(line, "+UUSORF:"), strings.HasPrefix(line, "+UUSORD:"):
		id, n, err := parseUUSORF(line)
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		return sockEvent{kind: sockReadable, id: id, n: n}
	case strings.HasPrefix(line, "+UUSOCL:"):
		id, err := parseIDLine(line, "+UUSOCL:")
		if err != nil {
			return sockEvent{kind: sockBad, id: -1, err: err}
		}
		return sockEvent{kind: sockClosed, id: id}
	case strings.HasPrefix(line, "+UUPSDD:"):
		return sockEvent{kind: sockDeact, id: -1}
	case strings.HasPrefix(line, "+UUSOST:"), strings.HasPrefix(line, "+UUPSDA:"):
		return sockEvent{kind: sockInfoURC, id: -1}
	}
	return sockEvent{kind: sockNone}
}

// read takes one datagram with AT+USORF. The module returns one datagram
// (or its first 1024 bytes) per read; asking for no more than the bytes it
// holds never runs into the next datagram, and a read that returns less
// than asked has reached the end of one.
//
// What it holds is asked first (AT+USORF=<s>,0) rather than taken from the
// +UUSORF that triggered the read: that length is the newest datagram's,
// and when an earlier one's +UUSORF was lost (the module hung) it is not
// the length of the datagram read next, which a shorter read would cut in
// two.
func (ubloxSockets) read(ctx context.Context, l sockLink, ev *sockEvent) ([]datagram, bool, error) {
	r, err := l.do(ctx, "query socket", at.Cmd{Line: fmt.Sprintf("AT+USORF=%d,0", ev.id)})
	if err != nil {
		return nil, false, err
	}
	ev.n = 0
	if len(r.Lines) > 0 {
		id, n, err := parseUUSORF(r.Lines[0])
		if err != nil {
			return nil, false, fmt.Errorf("query socket USORF=%d,0: %w", ev.id, err)
		}
		if id != ev.id {
			return nil, false, fmt.Errorf("query socket USORF=%d,0: answer %q is for socket %d", ev.id, r.Lines[0], id)
		}
		ev.n = n
	}
	if ev.n <= 0 {
		return nil, false, nil
	}
	var (
		buf  []byte
		from netip.AddrPort
	)
	for {
		ask := min(ev.n-len(buf), ubloxMaxIO)
		r, err := l.do(ctx, "read socket", at.Cmd{Line: fmt.Sprintf("AT+USORF=%d,%d", ev.id, ask), Framer: at.UbloxReadFrom})
		if err != nil {
			ev.n -= len(buf)
			if len(buf) > 0 {
				return []datagram{{from, buf}}, false, err
			}
			return nil, false, err
		}
		if len(r.Payloads) == 0 {
			// Nothing (left): the announcement counted bytes already read.
			ev.n = 0
			if len(buf) > 0 {
				return []datagram{{from, buf}}, false, nil
			}
			return nil, false, nil
		}
		p := r.Payloads[0]
		_, f, _, err := parseUSORF(p.Head)
		if err != nil {
			l.s.log.Warn("unreadable datagram head; sender unknown", "head", p.Head, "err", err)
		}
		if len(buf) == 0 {
			from = f
		}
		buf = append(buf, p.Data...)
		if len(p.Data) < ask || len(buf) >= ev.n {
			ev.n = max(ev.n-len(buf), 0)
			return []datagram{{from, buf}}, ev.n > 0, nil
		}
	}
}
