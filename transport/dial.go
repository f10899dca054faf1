package transport

import (
	"errors"
	"net"
	"net/url"
	"sync"

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
	return conn, nil
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
