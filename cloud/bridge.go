package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/metrics"
	"github.com/simgate/simgate/transport"
)

// Defaults of Config.
const (
	DefaultShareGroup     = "simgate-cloud"
	DefaultWorkers        = 16
	DefaultStatusInterval = 60 * time.Second
	DefaultShutdownGrace  = 5 * time.Second
	DefaultRetryMax       = 60 * time.Second
)

// Config configures a Bridge.
type Config struct {
	// MQTT is the cloud broker; its TopicPrefix is cloud.topic_prefix.
	MQTT transport.MQTTConfig
	// ShareGroup names the MQTT 5 shared subscription group, so that N
	// bridges against one broker each get a share of the requests.
	ShareGroup string
	Provider   string
	API        *API
	Verifier   Verifier
	// Listen, TLSCertFile, TLSKeyFile and PublicURL are the HTTP side.
	Listen                  string
	TLSCertFile, TLSKeyFile string
	PublicURL               string
	// DevicePort is the DevicePort of IP Commands sent without "port".
	DevicePort int
	// Sims, when not empty, are the only ICCIDs or Sim SIDs requests may
	// address.
	Sims []string
	// StoreDir holds the SIM cache beside the queue.
	StoreDir string
	Version  string
	// Workers bounds how many SIMs have an API call under way at once.
	Workers        int
	StatusInterval time.Duration
	ShutdownGrace  time.Duration
	// RetryMin and RetryMax bound the backoff between API attempts.
	RetryMin, RetryMax time.Duration
	// Metrics, when set, receives the webhook counters and the queue depth
	// (the API's calls are counted through APIConfig.OnCall).
	Metrics *metrics.Registry
}

func (c *Config) fill() error {
	if c.API == nil || c.Verifier == nil {
		return errors.New("api and verifier are required")
	}
	if c.ShareGroup == "" {
		c.ShareGroup = DefaultShareGroup
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.DevicePort <= 0 {
		c.DevicePort = 6969
	}
	// The MQTT timeouts are used here as well as by paho.
	if c.MQTT.ConnectTimeout <= 0 {
		c.MQTT.ConnectTimeout = transport.DefaultConnectTimeout
	}
	if c.MQTT.MaxReconnectInterval <= 0 {
		c.MQTT.MaxReconnectInterval = transport.DefaultMaxReconnectInterval
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return nil
}

// Bridge connects a cloud MQTT broker and the Super SIM API.
type Bridge struct {
	cfg    Config
	q      *transport.Queue
	log    *slog.Logger
	client paho.Client
	sims   *simCache
	allow  map[string]bool

	conn  conn
	fifo  fifo
	evMu  sync.Mutex
	evLim map[string]time.Time

	statusPoke chan struct{}
	apiMu      sync.Mutex
	apiOK      bool
	apiErr     string

	started atomic.Bool
	// counters for tests and benchmarks
	Created   atomic.Uint64 // commands the API created
	Published atomic.Uint64 // publications the broker acknowledged
}

// New checks cfg and prepares the MQTT client; nothing connects until Run.
func New(cfg Config, q *transport.Queue, log *slog.Logger) (*Bridge, error) {
	if q == nil {
		return nil, errors.New("new bridge: queue is required")
	}
	if err := cfg.fill(); err != nil {
		return nil, fmt.Errorf("new bridge: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sims, err := openSimCache(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("new bridge: %w", err)
	}
	b := &Bridge{
		cfg: cfg, q: q, log: log.With("component", "cloud"), sims: sims,
		allow: map[string]bool{}, evLim: map[string]time.Time{},
		statusPoke: make(chan struct{}, 1), apiOK: true,
	}
	for _, s := range cfg.Sims {
		b.allow[s] = true
	}
	b.conn.init()
	b.fifo.init()
	opts, err := transport.ClientOptions(cfg.MQTT)
	if err != nil {
		return nil, fmt.Errorf("new bridge: %w", err)
	}
	opts.SetWill(b.topic("bridge/status"), transport.OfflinePayload, 1, true)
	opts.SetDefaultPublishHandler(b.onMessage)
	opts.SetOnConnectHandler(b.onConnect)
	opts.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) { b.conn.set(false) })
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		b.log.Warn("mqtt connection lost; reconnecting", "err", err)
	})
	opts.SetStore(transport.NewResumeStore(func() { b.conn.set(true) }))
	b.client = paho.NewClient(opts)
	q.SetEventHandler(func(ev gw.Event) { b.event(ev.Type, ev.Message, ev.Fields) })
	if cfg.Metrics != nil {
		cfg.Metrics.GaugeFunc("simgate_cloud_queue_depth", func() float64 {
			st := q.Stats()
			return float64(st.Jobs + st.Publications)
		})
	}
	return b, nil
}

