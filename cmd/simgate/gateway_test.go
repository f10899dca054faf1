package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/lifecycle"
	"github.com/simgate/simgate/internal/systemd"
	"github.com/simgate/simgate/modem"
	"github.com/simgate/simgate/modem/modemsim"
)

// testWait bounds waits so a broken test fails instead of hanging.
const testWait = 30 * time.Second

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// The README's first command: the demo relays every scripted command both
// ways and stops cleanly.
func TestDemo(t *testing.T) {
	checkDemo(t)
}

// A demo slow to read what the gateway publishes (a loaded machine) still
// shows the modem's start-up events under their step: they wait for it on
// its subscription instead of going out before it exists.
func TestDemoSlowStart(t *testing.T) {
	demoStarted = func() { time.Sleep(2 * time.Second) }
	t.Cleanup(func() { demoStarted = nil })
	checkDemo(t)
}

// checkDemo runs simgate demo -device-only and checks what it prints.
func checkDemo(t *testing.T) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdDemo([]string{"-device-only", "-mqtt-port", "0", "-for", "50ms"}, &out, &errb)
	text := out.String()
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, text, errb.String())
	}
	for _, want := range []string{
		`"payload":"reboot {now} at 10€","encoding":"text","parts":1`,
		`"payload":"temperature alert 🌡️ 31 °C"`,
		`"parts":3`,
		`"payload":"AQJ/gP8=","encoding":"base64"`,
		`sms/out/result {"id":"demo-sms-1","status":"sent"`,
		`the network received an SMS to 000 (ucs2, reference`,
		`ip/in {"id":"ip-`,
		`"from":"100.64.0.1:6969","port":6969,"payload":"ping","encoding":"text"`,
		`ip/out/result {"id":"demo-ip-1","status":"sent"}`,
		`the network received a datagram to 100.64.0.1:6969: 00 01 02 ff`,
		`sms/out/result {"id":"demo-sms-2","status":"failed","error":"too long for one SMS`,
		"mosquitto_sub -h 127.0.0.1",
		"stopped cleanly",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q\nstdout:\n%s\nstderr:\n%s", want, text, errb.String())
		}
	}
	if n := strings.Count(text, "/sms/in {"); n != 4 {
		t.Errorf("demo relayed %d SMS, want 4\n%s", n, text)
	}
	// Events show under the step they belong to: the modem's start-up
	// before the first command, a refusal with its request.
	for _, o := range []struct{ line, after, before string }{
		{`"type":"modem_connected"`, "status and events while the modem starts", "network -> device"},
		{`"type":"data_up"`, "status and events while the modem starts", "network -> device"},
		{`"type":"request_rejected"`, `"id":"demo-sms-2"`, "ip/out {"},
	} {
		i, a, b := strings.Index(text, o.line), strings.Index(text, o.after), strings.Index(text, o.before)
		if i < 0 || a < 0 || b < 0 || i < a || i > b {
			t.Errorf("demo output: %s is not between %q and %q\n%s", o.line, o.after, o.before, text)
		}
	}
	// Without -v nothing of the gateway's log shows: a refused request is
	// an event, not a warning.
	if e := errb.String(); e != "" {
		t.Errorf("demo without -v wrote to stderr:\n%s", e)
	}
}

// The demo's default is the whole loop: a request on the cloud broker
// reaches the device's broker and back, through simgate cloud, the emulated
// API, the simulated modem and the gateway.
func TestDemoLoop(t *testing.T) {
	var out, errb bytes.Buffer
	code := cmdDemo([]string{"-mqtt-port", "0", "-cloud-port", "0", "-for", "50ms"}, &out, &errb)
	text := out.String()
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, text, errb.String())
	}
	for _, want := range []string{
		`sms/to_sim/result {"id":"demo-c2d-sms","sid":"HC`,
		`"status":"delivered"`,
		`/sms/in {"id":"sms-`, `"from":"000","payload":"open valve 3"`,
		`/ip/in {"id":"ip-`, `"payload":"AAEC/w==","encoding":"base64"`,
		`/sms/from_sim {"id":"HC`, `"payload":"valve 3 open"`,
		`/ip/from_sim {"id":"HG`,
		"stopped cleanly",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q\nstdout:\n%s\nstderr:\n%s", want, text, errb.String())
		}
	}
}

