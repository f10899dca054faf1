package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// StartEmbedded runs an MQTT broker in this process, listening at the host
// and port of rawURL: tcp:// (or mqtt://) for MQTT over TCP, ws:// for MQTT
// over WebSocket. It accepts every client and topic, so it should listen on
// loopback or a trusted network only. The broker stops when ctx is done or
// stop is called; stop waits for it and may be called more than once.
func StartEmbedded(ctx context.Context, rawURL string, log *slog.Logger) (stop func() error, err error) {
	srv, err := startBroker(rawURL, log, nil)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	var closeErr error
	done := make(chan struct{})
	stop = func() error {
		once.Do(func() {
			close(done)
			if err := srv.Close(); err != nil {
				closeErr = fmt.Errorf("stop embedded broker: %w", err)
			}
		})
		return closeErr
	}
	go func() {
		select {
		case <-ctx.Done():
			if err := stop(); err != nil {
				srv.Log.Error("embedded broker stopped with an error", "err", err)
			}
		case <-done:
		}
	}()
	return stop, nil
}

// startBroker starts a mochi broker at rawURL. setup, when given, runs
// before the listener opens, so a test can subscribe inline before any
// client can publish.
func startBroker(rawURL string, log *slog.Logger, setup func(*mochi.Server) error) (*mochi.Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	u, secure, err := brokerURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if secure {
		return nil, fmt.Errorf("embedded broker: listens on tcp:// or ws:// only, got %q", rawURL)
	}
	port := u.Port()
	if port == "" {
		port = "1883"
		if u.Scheme == "ws" {
			port = "80"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)

	srv := mochi.New(&mochi.Options{Logger: log.With("component", "broker"), InlineClient: setup != nil})
	if err := srv.AddHook(new(retainGuard), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if setup != nil {
		if err := setup(srv); err != nil {
			return nil, fmt.Errorf("embedded broker setup: %w", err)
		}
	}
	var l listeners.Listener
	if u.Scheme == "ws" {
		// mochi's WebSocket listener binds only once serving, where a
		// failure is merely logged; trying the address first turns the
		// common failure (port in use) into an error here.
		probe, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		if err := probe.Close(); err != nil {
			return nil, fmt.Errorf("embedded broker: %w", err)
		}
		l = listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})
	} else {
		l = listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	}
	if err := srv.AddListener(&countedListener{Listener: l, wg: &srv.Listeners.ClientsWg}); err != nil {
		return nil, fmt.Errorf("embedded broker listen %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("embedded broker serve: %w", err), srv.Close())
	}
	return srv, nil
}

// countedListener is a mochi listener whose connections are counted in the
// broker's WaitGroup before its Close can wait on it.
//
// mochi-mqtt v2.7.9 counts a client in Listeners.ClientsWg from the
// client's own goroutine (attachClient's Add), and Close waits on that
// WaitGroup after closing the listeners and the clients it has registered.
// For a client not yet past CONNECT nothing orders that Add before the
// Wait (a data race, which -race reports), and nothing closes its
// connection, so Close waits for as long as the client sends nothing. The
// listener counts each connection itself, under a lock its Close takes
// first, so mochi's own Add never starts the count; and Close closes the
// connections still being set up, whose reads then end.
type countedListener struct {
	listeners.Listener
	wg *sync.WaitGroup // the broker's Listeners.ClientsWg

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{} // connections being served
}

// errBrokerStopping refuses a connection accepted as the broker stops.
var errBrokerStopping = errors.New("embedded broker stopping")

// Serve serves the wrapped listener, counting each connection it hands to
// the broker.
func (l *countedListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			return errors.Join(errBrokerStopping, c.Close())
		}
		if l.conns == nil {
			l.conns = make(map[net.Conn]struct{})
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			l.wg.Done()
		}()
		return establish(id, c)
	})
}

// Close refuses further connections, closes the wrapped listener and the
// clients mochi knows, then the connections still being set up.
func (l *countedListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.Listener.Close(closeClients)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		// Closed already when mochi closed its client; either way the
		// connection's read ends.
		_ = c.Close()
	}
}