func (b *Bridge) topic(suffix string) string { return b.cfg.MQTT.TopicPrefix + "/" + suffix }

// Run connects, serves the webhooks and relays until ctx is cancelled; it
// then stops taking work, lets API calls and publications in flight finish
// within ShutdownGrace, publishes the retained offline status and returns.
// What is left stays queued for the next run. The error is a listener that
// cannot start.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("bridge: Run called twice")
	}
	srv, ln, err := b.listen()
	if err != nil {
		return err
	}
	b.log.Info("cloud bridge starting", "mqtt", b.cfg.MQTT.URL, "client_id", b.cfg.MQTT.ClientID,
		"prefix", b.cfg.MQTT.TopicPrefix, "provider", b.cfg.Provider, "api", b.cfg.API.base.String(),
		"listen", ln.Addr().String(), "public_url", b.cfg.PublicURL)
	if b.cfg.PublicURL == "" {
		b.log.Warn("cloud.public_url is empty: commands are created without CallbackUrl, so results stop at \"queued\", and Twilio signatures cannot be checked")
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- b.serve(srv, ln) }()

	connCtx, cancelConn := context.WithCancel(ctx)
	defer cancelConn()
	connDone := make(chan struct{})
	go func() { defer close(connDone); b.connectLoop(connCtx) }()

	stop := make(chan struct{})
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	var work, pubs sync.WaitGroup
	work.Go(func() { b.intakeLoop(stop, abortCtx) })
	work.Go(func() { b.dispatchLoop(stop, abortCtx) })
	pubStop := make(chan struct{})
	pubs.Go(func() { b.publishLoop(pubStop, abortCtx) })
	pubs.Go(func() { b.statusLoop(pubStop, abortCtx) })

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-httpDone:
		b.log.Error("webhook server failed", "err", serveErr)
	}
	b.log.Info("cloud bridge stopping: finishing in-flight work", "grace", b.cfg.ShutdownGrace)
	grace := time.AfterFunc(b.cfg.ShutdownGrace, abort)
	defer grace.Stop()
	shCtx, cancelSh := context.WithTimeout(context.Background(), b.cfg.ShutdownGrace)
	if err := srv.Shutdown(shCtx); err != nil {
		b.log.Warn("webhook server shutdown", "err", err)
	}
	cancelSh()
	close(stop)
	work.Wait()
	close(pubStop)
	pubs.Wait()
	cancelConn()
	<-connDone
	b.goOffline()
	st := b.q.Stats()
	b.log.Info("cloud bridge stopped", "jobs", st.Jobs, "publications", st.Publications)
	if serveErr != nil {
		return fmt.Errorf("webhook server: %w", serveErr)
	}
	return nil
}

func (b *Bridge) goOffline() {
	if b.client.IsConnectionOpen() {
		t := b.client.Publish(b.topic("bridge/status"), 1, true, transport.OfflinePayload)
		if !t.WaitTimeout(2*time.Second) || t.Error() != nil {
			b.log.Warn("offline status not acknowledged", "err", t.Error())
		}
	}
	b.client.Disconnect(250)
	b.conn.set(false)
}

func (b *Bridge) connectLoop(ctx context.Context) {
	bo := backoff.New(500*time.Millisecond, b.cfg.MQTT.MaxReconnectInterval, backoff.Below)
	for {
		t := b.client.Connect()
		select {
		case <-t.Done():
			if t.Error() == nil {
				return
			}
		case <-ctx.Done():
			// A connection attempt still under way would otherwise
			// complete after Disconnect and leave a session open.
			t.WaitTimeout(b.cfg.MQTT.ConnectTimeout + time.Second)
			return
		}
		d := bo.Next()
		b.log.Warn("mqtt connect failed", "url", b.cfg.MQTT.URL, "err", t.Error(), "retry_in", d.Round(time.Millisecond))
		if backoff.Sleep(ctx, d) != nil {
			return
		}
	}
}

