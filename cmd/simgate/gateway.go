package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem"
	"github.com/simgate/simgate/systemd"
	"github.com/simgate/simgate/transport"
)

// gatewayOptions are what a caller of runGateway adds to the configuration.
type gatewayOptions struct {
	Notifier *systemd.Notifier
	// Started, when set, is called once the relay runs, with the device id
	// and topic prefix in use.
	Started func(deviceID, prefix string)
	// Open replaces the serial port opener (tests); nil is the real one.
	Open func(port string, baud int) (io.ReadWriteCloser, error)
}

// errConfig marks an error the configuration caused: simgate run exits 78
// for it, and systemd does not restart into the same mistake.
type errConfig struct{ err error }

func (e errConfig) Error() string { return e.err.Error() }
func (e errConfig) Unwrap() error { return e.err }

// statusEvery is how often STATUS= is refreshed for the queue depth, which
// changes without a modem status change.
const statusEvery = 10 * time.Second

// deviceIDWait is how long a gateway with a remembered device id waits for
// the modem to report the SIM's ICCID before relaying under the remembered
// id, so messages already queued flow while the modem is missing.
var deviceIDWait = 30 * time.Second

// runGateway runs the whole gateway until ctx is cancelled: the durable
// queue, an embedded broker when configured, the modem session, the IP
// Commands socket of this host in ip.mode os, and the MQTT relay. On
// cancellation the relay finishes in-flight work (a device call, PUBACKs)
// before the modem session stops, and the queue closes last.
func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, opt gatewayOptions) (err error) {
	n := opt.Notifier
	if n == nil {
		n = systemd.New(log.With("component", "systemd"))
	}
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: cfg.Store.Dir, MaxMessages: cfg.Store.MaxMessages}, log.With("component", "queue"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := q.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	if cfg.MQTT.Embedded {
		stop, err := transport.StartEmbedded(context.Background(), cfg.MQTT.URL, log)
		if err != nil {
			return err
		}
		// Deferred after q.Close, so it runs before it and after the relay
		// has published its offline status.
		defer func() {
			if serr := stop(); serr != nil {
				log.Warn("embedded broker", "err", serr)
			}
		}()
		log.Info("embedded MQTT broker listening", "url", config.RedactURL(cfg.MQTT.URL))
	}

	h := newHub()
	mcfg := modem.Config{
		Port:    cfg.Modem.Port,
		Baud:    cfg.Modem.Baud,
		Profile: cfg.Modem.Profile,
		Init:    cfg.Modem.Init,
		SMS:     cfg.SMS.Enabled,
		// Reports only matter for SMS that are sent.
		DeliveryReports: cfg.SMS.Enabled && cfg.SMS.DeliveryReports,
		AllowedSenders:  cfg.SMS.AllowedSenders,
		IPMode:          cfg.IP.Mode,
		IPPort:          cfg.IP.Port,
		APN:             cfg.IP.APN,
		Cloud:           cfg.IP.Cloud,
		OnEvent:         h.event,
		OnStatus:        h.status,
		Logger:          log,
		Open:            opt.Open,
	}
	if cfg.IP.Mode == "modem" {
		mcfg.AllowedSources = cfg.AllowedSources()
	}
	var session modemBackend
	if cfg.Modem.Backend == config.BackendModemManager {
		session = newModemManager(cfg, h, q, log)
	} else {
		session = modem.NewSession(mcfg, q)
	}
	dev := &device{cfg: cfg, session: session, hub: h}
	if cfg.IP.Mode == "os" {
		// Bound now, so a port in use or a missing ip.bind address is
		// reported at start; datagrams wait in the kernel until Run.
		udp, err := transport.NewUDP(transport.UDPConfig{
			Port:           cfg.IP.Port,
			Bind:           cfg.IP.Bind,
			Cloud:          cfg.IP.Cloud,
			AllowedSources: cfg.AllowedSources(),
			OnEvent:        h.event,
		}, q, log.With("component", "udp"))
		if err != nil {
			return errConfig{err}
		}
		dev.udp = udp
		udpCtx, stopUDP := context.WithCancel(context.Background())
		udpDone := make(chan error, 1)
		go func() { udpDone <- udp.Run(udpCtx) }()
		// Stopped after the relay, before the queue closes: what it has
		// read is stored first.
		defer func() {
			stopUDP()
			if uerr := <-udpDone; uerr != nil {
				log.Warn("ip socket", "err", uerr)
			}
		}()
	}

	// Metrics, /healthz and the status socket, from the start: an operator
	// sees why a gateway is not ready yet.
	obs := newObservability(cfg, session, q, h, dev, log)
	stopObs, err := obs.serve(log)
	if err != nil {
		return err
	}
	defer stopObs()

	// The session runs on its own context: it keeps serving a device call
	// the relay is finishing after ctx is cancelled, and stops after.
	sessCtx, stopSession := context.WithCancel(context.Background())
	sessDone := make(chan error, 1)
	go func() { sessDone <- session.Run(sessCtx) }()
	defer func() {
		stopSession()
		if serr := <-sessDone; serr != nil && err == nil {
			err = serr
		}
	}()

	defer context.AfterFunc(ctx, func() {
		if err := n.Stopping(); err != nil {
			log.Warn("systemd notify", "err", err)
		}
	})()
	// systemd hears from the start, before the device id is known: a first
	// start without the modem shows why it is not ready yet.
	notifyCtx, stopNotify := context.WithCancel(ctx)
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		notifyLoop(notifyCtx, n, session, q, dev, h, log)
	}()
	defer func() {
		stopNotify()
		<-notifyDone
	}()

	deviceID, err := resolveDeviceID(ctx, cfg, h, sessDone, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	prefix := cfg.Prefix(deviceID)
	obs.setDeviceID(deviceID)
	ver, _ := buildVersion()
	relay, err := transport.NewRelay(transport.RelayConfig{
		MQTT: transport.MQTTConfig{
			URL:          cfg.MQTT.URL,
			ClientID:     cfg.ClientID(deviceID),
			Username:     cfg.MQTT.Username,
			PasswordFile: cfg.MQTT.PasswordFile,
			CAFile:       cfg.MQTT.CAFile,
			CertFile:     cfg.MQTT.CertFile,
			KeyFile:      cfg.MQTT.KeyFile,
			TopicPrefix:  prefix,
		},
		Version:  ver,
		Observer: obs.observer(),
	}, q, dev, log)
	if err != nil {
		return errConfig{err}
	}
	h.attach(relay)

	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopRun()
	simChanged := make(chan error, 1)
	wg.Go(func() { watchSIM(runCtx, cfg, deviceID, h, simChanged, log) })
	wg.Go(func() { homeAssistant(runCtx, cfg, deviceID, prefix, relay, dev, h, log) })
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(runCtx) }()
	log.Info("gateway running", "device_id", deviceID, "topic_prefix", prefix, "mqtt", config.RedactURL(cfg.MQTT.URL), "modem", modemName(cfg))
	if opt.Started != nil {
		opt.Started(deviceID, prefix)
	}
	select {
	case err = <-relayDone:
		stopRun()
		return err
	case serr := <-simChanged:
		stopRun()
		if rerr := <-relayDone; rerr != nil {
			log.Warn("relay", "err", rerr)
		}
		return serr
	case serr := <-sessDone:
		// Run only returns early for a configuration it cannot use.
		sessDone <- nil
		stopRun()
		if rerr := <-relayDone; rerr != nil {
			log.Warn("relay", "err", rerr)
		}
		return errConfig{serr}
	}
}

