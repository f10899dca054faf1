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
	"github.com/simgate/simgate/internal/lifecycle"
	"github.com/simgate/simgate/internal/ring"
	"github.com/simgate/simgate/internal/systemd"
	"github.com/simgate/simgate/modem"
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
// Commands socket of this host in ip.mode os, and the MQTT relay, started
// in the order of gateway.parts and stopped in the reverse one. On
// cancellation the relay finishes in-flight work (a device call, PUBACKs)
// before the modem session stops, and the queue closes last.
func runGateway(ctx context.Context, cfg *config.Config, log *slog.Logger, opt gatewayOptions) error {
	g := &gateway{cfg: cfg, log: log, opt: opt, hub: newHub(), simChanged: make(chan error, 1)}
	g.n = opt.Notifier
	if g.n == nil {
		g.n = systemd.New(log.With("component", "systemd"))
	}
	parts := lifecycle.List{Log: log}
	parts.Add(g.parts()...)
	if err := parts.Start(ctx); err != nil {
		var se *lifecycle.StartError
		if errors.As(err, &se) && errors.Is(se.Err, errStoppedEarly) {
			return se.Stop // asked to stop before the device id was known
		}
		return err
	}
	log.Info("gateway running", "device_id", g.deviceID, "topic_prefix", g.prefix, "mqtt", config.RedactURL(cfg.MQTT.URL), "modem", modemName(cfg))
	if opt.Started != nil {
		opt.Started(g.deviceID, g.prefix)
	}
	// The relay ends when ctx is cancelled, once its in-flight work is
	// done; the other two end the gateway early.
	var err error
	select {
	case <-g.relayRun.Done():
		err = g.relayRun.Take()
	case err = <-g.simChanged:
	case <-g.sessRun.Done():
		err = sessionEnded(g.sessRun.Take())
	}
	if serr := parts.Stop(); err == nil {
		err = serr
	}
	return err
}

// errStoppedEarly ends the start when ctx is cancelled while the gateway
// waits for the device id: a clean stop, not a failure.
var errStoppedEarly = errors.New("stopped before the device id was known")

// sessionEnded is the error of a modem session that returned while the
// gateway ran: Run only returns early for a configuration it cannot use.
func sessionEnded(err error) error {
	if err == nil {
		err = errors.New("the modem session ended")
	}
	return errConfig{err}
}

// gateway is what runGateway wires together. Each field after the first
// group is set by the start of the part that owns it, and read only by
// the parts after it.
type gateway struct {
	cfg        *config.Config
	log        *slog.Logger
	opt        gatewayOptions
	n          *systemd.Notifier
	hub        *hub
	simChanged chan error // watchSIM's verdict

	q          *transport.Queue
	stopBroker func() error
	session    modemBackend
	dev        *device
	udpRun     *lifecycle.Task
	obs        *observability
	stopObs    func()
	sessRun    *lifecycle.Task
	noStopping func() bool // cancels the STOPPING=1 notice
	notifyRun  *lifecycle.Task
	deviceID   string
	prefix     string
	relay      *transport.Relay
	relayRun   *lifecycle.Task
	simRun     *lifecycle.Task
	haRun      *lifecycle.Task
}

