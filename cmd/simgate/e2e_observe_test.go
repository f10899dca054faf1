package main

// Hardware-in-loop tests of what an operator looks at: /metrics counts
// exactly the traffic that went through, /healthz follows the modem
// through an unplug, `simgate status` reads the running daemon, and Home
// Assistant discovery configs follow homeassistant.discovery.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/simgate/simgate/internal/hass/hasstest"
	"github.com/simgate/simgate/modem/modemsim"
)

// scrape reads /metrics as Prometheus does and returns every sample by its
// series name with sorted labels, e.g. `simgate_messages_in_total{channel="sms"}`;
// a histogram contributes its _count and _sum.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			series := name
			if len(labels) > 0 {
				series += "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[series] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[series] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[strings.Replace(series, name, name+"_count", 1)] = float64(m.GetHistogram().GetSampleCount())
				out[strings.Replace(series, name, name+"_sum", 1)] = m.GetHistogram().GetSampleSum()
			default:
				out[series] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// healthz returns the status code and body of GET /healthz.
func healthz(addr string) (int, string, error) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// httpRig is a rig whose daemon serves /metrics and /healthz.
func httpRig(t *testing.T, o rigOptions) (*rig, string) {
	t.Helper()
	addr := freeLoopback(t)
	o.Extra += fmt.Sprintf("http:\n  listen: %q\n", addr)
	r := newRig(t, o)
	if !waitUntil(e2eWait, func() bool { _, _, err := healthz(addr); return err == nil }) {
		t.Fatalf("the daemon does not serve http on %s", addr)
	}
	return r, addr
}

// After real traffic (SMS and datagrams in from the network, requests out
// from MQTT), every counter moved by exactly what was sent.
func TestE2EMetricsCountTraffic(t *testing.T) {
	t.Parallel()
	r, addr := httpRig(t, rigOptions{Sim: modemsim.Options{Profile: "quectel"}, IPMode: "modem"})
	r.waitReady()
	if !waitUntil(e2eWait, func() bool {
		for _, s := range r.sim.State().Sockets {
			if s.Port == 6969 && !s.Closed {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the daemon opened no socket on port 6969; %s", r.simSummary())
	}
	before := scrape(t, addr)

	const nSMS, nUDP = 5, 3
	in, want := burst("metrics", nSMS, sentAtBase())
	for _, m := range in {
		r.inject(m)
	}
	for i := range nUDP {
		if err := r.sim.InjectUDP("100.64.0.1:6969", 6969, []byte(fmt.Sprintf("datagram %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	r.waitSMS(want, false, e2eWait)
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("ip/in")) >= nUDP }) {
		t.Fatalf("%d of %d datagrams on P/ip/in", len(r.obs.on("ip/in")), nUDP)
	}
	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"m1","payload":"one"}`))
	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"m2","payload":"`+strings.Repeat("x", 161)+`"}`))
	publish(t, r.url, r.prefix+"/sms/out", []byte(`{"id":"m3","payload":"two"}`))
	publish(t, r.url, r.prefix+"/ip/out", []byte(`{"id":"m4","payload":"AAEC","encoding":"base64"}`))
	if !waitUntil(e2eWait, func() bool { return len(r.obs.on("sms/out/result")) >= 3 && len(r.obs.on("ip/out/result")) >= 1 }) {
		t.Fatalf("results: %v %v", r.obs.results("sms/out/result"), r.obs.results("ip/out/result"))
	}

	wantDelta := map[string]float64{
		`simgate_messages_in_total{channel="sms"}`:                       nSMS,
		`simgate_messages_in_total{channel="ip"}`:                        nUDP,
		`simgate_requests_total{channel="sms",outcome="queued"}`:         2,
		`simgate_requests_total{channel="sms",outcome="rejected"}`:       1,
		`simgate_requests_total{channel="sms",outcome="duplicate"}`:      0,
		`simgate_requests_total{channel="ip",outcome="queued"}`:          1,
		`simgate_requests_total{channel="ip",outcome="rejected"}`:        0,
		`simgate_messages_out_total{channel="sms",result="sent"}`:        2,
		`simgate_messages_out_total{channel="sms",result="failed"}`:      0,
		`simgate_messages_out_total{channel="ip",result="sent"}`:         1,
		`simgate_messages_out_total{channel="ip",result="failed"}`:       0,
		`simgate_results_published_total`:                                4,
		`simgate_puback_seconds_count{outbox="inbound"}`:                 nSMS + nUDP,
		`simgate_puback_seconds_count{outbox="results"}`:                 4,
		`simgate_device_call_seconds_count{channel="sms",result="sent"}`: 2,
		`simgate_device_call_seconds_count{channel="ip",result="sent"}`:  1,
		`simgate_events_total{type="request_rejected"}`:                  1,
	}
	var after map[string]float64
	// A counter moves once the broker's PUBACK is in, a moment after the
	// observer saw the message; wait for that, then compare exactly.
	settled := waitUntil(e2eWait, func() bool {
		after = scrape(t, addr)
		for series, d := range wantDelta {
			if after[series]-before[series] < d {
				return false
			}
		}
		return after["simgate_queue_pending"] == 0
	})
	for series, d := range wantDelta {
		if got := after[series] - before[series]; got != d {
			t.Errorf("%s moved by %v, want %v (before %v, after %v)", series, got, d, before[series], after[series])
		}
	}
	if !settled {
		t.Errorf("counters did not reach the traffic sent; queue pending %v", after["simgate_queue_pending"])
	}
	for series, want := range map[string]float64{
		`simgate_signal_dbm`:                               -113 + 2*17, // modemsim's +CSQ: 17,99
		`simgate_network_registration{state="roaming"}`:    1,
		`simgate_network_registration{state="searching"}`:  0,
		`simgate_network_registered`:                       1,
		`simgate_modem_ready`:                              1,
		`simgate_healthy`:                                  1,
		`simgate_mqtt_connected`:                           1,
		`simgate_queue_depth{kind="inbound"}`:              0,
		`simgate_queue_oldest_age_seconds{kind="inbound"}`: 0,
	} {
		if got, ok := after[series]; !ok || got != want {
			t.Errorf("%s = %v (present %t), want %v", series, got, ok, want)
		}
	}
	if c := after[`simgate_sim_sms_capacity`]; c <= 0 {
		t.Errorf("simgate_sim_sms_capacity = %v, want the SIM's store size", c)
	}
	if ts := after[`simgate_last_message_in_timestamp_seconds{channel="sms"}`]; math.Abs(ts-float64(time.Now().Unix())) > 600 {
		t.Errorf("last SMS timestamp %v is not about now", ts)
	}
	if after[`simgate_puback_seconds_sum{outbox="inbound"}`] <= before[`simgate_puback_seconds_sum{outbox="inbound"}`] {
		t.Errorf("PUBACK latency sum did not grow")
	}
}

// /healthz says 503 with the reason while the modem is unplugged and 200
// again once it is back.
func TestE2EHealthzFollowsAnUnplug(t *testing.T) {
	t.Parallel()
	r, addr := httpRig(t, rigOptions{})
	r.waitReady()
	if !waitUntil(e2eWait, func() bool { code, _, _ := healthz(addr); return code == http.StatusOK }) {
		code, body, err := healthz(addr)
		t.Fatalf("/healthz of a ready gateway: %d %q %v", code, body, err)
	}
	if code, body, _ := healthz(addr); body != "ok\n" {
		t.Errorf("/healthz healthy: %d %q, want 200 \"ok\\n\"", code, body)
	}
	reopens := scrape(t, addr)[`simgate_modem_recovery_steps_total{step="reopen"}`]

	r.sim.Unplug(4 * time.Second)
	var body503 string
	if !waitUntil(e2eWait, func() bool {
		code, body, _ := healthz(addr)
		body503 = body
		return code == http.StatusServiceUnavailable
	}) {
		t.Fatalf("/healthz never said 503 while the modem was unplugged")
	}
	if !strings.HasPrefix(body503, "unhealthy: ") || !strings.Contains(body503, "modem") {
		t.Errorf("/healthz 503 body %q does not give the reason", body503)
	}
	if !waitUntil(e2eWait, func() bool { code, _, _ := healthz(addr); return code == http.StatusOK }) {
		code, body, _ := healthz(addr)
		t.Fatalf("/healthz after the modem came back: %d %q; %s", code, body, r.simSummary())
	}
	m := scrape(t, addr)
	if m[`simgate_modem_recovery_steps_total{step="reopen"}`] <= reopens || m["simgate_modem_ready"] != 1 || m["simgate_healthy"] != 1 {
		t.Errorf("after recovery: reopens %v (before %v), ready %v, healthy %v",
			m[`simgate_modem_recovery_steps_total{step="reopen"}`], reopens, m["simgate_modem_ready"], m["simgate_healthy"])
	}
}

// simgate status asks the running daemon over its socket (exit 0 healthy,
// 1 unhealthy while the modem is away), and once the daemon has stopped or
// was killed, finds it not running (exit 3).
func TestE2EStatusVerb(t *testing.T) {
	t.Parallel()
	const iccid = "89883070000012345672"
	r := newRig(t, rigOptions{Sim: modemsim.Options{Profile: "quectel", ICCID: iccid}})
	r.waitReady()
	in, want := burst("status", 1, sentAtBase())
	r.inject(in[0])
	r.waitSMS(want, false, e2eWait)

	var code int
	var out, errOut string
	if !waitUntil(e2eWait, func() bool {
		code, out, errOut = run(t, "status", "-config", r.gw.config)
		return code == exitOK && strings.Contains(out, "  SMS       1 in")
	}) {
		t.Fatalf("status: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	for _, w := range []string{": healthy\n", "  device    e2e\n", "ICCID " + iccid, "registered (roaming) on Super Network lte, signal -79 dBm",
		"broker    connected (" + r.url + ")", "the status socket " + filepath.Join(r.conf.StoreDir, statusSocketName)} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}
	code, out, _ = run(t, "status", "-json", "-config", r.gw.config)
	var obj statusObject
	if err := json.Unmarshal([]byte(out), &obj); err != nil || code != exitOK {
		t.Fatalf("status -json: exit %d, %v: %s", code, err, out)
	}
	if obj.Healthy == nil || !*obj.Healthy || obj.SIM.ICCID != iccid || obj.Messages["sms"].In != 1 || obj.Messages["sms"].LastIn == "" || obj.PID != r.gw.cmd.Process.Pid {
		t.Errorf("status -json: %s", out)
	}

	r.sim.Unplug(4 * time.Second)
	if !waitUntil(e2eWait, func() bool { code, out, _ = run(t, "status", "-config", r.gw.config); return code == exitError }) {
		t.Errorf("status never exited 1 while the modem was unplugged; last exit %d:\n%s", code, out)
	} else if !strings.Contains(out, "UNHEALTHY: modem not ready") {
		t.Errorf("unhealthy status does not say why:\n%s", out)
	}
	if !waitUntil(e2eWait, func() bool { code, _, _ = run(t, "status", "-config", r.gw.config); return code == exitOK }) {
		t.Errorf("status after the modem came back: exit %d", code)
	}

	if c := r.gw.stop(syscall.SIGTERM); c != 0 {
		t.Fatalf("SIGTERM: exit %d", c)
	}
	if _, err := os.Stat(filepath.Join(r.conf.StoreDir, statusSocketName)); !os.IsNotExist(err) {
		t.Errorf("status socket still there after a clean stop: %v", err)
	}
	code, out, errOut = run(t, "status", "-config", r.gw.config)
	if code != exitNotRunning || !strings.Contains(out, "not running") {
		t.Errorf("status after a clean stop: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}

	r.gw.start()
	r.waitReady()
	if !waitUntil(e2eWait, func() bool { code, _, _ = run(t, "status", "-config", r.gw.config); return code == exitOK }) {
		t.Fatalf("status after restart: exit %d", code)
	}
	r.gw.kill()
	// The socket file stays behind; the broker has published the will.
	if !waitUntil(e2eWait, func() bool { code, _, _ = run(t, "status", "-config", r.gw.config); return code == exitNotRunning }) {
		code, out, errOut = run(t, "status", "-config", r.gw.config)
		t.Errorf("status after SIGKILL: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
}

// retainedUnder returns every retained message under filter that a fresh
// subscriber gets within settle after its subscription is acknowledged.
func retainedUnder(t *testing.T, url, filter string, settle time.Duration) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	msgs := make(chan paho.Message, 100)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID("fresh")).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { msgs <- m })
	if !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	deadline := time.After(settle)
	for {
		select {
		case m := <-msgs:
			if m.Retained() {
				got[m.Topic()] = append([]byte(nil), m.Payload()...)
			}
		case <-deadline:
			return got
		}
	}
}

// With homeassistant.discovery the broker holds one retained config per
// sensor that Home Assistant's documented schema accepts, whose templates
// read values the gateway publishes, and whose availability follows the
// will; turned off, they are removed.
func TestE2EHomeAssistantDiscovery(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{Extra: "homeassistant:\n  discovery: true\n"})
	r.waitReady()
	in, want := burst("ha", 1, sentAtBase())
	r.inject(in[0])
	r.waitSMS(want, false, e2eWait)
	smsDoc := r.obs.on("sms/in")[0].Payload

	const node = "homeassistant/sensor/simgate_e2e/"
	var configs map[string][]byte
	if !waitUntil(e2eWait, func() bool {
		configs = retainedUnder(t, r.url, "homeassistant/#", 300*time.Millisecond)
		return len(configs) == 6 && strings.Contains(string(configs[node+"signal/config"]), `"manufacturer":"Quectel"`)
	}) {
		t.Fatalf("retained discovery configs: %d, want 6 with the modem's identity: %q", len(configs), configs)
	}
	status := retainedOn(t, r.url, r.prefix+"/status")
	for _, sensor := range []string{"signal", "registration", "operator", "technology", "queue_depth", "last_sms_received"} {
		topic := node + sensor + "/config"
		payload, ok := configs[topic]
		if !ok {
			t.Errorf("no retained %s", topic)
			continue
		}
		if problems := hasstest.Check("homeassistant", topic, payload); len(problems) > 0 {
			t.Errorf("%s %s:\n  %s", topic, payload, strings.Join(problems, "\n  "))
		}
		var c struct {
			UniqueID      string `json:"unique_id"`
			StateTopic    string `json:"state_topic"`
			ValueTemplate string `json:"value_template"`
			Availability  []struct {
				Topic         string `json:"topic"`
				ValueTemplate string `json:"value_template"`
			} `json:"availability"`
			Device struct {
				Identifiers []string `json:"identifiers"`
				Model       string   `json:"model"`
			} `json:"device"`
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		if c.UniqueID != "simgate_e2e_"+sensor || len(c.Device.Identifiers) != 1 || c.Device.Identifiers[0] != "simgate_e2e" || c.Device.Model != "BG96" {
			t.Errorf("%s: unique_id %q, device %+v", topic, c.UniqueID, c.Device)
		}
		doc := status
		switch c.StateTopic {
		case r.prefix + "/status":
		case r.prefix + "/sms/in":
			doc = smsDoc
		default:
			t.Errorf("%s: state_topic %s is not a topic the gateway publishes", topic, c.StateTopic)
		}
		paths := hasstest.Paths(c.ValueTemplate)
		if len(paths) == 0 {
			t.Errorf("%s: value_template %q reads nothing", topic, c.ValueTemplate)
		}
		for _, p := range paths {
			if _, ok := hasstest.Resolve(doc, p); !ok {
				t.Errorf("%s: value_template reads %s, absent from %s", topic, p, doc)
			}
		}
		if len(c.Availability) != 1 || c.Availability[0].Topic != r.prefix+"/status" {
			t.Errorf("%s: availability %+v is not the status topic", topic, c.Availability)
		}
	}
	if v, ok := hasstest.Resolve(status, "network.signal_dbm"); !ok || v != float64(-79) {
		t.Errorf("the signal sensor would show %v", v)
	}

	// Killed: the will says offline, which the availability template reads.
	r.gw.kill()
	if !waitUntil(e2eWait, func() bool { return string(retainedOn(t, r.url, r.prefix+"/status")) == `{"online":false}` }) {
		t.Fatalf("no will on the status topic")
	}
	if v, ok := hasstest.Resolve(retainedOn(t, r.url, r.prefix+"/status"), "online"); !ok || v != false {
		t.Errorf("availability would read online=%v from the will", v)
	}

	// A new prefix: the configs move, none is left under the old one.
	r.conf.Extra = "homeassistant:\n  discovery: true\n  prefix: ha2\n"
	if err := os.WriteFile(r.gw.config, []byte(r.conf.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	r.gw.start()
	if !waitUntil(e2eWait, func() bool {
		return len(retainedUnder(t, r.url, "ha2/#", 300*time.Millisecond)) == 6 &&
			len(retainedUnder(t, r.url, "homeassistant/#", 300*time.Millisecond)) == 0
	}) {
		t.Fatalf("after the prefix changed: %d configs under ha2, %d left under homeassistant",
			len(retainedUnder(t, r.url, "ha2/#", 300*time.Millisecond)), len(retainedUnder(t, r.url, "homeassistant/#", 300*time.Millisecond)))
	}
	for topic, payload := range retainedUnder(t, r.url, "ha2/#", 300*time.Millisecond) {
		if problems := hasstest.Check("ha2", topic, payload); len(problems) > 0 {
			t.Errorf("%s: %v", topic, problems)
		}
	}
	if c := r.gw.stop(syscall.SIGTERM); c != 0 {
		t.Fatalf("SIGTERM: exit %d", c)
	}

	// Turned off: the configs are removed (empty retained), once.
	r.conf.Extra = ""
	if err := os.WriteFile(r.gw.config, []byte(r.conf.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	r.gw.start()
	marker := filepath.Join(r.conf.StoreDir, haMarkerFile)
	if !waitUntil(e2eWait, func() bool { _, err := os.Stat(marker); return os.IsNotExist(err) }) {
		t.Fatalf("the record of published configs is still there: the configs were not removed")
	}
	for _, filter := range []string{"homeassistant/#", "ha2/#"} {
		if left := retainedUnder(t, r.url, filter, time.Second); len(left) != 0 {
			t.Errorf("discovery configs left after turning discovery off: %q", left)
		}
	}
	if n := len(r.gw.logLines("Home Assistant discovery configs removed")); n != 1 {
		t.Errorf("configs removed %d times, want once", n)
	}
}
