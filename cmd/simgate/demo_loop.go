package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/cloud"
	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemsim/superapi"
	"github.com/simgate/simgate/transport"
)

// loopDemo is the whole command path on one machine: a cloud broker, the
// cloud bridge, the emulated Super SIM API, the simulated modem, the device
// gateway and the device broker (README, "Try it: the demo").
type loopDemo struct {
	out     io.Writer
	log     *slog.Logger
	profile string

	mu       sync.Mutex
	msgs     chan obsMessage
	iccid    string
	cloudURL string
	devURL   string
	dataUp   bool // the device's last status has its UDP socket open
}

type obsMessage struct {
	side  string // "cloud" or "device"
	topic string
	body  []byte
}

func (d *loopDemo) printf(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, a...)
}

func (d *loopDemo) run(ctx context.Context, devPort, cloudPort int, runFor time.Duration) error {
	dir, err := os.MkdirTemp("", "simgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(dir, "modem"), Profile: d.profile,
		Control: filepath.Join(dir, "modemsim.sock"), Logger: d.log})
	if err != nil {
		return fmt.Errorf("start the simulated modem: %w", err)
	}
	defer sim.Close()
	emu, err := superapi.Start(superapi.Options{Modem: sim, Logger: d.log})
	if err != nil {
		return fmt.Errorf("start the emulated Super SIM API: %w", err)
	}
	defer emu.Close()

	devAddr, err := brokerAddr(devPort)
	if err != nil {
		return err
	}
	cloudAddr, err := brokerAddr(cloudPort)
	if err != nil {
		return err
	}
	d.devURL, d.cloudURL = "tcp://"+devAddr, "tcp://"+cloudAddr
	stopCloudBroker, err := transport.StartEmbedded(ctx, d.cloudURL, d.log)
	if err != nil {
		return fmt.Errorf("start the cloud broker: %w", err)
	}
	defer stopCloudBroker()

	// The device side: simgate run with its embedded broker.
	cfg := config.Default()
	cfg.Modem.Port, cfg.Modem.Profile = sim.Link(), d.profile
	cfg.MQTT.URL, cfg.MQTT.Embedded = d.devURL, true
	cfg.Store.Dir = filepath.Join(dir, "device-store")
	gwCtx, stopGW := context.WithCancel(context.Background())
	defer stopGW()
	started := make(chan string, 1)
	gwDone := make(chan error, 1)
	go func() {
		gwDone <- runGateway(gwCtx, &cfg, d.log, gatewayOptions{Started: func(id, prefix string) { started <- id }})
	}()

	// The cloud side: simgate cloud against the emulator.
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: filepath.Join(dir, "cloud-store")}, d.log)
	if err != nil {
		return err
	}
	defer q.Close()
	api, err := cloud.NewAPI(cloud.APIConfig{BaseURL: emu.URL(), Username: emu.AccountSID(), Password: emu.AuthToken()})
	if err != nil {
		return err
	}
	hookAddr, err := brokerAddr(0)
	if err != nil {
		return err
	}
	bridge, err := cloud.New(cloud.Config{
		MQTT:     transport.MQTTConfig{URL: d.cloudURL, ClientID: "simgate-cloud-demo", TopicPrefix: "supersim"},
		Provider: "twilio", API: api, Verifier: cloud.NewTwilioVerifier(emu.AuthToken()),
		Listen: hookAddr, PublicURL: "http://" + hookAddr, StoreDir: filepath.Join(dir, "cloud-store"), Version: "demo",
	}, q, d.log)
	if err != nil {
		return err
	}
	brCtx, stopBridge := context.WithCancel(context.Background())
	defer stopBridge()
	brDone := make(chan error, 1)
	go func() { brDone <- bridge.Run(brCtx) }()
	if err := setFleetURLs(emu, "http://"+hookAddr); err != nil {
		return err
	}

	d.printf("simgate demo: the whole loop on one machine, no hardware, no account\n")
	d.printf("  cloud   MQTT broker %s <-> simgate cloud (webhooks on %s)\n", d.cloudURL, hookAddr)
	d.printf("  api     emulated Super SIM API %s/v1 (account %s)\n", emu.URL(), emu.AccountSID())
	d.printf("  device  simulated %s modem <-> simgate run <-> MQTT broker %s\n", d.profile, d.devURL)
	select {
	case d.iccid = <-started:
	case err := <-gwDone:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
		return nil
	case <-time.After(demoWait):
		return errors.New("the gateway did not start in time")
	}
	d.printf("  sim     %s (the same name on both brokers)\n\n", d.iccid)
	d.msgs = make(chan obsMessage, 256)
	cl, err := d.subscribe("cloud", d.cloudURL, "supersim/#")
	if err != nil {
		return err
	}
	defer cl.Disconnect(100)
	dev, err := d.subscribe("device", d.devURL, "supersim/"+d.iccid+"/#")
	if err != nil {
		return err
	}
	defer dev.Disconnect(100)

	scriptErr := d.script(ctx)
	if scriptErr != nil {
		d.printf("\n%v\n", scriptErr)
	}
	c := "supersim/" + d.iccid
	d.printf("\nTry it yourself while the demo runs (Ctrl-C stops it):\n")
	d.printf("  mosquitto_sub -h 127.0.0.1 -p %s -t 'supersim/#' -v                      # the cloud broker\n", port(d.cloudURL))
	d.printf("  mosquitto_pub -h 127.0.0.1 -p %s -t '%s/sms/to_sim' -m '{\"payload\":\"hello\"}'\n", port(d.cloudURL), c)
	d.printf("  mosquitto_sub -h 127.0.0.1 -p %s -t '%s/#' -v   # the device broker\n", port(d.devURL), c)
	d.printf("  mosquitto_pub -h 127.0.0.1 -p %s -t '%s/sms/out' -m '{\"payload\":\"hi cloud\"}'\n", port(d.devURL), c)
	if err := showUntil(ctx, runFor, d.msgs, func(m obsMessage) { d.show(m) }, gwDone, brDone); err != nil {
		return err
	}
	d.printf("\nstopping: both sides finish in-flight work and publish their offline status\n")
	stopBridge()
	stopGW()
	err = errors.Join(<-brDone, <-gwDone)
	if err != nil {
		return err
	}
	d.printf("stopped cleanly\n")
	return scriptErr
}