// parts is the gateway's start order; it stops in the reverse one. Each
// part needs those above it, and what stops first (the relay) finishes
// its work while everything below it still runs.
func (g *gateway) parts() []lifecycle.Part {
	cfg, log, h := g.cfg, g.log, g.hub
	stopTask := func(t **lifecycle.Task) func(context.Context) error {
		return func(ctx context.Context) error { return (*t).Stop(ctx) }
	}
	return []lifecycle.Part{{
		// The queue first and closed last: everything below stores in it.
		Name: "queue",
		Start: func(context.Context) (err error) {
			g.q, err = transport.OpenQueue(transport.StoreConfig{Dir: cfg.Store.Dir, MaxMessages: cfg.Store.MaxMessages}, log.With("component", "queue"))
			return err
		},
		Stop: func(context.Context) error { return g.q.Close() },
	}, {
		// The embedded broker outlives the relay, which publishes its
		// offline status on the way out.
		Name: "embedded broker",
		Start: func(context.Context) (err error) {
			if !cfg.MQTT.Embedded {
				return nil
			}
			if g.stopBroker, err = transport.StartEmbedded(context.Background(), cfg.MQTT.URL, log); err != nil {
				return err
			}
			log.Info("embedded MQTT broker listening", "url", config.RedactURL(cfg.MQTT.URL))
			return nil
		},
		Stop: func(context.Context) error {
			if g.stopBroker == nil {
				return nil
			}
			return g.stopBroker()
		},
		LogOnly: true,
	}, {
		// Built, not run yet: the socket below and the operators' view
		// read it.
		Name:  "modem",
		Start: func(context.Context) error { g.newSession(); return nil },
	}, {
		// Bound at start, so a port in use or a missing ip.bind address
		// is reported at once; datagrams wait in the kernel until Run.
		// It stops after the relay and before the queue closes: what it
		// has read is stored first.
		Name: "ip socket",
		Start: func(ctx context.Context) error {
			if cfg.IP.Mode != "os" {
				return nil
			}
			udp, err := transport.NewUDP(transport.UDPConfig{
				Port:           cfg.IP.Port,
				Bind:           cfg.IP.Bind,
				Cloud:          cfg.IP.Cloud,
				AllowedSources: cfg.AllowedSources(),
				OnEvent:        h.event,
			}, g.q, log.With("component", "udp"))
			if err != nil {
				return errConfig{err}
			}
			g.dev.udp = udp
			g.udpRun = lifecycle.Go(context.WithoutCancel(ctx), udp.Run)
			return nil
		},
		Stop: func(ctx context.Context) error {
			if g.udpRun == nil {
				return nil
			}
			return g.udpRun.Stop(ctx)
		},
		LogOnly: true,
	}, {
		// Metrics, /healthz and the status socket, from the start: an
		// operator sees why a gateway is not ready yet.
		Name: "observability",
		Start: func(context.Context) (err error) {
			g.obs = newObservability(cfg, g.session, g.q, h, g.dev, log)
			g.stopObs, err = g.obs.serve(log)
			return err
		},
		Stop: func(context.Context) error { g.stopObs(); return nil },
	}, {
		// The session runs on a context of its own: it keeps serving a
		// device call the relay is finishing after ctx is cancelled, and
		// stops only after the relay.
		Name: "modem session",
		Start: func(ctx context.Context) error {
			g.sessRun = lifecycle.Go(context.WithoutCancel(ctx), g.session.Run)
			return nil
		},
		Stop: stopTask(&g.sessRun),
	}, {
		// STOPPING=1 as soon as ctx is cancelled, while the relay still
		// finishes its work.
		Name: "systemd stopping",
		Start: func(ctx context.Context) error {
			g.noStopping = context.AfterFunc(ctx, func() {
				if err := g.n.Stopping(); err != nil {
					log.Warn("systemd notify", "err", err)
				}
			})
			return nil
		},
		Stop: func(context.Context) error { g.noStopping(); return nil },
	}, {
		// systemd hears from the start, before the device id is known: a
		// first start without the modem shows why it is not ready yet.
		Name: "systemd notify",
		Start: func(ctx context.Context) error {
			g.notifyRun = lifecycle.Go(ctx, func(ctx context.Context) error {
				notifyLoop(ctx, g.n, g.session, g.q, g.dev, h, log)
				return nil
			})
			return nil
		},
		Stop: stopTask(&g.notifyRun),
	}, {
		// Waits for the SIM's ICCID (or the remembered id), which names
		// the topics the relay uses.
		Name: "device id",
		Start: func(ctx context.Context) error {
			id, err := resolveDeviceID(ctx, cfg, h, g.sessRun, log)
			if err != nil {
				if ctx.Err() != nil {
					return errStoppedEarly
				}
				return err
			}
			g.deviceID, g.prefix = id, cfg.Prefix(id)
			g.obs.setDeviceID(id)
			return nil
		},
	}, {
		// The relay stops first: it ends by itself once ctx is cancelled
		// and its in-flight work (a device call, PUBACKs) is done, with
		// everything above still running.
		Name: "relay",
		Start: func(ctx context.Context) error {
			if err := g.newRelay(); err != nil {
				return err
			}
			g.relayRun = lifecycle.Go(ctx, g.relay.Run)
			return nil
		},
		Stop: stopTask(&g.relayRun),
	}, {
		Name: "sim watch",
		Start: func(ctx context.Context) error {
			g.simRun = lifecycle.Go(ctx, func(ctx context.Context) error {
				watchSIM(ctx, cfg, g.deviceID, h, g.simChanged, log)
				return nil
			})
			return nil
		},
		Stop: stopTask(&g.simRun),
	}, {
		Name: "home assistant",
		Start: func(ctx context.Context) error {
			g.haRun = lifecycle.Go(ctx, func(ctx context.Context) error {
				homeAssistant(ctx, cfg, g.deviceID, g.prefix, g.relay, g.dev, h, log)
				return nil
			})
			return nil
		},
		Stop: stopTask(&g.haRun),
	}}
}

