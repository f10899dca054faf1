package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// brokerConns opens the relay's connections to the broker the way paho's
// own dialer does, and keeps the latest, so that a stop can close it
// without DISCONNECT. Paho cannot cancel a connection attempt under way:
// Disconnect lets it complete, then disconnects cleanly, which makes the
// broker discard the will. When that attempt took over the session of a
// connection that died (the broker then drops the dead connection's will,
// as mochi does), nothing would ever replace a retained {"online":true}.
// Closed by the relay instead, the connection ends without DISCONNECT and
// the broker publishes the will.
type brokerConns struct {
	mu     sync.Mutex
	last   net.Conn
	closed bool
}

// open is a paho.OpenConnectionFunc.
func (b *brokerConns) open(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	conn, err := dialBroker(uri, o)
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

// dialBroker connects to a broker URL that brokerURL accepted, as paho
// would: proxies from the environment for TCP and TLS, paho's WebSocket
// transport for ws:// and wss://, and ConnectTimeout for the TLS
// handshake.
func dialBroker(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // the WebSocket dialer refuses URLs with credentials
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = o.TLSConfig
		}
		return paho.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		conn, err := proxy.FromEnvironmentUsing(o.Dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		if uri.Scheme == "tcp" || uri.Scheme == "mqtt" {
			return conn, nil
		}
		tc := tls.Client(conn, o.TLSConfig)
		ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, errors.Join(fmt.Errorf("tls handshake: %w", err), conn.Close())
		}
		return tc, nil
	}
	return nil, fmt.Errorf("mqtt url %q: unsupported scheme", uri.Redacted())
}
