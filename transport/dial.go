package transport

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// brokerConns opens the relay's connections to the broker, through the
// opener clientOptions sets, and keeps the latest, so that a stop can close
// it without DISCONNECT. Paho cannot cancel a connection attempt under way:
// Disconnect lets it complete, then disconnects cleanly, which makes the
// broker discard the will. When that attempt took over the session of a
// connection that died (the broker then drops the dead connection's will,
// as mochi does), nothing would ever replace a retained {"online":true}.
// Closed by the relay instead, the connection ends without DISCONNECT and
// the broker publishes the will.
type brokerConns struct {
	// dial opens a connection: the opener clientOptions installed.
	dial paho.OpenConnectionFunc

	mu     sync.Mutex
	last   net.Conn
	closed bool
	// fence is the Publish that was waiting for paho's writer when the
	// last connection died (Relay.handOver); nil when none was.
	fence *handOff
	// gen counts connections opened; fenceGen is gen when the fence was
	// armed: only a connection opened after it can carry the packet.
	gen, fenceGen uint64
	held          atomic.Int64 // packets fenced, for tests and logs
}

// arm makes the next PUBLISH written drop h's packet if it is that one.
func (b *brokerConns) arm(h *handOff) {
	b.mu.Lock()
	b.fence, b.fenceGen = h, b.gen
	b.mu.Unlock()
}

// fenced reports whether p, one packet as paho writes it on the connection
// numbered gen, is the packet of the armed fence, sent ahead of paho's
// resend of older messages. The first PUBLISH written on a connection
// opened after arm decides: that packet could only be the first one. (The
// dying connection may still be writing what it held.) Paho writes each
// packet with one Write.
func (b *brokerConns) fenced(gen uint64, p []byte) bool {
	if len(p) == 0 || p[0]>>4 != 3 { // not a PUBLISH
		return false
	}
	b.mu.Lock()
	h := b.fence
	if h == nil || gen <= b.fenceGen {
		b.mu.Unlock()
		return false
	}
	b.fence = nil
	b.mu.Unlock()
	want, known := h.packetID()
	id, ok := publishID(p)
	// DUP set is paho's own resend, which is in order.
	drop := known && ok && id == want && p[0]&0x08 == 0
	if drop {
		b.held.Add(1)
	}
	return drop
}

// publishID returns the packet id of a QoS 1 or 2 PUBLISH packet.
func publishID(p []byte) (uint16, bool) {
	if len(p) < 2 || (p[0]>>1)&0x03 == 0 {
		return 0, false
	}
	i := 1
	for n := 0; ; n++ { // the remaining length: up to 4 bytes of 7 bits
		if i >= len(p) || n == 4 {
			return 0, false
		}
		more := p[i]&0x80 != 0
		i++
		if !more {
			break
		}
	}
	if i+2 > len(p) {
		return 0, false
	}
	i += 2 + (int(p[i])<<8 | int(p[i+1])) // the topic
	if i+2 > len(p) {
		return 0, false
	}
	return uint16(p[i])<<8 | uint16(p[i+1]), true
}

// fenceConn is a broker connection whose writes pass brokerConns.fenced.
type fenceConn struct {
	net.Conn
	b   *brokerConns
	gen uint64
}

func (c *fenceConn) Write(p []byte) (int, error) {
	if c.b.fenced(c.gen, p) {
		return len(p), nil // written, as far as paho knows; it resends it
	}
	return c.Conn.Write(p)
}

// open is a paho.OpenConnectionFunc wrapping dial.
func (b *brokerConns) open(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	if b.dial == nil {
		return nil, errors.New("no broker dialer")
	}
	conn, err := b.dial(uri, o)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.Join(errors.New("relay stopped"), conn.Close())
	}
	// Paho holds one connection at a time; the one before is closed.
	b.last = conn
	b.gen++
	return &fenceConn{Conn: conn, b: b, gen: b.gen}, nil
}

// close closes the latest connection, if paho has not, and refuses new
// ones. It reports whether it had to close one still open.
func (b *brokerConns) close() (closedOpen bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.last == nil {
		return false, nil
	}
	err = b.last.Close()
	b.last = nil
	if errors.Is(err, net.ErrClosed) {
		return false, nil
	}
	return err == nil, err
}
