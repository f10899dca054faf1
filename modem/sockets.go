package modem

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// socketFamily is how one module family runs the UDP socket that IP
// Commands arrive on and leave from: one type per family, each in its own
// file (sock_quectel.go, sock_simcom.go, sock_sim7080.go, sock_ublox.go,
// sock_sarar5.go). The data path (data.go) uses nothing else of it. Its
// methods run on the session's goroutine, except sendCmd and maxSend,
// which only build values.
type socketFamily interface {
	// open brings the data session up and opens a UDP socket listening on
	// o.Port. Unless o.Fresh, a socket left open by an earlier session (a
	// re-init, a daemon restart) is kept, so the datagrams buffered in it
	// are not thrown away; Fresh tears everything down first, as the
	// network's "data session ended" demands.
	open(ctx context.Context, l sockLink, o sockOpen) (sockInfo, error)
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

// sockOpen is what an open is asked for.
type sockOpen struct {
	APN   string // the data session's access point (Config.APN)
	Port  int    // the device port IP Commands arrive on (Config.IPPort)
	Cloud string // where replies go, "IP:PORT" (Config.Cloud)
	Fresh bool   // tear the old data session and socket down first
	Known int    // the socket the session used so far; -1 for none
}

// withSettings returns f with the choices of cfg its family has: the
// Quectel push mode and the SIM7080 socket kind.
func withSettings(f socketFamily, cfg Config) socketFamily {
	switch f := f.(type) {
	case quectelSockets:
		f.DirectPush = cfg.IPDirectPush
		return f
	case sim7080Sockets:
		f.Open = cfg.SIM7080Socket
		return f
	}
	return f
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

// sockLink is what a family needs while opening and reading: commands on
// the current engine, and waiting for the URC that completes one (+QIOPEN,
// +NETOPEN) while other URCs are kept for later.
type sockLink struct {
	cmd  commander
	urcs urcWaiter
	log  *slog.Logger
}

// urcWaiter waits for the URC match accepts; the others that arrive
// meanwhile are kept, in order, for the session to act on.
type urcWaiter interface {
	awaitURC(ctx context.Context, what string, timeout time.Duration, match func(at.URC) bool) (at.URC, error)
}

func (l sockLink) do(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	return l.cmd.do(ctx, op, c)
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
		l.log.Debug("socket setup command refused", "op", op, "err", err)
	}
	return r, nil
}

// setup is one command of an open whose failure does not stop it.
type setup struct{ op, line string }

// trySteps runs each step with try, in order; only a silent or vanished
// modem stops them.
func (l sockLink) trySteps(ctx context.Context, steps ...setup) error {
	for _, st := range steps {
		if _, err := l.try(ctx, st.op, at.Cmd{Line: st.line}); err != nil {
			return err
		}
	}
	return nil
}

func (l sockLink) await(ctx context.Context, what string, timeout time.Duration, match func(line string) bool) (string, error) {
	u, err := l.urcs.awaitURC(ctx, what, timeout, func(u at.URC) bool { return match(u.Line) })
	return u.Line, err
}

// datagrams are the length-framed answers of a read, each with the sender
// sender reads from its head. The bytes are framed by length, so they are
// the datagram even when the sender is unreadable; that is logged.
func (l sockLink) datagrams(ps []at.Payload, sender func(head string) (netip.AddrPort, error)) []datagram {
	var out []datagram
	for _, p := range ps {
		from, err := sender(p.Head)
		if err != nil {
			l.log.Warn("unreadable datagram head; sender unknown", "head", p.Head, "err", err)
		}
		out = append(out, datagram{from: from, data: p.Data})
	}
	return out
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

// errText is the text of a module's socket result code.
func errText(m map[int]string, code int) string {
	if t, ok := m[code]; ok {
		return t
	}
	return "see the module's manual"
}