// resolveDeviceID returns device_id from the configuration or, when it is
// empty, the SIM's ICCID. The ICCID last seen is remembered in store.dir, so
// after a restart with the modem missing, messages already queued are still
// relayed under the right topics.
func resolveDeviceID(ctx context.Context, cfg *config.Config, h *hub, sessDone chan error, log *slog.Logger) (string, error) {
	if cfg.DeviceID != "" {
		return cfg.DeviceID, nil
	}
	remembered := readDeviceID(cfg.Store.Dir)
	if remembered != "" {
		if err := config.CheckDeviceID(remembered); err != nil {
			// A file edited by hand or damaged: used as topics, it would add
			// levels or wildcards, so it is ignored and the ICCID replaces it.
			msg := fmt.Sprintf("the device id remembered in %s, %.64q, is not usable (%v): ignored; waiting for the SIM's ICCID",
				filepath.Join(cfg.Store.Dir, deviceIDFile), remembered, err)
			log.Warn(msg)
			h.event(gw.Event{Type: gw.EventDeviceIDInvalid, Message: msg, Time: time.Now().UTC(),
				Fields: map[string]any{"file": filepath.Join(cfg.Store.Dir, deviceIDFile)}})
			remembered = ""
		}
	}
	var fallback <-chan time.Time
	if remembered != "" {
		t := time.NewTimer(deviceIDWait)
		defer t.Stop()
		fallback = t.C
	}
	nag := time.NewTicker(30 * time.Second)
	defer nag.Stop()
	for {
		if iccid := h.iccid(); iccid != "" {
			if iccid != remembered {
				if err := writeDeviceID(cfg.Store.Dir, iccid); err != nil {
					log.Warn("cannot remember the device id", "err", err)
				}
			}
			return iccid, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case err := <-sessDone:
			sessDone <- err
			if err != nil {
				return "", errConfig{err}
			}
			return "", errors.New("modem session ended before the SIM was read")
		case <-h.changed():
		case <-fallback:
			log.Warn("the modem has not reported the SIM's ICCID yet; relaying under the last device id seen", "device_id", remembered)
			return remembered, nil
		case <-nag.C:
			log.Warn("waiting for the modem to report the SIM's ICCID, which names the MQTT topics (set device_id to start without it)", "modem", modemName(cfg))
		}
	}
}

