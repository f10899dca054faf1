package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/transport"
)

// demoWait bounds each step of the demo script.
const demoWait = 20 * time.Second

// demoStarted, when set, is called once the gateway has started and before
// the script reads what it published. Tests stand in for a slow machine
// with it: whatever the gateway publishes meanwhile waits for the script.
var demoStarted func()

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	port := fs.Int("mqtt-port", 1883, "port of the embedded broker on 127.0.0.1 (0: any free port; a busy 1883 falls back to a free one)")
	profile := fs.String("profile", "quectel", "simulated module: quectel, simcom, sim7080, ublox, sara-r5 or generic")
	runFor := fs.Duration("for", 0, "stop after this long once the script has run (0: run until Ctrl-C)")
	verbose := fs.Bool("v", false, "show the gateway's log (info level) on stderr; without it only errors are logged")
	deviceOnly := fs.Bool("device-only", false, "only the device side: modem, gateway and broker (without the cloud bridge and the emulated API)")
	cloudPort := fs.Int("cloud-port", 1884, "port of the cloud broker on 127.0.0.1 (0: any free port)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// Without -v the demo's own lines are the whole story: the gateway
	// logs only errors, and events it reports show on P/events anyway.
	level := "error"
	if *verbose {
		level = "info"
	}
	log := newLogger(stderr, config.Log{Level: level, Format: "text"})
	ctx, stop := signalContext(log)
	defer stop()
	if !*deviceOnly {
		d := &loopDemo{out: stdout, log: log, profile: *profile}
		if err := d.run(ctx, *port, *cloudPort, *runFor); err != nil {
			fmt.Fprintf(stderr, "simgate demo: %v\n", err)
			return exitError
		}
		return exitOK
	}
	d := &demo{out: stdout, log: log, profile: *profile}
	if err := d.run(ctx, *port, *runFor); err != nil {
		fmt.Fprintf(stderr, "simgate demo: %v\n", err)
		return exitError
	}
	return exitOK
}

// demo is a gateway wired to a simulated modem and an embedded broker, and
// a script that shows commands going through it both ways.
type demo struct {
	out     io.Writer
	log     *slog.Logger
	profile string

	dir     string
	sim     *modemsim.Sim
	control string
	url     string
	prefix  string
	msgs    chan paho.Message
	online  bool
	// events counts the events shown and not yet awaited, by type.
	events map[string]int
	mu     sync.Mutex
}

func (d *demo) printf(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, a...)
}