// newSession builds the modem backend the configuration names, and the
// device the relay sends through.
func (g *gateway) newSession() {
	cfg, h := g.cfg, g.hub
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
		Logger:          g.log,
		Open:            g.opt.Open,
	}
	if cfg.IP.Mode == "modem" {
		mcfg.AllowedSources = cfg.AllowedSources()
	}
	if cfg.Modem.Backend == config.BackendModemManager {
		g.session = newModemManager(cfg, h, g.q, g.log)
	} else {
		g.session = modem.NewSession(mcfg, g.q)
	}
	g.dev = &device{cfg: cfg, session: g.session, hub: h}
}

// newRelay builds the relay under the device id's topics and hands it the
// events held until now.
func (g *gateway) newRelay() error {
	cfg := g.cfg
	ver, _ := buildVersion()
	relay, err := transport.NewRelay(transport.RelayConfig{
		MQTT: transport.MQTTConfig{
			URL:          cfg.MQTT.URL,
			ClientID:     cfg.ClientID(g.deviceID),
			Username:     cfg.MQTT.Username,
			PasswordFile: cfg.MQTT.PasswordFile,
			CAFile:       cfg.MQTT.CAFile,
			CertFile:     cfg.MQTT.CertFile,
			KeyFile:      cfg.MQTT.KeyFile,
			TopicPrefix:  g.prefix,
		},
		Version:  ver,
		Observer: g.obs.observer(),
	}, g.q, g.dev, g.log)
	if err != nil {
		return errConfig{err}
	}
	g.relay = relay
	if dropped := g.hub.attach(relay); dropped > 0 {
		g.log.Warn("events held before the relay started overflowed; the oldest were dropped", "dropped", dropped, "limit", heldEvents)
	}
	return nil
}

// resolveDeviceID returns device_id from the configuration or, when it is
// empty, the SIM's ICCID. The ICCID last seen is remembered in store.dir, so
// after a restart with the modem missing, messages already queued are still
// relayed under the right topics.
func resolveDeviceID(ctx context.Context, cfg *config.Config, h *hub, sess *lifecycle.Task, log *slog.Logger) (string, error) {
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
		case <-sess.Done():
			if err := sess.Take(); err != nil {
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
		if err := n.Status(statusLine(st, q.Stats().Pending(), r != nil && r.Stats().Connected)); err != nil {
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
	held    ring.Queue[gw.Event] // until the relay exists; bounded by heldEvents
	dropped int                  // held events dropped for room
	last    gw.Status
	changes chan struct{}
}

// heldEvents bounds events kept before the relay starts.
const heldEvents = 256

func newHub() *hub {
	return &hub{changes: make(chan struct{}), held: *ring.New(ring.Bounds[gw.Event]{Len: heldEvents})}
}

func (h *hub) event(ev gw.Event) {
	h.mu.Lock()
	r := h.relay
	if r == nil {
		h.dropped += h.held.Push(ev)
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

// attach hands r the events held so far and every later one, and returns
// how many were dropped while it did not exist.
func (h *hub) attach(r *transport.Relay) (dropped int) {
	h.mu.Lock()
	held, dropped := h.held.Drain(), h.dropped
	h.dropped = 0
	h.relay = r
	h.mu.Unlock()
	for _, ev := range held {
		r.Event(ev)
	}
	r.StatusChanged()
	return dropped
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
