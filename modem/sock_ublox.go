package modem

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// u-blox SARA-R4: the default bearer, AT+USOCR, +UUSORF and AT+USORF.

// ubloxMaxIO is the most AT+USOST sends and AT+USORF returns at once.
const ubloxMaxIO = 1024

// ubloxSockets drives SARA-R4 and, with PSD set, SARA-R5, whose sockets
// run over an internal packet switched data profile (sock_sarar5.go).
type ubloxSockets struct{ PSD bool }

func (f ubloxSockets) open(ctx context.Context, l sockLink, o sockOpen) (sockInfo, error) {
	known := o.Known
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
	if !o.Fresh && known >= 0 {
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
		if err := sarar5Data(ctx, l, o); err != nil {
			return sockInfo{}, err
		}
	} else if err := saraR4Data(ctx, l, o.APN); err != nil {
		return sockInfo{}, err
	}
	// Binary data, not hex.
	if _, err := l.try(ctx, "select binary socket data", at.Cmd{Line: "AT+UDCONF=1,0"}); err != nil {
		return sockInfo{}, err
	}
	if o.Fresh && known >= 0 {
		if _, err := l.try(ctx, "close socket", at.Cmd{Line: fmt.Sprintf("AT+USOCL=%d", known)}); err != nil {
			return sockInfo{}, err
		}
	}
	create := at.Cmd{Line: fmt.Sprintf("AT+USOCR=17,%d", o.Port)}
	r, err := l.do(ctx, "open socket", create)
	if err != nil && !isFatal(err) {
		// A socket left by an earlier run holds the port (or every slot):
		// close them all, simgate is the module's only user.
		l.log.Info("could not create the socket; closing leftover sockets", "err", err)
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
func saraR4Data(ctx context.Context, l sockLink, apn string) error {
	// SARA-R4 brings the default bearer up itself when it registers; the
	// APN only needs setting when it differs.
	r, err := l.try(ctx, "read APN", at.Cmd{Line: "AT+CGDCONT?"})
	if err != nil {
		return err
	}
	if got, ok := parseCGDCONT(r.Lines, 1); !ok || !strings.EqualFold(got, apn) {
		if _, err := l.try(ctx, "set APN", at.Cmd{Line: fmt.Sprintf(`AT+CGDCONT=1,"IP","%s"`, apn)}); err != nil {
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
			l.log.Warn("unreadable datagram head; sender unknown", "head", p.Head, "err", err)
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

// parseUUSORF reads u-blox `+UUSORF: <socket>,<len>` (also +UUSORD).
func parseUUSORF(line string) (id, n int, err error) {
	prefix, _, _ := strings.Cut(line, ":")
	return parsePair(line, prefix+":")
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