func (d *demo) run(ctx context.Context, port int, runFor time.Duration) error {
	dir, err := os.MkdirTemp("", "simgate-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	defer os.RemoveAll(dir)
	d.control = filepath.Join(dir, "modemsim.sock")
	d.sim, err = modemsim.Start(modemsim.Options{
		Link:    filepath.Join(dir, "modem"),
		Profile: d.profile,
		Control: d.control,
		Logger:  d.log,
	})
	if err != nil {
		return fmt.Errorf("start the simulated modem: %w", err)
	}
	defer d.sim.Close()

	addr, err := brokerAddr(port)
	if err != nil {
		return err
	}
	d.url = "tcp://" + addr
	cfg := config.Default()
	cfg.Modem.Port = d.sim.Link()
	cfg.Modem.Profile = d.profile
	cfg.MQTT.URL = d.url
	cfg.Store.Dir = filepath.Join(dir, "store")
	if d.profile == "generic" {
		cfg.IP.Mode = "off" // the generic profile has no socket commands
	}
	// The demo runs the broker itself rather than through mqtt.embedded,
	// so that it subscribes before the gateway publishes anything: the
	// modem's start-up events go out once and are not retained, and a
	// subscription made after the gateway started could miss them.
	stopBroker, err := transport.StartEmbedded(context.Background(), d.url, d.log)
	if err != nil {
		return fmt.Errorf("start the embedded broker: %w", err)
	}
	defer func() {
		if err := stopBroker(); err != nil {
			d.log.Warn("embedded broker", "err", err)
		}
	}()
	// The device id, and so the prefix, is known once the gateway has read
	// the SIM; until then any device's topics are collected.
	sub, err := d.subscribe(cfg.Prefix("+") + "/#")
	if err != nil {
		return err
	}
	defer sub.Disconnect(100)

	gwCtx, stopGW := context.WithCancel(context.Background())
	defer stopGW()
	started := make(chan struct{})
	gwDone := make(chan error, 1)
	go func() {
		gwDone <- runGateway(gwCtx, &cfg, d.log, gatewayOptions{Started: func(id, prefix string) {
			d.prefix = prefix
			close(started)
		}})
	}()
	d.printf("simgate demo: a complete gateway with no hardware\n")
	d.printf("  modem   simulated %s module on %s\n", d.profile, d.sim.Link())
	d.printf("  broker  embedded MQTT broker at %s\n", d.url)
	select {
	case <-started:
	case err := <-gwDone:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
		stopGW()
		return <-gwDone
	case <-time.After(demoWait):
		stopGW()
		<-gwDone
		return errors.New("the gateway did not start in time")
	}
	d.printf("  topics  %s/...\n\n", d.prefix)
	if demoStarted != nil {
		demoStarted()
	}

	scriptErr := d.script(ctx, cfg.IP.Mode == "modem")
	if scriptErr != nil {
		d.printf("\n%v\n", scriptErr)
	}
	d.tryIt(cfg.IP.Mode == "modem")
	// Keep printing what arrives (messages typed by the user) until asked
	// to stop.
	if err := showUntil(ctx, runFor, d.msgs, func(m paho.Message) { d.show(m) }, gwDone, nil); err != nil {
		return err
	}
	d.printf("\nstopping: the gateway finishes in-flight work and publishes its offline status\n")
	sub.Disconnect(100)
	stopGW()
	if err := <-gwDone; err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	d.printf("stopped cleanly\n")
	return scriptErr
}

// showUntil prints what arrives on msgs until ctx ends or, when runFor > 0,
// runFor has passed. The gateway or the cloud bridge stopping first ends it
// with their error; brDone is nil when no bridge runs.
func showUntil[M any](ctx context.Context, runFor time.Duration, msgs <-chan M, show func(M), gwDone, brDone <-chan error) error {
	var timeout <-chan time.Time
	if runFor > 0 {
		timeout = time.After(runFor)
	}
	for {
		select {
		case m := <-msgs:
			show(m)
		case <-ctx.Done():
			return nil
		case <-timeout:
			return nil
		case err := <-gwDone:
			return fmt.Errorf("gateway stopped: %w", err)
		case err := <-brDone:
			return fmt.Errorf("cloud bridge stopped: %w", err)
		}
	}
}

// brokerAddr is 127.0.0.1:port, or a free port when it is 0 or taken.
func brokerAddr(port int) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil && port != 0 {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return "", fmt.Errorf("find a port for the embedded broker: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// subscribe connects to the broker and subscribes to filter; what arrives
// waits on d.msgs until the script reads it.
func (d *demo) subscribe(filter string) (paho.Client, error) {
	d.msgs = make(chan paho.Message, 256)
	opts := paho.NewClientOptions().AddBroker(d.url).SetClientID(fmt.Sprintf("simgate-demo-%d", os.Getpid())).
		SetOrderMatters(true).SetAutoReconnect(true)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.msgs <- m })
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return nil, fmt.Errorf("connect to the embedded broker: %v", t.Error())
	}
	if t := c.Subscribe(filter, 1, nil); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return nil, fmt.Errorf("subscribe: %v", t.Error())
	}
	return c, nil
}