// notifyListener plays systemd's side of sd_notify.
type notifyListener struct {
	mu   sync.Mutex
	msgs []string
	sig  chan struct{}
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	l := &notifyListener{sig: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, string(buf[:n]))
			l.mu.Unlock()
			select {
			case l.sig <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *notifyListener) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// wait returns the first message with prefix, failing after testWait.
func (l *notifyListener) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(testWait)
	for {
		for _, m := range l.all() {
			if strings.HasPrefix(m, prefix) {
				return m
			}
		}
		select {
		case <-l.sig:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q notification; got %q", prefix, l.all())
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testConfig is a gateway on a simulated modem and an embedded broker.
func testConfig(t *testing.T, sim *modemsim.Sim) *config.Config {
	cfg := config.Default()
	cfg.Modem.Port = sim.Link()
	cfg.MQTT.Embedded = true
	cfg.MQTT.URL = "tcp://" + freePort(t)
	cfg.Store.Dir = filepath.Join(t.TempDir(), "store")
	cfg.IP.Mode = "off"
	return &cfg
}

func startSim(t *testing.T, opts modemsim.Options) *modemsim.Sim {
	t.Helper()
	if opts.Link == "" {
		opts.Link = filepath.Join(t.TempDir(), "modem")
	}
	sim, err := modemsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// Under systemd the gateway says READY=1 once the modem is initialised,
// keeps STATUS= current, feeds the watchdog while healthy and says
// STOPPING=1 when asked to stop.
func TestGatewayNotifiesSystemd(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	cfg := testConfig(t, sim)
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runGateway(ctx, cfg, testLog(t), gatewayOptions{Notifier: systemd.New(nil)}) }()
	n.wait(t, "READY=1")
	// Once ready the line leads with the registration and ends with the
	// queue depth.
	status := n.wait(t, "STATUS=registered")
	if !strings.HasSuffix(status, " queued") || !strings.Contains(status, "dBm") {
		t.Errorf("STATUS line %q lacks signal or queue depth", status)
	}
	n.wait(t, "WATCHDOG=1")
	if n.all()[0] == "WATCHDOG=1" {
		t.Errorf("watchdog fed before READY=1: %q", n.all())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runGateway: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("gateway did not stop")
	}
	n.wait(t, "STOPPING=1")
}

// device_id defaults to the ICCID, which is remembered in store.dir so a
// restart without the modem still relays under the same topics.
func TestDeviceIDFromICCIDIsRemembered(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "simcom", ICCID: "89883070000099887766"})
	cfg := testConfig(t, sim)
	got := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runGateway(ctx, cfg, testLog(t), gatewayOptions{Started: func(id, prefix string) { got <- id + " " + prefix }})
	}()
	select {
	case s := <-got:
		if s != "89883070000099887766 supersim/89883070000099887766" {
			t.Errorf("started as %q", s)
		}
	case err := <-done:
		t.Fatalf("runGateway: %v", err)
	case <-time.After(testWait):
		t.Fatal("gateway did not start")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if id := readDeviceID(cfg.Store.Dir); id != "89883070000099887766" {
		t.Errorf("remembered device id %q", id)
	}

	// The modem is gone: after deviceIDWait the remembered id is used.
	saved := deviceIDWait
	deviceIDWait = 200 * time.Millisecond
	t.Cleanup(func() { deviceIDWait = saved })
	cfg.Modem.Port = filepath.Join(t.TempDir(), "no-such-tty")
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- runGateway(ctx, cfg, testLog(t), gatewayOptions{Started: func(id, prefix string) { got <- id }})
	}()
	select {
	case id := <-got:
		if id != "89883070000099887766" {
			t.Errorf("without the modem started as %q", id)
		}
	case err := <-done:
		t.Fatalf("runGateway: %v", err)
	case <-time.After(testWait):
		t.Fatal("gateway did not start without the modem")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A different SIM under a gateway named by the ICCID ends it with an
// error, so the service restarts under the new topics.
func TestWatchSIMChange(t *testing.T) {
	cfg := config.Default()
	cfg.Store.Dir = t.TempDir()
	h := newHub()
	out := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchSIM(ctx, &cfg, "111", h, out, testLog(t))
	h.status(gw.Status{SIM: gw.SIMInfo{ICCID: "111"}})
	select {
	case err := <-out:
		t.Fatalf("same SIM reported as a change: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.status(gw.Status{SIM: gw.SIMInfo{ICCID: "222"}})
	select {
	case err := <-out:
		if !strings.Contains(err.Error(), "SIM changed") {
			t.Errorf("error %q", err)
		}
	case <-time.After(testWait):
		t.Fatal("SIM change not reported")
	}
	if id := readDeviceID(cfg.Store.Dir); id != "222" {
		t.Errorf("remembered %q, want the new ICCID", id)
	}
}

// Events from the modem before the relay exists are held, then delivered
// in order.
func TestHubHoldsEarlyEvents(t *testing.T) {
	h := newHub()
	for i := range heldEvents + 5 {
		h.event(gw.Event{Type: "t", Message: fmt.Sprint(i)})
	}
	held := slices.Collect(h.held.All())
	if len(held) != heldEvents || held[0].Message != "5" || held[heldEvents-1].Message != fmt.Sprint(heldEvents+4) {
		t.Fatalf("held %d events, first %q", len(held), held[0].Message)
	}
	if h.dropped != 5 {
		t.Errorf("dropped %d events, want 5 counted for the log", h.dropped)
	}
}

// The device refuses what the configuration turned off, with the reason.
func TestDeviceRefusesDisabledChannels(t *testing.T) {
	cfg := config.Default()
	cfg.SMS.Enabled = false
	cfg.IP.Mode = "off"
	d := &device{cfg: &cfg, session: modem.NewSession(modem.Config{}, nil)}
	if _, err := d.SendSMS(context.Background(), "000", []byte("x"), false); err == nil || !strings.Contains(err.Error(), "sms.enabled: false") {
		t.Errorf("SendSMS with SMS disabled: %v", err)
	}
	if err := d.SendUDP(context.Background(), []byte("x")); err == nil || !strings.Contains(err.Error(), "ip.mode: off") {
		t.Errorf("SendUDP with IP off: %v", err)
	}
	if got := d.Status().Data.Mode; got != "off" {
		t.Errorf("Status().Data.Mode = %q", got)
	}
	if !errors.As(error(errConfig{errors.New("x")}), new(errConfig)) {
		t.Error("errConfig not recognised")
	}
}

// subscribe records everything under prefix on the gateway's broker.
func subscribe(t *testing.T, url, prefix string) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 64)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("test-%d", time.Now().UnixNano())).SetOrderMatters(true)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { ch <- m })
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe(prefix+"/#", 1, nil); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return ch
}