// watchSIM ends the gateway when device_id comes from the ICCID and a
// different SIM appears: the topics must follow the SIM, and a restart by
// the service manager is the simple, visible way to switch.
func watchSIM(ctx context.Context, cfg *config.Config, deviceID string, h *hub, out chan<- error, log *slog.Logger) {
	if cfg.DeviceID != "" {
		return
	}
	for {
		if iccid := h.iccid(); iccid != "" && iccid != deviceID {
			if err := writeDeviceID(cfg.Store.Dir, iccid); err != nil {
				log.Warn("cannot remember the device id", "err", err)
			}
			out <- fmt.Errorf("the SIM changed (ICCID %s, topics use %s): exiting so the service restarts under the new device id", iccid, deviceID)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-h.changed():
		}
	}
}

const deviceIDFile = "device_id"

func readDeviceID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, deviceIDFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// writeDeviceID replaces the file atomically, so a crash leaves the old id
// or the new one.
func writeDeviceID(dir, id string) error {
	tmp := filepath.Join(dir, deviceIDFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, deviceIDFile))
}

// notifyLoop keeps systemd informed: READY=1 once the modem is initialised
// (the queue is open by then, so messages are safe even while the broker is
// away), a STATUS= line on every change and every statusEvery, and from
// READY on, watchdog keep-alives while the health probe passes. Before
// READY, TimeoutStartSec is what bounds a start that does not finish.
func notifyLoop(ctx context.Context, n *systemd.Notifier, s modemBackend, q *transport.Queue, dev *device, h *hub, log *slog.Logger) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	var watchdog sync.WaitGroup
	defer watchdog.Wait()
	ready := false
	for {
		st := s.Status()
		if st.Ready && !ready {
			if err := n.Ready(); err != nil {
				log.Warn("systemd notify", "err", err)
			} else {
				ready = true
				watchdog.Go(func() { n.Watchdog(ctx, func() error { return healthy(s, h, dev) }) })
			}
		}
		r := h.currentRelay()
		if err := n.Status(systemd.StatusLine(st, q.Stats().Pending(), r != nil && r.Stats().Connected)); err != nil {
			log.Warn("systemd notify", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-h.changed():
		case <-t.C:
		}
	}
}