// script injects commands on the network side and publishes requests on
// the MQTT side, waiting each time for what the gateway relays.
func (d *demo) script(ctx context.Context, ip bool) error {
	// The modem's start-up first, so what it reports on P/events is shown
	// here and not under the first command.
	d.printf("gateway -> MQTT: status and events while the modem starts\n")
	if _, err := d.await(ctx, "status", func(p map[string]any) bool {
		return p["online"] == true && p["ready"] == true && (!ip || dataUp(p))
	}); err != nil {
		return err
	}
	startup := []string{"modem_connected"}
	if ip {
		startup = append(startup, "data_up")
	}
	d.awaitEvents(ctx, startup...)
	sms := []struct {
		what string
		msg  modemsim.SMS
	}{
		{"an SMS Command in GSM 7-bit", modemsim.SMS{Text: "reboot {now} at 10€"}},
		{"an SMS Command in UCS-2 with an emoji", modemsim.SMS{Text: "temperature alert 🌡️ 31 °C"}},
		{"a 3-part SMS Command, parts delivered out of order", modemsim.SMS{
			Text:  strings.Repeat("firmware update manifest: version 2.4.1, channel stable, checksum 9f86d081. ", 5),
			Parts: 3, Order: []int{2, 3, 1}}},
		{"an SMS Command of 8-bit binary data", modemsim.SMS{Data: []byte{0x01, 0x02, 0x7f, 0x80, 0xff}}},
	}
	for _, s := range sms {
		d.printf("network -> device: %s\n", s.what)
		if _, err := d.sim.InjectSMS(s.msg); err != nil {
			return fmt.Errorf("inject SMS: %w", err)
		}
		if _, err := d.await(ctx, "sms/in", nil); err != nil {
			return err
		}
	}
	if ip {
		d.printf("network -> device: an IP Command (UDP datagram from 100.64.0.1:6969 to port 6969)\n")
		if err := d.injectUDP(ctx, []byte("ping")); err != nil {
			d.printf("  (IP Commands skipped: %v)\n", err)
			ip = false
		} else if _, err := d.await(ctx, "ip/in", nil); err != nil {
			return err
		}
	}

	if err := d.request(ctx, "sms/out", `{"id":"demo-sms-1","payload":"device online 👋"}`); err != nil {
		return err
	}
	if st := d.sim.State(); len(st.SentSMS) > 0 {
		s := st.SentSMS[len(st.SentSMS)-1]
		d.printf("  the network received an SMS to %s (%s, reference %d): %q\n", s.To, s.Encoding, s.Reference, s.Text)
	}
	if err := d.request(ctx, "sms/out", `{"id":"demo-sms-2","payload":"`+strings.Repeat("x", 161)+`"}`); err != nil {
		return err
	}
	// The gateway also reports the refusal on P/events; show it with the
	// request it belongs to.
	d.awaitEvents(ctx, "request_rejected")
	if ip {
		if err := d.request(ctx, "ip/out", `{"id":"demo-ip-1","payload":"AAEC/w==","encoding":"base64"}`); err != nil {
			return err
		}
		if st := d.sim.State(); len(st.SentUDP) > 0 {
			u := st.SentUDP[len(st.SentUDP)-1]
			d.printf("  the network received a datagram to %s: % x\n", u.To, u.Data)
		}
	}
	return nil
}

// dataUp reports whether a status payload says the data session is up.
func dataUp(status map[string]any) bool {
	data, _ := status["data"].(map[string]any)
	return data["state"] == "up"
}

// awaitEvents prints what arrives until an event of each type has been
// shown (since the last wait for that type). The demo subscribed before the
// gateway started, so every event reaches it, however late; after demoWait
// it gives up quietly and goes on.
func (d *demo) awaitEvents(ctx context.Context, types ...string) {
	want := map[string]bool{}
	for _, t := range types {
		want[t] = true
	}
	seen := func() bool {
		for t := range want {
			if d.events[t] > 0 {
				d.events[t]--
				delete(want, t)
			}
		}
		return len(want) == 0
	}
	timeout := time.After(demoWait)
	for !seen() {
		select {
		case m := <-d.msgs:
			d.show(m)
		case <-ctx.Done():
			return
		case <-timeout:
			return
		}
	}
}