func awaitTopic(t *testing.T, ch <-chan paho.Message, topic string) string {
	t.Helper()
	deadline := time.After(testWait)
	for {
		select {
		case m := <-ch:
			if m.Topic() == topic {
				return string(m.Payload())
			}
		case <-deadline:
			t.Fatalf("nothing on %s", topic)
		}
	}
}

// ip.mode os: datagrams to the device port on this host reach P/ip/in,
// requests on P/ip/out leave from the device port to ip.cloud, and status
// reports the socket.
func TestGatewayIPOverHostSocket(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "generic"})
	cfg := testConfig(t, sim)
	cloud, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	dport, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := dport.LocalAddr().(*net.UDPAddr).Port
	dport.Close()
	cfg.IP.Mode = "os"
	cfg.IP.Port = port
	cfg.IP.Bind = "127.0.0.1"
	cfg.IP.Cloud = cloud.LocalAddr().String()
	cfg.DeviceID = "dev1"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runGateway(ctx, cfg, testLog(t), gatewayOptions{Started: func(string, string) { close(started) }})
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("runGateway: %v", err)
	case <-time.After(testWait):
		t.Fatal("gateway did not start")
	}
	msgs := subscribe(t, cfg.MQTT.URL, "supersim/dev1")

	// The cloud sends an IP Command to the device port.
	if _, err := cloud.WriteToUDP([]byte{0, 1, 2, 0xff}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	in := awaitTopic(t, msgs, "supersim/dev1/ip/in")
	for _, want := range []string{`"channel":"ip"`, `"from":"` + cloud.LocalAddr().String() + `"`, fmt.Sprintf(`"port":%d`, port), `"payload":"AAEC/w==","encoding":"base64"`} {
		if !strings.Contains(in, want) {
			t.Errorf("ip/in %s lacks %s", in, want)
		}
	}

	// The device answers through MQTT.
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(cfg.MQTT.URL).SetClientID("test-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	if tok := pub.Publish("supersim/dev1/ip/out", 1, false, `{"id":"r1","payload":"pong"}`); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if got := awaitTopic(t, msgs, "supersim/dev1/ip/out/result"); got != `{"id":"r1","status":"sent"}` {
		t.Errorf("result %s", got)
	}
	buf := make([]byte, 2048)
	cloud.SetReadDeadline(time.Now().Add(testWait))
	n, from, err := cloud.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "pong" || from.Port != port {
		t.Errorf("cloud got %q from %s, want \"pong\" from port %d", buf[:n], from, port)
	}
	// A fresh subscriber gets the retained status at once: the one the
	// first subscriber got may have gone by while it waited for ip/in, and
	// nothing may have changed since to publish another.
	if st := awaitTopic(t, subscribe(t, cfg.MQTT.URL, "supersim/dev1"), "supersim/dev1/status"); !strings.Contains(st, `"data":{"mode":"os","state":"up","ip":"127.0.0.1"}`) {
		t.Errorf("status data: %s", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Without the modem, systemd still hears why the gateway is not ready,
// and gets neither READY=1 nor keep-alives.
func TestGatewayStatusWithoutModem(t *testing.T) {
	cfg := config.Default()
	cfg.Modem.Port = filepath.Join(t.TempDir(), "no-such-tty")
	cfg.MQTT.Embedded = true
	cfg.MQTT.URL = "tcp://" + freePort(t)
	cfg.Store.Dir = t.TempDir()
	n := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runGateway(ctx, &cfg, testLog(t), gatewayOptions{Notifier: systemd.New(nil)}) }()
	if st := n.wait(t, "STATUS="); !strings.HasPrefix(st, "STATUS=modem not ready") {
		t.Errorf("first status %q", st)
	}
	time.Sleep(300 * time.Millisecond) // three watchdog periods
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, m := range n.all() {
		if m == "READY=1" || m == "WATCHDOG=1" {
			t.Errorf("sent %q without a modem", m)
		}
	}
}

// A remembered device id that cannot name topics (extra levels, a
// wildcard) is not used even when the modem is missing: it is reported as
// an event, and the SIM's ICCID names the gateway and replaces the file.
func TestRememberedDeviceIDValidated(t *testing.T) {
	saved := deviceIDWait
	deviceIDWait = time.Millisecond // the bad id would be taken at once
	t.Cleanup(func() { deviceIDWait = saved })
	for _, bad := range []string{"evil/extra", "evil/#", "a+b", "tab\there", strings.Repeat("x", config.MaxDeviceID+1)} {
		t.Run(bad[:min(len(bad), 12)], func(t *testing.T) {
			cfg := config.Default()
			cfg.Store.Dir = t.TempDir()
			if err := os.WriteFile(filepath.Join(cfg.Store.Dir, deviceIDFile), []byte(bad+"\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			h := newHub()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type res struct {
				id  string
				err error
			}
			got := make(chan res, 1)
			session := lifecycle.Go(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil })
			go func() {
				id, err := resolveDeviceID(ctx, &cfg, h, session, testLog(t))
				got <- res{id, err}
			}()
			held := func() []gw.Event {
				h.mu.Lock()
				defer h.mu.Unlock()
				return slices.Collect(h.held.All())
			}
			deadline := time.After(testWait)
		wait:
			for {
				for _, ev := range held() {
					if ev.Type == gw.EventDeviceIDInvalid && strings.Contains(ev.Message, "not usable") {
						break wait
					}
				}
				select {
				case r := <-got:
					t.Fatalf("resolved to %q (%v) from a bad remembered id, with no %s event", r.id, r.err, gw.EventDeviceIDInvalid)
				case <-deadline:
					t.Fatalf("no %s event; held %+v", gw.EventDeviceIDInvalid, held())
				case <-time.After(5 * time.Millisecond):
				}
			}
			h.status(gw.Status{SIM: gw.SIMInfo{ICCID: "89883070000099887766"}})
			select {
			case r := <-got:
				if r.err != nil || r.id != "89883070000099887766" {
					t.Fatalf("resolved to %q (%v), want the ICCID", r.id, r.err)
				}
			case <-time.After(testWait):
				t.Fatal("the ICCID did not resolve the device id")
			}
			if id := readDeviceID(cfg.Store.Dir); id != "89883070000099887766" {
				t.Errorf("remembered %q, want the ICCID", id)
			}
		})
	}
}

// The gateway's start order, which its stop reverses: the queue opens
// first and closes last; the modem session outlives the relay, which
// stops first and finishes its in-flight work with everything else up.
func TestGatewayPartsOrder(t *testing.T) {
	cfg := config.Default()
	g := &gateway{cfg: &cfg, log: testLog(t), hub: newHub()}
	var names []string
	for _, p := range g.parts() {
		names = append(names, p.Name)
	}
	want := []string{"queue", "embedded broker", "modem", "ip socket", "observability", "modem session",
		"systemd stopping", "systemd notify", "device id", "relay", "sim watch", "home assistant"}
	if !slices.Equal(names, want) {
		t.Errorf("parts\n got %q\nwant %q", names, want)
	}
}