func port(u string) string { return u[strings.LastIndex(u, ":")+1:] }

// setFleetURLs points the Fleet's SMS and IP Commands webhooks at the
// bridge, as an operator does in the console.
func setFleetURLs(emu *superapi.Emulator, base string) error {
	form := url.Values{"SmsCommandsUrl": {base + "/webhooks/sms"}, "SmsCommandsMethod": {"POST"},
		"IpCommandsUrl": {base + "/webhooks/ip"}, "IpCommandsMethod": {"POST"}}
	req, err := http.NewRequest("POST", emu.URL()+"/v1/Fleets/"+emu.FleetSid(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.SetBasicAuth(emu.AccountSID(), emu.AuthToken())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: demoWait}).Do(req)
	if err != nil {
		return fmt.Errorf("set the Fleet's webhook URLs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set the Fleet's webhook URLs: %s", resp.Status)
	}
	return nil
}

func (d *loopDemo) subscribe(side, brokerURL, filter string) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("simgate-demo-%s-%d", side, os.Getpid())).
		SetCleanSession(true).SetOrderMatters(true)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return nil, fmt.Errorf("connect to the %s broker: %v", side, t.Error())
	}
	t := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		d.msgs <- obsMessage{side: side, topic: m.Topic(), body: append([]byte(nil), m.Payload()...)}
	})
	if !t.WaitTimeout(demoWait) || t.Error() != nil {
		return nil, fmt.Errorf("subscribe on the %s broker: %v", side, t.Error())
	}
	return c, nil
}

