package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/testenv"
)

// waitLimit only keeps a broken test from hanging; nothing is asserted
// about how long anything takes.
const waitLimit = 30 * time.Second

const testPrefix = "supersim/dev1"

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freeAddr finds a loopback port nobody listens on.
func freeAddr(t testing.TB) string { t.Helper(); return testenv.FreeAddr(t) }

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// msg is one message an observer saw.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
}

// observer records what reaches the broker, in the order the broker
// delivered it.
type observer struct {
	mu   sync.Mutex
	msgs []msg
}

func (o *observer) add(m msg) {
	o.mu.Lock()
	o.msgs = append(o.msgs, m)
	o.mu.Unlock()
}

// inline is a mochi inline subscription handler.
func (o *observer) inline(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
	o.add(msg{Topic: pk.TopicName, Payload: string(pk.Payload), Retained: pk.FixedHeader.Retain})
}

// all returns everything seen, in order.
func (o *observer) all() []msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]msg(nil), o.msgs...)
}

// on returns what arrived on the topic suffix, in order.
func (o *observer) on(suffix string) []msg {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []msg
	for _, m := range o.msgs {
		if m.Topic == testPrefix+"/"+suffix {
			out = append(out, m)
		}
	}
	return out
}

func (o *observer) payloads(suffix string) []string {
	var out []string
	for _, m := range o.on(suffix) {
		out = append(out, m.Payload)
	}
	return out
}

func (o *observer) wait(t testing.TB, suffix string, n int) []msg {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages on %s", n, suffix), func() bool { return len(o.on(suffix)) >= n })
	return o.on(suffix)
}

// connect subscribes the observer to everything under the prefix through
// a real MQTT connection with a persistent session, so it misses nothing
// across a broker restart that keeps sessions.
func (o *observer) connect(t testing.TB, url, clientID string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOrderMatters(true)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		o.add(msg{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()})
	})
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(testPrefix+"/#", 1, nil)
	})
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	sub := c.Subscribe(testPrefix+"/#", 1, nil)
	if !sub.WaitTimeout(waitLimit) || sub.Error() != nil {
		t.Fatalf("observer subscribe: %v", sub.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publisher is a plain MQTT client for sending requests.
func publisher(t testing.TB, url string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())))
	tok := c.Connect()
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t testing.TB, c paho.Client, suffix, payload string) {
	t.Helper()
	tok := c.Publish(testPrefix+"/"+suffix, 1, false, payload)
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", suffix, tok.Error())
	}
}

// retained reads the retained message of a topic with a fresh client.
func retained(t testing.TB, url, suffix string) string {
	t.Helper()
	got := make(chan string, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("ret-%d", time.Now().UnixNano())))
	tok := c.Connect()
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	sub := c.Subscribe(testPrefix+"/"+suffix, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !sub.WaitTimeout(waitLimit) || sub.Error() != nil {
		t.Fatalf("subscribe: %v", sub.Error())
	}
	select {
	case s := <-got:
		return s
	case <-time.After(waitLimit):
		t.Fatalf("no retained message on %s", suffix)
		return ""
	}
}

// embeddedBroker starts mochi at addr with obs subscribed inline before the
// listener opens, so nothing published can slip past it.
func embeddedBroker(t testing.TB, addr string, obs *observer) *closeOnce {
	t.Helper()
	srv, err := startBroker("tcp://"+addr, testLogger(t), func(s *mochi.Server) error {
		if obs == nil {
			return nil
		}
		return s.Subscribe(testPrefix+"/#", 1, obs.inline)
	})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { srv.Close() }) })
	return &closeOnce{Server: srv, once: &once}
}

// waitSubscribed waits until the relay's client holds its two request
// subscriptions at the broker. Connected is set once the connection is up,
// before onConnect's SUBSCRIBE is answered: a request published in between
// reaches no subscriber and is gone.
func (c *closeOnce) waitSubscribed(t testing.TB, clientID string) {
	t.Helper()
	eventually(t, "the relay's subscriptions", func() bool {
		cl, ok := c.Clients.Get(clientID)
		return ok && len(cl.State.Subscriptions.GetAll()) >= 2
	})
}

