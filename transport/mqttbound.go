package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"net/url"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"

	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// MaxPacketBytes bounds what an MQTT packet from the broker may make the
// gateway hold: a packet longer than this never reaches paho, which would
// otherwise allocate the whole packet before anything could refuse it (a
// 100 MB request took the process to 238 MB). Every packet the gateway
// expects is far smaller: a request is at most MaxRequestBytes.
const MaxPacketBytes = 16 << 10

// mqtt packet types (the high nibble of the first byte) the bound handles.
const (
	mqttPublish = 3
)

// errPacketTooLarge is returned for a packet other than PUBLISH beyond
// MaxPacketBytes: the broker has no business sending one, and the
// connection is dropped.
var errPacketTooLarge = errors.New("mqtt packet from the broker too large")

// boundedConn hands paho the broker's packets unchanged, except a PUBLISH
// longer than MaxPacketBytes: its topic and packet id are kept and its
// payload is cut to MaxRequestBytes+1 bytes, the rest read and discarded
// as it arrives. The request parser then refuses it as too long, its
// result says so, and it is acknowledged like any refused request, so the
// broker does not send it again. Memory stays within a few packets' worth
// whatever the broker sends.
type boundedConn struct {
	net.Conn
	r       *bufio.Reader
	limit   int    // remaining length passed through as is
	keep    int    // payload bytes kept of a longer PUBLISH
	pending []byte // the next packet, or its rest, for paho
	err     error
}

func newBoundedConn(c net.Conn) *boundedConn {
	return &boundedConn{Conn: c, r: bufio.NewReaderSize(c, 4096), limit: MaxPacketBytes, keep: MaxRequestBytes + 1}
}

// Read gives paho the stream of bounded packets. Only paho's reader
// goroutine calls it.
func (c *boundedConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		pk, err := nextBoundedPacket(c.r, c.limit, c.keep)
		if err != nil {
			c.err = err
			return 0, err
		}
		c.pending = pk
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return n, nil
}

// readRemainingLength reads MQTT's variable-length integer (1 to 4 bytes).
func readRemainingLength(r io.ByteReader) (int, []byte, error) {
	var enc []byte
	n, mult := 0, 1
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, enc, err
		}
		enc = append(enc, b)
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return n, enc, nil
		}
		mult *= 128
	}
	return 0, enc, errors.New("mqtt packet: malformed remaining length")
}

func appendRemainingLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// nextBoundedPacket reads one packet from r and returns the bytes paho
// gets for it.
func nextBoundedPacket(r *bufio.Reader, limit, keep int) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, enc, err := readRemainingLength(r)
	if err != nil {
		return nil, fmt.Errorf("read from broker: %w", err)
	}
	if n <= limit {
		pk := make([]byte, 1+len(enc)+n)
		pk[0] = first
		copy(pk[1:], enc)
		if _, err := io.ReadFull(r, pk[1+len(enc):]); err != nil {
			return nil, fmt.Errorf("read from broker: %w", err)
		}
		return pk, nil
	}
	if first>>4 != mqttPublish {
		return nil, fmt.Errorf("%w: type %d, %d bytes (at most %d)", errPacketTooLarge, first>>4, n, limit)
	}
	// Variable header: topic (16-bit length and bytes), then a packet id
	// when QoS is 1 or 2.
	var tl [2]byte
	if _, err := io.ReadFull(r, tl[:]); err != nil {
		return nil, fmt.Errorf("read from broker: %w", err)
	}
	head := 2 + int(binary.BigEndian.Uint16(tl[:]))
	if qos := (first >> 1) & 3; qos > 0 {
		head += 2
	}
	if head > n {
		return nil, fmt.Errorf("read from broker: PUBLISH header of %d bytes in a %d-byte packet", head, n)
	}
	kept := min(keep, n-head)
	body := make([]byte, 0, head+kept)
	body = append(body, tl[:]...)
	body = body[:head+kept]
	if _, err := io.ReadFull(r, body[2:]); err != nil {
		return nil, fmt.Errorf("read from broker: %w", err)
	}
	if _, err := io.CopyN(io.Discard, r, int64(n-head-kept)); err != nil {
		return nil, fmt.Errorf("read from broker: %w", err)
	}
	pk := make([]byte, 0, 1+4+len(body))
	pk = append(pk, first)
	pk = appendRemainingLength(pk, len(body))
	return append(pk, body...), nil
}

// openBounded is paho's CustomOpenConnectionFn: it opens the connection as
// paho itself would (tcp and ssl through a proxy named in the environment,
// ws and wss through paho's websocket) and bounds what comes back.
func openBounded(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	c, err := dialBroker(uri, o)
	if err != nil {
		return nil, err
	}
	return newBoundedConn(c), nil
}

func dialBroker(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = o.TLSConfig
		}
		c, err := paho.NewWebsocket(u.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", u.Redacted(), err)
		}
		return c, nil
	case "tcp", "mqtt":
		c, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", uri.Host, err)
		}
		return c, nil
	case "ssl", "tls", "mqtts":
		raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", uri.Host, err)
		}
		tc := tls.Client(raw, o.TLSConfig)
		ctx, cancel := context.WithTimeout(context.Background(), o.ConnectTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, errors.Join(fmt.Errorf("tls with %s: %w", uri.Host, err), raw.Close())
		}
		return tc, nil
	}
	return nil, fmt.Errorf("mqtt url scheme %q not supported", uri.Scheme)
}