// show prints a message, short, and returns it decoded.
func (d *loopDemo) show(m obsMessage) map[string]any {
	var v map[string]any
	_ = json.Unmarshal(m.body, &v)
	if strings.HasSuffix(m.topic, "/status") {
		if m.side == "device" {
			data, _ := v["data"].(map[string]any)
			d.dataUp = data["state"] == "up"
		}
		return v // retained status: noise in this demo
	}
	body := string(m.body)
	if len(body) > 160 {
		body = body[:157] + "..."
	}
	d.printf("  %-6s <- %s %s\n", m.side, m.topic, body)
	return v
}

func (d *loopDemo) publish(side, topic, body string) error {
	u := d.cloudURL
	if side == "device" {
		u = d.devURL
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(u).SetClientID(fmt.Sprintf("simgate-demo-pub-%d", os.Getpid())))
	if t := c.Connect(); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return fmt.Errorf("connect to the %s broker: %v", side, t.Error())
	}
	defer c.Disconnect(100)
	d.printf("%s app publishes %s %s\n", side, topic, body)
	if t := c.Publish(topic, 1, false, body); !t.WaitTimeout(demoWait) || t.Error() != nil {
		return fmt.Errorf("publish %s: %v", topic, t.Error())
	}
	return nil
}

// await prints messages until one on side's topic matches.
func (d *loopDemo) await(ctx context.Context, side, topic string, match func(map[string]any) bool) error {
	deadline := time.After(demoWait)
	for {
		select {
		case m := <-d.msgs:
			v := d.show(m)
			if m.side == side && m.topic == topic && (match == nil || match(v)) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("nothing on the %s broker's %s within %s", side, topic, demoWait)
		}
	}
}

func (d *loopDemo) script(ctx context.Context) error {
	c := "supersim/" + d.iccid
	status := func(id, st string) func(map[string]any) bool {
		return func(v map[string]any) bool { return v["id"] == id && v["status"] == st }
	}
	// The bridge announces itself once subscribed.
	if err := d.await(ctx, "cloud", "supersim/bridge/status", nil); err != nil {
		return err
	}
	d.printf("cloud -> device: an SMS Command\n")
	if err := d.publish("cloud", c+"/sms/to_sim", `{"id":"demo-c2d-sms","payload":"open valve 3"}`); err != nil {
		return err
	}
	if err := d.await(ctx, "cloud", c+"/sms/to_sim/result", status("demo-c2d-sms", "delivered")); err != nil {
		return err
	}
	// The network drops an IP Command sent before the module's UDP
	// socket is open, as the real one does: wait for the device to say so.
	if !d.dataUp {
		if err := d.await(ctx, "device", c+"/status", func(map[string]any) bool { return d.dataUp }); err != nil {
			return err
		}
	}
	d.printf("cloud -> device: an IP Command (binary, base64 on MQTT, raw bytes on the air)\n")
	if err := d.publish("cloud", c+"/ip/to_sim", `{"id":"demo-c2d-ip","payload":"`+base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff})+`","encoding":"base64"}`); err != nil {
		return err
	}
	if err := d.await(ctx, "device", c+"/ip/in", nil); err != nil {
		return err
	}
	d.printf("device -> cloud: an SMS Command to 000\n")
	if err := d.publish("device", c+"/sms/out", `{"id":"demo-d2c-sms","payload":"valve 3 open"}`); err != nil {
		return err
	}
	if err := d.await(ctx, "cloud", c+"/sms/from_sim", nil); err != nil {
		return err
	}
	d.printf("device -> cloud: an IP Command to 100.64.0.1:6969\n")
	if err := d.publish("device", c+"/ip/out", `{"id":"demo-d2c-ip","payload":"pressure=2.1bar"}`); err != nil {
		return err
	}
	return d.await(ctx, "cloud", c+"/ip/from_sim", nil)
}