// retainGuard is the embedded broker's only hook: it accepts every client
// and topic, and it makes retained messages safe to use concurrently.
//
// mochi-mqtt v2.7.9 writes a topic's retained path under the topic's lock
// (TopicsIndex.RetainMessage) but reads it without that lock when a new
// subscription with a wildcard looks up the retained messages it must
// receive (TopicsIndex.scanMessages): a retained publish racing a
// subscription is a data race. The guard puts both under one RWMutex, held
// between hooks mochi calls in a fixed order on one goroutine:
//
//   - A retained publish takes the write lock in OnPublish; mochi stores
//     the message next and then calls OnRetainMessage, which releases it.
//   - A retained will takes it in OnWill; mochi stores the will next and
//     calls OnRetainMessage. A delayed will (MQTT 5 Will Delay Interval) is
//     published but not retained: mochi stores it from its event loop,
//     where no hook comes before the store, so the guard clears its retain
//     flag and mochi never stores it.
//   - A subscription holds the read lock from OnSubscribe until
//     OnPacketProcessed, which mochi calls for every SUBSCRIBE that reached
//     OnSubscribe, once the retained messages have been sent.
//   - Subscribing to $SYS topics is refused: mochi rewrites their retained
//     messages every second from its event loop, outside any hook.
//
// OnRetainMessage is called only from mochi's retainMessage, which runs
// only after OnPublish or OnWill took the lock (server.go, processPublish
// and sendLWT); the guard is the only hook that could change that path.
//
// The inline client (tests only) subscribes before the listener opens,
// when nothing can race it, so it takes no read lock: mochi's inline
// Subscribe calls OnSubscribe but never OnPacketProcessed.
type retainGuard struct {
	mochi.HookBase
	mu sync.RWMutex
}

// ID names the hook in mochi's logs.
func (g *retainGuard) ID() string { return "simgate-retain-guard" }

// Provides lists the events the guard handles.
func (g *retainGuard) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnWill,
		mochi.OnRetainMessage, mochi.OnSubscribe, mochi.OnPacketProcessed:
		return true
	}
	return false
}

// OnConnectAuthenticate accepts every client: the embedded broker is for
// loopback or a trusted network (see StartEmbedded).
func (g *retainGuard) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

// OnACLCheck allows every topic except subscriptions to $SYS.
func (g *retainGuard) OnACLCheck(_ *mochi.Client, topic string, write bool) bool {
	return write || !isSysFilter(topic)
}

// isSysFilter reports whether filter names mochi's $SYS topics.
func isSysFilter(filter string) bool {
	first, _, _ := strings.Cut(filter, "/")
	return strings.EqualFold(first, mochi.SysPrefix)
}

// OnPublish takes the write lock for a retained message, which mochi
// stores next.
func (g *retainGuard) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain {
		g.mu.Lock()
	}
	return pk, nil
}

// OnWill takes the write lock for a retained will, which mochi stores
// next, and clears the retain flag of a delayed one.
func (g *retainGuard) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	switch {
	case !will.Retain:
	case cl.Properties.Will.WillDelayInterval > 0:
		will.Retain = false
	default:
		g.mu.Lock()
	}
	return will, nil
}

// OnRetainMessage releases the write lock once mochi stored a retained
// message or will.
func (g *retainGuard) OnRetainMessage(*mochi.Client, packets.Packet, int64) { g.mu.Unlock() }

// OnSubscribe takes the read lock for the subscription's retained lookup.
func (g *retainGuard) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if !cl.Net.Inline {
		g.mu.RLock()
	}
	return pk
}

// OnPacketProcessed releases the read lock OnSubscribe took.
func (g *retainGuard) OnPacketProcessed(cl *mochi.Client, pk packets.Packet, _ error) {
	if pk.FixedHeader.Type == packets.Subscribe && !cl.Net.Inline {
		g.mu.RUnlock()
	}
}
