package main

// What an operator looks at: the Prometheus metrics and health endpoint
// (http.listen), the status socket behind `simgate status`, and the
// timings the relay reports. See the README's "Metrics and health".

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/metrics"
	"github.com/simgate/simgate/transport"
)

// registrationStates are the values of NetworkInfo.Registration, each a
// series of simgate_network_registration (1 for the current one).
var registrationStates = []string{"home", "roaming", "searching", "denied", "not_registered", "unknown"}

// observability holds what runGateway serves to operators. It reads the
// counters the session, queue and relay keep; it adds only the latency
// histograms and event counts.
type observability struct {
	cfg     *config.Config
	reg     *metrics.Registry
	session modemBackend
	q       *transport.Queue
	hub     *hub
	dev     *device
	log     *slog.Logger

	mu       sync.Mutex
	deviceID string
}

func newObservability(cfg *config.Config, s modemBackend, q *transport.Queue, h *hub, dev *device, log *slog.Logger) *observability {
	o := &observability{cfg: cfg, reg: metrics.NewRegistry(), session: s, q: q, hub: h, dev: dev, log: log}
	o.register()
	return o
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// register declares every series of the daemon; the README lists them.
func (o *observability) register() {
	r := o.reg
	v, c := buildVersion()
	r.GaugeFunc("simgate_build_info", func() float64 { return 1 }, "version", v, "commit", c, "goversion", runtime.Version())

	relay := func() *transport.Relay { return o.hub.currentRelay() }
	channel := func(ch string) transport.ChannelStats {
		if rl := relay(); rl != nil {
			return rl.Channel(ch)
		}
		return transport.ChannelStats{}
	}
	for _, ch := range []string{gw.ChannelSMS, gw.ChannelIP} {
		r.CounterFunc("simgate_messages_in_total", func() float64 { return float64(channel(ch).In) }, "channel", ch)
		r.CounterFunc("simgate_messages_out_total", func() float64 { return float64(channel(ch).Sent) }, "channel", ch, "result", "sent")
		r.CounterFunc("simgate_messages_out_total", func() float64 { return float64(channel(ch).Failed) }, "channel", ch, "result", "failed")
		for outcome, f := range map[string]func(transport.ChannelStats) uint64{
			"queued":    func(s transport.ChannelStats) uint64 { return s.Queued },
			"rejected":  func(s transport.ChannelStats) uint64 { return s.Rejected },
			"full":      func(s transport.ChannelStats) uint64 { return s.Full },
			"duplicate": func(s transport.ChannelStats) uint64 { return s.Duplicates },
		} {
			r.CounterFunc("simgate_requests_total", func() float64 { return float64(f(channel(ch))) }, "channel", ch, "outcome", outcome)
		}
		r.GaugeFunc("simgate_last_message_in_timestamp_seconds", func() float64 { return unixSeconds(channel(ch).LastIn) }, "channel", ch)
	}
	stats := func() transport.RelayStats {
		if rl := relay(); rl != nil {
			return rl.Stats()
		}
		return transport.RelayStats{}
	}
	r.CounterFunc("simgate_results_published_total", func() float64 { return float64(stats().Results) })
	r.CounterFunc("simgate_events_published_total", func() float64 { return float64(stats().Events) })
	r.GaugeFunc("simgate_mqtt_connected", func() float64 { return b2f(stats().Connected) })

	for kind, f := range map[string]func(transport.QueueStats) int{
		"inbound":  func(s transport.QueueStats) int { return s.Inbound },
		"segments": func(s transport.QueueStats) int { return s.Segments },
		"sms_out":  func(s transport.QueueStats) int { return s.OutboundSMS },
		"ip_out":   func(s transport.QueueStats) int { return s.OutboundIP },
		"results":  func(s transport.QueueStats) int { return s.Results },
	} {
		r.GaugeFunc("simgate_queue_depth", func() float64 { return float64(f(o.q.Stats())) }, "kind", kind)
	}
	r.GaugeFunc("simgate_queue_pending", func() float64 { return float64(o.q.Stats().Pending()) })
	r.GaugeFunc("simgate_queue_capacity", func() float64 { return float64(o.cfg.Store.MaxMessages) })
	for kind, f := range map[string]func(transport.QueueAges) time.Time{
		"inbound": func(a transport.QueueAges) time.Time { return a.Inbound },
		"sms_out": func(a transport.QueueAges) time.Time { return a.OutboundSMS },
		"ip_out":  func(a transport.QueueAges) time.Time { return a.OutboundIP },
	} {
		r.GaugeFunc("simgate_queue_oldest_age_seconds", func() float64 { return o.age(f) }, "kind", kind)
	}

	st := func() gw.Status { return o.dev.Status() }
	r.GaugeFunc("simgate_modem_ready", func() float64 { return b2f(st().Ready) })
	r.GaugeFunc("simgate_healthy", func() float64 { return b2f(o.health() == nil) })
	for step, f := range map[string]func(gw.Recovery) int{
		"probe":  func(r gw.Recovery) int { return r.Probes },
		"reinit": func(r gw.Recovery) int { return r.Reinits },
		"reset":  func(r gw.Recovery) int { return r.Resets },
		"reopen": func(r gw.Recovery) int { return r.Reopens },
	} {
		r.CounterFunc("simgate_modem_recovery_steps_total", func() float64 { return float64(f(st().Recovery)) }, "step", step)
	}
	for _, state := range registrationStates {
		r.GaugeFunc("simgate_network_registration", func() float64 {
			cur := st().Network.Registration
			if cur == "" {
				cur = "unknown"
			}
			return b2f(cur == state)
		}, "state", state)
	}
	r.GaugeFunc("simgate_network_registered", func() float64 {
		reg := st().Network.Registration
		return b2f(reg == "home" || reg == "roaming")
	})
	r.GaugeFunc("simgate_signal_dbm", func() float64 {
		if d := st().Network.SignalDBm; d != nil {
			return float64(*d)
		}
		return math.NaN()
	})
	r.GaugeFunc("simgate_sim_sms_used", func() float64 { return float64(st().SMSStore.Used) })
	r.GaugeFunc("simgate_sim_sms_capacity", func() float64 { return float64(st().SMSStore.Total) })
}

// unixSeconds is t for a timestamp gauge, 0 when t is zero (never).
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// age returns how long the oldest item that pick chooses has waited, 0
// when there is none. Reading the heads of the outboxes is a read-only
// transaction of a few microseconds, so every scrape reads them afresh.
func (o *observability) age(pick func(transport.QueueAges) time.Time) float64 {
	a, err := o.q.Ages()
	if err != nil {
		o.log.Warn("metrics: cannot read queue ages", "err", err)
		return math.NaN()
	}
	t := pick(a)
	if t.IsZero() {
		return 0
	}
	return max(0, time.Since(t).Seconds())
}

// observer feeds the relay's timings into the latency histograms.
func (o *observability) observer() transport.Observer {
	return transport.Observer{
		Puback: func(outbox string, d time.Duration) {
			metrics.ObserveDuration(o.reg.Histogram("simgate_puback_seconds", metrics.LatencyBuckets, "outbox", outbox), d)
		},
		DeviceCall: func(channel string, d time.Duration, err error) {
			res := "sent"
			if err != nil {
				res = "failed"
			}
			metrics.ObserveDuration(o.reg.Histogram("simgate_device_call_seconds", metrics.LatencyBuckets, "channel", channel, "result", res), d)
		},
		Event: func(typ string) { o.reg.Counter("simgate_events_total", "type", typ).Inc() },
	}
}

// health is what /healthz and `simgate status` report: the watchdog's
// probe (see healthy), and also the modem being ready now. The watchdog
// allows the port to be away for a while before it asks systemd for a
// restart; an operator still wants to see that it is away.
func (o *observability) health() error {
	if err := healthy(o.session, o.hub, o.dev); err != nil {
		return err
	}
	if st := o.session.Status(); !st.Ready {
		err := errors.New("modem not ready")
		if st.Recovery.LastError != "" {
			err = fmt.Errorf("modem not ready (last error: %s)", st.Recovery.LastError)
		}
		return err
	}
	return nil
}

func (o *observability) setDeviceID(id string) {
	o.mu.Lock()
	o.deviceID = id
	o.mu.Unlock()
}

// serve starts the HTTP endpoint when http.listen is set and the status
// socket in store.dir. An address that cannot be bound fails the start with
// exit status 1, not 78: its form was validated, and a port still held by a
// previous instance or an interface not up yet may be fine on the restart
// systemd makes. A status socket that cannot be made is only logged, and
// `simgate status` then reads the retained status instead. stop ends both.
func (o *observability) serve(log *slog.Logger) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	if o.cfg.HTTP.Listen != "" {
		srv, err := metrics.Listen(o.cfg.HTTP.Listen, metrics.Handler(o.reg, o.health), log.With("component", "http"))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("http.listen: %w", err)
		}
		log.Info("serving /metrics and /healthz", "listen", srv.Addr().String())
		wg.Go(func() {
			if err := srv.Serve(ctx); err != nil {
				log.Error("http endpoint stopped", "err", err)
			}
		})
	}
	sock, err := listenStatus(statusSocketPath(o.cfg))
	if err != nil {
		log.Warn("no status socket; `simgate status` will read the retained status from the broker", "err", err)
		return stop, nil
	}
	wg.Go(func() { serveStatus(ctx, sock, o.snapshot, log) })
	return stop, nil
}