// healthy is the watchdog's probe: the modem answered in time, the relay
// loop is moving, and in ip.mode os the host socket is served.
func healthy(s modemBackend, h *hub, dev *device) error {
	if err := s.Healthy(); err != nil {
		return fmt.Errorf("modem: %w", err)
	}
	if r := h.currentRelay(); r != nil {
		if err := r.Healthy(); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	if dev.udp != nil {
		if err := dev.udp.Healthy(); err != nil {
			return fmt.Errorf("ip socket: %w", err)
		}
	}
	return nil
}

// hub fans the session's events and status changes out to the relay, and
// holds events until the relay exists (it waits for the device id).
type hub struct {
	mu      sync.Mutex
	relay   *transport.Relay
	held    []gw.Event
	last    gw.Status
	changes chan struct{}
}

// heldEvents bounds events kept before the relay starts.
const heldEvents = 256

func newHub() *hub { return &hub{changes: make(chan struct{})} }

func (h *hub) event(ev gw.Event) {
	h.mu.Lock()
	r := h.relay
	if r == nil {
		if len(h.held) == heldEvents {
			h.held = h.held[1:]
		}
		h.held = append(h.held, ev)
	}
	h.mu.Unlock()
	if r != nil {
		r.Event(ev)
	}
}

func (h *hub) status(st gw.Status) {
	h.mu.Lock()
	h.last = st
	r := h.relay
	close(h.changes)
	h.changes = make(chan struct{})
	h.mu.Unlock()
	if r != nil {
		r.StatusChanged()
	}
}

// changed returns a channel closed at the next status change.
func (h *hub) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changes
}

func (h *hub) currentRelay() *transport.Relay {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.relay
}

func (h *hub) iccid() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last.SIM.ICCID
}

func (h *hub) attach(r *transport.Relay) {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.relay = r
	h.mu.Unlock()
	for _, ev := range held {
		r.Event(ev)
	}
	r.StatusChanged()
}

// device is the transport.Device the relay sends through: SMS through the
// modem session, IP Commands through the module's socket or, in ip.mode os,
// a socket of this host.
type device struct {
	cfg     *config.Config
	session modemBackend
	udp     *transport.UDP // ip.mode os
	// hub, when set, tells of status changes, so a send that found the
	// modem not ready can wait for it (see whenReady).
	hub *hub
}

// notReadyRetry is how often a send waiting for the modem tries again
// when no status change wakes it first.
const notReadyRetry = time.Second

// whenReady runs send; while the modem is not ready (still starting, being
// re-initialised or reopened after a fault) it waits for a status change
// and tries again, until ctx ends. A request accepted from MQTT, such as
// one queued before a restart and sent as soon as the daemon is back,
// must not fail only because the modem was being set up; the relay's send
// timeout bounds the wait.
func (d *device) whenReady(ctx context.Context, send func() error) error {
	for {
		var changed <-chan struct{}
		if d.hub != nil {
			changed = d.hub.changed() // before trying, so no change is missed
		}
		err := send()
		if d.hub == nil || !errors.Is(err, modem.ErrNotReady) {
			return err
		}
		t := time.NewTimer(notReadyRetry)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			return err
		}
	}
}

func (d *device) SendSMS(ctx context.Context, to string, payload []byte, binary bool) (int, error) {
	if !d.cfg.SMS.Enabled {
		return 0, errors.New("SMS Commands are disabled (sms.enabled: false)")
	}
	var ref int
	err := d.whenReady(ctx, func() (err error) {
		ref, err = d.session.SendSMS(ctx, to, payload, binary)
		return err
	})
	return ref, err
}

func (d *device) SendUDP(ctx context.Context, payload []byte) error {
	switch d.cfg.IP.Mode {
	case "modem":
		return d.whenReady(ctx, func() error { return d.session.SendUDP(ctx, payload) })
	case "os":
		return d.udp.Send(ctx, payload)
	default:
		return fmt.Errorf("IP Commands are off (ip.mode: %s)", d.cfg.IP.Mode)
	}
}

func (d *device) Status() gw.Status {
	st := d.session.Status()
	switch {
	case d.udp != nil:
		st.Data = d.udp.Data()
	case d.cfg.IP.Mode != "modem":
		st.Data = gw.DataInfo{Mode: d.cfg.IP.Mode}
	}
	return st
}
