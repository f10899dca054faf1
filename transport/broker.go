package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
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
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
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
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("embedded broker listen %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("embedded broker serve: %w", err), srv.Close())
	}
	return srv, nil
}