// Subscriptions, shared so that several bridges split the requests.
func (b *Bridge) subscriptions() map[string]byte {
	g := "$share/" + b.cfg.ShareGroup + "/"
	return map[string]byte{
		g + b.topic("+/sms/to_sim"): 1,
		g + b.topic("+/ip/to_sim"):  1,
	}
}

func (b *Bridge) onConnect(c paho.Client) {
	b.log.Info("mqtt connected", "url", b.cfg.MQTT.URL)
	t := c.SubscribeMultiple(b.subscriptions(), nil)
	switch {
	case !t.WaitTimeout(b.cfg.MQTT.ConnectTimeout):
		b.log.Error("mqtt subscribe: no SUBACK")
	case t.Error() != nil:
		b.log.Error("mqtt subscribe failed", "err", t.Error())
	default:
		if st, ok := t.(*paho.SubscribeToken); ok {
			for topic, code := range st.Result() {
				if code > 2 {
					b.event(gw.EventSubscribeRefused, fmt.Sprintf("the broker refused the subscription to %s (code %#x): requests on it will not arrive", topic, code),
						map[string]any{"topic": topic})
				}
			}
		}
	}
	poke(b.statusPoke)
}

// maxQoS0Backlog bounds, in bytes, the QoS 0 requests waiting for the
// queue. QoS 1 ones are bounded by the broker's in-flight window, as they
// are acknowledged only once queued; QoS 0 ones are not, so a flood of them
// is dropped here rather than grow without end.
const maxQoS0Backlog = 1 << 20

// onMessage runs on paho's router goroutine: it only queues the message.
func (b *Bridge) onMessage(_ paho.Client, m paho.Message) {
	if m.Qos() == 0 && b.fifo.qos0Bytes()+len(m.Payload()) > maxQoS0Backlog {
		b.event(gw.EventRequestDropped, fmt.Sprintf("QoS 0 request on %s dropped: %d bytes of QoS 0 requests already wait for the queue (publish with QoS 1 to be acknowledged once queued)", m.Topic(), maxQoS0Backlog),
			map[string]any{"topic": m.Topic()})
		return
	}
	b.fifo.push(inMsg{msg: m, at: time.Now().UTC()})
}

// intakeLoop parses requests, commits them as jobs in arrival order, and
// only then acknowledges them to the broker.
func (b *Bridge) intakeLoop(stop <-chan struct{}, abort context.Context) {
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Below)
	for {
		msgs := b.fifo.take(512)
		if len(msgs) == 0 {
			select {
			case <-b.fifo.sig:
				continue
			case <-stop:
				if b.fifo.len() == 0 {
					return
				}
				continue
			}
		}
		var jobs []transport.Job
		var pubs []transport.Publication
		var reqs []Request
		type rejected struct {
			req    Request
			reason string
		}
		var rejects []rejected
		for _, m := range msgs {
			sim, channel, ok := ParseTopic(b.cfg.MQTT.TopicPrefix, m.msg.Topic())
			if !ok {
				b.log.Warn("mqtt message on an unexpected topic ignored", "topic", m.msg.Topic())
				continue
			}
			req, err := ParseRequest(channel, sim, m.msg.Payload(), b.cfg.DevicePort, nil)
			req.ReceivedAt = m.at
			if err != nil {
				rejects = append(rejects, rejected{req, err.Error()})
				pubs = append(pubs, b.failedResult(req, err.Error(), 0))
				continue
			}
			body, err := json.Marshal(req)
			if err != nil {
				rejects = append(rejects, rejected{req, err.Error()})
				pubs = append(pubs, b.failedResult(req, err.Error(), 0))
				continue
			}
			jobs = append(jobs, transport.Job{Lane: sim, ID: sim + "/" + channel + "/" + req.ID, Body: body})
			reqs = append(reqs, req)
		}
		var outcomes []transport.JobOutcome
		for {
			var err error
			outcomes, err = b.q.AddJobs(context.Background(), jobs, pubs)
			if err == nil {
				bo.Reset()
				break
			}
			b.log.Error("cannot queue requests", "count", len(jobs), "err", err)
			if errors.Is(err, transport.ErrClosed) || backoff.Sleep(abort, bo.Next()) != nil {
				return // not acknowledged: the broker redelivers them
			}
		}
		var full []transport.Publication
		for i, o := range outcomes {
			r := reqs[i]
			switch o {
			case transport.JobDuplicate:
				b.event(gw.EventRequestDuplicate, fmt.Sprintf("%s request %s for %s is already queued or was sent: dropped", r.Channel, r.ID, r.Sim),
					map[string]any{"id": r.ID, "channel": r.Channel, "sim": r.Sim})
			case transport.JobFull:
				full = append(full, b.failedResult(r, "queue full", 0))
			}
		}
		if len(full) > 0 {
			if err := b.q.AddPublications(context.Background(), full); err != nil {
				b.log.Error("cannot queue failed results", "err", err)
			}
		}
		for _, m := range msgs {
			m.msg.Ack()
		}
		for _, r := range rejects {
			b.log.Warn("request rejected", "id", r.req.ID, "sim", r.req.Sim, "reason", r.reason)
			b.event(gw.EventRequestRejected, fmt.Sprintf("%s request %s for %s rejected: %s", r.req.Channel, r.req.ID, r.req.Sim, r.reason),
				map[string]any{"id": r.req.ID, "channel": r.req.Channel, "sim": r.req.Sim})
		}
	}
}