// injectUDP waits for the gateway's socket on port 6969, then sends one
// datagram to it.
func (d *demo) injectUDP(ctx context.Context, payload []byte) error {
	deadline := time.Now().Add(demoWait)
	for {
		err := d.sim.InjectUDP("100.64.0.1:6969", 6969, payload)
		if err == nil {
			return nil
		}
		if !errors.Is(err, modemsim.ErrNoSocket) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) request(ctx context.Context, suffix, body string) error {
	d.printf("MQTT -> device: publish to %s/%s %s\n", d.prefix, suffix, body)
	// A client of its own, so the demo shows what any MQTT client does.
	c := paho.NewClient(paho.NewClientOptions().AddBroker(d.url).SetClientID(fmt.Sprintf("simgate-demo-pub-%d", os.Getpid())))
	if t := c.Connect(); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return fmt.Errorf("connect: %v", t.Error())
	}
	defer c.Disconnect(100)
	if t := c.Publish(d.prefix+"/"+suffix, 1, false, body); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return fmt.Errorf("publish: %v", t.Error())
	}
	_, err := d.await(ctx, suffix+"/result", nil)
	return err
}

// await prints what arrives until a message on suffix that match accepts
// (nil accepts any).
func (d *demo) await(ctx context.Context, suffix string, match func(map[string]any) bool) (map[string]any, error) {
	timeout := time.After(demoWait)
	for {
		select {
		case m := <-d.msgs:
			p := d.show(m)
			if m.Topic() == d.prefix+"/"+suffix && (match == nil || match(p)) {
				return p, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, fmt.Errorf("nothing arrived on %s/%s within %s", d.prefix, suffix, demoWait)
		}
	}
}

// show prints one relayed message and returns its decoded payload.
func (d *demo) show(m paho.Message) map[string]any {
	var p map[string]any
	_ = json.Unmarshal(m.Payload(), &p) // printed as is either way
	topic := strings.TrimPrefix(m.Topic(), d.prefix+"/")
	switch topic {
	case "status":
		// Refreshed on every modem change; only going on or offline is news.
		if online := p["online"] == true; online != d.online {
			d.online = online
			d.printf("  <- %s/status (retained): online=%v\n", d.prefix, online)
		}
		return p
	case "events":
		if d.events == nil {
			d.events = map[string]int{}
		}
		d.events[fmt.Sprint(p["type"])]++
	case "sms/out", "ip/out":
		// Requests: the script announces its own; show the ones typed by
		// a user.
		if !strings.HasPrefix(fmt.Sprint(p["id"]), "demo-") {
			d.printf("  -> %s/%s %s\n", d.prefix, topic, m.Payload())
		}
		return p
	}
	d.printf("  <- %s/%s %s\n", d.prefix, topic, m.Payload())
	if p["encoding"] == "base64" {
		if s, ok := p["payload"].(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				d.printf("     (payload bytes: % x)\n", b)
			}
		}
	}
	return p
}

func (d *demo) tryIt(ip bool) {
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(d.url, "tcp://"))
	d.printf("\nTry it yourself while the demo runs (Ctrl-C stops it):\n")
	d.printf("  mosquitto_sub -h %s -p %s -t '%s/#' -v\n", host, port, d.prefix)
	d.printf("  mosquitto_pub -h %s -p %s -t '%s/sms/out' -m '{\"payload\":\"hello 000\"}'\n", host, port, d.prefix)
	if ip {
		d.printf("  mosquitto_pub -h %s -p %s -t '%s/ip/out' -m '{\"payload\":\"hello cloud\"}'\n", host, port, d.prefix)
	}
	d.printf("  go run ./cmd/modemsim sms -control %s 'reboot'\n", d.control)
	if ip {
		d.printf("  go run ./cmd/modemsim udp -control %s -port 6969 %s\n", d.control, base64.StdEncoding.EncodeToString([]byte("ping")))
	}
	d.printf("  go run ./cmd/modemsim state -control %s\n", d.control)
	d.printf("Messages relayed from now on are printed below.\n")
}