// closeOnce guards mochi's Close, which panics when called twice.
type closeOnce struct {
	*mochi.Server
	once *sync.Once
}

func (c *closeOnce) Close() error {
	var err error
	c.once.Do(func() { err = c.Server.Close() })
	return err
}

// mosquitto is a broker process of our own on a loopback port.
type mosquitto struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// startMosquitto runs mosquitto with persistence in a temp dir, so
// sessions and queued messages survive a restart, as a production broker
// should be configured. It skips the test when mosquitto is not installed.
func startMosquitto(t testing.TB) *mosquitto {
	t.Helper()
	bin := testenv.MosquittoBin(t, "the embedded broker tests cover the same ground")
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := testenv.MosquittoConf(t, dir, port, "autosave_interval 1")
	m := &mosquitto{t: t, bin: bin, conf: conf, addr: addr}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) url() string { return "tcp://" + m.addr }

func (m *mosquitto) start() {
	m.t.Helper()
	m.out = new(bytes.Buffer)
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	eventually(m.t, "mosquitto to listen", func() bool {
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop ends mosquitto with SIGTERM, so it saves its persistence file.
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.t.Errorf("stop mosquitto: %v", err)
	}
	if err := m.cmd.Wait(); err != nil && !strings.Contains(err.Error(), "signal") {
		m.t.Logf("mosquitto exited: %v\n%s", err, m.out)
	}
	m.cmd = nil
}

// fakeDevice is a Device that records what it was asked to send.
type fakeDevice struct {
	mu      sync.Mutex
	sms     []sentSMS
	udp     [][]byte
	err     error
	release chan struct{} // when set, sends wait for it (or their context)
	ignore  bool          // when blocking, also ignore the context
	started chan struct{} // receives one value per send that begins
	status  gw.Status
	ref     int
}

type sentSMS struct {
	To      string
	Payload string
	Binary  bool
}

func newFakeDevice() *fakeDevice {
	return &fakeDevice{started: make(chan struct{}, 100)}
}

func (d *fakeDevice) block(ctx context.Context) error {
	d.mu.Lock()
	release, ignore := d.release, d.ignore
	d.mu.Unlock()
	select {
	case d.started <- struct{}{}:
	default:
	}
	if release == nil {
		return nil
	}
	if ignore {
		<-release
		return nil
	}
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("send: %w", ctx.Err())
	}
}

func (d *fakeDevice) SendSMS(ctx context.Context, to string, payload []byte, binary bool) (int, error) {
	if err := d.block(ctx); err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return 0, d.err
	}
	d.sms = append(d.sms, sentSMS{To: to, Payload: string(payload), Binary: binary})
	d.ref++
	return d.ref, nil
}

func (d *fakeDevice) SendUDP(ctx context.Context, payload []byte) error {
	if err := d.block(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	d.udp = append(d.udp, append([]byte(nil), payload...))
	return nil
}

func (d *fakeDevice) Status() gw.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *fakeDevice) sent() ([]sentSMS, [][]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]sentSMS(nil), d.sms...), append([][]byte(nil), d.udp...)
}

func testRelayConfig(url string) RelayConfig {
	return RelayConfig{
		MQTT: MQTTConfig{
			URL:                  url,
			ClientID:             "simgate-dev1",
			TopicPrefix:          testPrefix,
			ConnectTimeout:       5 * time.Second,
			MaxReconnectInterval: 250 * time.Millisecond,
		},
		Version:        "test",
		StatusInterval: time.Hour,
		ShutdownGrace:  5 * time.Second,
	}
}

// runRelay starts r.Run and returns a function that stops it and returns
// Run's error.
func runRelay(t testing.TB, r *Relay) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitLimit):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

func newTestRelay(t testing.TB, cfg RelayConfig, q *Queue, dev Device) *Relay {
	t.Helper()
	r, err := NewRelay(cfg, q, dev, testLogger(t))
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	return r
}

func mustRender(t testing.TB, m gw.Inbound) string {
	t.Helper()
	b, err := renderInbound(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