func (b *Bridge) resultTopic(r Request) string {
	return b.topic(r.Sim + "/" + r.Channel + "/to_sim/result")
}

func (b *Bridge) failedResult(r Request, reason string, code int) transport.Publication {
	p, _ := json.Marshal(ResultJSON{ID: r.ID, Status: StatusFailed, Error: reason, Code: code, UpdatedAt: rfc3339(time.Now())})
	// No key: a request is failed once (a job's id is remembered when it
	// finishes), and a request refused before it became a job may be sent
	// again, corrected, with the same id.
	return transport.Publication{Topic: b.resultTopic(r), Payload: p}
}

// resultKey is the key a command's result is stored under, so that each
// status is published once. "queued" is keyed by the sid alone: it is
// stored by the request's end (the API's answer) or by a later status's
// callback, whichever comes first, and marks the command as taken by a
// request. The statuses after it carry the request's id too (a callback's
// from its URL), so a stored callback also says which request the command
// belongs to: the command of a request whose end was lost to a crash is
// recognised by it (see findCreated).
func resultKey(sid, status, id string) string {
	if status == StatusQueued {
		return "r/" + sid + "/" + status
	}
	return "r/" + sid + "/" + status + "/" + id
}

// statusResults are the results for a command's status, preceded by the
// statuses before it not yet published; each is keyed by resultKey.
func (b *Bridge) statusResults(topic, channel, id, sid, status string, at time.Time) []transport.Publication {
	var out []transport.Publication
	for _, s := range statusChain(channel, status) {
		r := ResultJSON{ID: id, Sid: sid, Status: s, UpdatedAt: rfc3339(at)}
		if s == StatusFailed {
			r.Error = "the Super SIM service reported the command failed (not delivered within its retry period, or refused by the network)"
		}
		p, _ := json.Marshal(r)
		out = append(out, transport.Publication{Key: resultKey(sid, s, id), Topic: topic, Payload: p})
	}
	return out
}

// event publishes on C/bridge/events, best effort and at most once a
// second per type, so a flood of forged webhooks is not a flood of events.
func (b *Bridge) event(typ, msg string, fields map[string]any) {
	b.log.Info("event", "type", typ, "message", msg)
	now := time.Now()
	b.evMu.Lock()
	last, seen := b.evLim[typ]
	if seen && now.Sub(last) < time.Second {
		b.evMu.Unlock()
		return
	}
	b.evLim[typ] = now
	b.evMu.Unlock()
	m := map[string]any{}
	for k, v := range fields {
		m[k] = v
	}
	m["type"], m["message"], m["time"] = typ, msg, rfc3339(now)
	payload, err := json.Marshal(m)
	if err != nil {
		b.log.Error("cannot encode event", "err", err)
		return
	}
	if up, _ := b.conn.state(); up {
		b.client.Publish(b.topic("bridge/events"), 1, false, payload)
	}
}

