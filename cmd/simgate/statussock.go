package main

// The status socket: `simgate run` answers every connection on
// <store.dir>/simgate.sock with one JSON object (statusObject) and closes
// it; `simgate status` reads it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/transport"
)

// statusSocketName is the socket's name in store.dir.
const statusSocketName = "simgate.sock"

func statusSocketPath(cfg *config.Config) string {
	return filepath.Join(cfg.Store.Dir, statusSocketName)
}

// statusObject is what the status socket answers and `simgate status -json`
// prints. Its first fields are those of the retained P/status, so the verb
// reads either the same way; the rest only the running daemon knows.
type statusObject struct {
	Online    bool                `json:"online"`
	Version   string              `json:"version"`
	Modem     gw.ModemInfo        `json:"modem"`
	SIM       gw.SIMInfo          `json:"sim"`
	Network   gw.NetworkInfo      `json:"network"`
	Data      gw.DataInfo         `json:"data"`
	Recovery  gw.Recovery         `json:"recovery"`
	Ready     bool                `json:"ready"`
	Queue     transport.QueueJSON `json:"queue"`
	UpdatedAt string              `json:"updated_at,omitempty"`

	// Healthy is the health probe's verdict (nil in a retained P/status)
	// and Reason its error.
	Healthy   *bool                  `json:"healthy,omitempty"`
	Reason    string                 `json:"reason,omitempty"`
	DeviceID  string                 `json:"device_id,omitempty"`
	PID       int                    `json:"pid,omitempty"`
	StartedAt string                 `json:"started_at,omitempty"`
	Broker    *brokerJSON            `json:"broker,omitempty"`
	SMSStore  *gw.StoreUse           `json:"sms_store,omitempty"`
	Messages  map[string]channelJSON `json:"messages,omitempty"`
}

type brokerJSON struct {
	URL       string `json:"url"`
	Connected bool   `json:"connected"`
}

// channelJSON is transport.ChannelStats with times as RFC 3339.
type channelJSON struct {
	In         uint64 `json:"in"`
	LastIn     string `json:"last_in,omitempty"`
	Sent       uint64 `json:"sent"`
	Failed     uint64 `json:"failed"`
	LastOut    string `json:"last_out,omitempty"`
	Rejected   uint64 `json:"rejected"`
	Duplicates uint64 `json:"duplicates"`
	Full       uint64 `json:"full"`
}

func rfc3339OrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// processStart is when this process started, for started_at.
var processStart = time.Now()

// snapshot renders the status object now.
func (o *observability) snapshot() []byte {
	st := o.dev.Status()
	qs := o.q.Stats()
	v, _ := buildVersion()
	herr := o.health()
	ok := herr == nil
	obj := statusObject{
		Online:   true,
		Version:  v,
		Modem:    st.Modem,
		SIM:      st.SIM,
		Network:  st.Network,
		Data:     st.Data,
		Recovery: st.Recovery,
		Ready:    st.Ready,
		Queue: transport.QueueJSON{
			Pending:  qs.Pending(),
			Inbound:  qs.Inbound,
			Outbound: qs.OutboundSMS + qs.OutboundIP,
			Results:  qs.Results,
			Segments: qs.Segments,
		},
		UpdatedAt: time.Now().UTC().Format(time.RFC3339),
		Healthy:   &ok,
		PID:       os.Getpid(),
		StartedAt: processStart.UTC().Format(time.RFC3339),
		Broker:    &brokerJSON{URL: config.RedactURL(o.cfg.MQTT.URL)},
	}
	if herr != nil {
		obj.Reason = herr.Error()
	}
	if st.SMSStore.Total > 0 {
		use := st.SMSStore
		obj.SMSStore = &use
	}
	o.mu.Lock()
	obj.DeviceID = o.deviceID
	o.mu.Unlock()
	if r := o.hub.currentRelay(); r != nil {
		obj.Broker.Connected = r.Stats().Connected
		obj.Messages = map[string]channelJSON{}
		for _, ch := range []string{gw.ChannelSMS, gw.ChannelIP} {
			c := r.Channel(ch)
			obj.Messages[ch] = channelJSON{
				In: c.In, LastIn: rfc3339OrEmpty(c.LastIn),
				Sent: c.Sent, Failed: c.Failed, LastOut: rfc3339OrEmpty(c.LastOut),
				Rejected: c.Rejected, Duplicates: c.Duplicates, Full: c.Full,
			}
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		// Only plain values are in it: a failure is a bug, still answered.
		o.log.Error("cannot render the status object", "err", err)
		return []byte(`{"online":true,"healthy":false,"reason":"cannot render status"}`)
	}
	return b
}

// listenStatus makes the status socket, replacing one a previous run left
// behind (the queue's file lock, taken before, means no other daemon uses
// this directory), readable and writable by the owner and group only.
func listenStatus(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("status socket %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("status socket: remove the old one: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return nil, errors.Join(fmt.Errorf("status socket: %w", err), ln.Close())
	}
	return ln, nil
}

// serveStatus answers each connection with one snapshot until ctx ends,
// then closes the listener, which removes the socket file.
func serveStatus(ctx context.Context, ln net.Listener, snapshot func() []byte, log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() {
		if err := ln.Close(); err != nil {
			log.Warn("status socket close", "err", err)
		}
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				log.Error("status socket stopped", "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			if err := c.SetWriteDeadline(time.Now().Add(2 * time.Second)); err != nil {
				return
			}
			b := append(snapshot(), '\n')
			if _, err := c.Write(b); err != nil {
				log.Debug("status socket write", "err", err)
			}
		}()
	}
}