func (b *Bridge) setAPI(ok bool, errText string) {
	b.apiMu.Lock()
	changed := b.apiOK != ok
	b.apiOK = ok
	if errText != "" {
		b.apiErr = errText
	}
	b.apiMu.Unlock()
	if changed {
		poke(b.statusPoke)
	}
}

func (b *Bridge) statusPayload(online bool) []byte {
	b.apiMu.Lock()
	ok, last := b.apiOK, b.apiErr
	b.apiMu.Unlock()
	st := b.q.Stats()
	p, _ := json.Marshal(map[string]any{
		"online": online, "version": b.cfg.Version, "provider": b.cfg.Provider,
		"api":        map[string]any{"reachable": ok, "last_error": last},
		"queue":      map[string]any{"pending": st.Jobs + st.Publications, "requests": st.Jobs, "publications": st.Publications},
		"updated_at": rfc3339(time.Now()),
	})
	return p
}

func (b *Bridge) statusLoop(stop <-chan struct{}, abort context.Context) {
	tick := time.NewTicker(b.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-b.statusPoke:
		}
		// onConnect pokes once subscribed, which may be before paho's
		// resume marks the connection usable: wait for it rather than
		// drop the announcement until the next tick.
		if up, _ := b.conn.state(); !up {
			select {
			case <-b.conn.wait():
			case <-stop:
				return
			}
		}
		t := b.client.Publish(b.topic("bridge/status"), 1, true, b.statusPayload(true))
		if err := transport.WaitToken(abort, t, b.cfg.MQTT.ConnectTimeout); err != nil {
			b.log.Warn("status not published", "err", err)
		}
	}
}

// Healthy is nil while the bridge can do its job: connected to the broker
// and the API answering (the last call did not fail for want of an answer,
// a 429 or a 5xx).
func (b *Bridge) Healthy() error {
	if up, _ := b.conn.state(); !up {
		return errors.New("not connected to the cloud broker")
	}
	b.apiMu.Lock()
	defer b.apiMu.Unlock()
	if !b.apiOK {
		return fmt.Errorf("super sim api not reachable: %s", b.apiErr)
	}
	return nil
}

func (b *Bridge) webhookMetric(kind, outcome string) {
	if b.cfg.Metrics != nil {
		b.cfg.Metrics.Webhook(kind, outcome)
	}
}

// conn tracks whether the MQTT connection is usable. epoch changes with
// every transition, so a token completed across a reconnect is not taken
// for a PUBACK (paho completes resent messages' old tokens at once).
type conn struct {
	mu    sync.Mutex
	up    bool
	epoch uint64
	ch    chan struct{} // closed when up
}

func (c *conn) init() { c.ch = make(chan struct{}) }

func (c *conn) set(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up == up {
		return
	}
	c.up = up
	c.epoch++
	if up {
		close(c.ch)
	} else {
		c.ch = make(chan struct{})
	}
}

func (c *conn) state() (bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up, c.epoch
}

func (c *conn) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

type inMsg struct {
	msg paho.Message
	at  time.Time
}

// fifo hands messages from paho's router to the intake in arrival order
// without ever blocking paho.
type fifo struct {
	mu   sync.Mutex
	q    []inMsg
	qos0 int // bytes of QoS 0 payloads in q
	sig  chan struct{}
}

func (f *fifo) init() { f.sig = make(chan struct{}, 1) }

func (f *fifo) push(m inMsg) {
	f.mu.Lock()
	f.q = append(f.q, m)
	if m.msg.Qos() == 0 {
		f.qos0 += len(m.msg.Payload())
	}
	f.mu.Unlock()
	poke(f.sig)
}

func (f *fifo) qos0Bytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.qos0
}

func (f *fifo) take(n int) []inMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, len(f.q))
	out := append([]inMsg(nil), f.q[:n]...)
	f.q = f.q[n:]
	for _, m := range out {
		if m.msg.Qos() == 0 {
			f.qos0 -= len(m.msg.Payload())
		}
	}
	return out
}

func (f *fifo) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.q)
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
