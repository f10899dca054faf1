package main

// End-to-end tests of the cloud bridge with real processes:
//
//	cloud mosquitto -> simgate cloud -> modemsim -api (the emulated Super SIM
//	API) -> modemsim's modem -> simgate run -> device mosquitto, and back.
//
// The emulator's own state (GET /v1/SmsCommands and /v1/IpCommands) is the
// proof of how many commands were created.

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// e2eModemsim is the modemsim binary built for this test run.
var e2eModemsim struct {
	once sync.Once
	path string
	err  error
}

func modemsimBinary(t *testing.T) string {
	t.Helper()
	bin := simgateBinary(t) // also skips with -short and makes the temp dir
	e2eModemsim.once.Do(func() {
		out := filepath.Join(filepath.Dir(bin), "modemsim")
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "-o", out, "../modemsim")
		if b, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
			e2eModemsim.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
			return
		}
		e2eModemsim.path = out
	})
	if e2eModemsim.err != nil {
		t.Fatal(e2eModemsim.err)
	}
	return e2eModemsim.path
}

// proc is a subprocess whose output goes to a log shown when the test fails.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func newProc(t *testing.T, name, dir string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, logPath: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		if p.running() {
			p.signal(syscall.SIGTERM)
		}
		if b, err := os.ReadFile(p.logPath); err == nil {
			for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
				if i := strings.Index(string(b), bad); i >= 0 {
					t.Errorf("%s log has %q:\n%s", name, bad, b[i:min(len(b), i+3000)])
				}
			}
		}
		if t.Failed() || *showLogs {
			t.Logf("%s log:\n%s", name, tail(p.logPath, logLines()))
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	lf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "==== test: start at %s ====\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = daemonEnv()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() { _ = cmd.Wait(); close(done) }()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Errorf("signal %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(e2eWait):
		p.t.Errorf("%s ignored %v", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// emulator is modemsim -api as a process: the simulated modem and the
// emulated API around it.
type emulator struct {
	*proc
	link, control string
	api           string // http://host:port
	account       string
	token         string
	fleet         string
}

var apiLine = regexp.MustCompile(`Super SIM API at (\S+)/v1 account (\S+):(\S+) sim (\S+) fleet (\S+)`)

func startEmulator(t *testing.T, dir string, extra ...string) *emulator {
	t.Helper()
	e := &emulator{link: filepath.Join(dir, "ttyModem"), control: filepath.Join(dir, "modemsim.sock")}
	args := append([]string{modemsimBinary(t), "-link", e.link, "-control", e.control, "-api", freeLoopback(t),
		"-account", "AC0123456789abcdef0123456789abcdef:0123456789abcdef0123456789abcdef"}, extra...)
	e.proc = newProc(t, "modemsim", dir, args...)
	e.start()
	if !waitUntil(e2eWait, func() bool {
		b, _ := os.ReadFile(e.logPath)
		m := apiLine.FindSubmatch(b)
		if m == nil {
			return false
		}
		e.api, e.account, e.token, e.fleet = string(m[1]), string(m[2]), string(m[3]), string(m[5])
		return fileExists(e.link)
	}) {
		t.Fatalf("modemsim -api did not start:\n%s", tail(e.logPath, 20))
	}
	return e
}

// call makes an API request with the account's credentials.
func (e *emulator) call(t *testing.T, method, path string, form url.Values) map[string]any {
	t.Helper()
	var body io.Reader
	u := e.api + path
	if method == "GET" && form != nil {
		u += "?" + form.Encode()
	} else if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(e.account, e.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, out, err)
	}
	return out
}

// commands lists every to_sim command of a kind ("SmsCommands" or
// "IpCommands"), all pages.
func (e *emulator) commands(t *testing.T, kind string) []map[string]any {
	t.Helper()
	key := map[string]string{"SmsCommands": "sms_commands", "IpCommands": "ip_commands"}[kind]
	var out []map[string]any
	next := e.api + "/v1/" + kind + "?Direction=to_sim&PageSize=1000"
	for next != "" {
		path := strings.TrimPrefix(next, e.api)
		page := e.call(t, "GET", path, nil)
		items, _ := page[key].([]any)
		for _, it := range items {
			out = append(out, it.(map[string]any))
		}
		next = ""
		if meta, ok := page["meta"].(map[string]any); ok {
			next, _ = meta["next_page_url"].(string)
		}
	}
	return out
}

// payloadCounts counts the commands by payload.
func payloadCounts(cmds []map[string]any) map[string]int {
	n := map[string]int{}
	for _, c := range cmds {
		p, _ := c["payload"].(string)
		n[p]++
	}
	return n
}

func (e *emulator) iccid(t *testing.T) string {
	t.Helper()
	sims, _ := e.call(t, "GET", "/v1/Sims", nil)["sims"].([]any)
	if len(sims) != 1 {
		t.Fatalf("emulator has %d Sims, want 1", len(sims))
	}
	return sims[0].(map[string]any)["iccid"].(string)
}

// cloudProc is `simgate cloud` as a process.
type cloudProc struct {
	*proc
	listen  string
	metrics string // http.listen: /metrics and /healthz
}

func startCloud(t *testing.T, dir, brokerURL, apiURL, account, token, clientID string) *cloudProc {
	t.Helper()
	tokenFile := writeSecret(t, dir, "token", token)
	return startCloudWith(t, dir, brokerURL, clientID, fmt.Sprintf("  provider: twilio\n  api_url: %q\n  account_sid: %q\n  auth_token_file: %q\n", apiURL, account, tokenFile))
}

func writeSecret(t *testing.T, dir, name, secret string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCloudWith runs simgate cloud with provider, the given lines of the
// cloud: section, and a listener and public_url of its own.
func startCloudWith(t *testing.T, dir, brokerURL, clientID, provider string) *cloudProc {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	listen, metricsAddr := freeLoopback(t), freeLoopback(t)
	// The bridges log at debug (they drive no AT wire): TestE2ECloudThreeInstances
	// counts their "command created" lines.
	cfg := fmt.Sprintf("mqtt:\n  url: %q\n  client_id: %q\nstore:\n  dir: %q\nlog:\n  level: debug\nhttp:\n  listen: %q\ncloud:\n%s  listen: %q\n  public_url: \"http://%s\"\n",
		brokerURL, clientID, filepath.Join(dir, "store"), metricsAddr, provider, listen, listen)
	path := filepath.Join(dir, "cloud.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cloudProc{proc: newProc(t, "simgate-cloud-"+clientID, dir, simgateBinary(t), "cloud", "-config", path), listen: listen, metrics: metricsAddr}
	c.start()
	return c
}

// get returns the body of a GET on the bridge's http.listen.
func (c *cloudProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + c.metrics + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitListening waits until the bridge's webhook listener answers.
func (c *cloudProc) waitListening(t *testing.T) {
	t.Helper()
	if !waitUntil(e2eWait, func() bool {
		conn, err := net.Dial("tcp", c.listen)
		if err != nil {
			return false
		}
		return conn.Close() == nil
	}) {
		t.Fatalf("simgate cloud does not listen on %s", c.listen)
	}
}

// waitOnline waits until n bridges have announced themselves online on
// C/bridge/status, which each does once its subscriptions are in place.
func waitOnline(t *testing.T, o *observer, n int) {
	t.Helper()
	if !waitUntil(e2eWait, func() bool {
		online := 0
		for _, m := range o.on("bridge/status") {
			var st struct {
				Online bool `json:"online"`
			}
			if json.Unmarshal(m.Payload, &st) == nil && st.Online {
				online++
			}
		}
		return online >= n
	}) {
		t.Fatalf("fewer than %d bridges online", n)
	}
}

type cloudResult struct {
	ID     string `json:"id"`
	Sid    string `json:"sid"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Code   int    `json:"code"`
}

func cloudResults(t *testing.T, o *observer, suffix string) []cloudResult {
	var out []cloudResult
	for _, m := range o.on(suffix) {
		var r cloudResult
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Errorf("%s: %s: %v", suffix, m.Payload, err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// statusesOf is the sequence of statuses published for one request id.
func statusesOf(rs []cloudResult, id string) []string {
	var out []string
	for _, r := range rs {
		if r.ID == id {
			out = append(out, r.Status)
		}
	}
	return out
}

// fullLoop is every process of the whole path, ready.
type fullLoop struct {
	dir            string
	device, cloudB *mosquitto
	emu            *emulator
	gw             *daemon
	bridge         *cloudProc
	iccid          string
	devObs, clObs  *observer
}

func startFullLoop(t *testing.T) *fullLoop {
	t.Helper()
	bin := simgateBinary(t)
	dir := t.TempDir()
	l := &fullLoop{dir: dir}
	l.device = startMosquitto(t, filepath.Join(dir, "device"))
	l.cloudB = startMosquitto(t, filepath.Join(dir, "cloud"))
	l.emu = startEmulator(t, dir)
	l.iccid = l.emu.iccid(t)
	l.devObs = observe(t, l.device.url(), "supersim/"+l.iccid)
	l.clObs = observe(t, l.cloudB.url(), "supersim")
	l.bridge = startCloud(t, filepath.Join(dir, "bridge"), l.cloudB.url(), l.emu.api, l.emu.account, l.emu.token, "bridge-1")
	l.bridge.waitListening(t)
	waitOnline(t, l.clObs, 1)
	// The Fleet's webhooks point at the bridge, as an operator sets them in
	// the console.
	l.emu.call(t, "POST", "/v1/Fleets/"+l.emu.fleet, url.Values{
		"SmsCommandsUrl": {"http://" + l.bridge.listen + "/webhooks/sms"}, "SmsCommandsMethod": {"POST"},
		"IpCommandsUrl": {"http://" + l.bridge.listen + "/webhooks/ip"}, "IpCommandsMethod": {"POST"},
	})
	if err := os.MkdirAll(filepath.Join(dir, "gw"), 0o700); err != nil {
		t.Fatal(err)
	}
	l.gw = newDaemon(t, bin, filepath.Join(dir, "gw"), gwConfig{Port: l.emu.link, Profile: "quectel", URL: l.device.url(),
		StoreDir: filepath.Join(dir, "gw", "store"), IPMode: "modem"})
	l.gw.start()
	if !waitUntil(e2eWait, func() bool {
		for _, s := range l.devObs.statuses() {
			if s.Ready {
				return true
			}
		}
		return false
	}) {
		t.Fatal("the device gateway never became ready")
	}
	return l
}

// The whole loop, both channels, both ways: a cloud program's request on
// the cloud broker reaches the device program on its own broker, with the
// results queued, sent, delivered (SMS) or queued, sent (IP) in order; and
// what the device sends arrives on the cloud broker's from_sim topics.
func TestE2ECloudLoop(t *testing.T) {
	l := startFullLoop(t)
	c := "supersim/" + l.iccid
	publish(t, l.cloudB.url(), c+"/sms/to_sim", []byte(`{"id":"c-sms-1","payload":"hello device"}`))
	publish(t, l.cloudB.url(), c+"/ip/to_sim", []byte(`{"id":"c-ip-1","payload":"`+base64.StdEncoding.EncodeToString([]byte("\x00\x01ip"))+`","encoding":"base64","port":6969}`))

	if !waitUntil(e2eWait, func() bool { return len(l.devObs.on("sms/in")) >= 1 && len(l.devObs.on("ip/in")) >= 1 }) {
		t.Fatalf("device got sms/in %d, ip/in %d", len(l.devObs.on("sms/in")), len(l.devObs.on("ip/in")))
	}
	var sin struct{ From, Payload, Encoding string }
	if err := json.Unmarshal(l.devObs.on("sms/in")[0].Payload, &sin); err != nil || sin.From != "000" || sin.Payload != "hello device" {
		t.Errorf("device sms/in %+v (%v)", sin, err)
	}
	var iin struct{ Payload, Encoding string }
	if err := json.Unmarshal(l.devObs.on("ip/in")[0].Payload, &iin); err != nil || iin.Encoding != "base64" || iin.Payload != base64.StdEncoding.EncodeToString([]byte("\x00\x01ip")) {
		t.Errorf("device ip/in %+v (%v)", iin, err)
	}
	if !waitUntil(e2eWait, func() bool {
		return len(statusesOf(cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result"), "c-sms-1")) >= 3 &&
			len(statusesOf(cloudResults(t, l.clObs, l.iccid+"/ip/to_sim/result"), "c-ip-1")) >= 2
	}) {
		t.Fatalf("results: sms %v ip %v", cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result"), cloudResults(t, l.clObs, l.iccid+"/ip/to_sim/result"))
	}

	// And back: the device program sends to the cloud.
	publish(t, l.device.url(), c+"/sms/out", []byte(`{"id":"d-sms-1","payload":"hi cloud"}`))
	publish(t, l.device.url(), c+"/ip/out", []byte(`{"id":"d-ip-1","payload":"cGluZw==","encoding":"base64"}`))
	if !waitUntil(e2eWait, func() bool {
		return len(l.clObs.on(l.iccid+"/sms/from_sim")) >= 1 && len(l.clObs.on(l.iccid+"/ip/from_sim")) >= 1
	}) {
		t.Fatalf("cloud got sms/from_sim %d, ip/from_sim %d", len(l.clObs.on(l.iccid+"/sms/from_sim")), len(l.clObs.on(l.iccid+"/ip/from_sim")))
	}
	var fs struct{ ID, Sid, Channel, Sim, Payload, Encoding string }
	if err := json.Unmarshal(l.clObs.on(l.iccid + "/sms/from_sim")[0].Payload, &fs); err != nil || fs.Payload != "hi cloud" || fs.Encoding != "text" || fs.Sim != l.iccid || fs.Sid == "" {
		t.Errorf("sms/from_sim %+v (%v)", fs, err)
	}
	if err := json.Unmarshal(l.clObs.on(l.iccid + "/ip/from_sim")[0].Payload, &fs); err != nil || fs.Payload != "cGluZw==" || fs.Encoding != "base64" || fs.Channel != "ip" {
		t.Errorf("ip/from_sim %+v (%v)", fs, err)
	}
	time.Sleep(time.Second) // late duplicates, if any, would arrive now
	smsRes := statusesOf(cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result"), "c-sms-1")
	if strings.Join(smsRes, ",") != "queued,sent,delivered" {
		t.Errorf("SMS result statuses %v, want queued,sent,delivered", smsRes)
	}
	ipRes := statusesOf(cloudResults(t, l.clObs, l.iccid+"/ip/to_sim/result"), "c-ip-1")
	if strings.Join(ipRes, ",") != "queued,sent" && strings.Join(ipRes, ",") != "queued,sent,received" {
		t.Errorf("IP result statuses %v, want queued,sent[,received]", ipRes)
	}
	if n := len(l.clObs.on(l.iccid + "/sms/from_sim")); n != 1 {
		t.Errorf("sms/from_sim published %d times, want 1", n)
	}
	if n := len(l.devObs.on("sms/in")); n != 1 {
		t.Errorf("device sms/in %d times, want 1", n)
	}
	if code, body := l.bridge.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d %q", code, body)
	}
	_, body := l.bridge.get(t, "/metrics")
	for _, want := range []string{
		`simgate_cloud_api_calls_total{resource="SmsCommands",method="POST",code="201"} 1`,
		`simgate_cloud_api_calls_total{resource="IpCommands",method="POST",code="201"} 1`,
		`simgate_cloud_api_calls_total{resource="Sims",method="GET",code="200"} 1`,
		`simgate_cloud_webhooks_total{kind="sms",outcome="published"} 1`,
		`simgate_cloud_webhooks_total{kind="ip",outcome="published"} 1`,
		`simgate_cloud_webhooks_total{kind="status",outcome="published"}`,
		"simgate_cloud_queue_depth 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	st := retainedOn(t, l.cloudB.url(), "supersim/bridge/status")
	var bs struct {
		Online   bool   `json:"online"`
		Provider string `json:"provider"`
	}
	if err := json.Unmarshal(st, &bs); err != nil || !bs.Online || bs.Provider != "twilio" {
		t.Errorf("bridge status %s (%v)", st, err)
	}
}

// faultProxy sits between the bridge and the emulator and answers
// POST .../SmsCommands with the scripted errors while faults remain.
type faultProxy struct {
	srv    *http.Server
	addr   string
	faults atomic.Int64
	seen   atomic.Int64 // faults served
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{addr: freeLoopback(t)}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Addr: p.addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "Commands") && p.faults.Add(-1) >= 0 {
			n := p.seen.Add(1)
			w.Header().Set("Content-Type", "application/json")
			if n%2 == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(429)
				fmt.Fprint(w, `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`)
				return
			}
			w.WriteHeader(503)
			fmt.Fprint(w, `{"code":20503,"message":"Service Unavailable","status":503}`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := netListen(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// The API answering 429 and 503 for a while: every request is retried until
// created, once each, and in order.
func TestE2ECloudAPIThrottled(t *testing.T) {
	bin := simgateBinary(t)
	_ = bin
	dir := t.TempDir()
	cloudB := startMosquitto(t, filepath.Join(dir, "cloud"))
	emu := startEmulator(t, dir)
	iccid := emu.iccid(t)
	proxy := startFaultProxy(t, emu.api)
	proxy.faults.Store(6)
	obs := observe(t, cloudB.url(), "supersim")
	br := startCloud(t, filepath.Join(dir, "bridge"), cloudB.url(), "http://"+proxy.addr, emu.account, emu.token, "bridge-1")
	br.waitListening(t)
	waitOnline(t, obs, 1)
	var reqs [][]byte
	for i := range 10 {
		reqs = append(reqs, []byte(fmt.Sprintf(`{"id":"t%02d","payload":"throttled %02d"}`, i, i)))
	}
	publishAll(t, cloudB.url(), "supersim/"+iccid+"/sms/to_sim", reqs)
	if !waitUntil(2*e2eWait, func() bool { return resultIDs(t, obs, iccid) >= 10 }) {
		t.Fatalf("results %v", cloudResults(t, obs, iccid+"/sms/to_sim/result"))
	}
	if proxy.seen.Load() < 6 {
		t.Errorf("only %d faults served", proxy.seen.Load())
	}
	cmds := emu.commands(t, "SmsCommands")
	counts := payloadCounts(cmds)
	for i := range 10 {
		if n := counts[fmt.Sprintf("throttled %02d", i)]; n != 1 {
			t.Errorf("payload %02d created %d times, want 1", i, n)
		}
	}
	// Newest first in the API's list: reversed, they are in request order.
	for i := range cmds {
		if want := fmt.Sprintf("throttled %02d", i); cmds[len(cmds)-1-i]["payload"] != want {
			t.Errorf("command %d is %v, want %q", i, cmds[len(cmds)-1-i]["payload"], want)
		}
	}
	if !hasCloudEvent(obs, "api_retry") {
		t.Error("no api_retry event")
	}
}

func hasCloudEvent(o *observer, typ string) bool {
	for _, m := range o.on("bridge/events") {
		var ev struct{ Type string }
		if json.Unmarshal(m.Payload, &ev) == nil && ev.Type == typ {
			return true
		}
	}
	return false
}

// publishAll publishes payloads in order from one client.
func publishAll(t *testing.T, brokerURL, topic string, payloads [][]byte) {
	t.Helper()
	c := newPahoClient(brokerURL)
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// simgate cloud killed -9 mid-burst of 100 requests: after a restart every
// request is created exactly once, as the emulator's state shows.
func TestE2ECloudKilledMidBurst(t *testing.T) {
	dir := t.TempDir()
	cloudB := startMosquitto(t, filepath.Join(dir, "cloud"))
	emu := startEmulator(t, dir)
	iccid := emu.iccid(t)
	obs := observe(t, cloudB.url(), "supersim")
	bdir := filepath.Join(dir, "bridge")
	br := startCloud(t, bdir, cloudB.url(), emu.api, emu.account, emu.token, "bridge-1")
	br.waitListening(t)
	waitOnline(t, obs, 1)
	var reqs [][]byte
	for i := range 100 {
		reqs = append(reqs, []byte(fmt.Sprintf(`{"id":"k%03d","payload":"burst %03d"}`, i, i)))
	}
	publishAll(t, cloudB.url(), "supersim/"+iccid+"/sms/to_sim", reqs)
	if !waitUntil(e2eWait, func() bool { return len(emu.commands(t, "SmsCommands")) >= 20 }) {
		t.Fatal("the bridge did not start creating commands")
	}
	br.signal(syscall.SIGKILL)
	before := len(emu.commands(t, "SmsCommands"))
	br.start()
	if !waitUntil(2*e2eWait, func() bool { return len(emu.commands(t, "SmsCommands")) >= 100 }) {
		t.Fatalf("%d commands after restart, want 100", len(emu.commands(t, "SmsCommands")))
	}
	waitUntil(e2eWait, func() bool { return resultIDs(t, obs, iccid) >= 100 })
	time.Sleep(time.Second)
	counts := payloadCounts(emu.commands(t, "SmsCommands"))
	for i := range 100 {
		if n := counts[fmt.Sprintf("burst %03d", i)]; n != 1 {
			t.Errorf("payload %03d created %d times, want 1", i, n)
		}
	}
	if len(counts) != 100 {
		t.Errorf("%d distinct payloads, want 100", len(counts))
	}
	if n := resultIDs(t, obs, iccid); n != 100 {
		t.Errorf("queued results for %d request ids, want 100", n)
	}
	// Every result names the one command of its request's payload: the
	// command found after the restart is the request's own.
	sidOf := map[string]string{}
	for _, c := range emu.commands(t, "SmsCommands") {
		p, _ := c["payload"].(string)
		sidOf[p], _ = c["sid"].(string)
	}
	for _, r := range cloudResults(t, obs, iccid+"/sms/to_sim/result") {
		var i int
		if _, err := fmt.Sscanf(r.ID, "k%03d", &i); err != nil {
			t.Errorf("result for an unknown request: %+v", r)
			continue
		}
		if want := sidOf[fmt.Sprintf("burst %03d", i)]; r.Sid != want {
			t.Errorf("result %+v: want sid %s", r, want)
		}
	}
	t.Logf("killed after %d of 100 commands were created", before)
}

// resultIDs counts the request ids with a queued result.
func resultIDs(t *testing.T, o *observer, iccid string) int {
	ids := map[string]bool{}
	for _, r := range cloudResults(t, o, iccid+"/sms/to_sim/result") {
		if r.Status == "queued" {
			ids[r.ID] = true
		}
	}
	return len(ids)
}

// The cloud broker down for 30 s: the results of requests taken before,
// and what the device sent meanwhile, all arrive once it is back.
func TestE2ECloudBrokerDown(t *testing.T) {
	l := startFullLoop(t)
	c := "supersim/" + l.iccid
	var reqs [][]byte
	for i := range 5 {
		reqs = append(reqs, []byte(fmt.Sprintf(`{"id":"o%d","payload":"before outage %d"}`, i, i)))
	}
	publishAll(t, l.cloudB.url(), c+"/sms/to_sim", reqs)
	if !waitUntil(e2eWait, func() bool { return len(l.emu.commands(t, "SmsCommands")) >= 5 }) {
		t.Fatal("requests not created")
	}
	l.cloudB.stop(syscall.SIGTERM)
	for i := range 5 {
		publish(t, l.device.url(), c+"/sms/out", []byte(fmt.Sprintf(`{"id":"dev%d","payload":"during outage %d"}`, i, i)))
	}
	time.Sleep(30 * time.Second)
	l.cloudB.start()
	if !waitUntil(2*e2eWait, func() bool {
		return len(l.clObs.on(l.iccid+"/sms/from_sim")) >= 5 && len(cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result")) >= 15
	}) {
		t.Fatalf("after the outage: from_sim %d, results %d", len(l.clObs.on(l.iccid+"/sms/from_sim")), len(cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result")))
	}
	got := map[string]int{}
	for _, m := range l.clObs.on(l.iccid + "/sms/from_sim") {
		var f struct{ Payload string }
		if err := json.Unmarshal(m.Payload, &f); err != nil {
			t.Error(err)
		}
		got[f.Payload]++
	}
	for i := range 5 {
		if n := got[fmt.Sprintf("during outage %d", i)]; n < 1 {
			t.Errorf("from_sim %d lost", i)
		}
	}
	// At least once: a result in flight when the broker went away is
	// published again after it returns, so a status may repeat, but the
	// statuses never go back.
	res := cloudResults(t, l.clObs, l.iccid+"/sms/to_sim/result")
	for i := range 5 {
		all := statusesOf(res, fmt.Sprintf("o%d", i))
		if s := strings.Join(slices.Compact(slices.Clone(all)), ","); s != "queued,sent,delivered" {
			t.Errorf("request o%d statuses %v, want queued,sent,delivered", i, all)
		} else if len(all) > 3 {
			t.Logf("request o%d statuses %v: repeated across the outage", i, all)
		}
	}
	if n := len(l.emu.commands(t, "SmsCommands")); n != 5 {
		t.Errorf("%d commands created, want 5", n)
	}
}

// Three bridges against one broker with a shared subscription: 1,000
// requests, each created exactly once, and every bridge takes a share.
func TestE2ECloudThreeInstances(t *testing.T) {
	dir := t.TempDir()
	cloudB := startMosquitto(t, filepath.Join(dir, "cloud"))
	emu := startEmulator(t, dir)
	iccid := emu.iccid(t)
	obs := observe(t, cloudB.url(), "supersim")
	var bridges []*cloudProc
	for i := range 3 {
		b := startCloud(t, filepath.Join(dir, fmt.Sprintf("bridge%d", i)), cloudB.url(), emu.api, emu.account, emu.token, fmt.Sprintf("bridge-%d", i))
		bridges = append(bridges, b)
	}
	for _, b := range bridges {
		b.waitListening(t)
	}
	// Every bridge's subscription is in place before the burst.
	waitOnline(t, obs, 3)
	var reqs [][]byte
	for i := range 1000 {
		reqs = append(reqs, []byte(fmt.Sprintf(`{"id":"s%04d","payload":"shared %04d"}`, i, i)))
	}
	publishAll(t, cloudB.url(), "supersim/"+iccid+"/sms/to_sim", reqs)
	if !waitUntil(4*e2eWait, func() bool { return len(emu.commands(t, "SmsCommands")) >= 1000 }) {
		t.Fatalf("%d commands, want 1000", len(emu.commands(t, "SmsCommands")))
	}
	waitUntil(e2eWait, func() bool { return resultIDs(t, obs, iccid) >= 1000 })
	time.Sleep(time.Second)
	counts := payloadCounts(emu.commands(t, "SmsCommands"))
	dups := 0
	for i := range 1000 {
		if n := counts[fmt.Sprintf("shared %04d", i)]; n != 1 {
			dups++
			if dups < 10 {
				t.Errorf("payload %04d created %d times, want 1", i, n)
			}
		}
	}
	if dups > 0 || len(counts) != 1000 {
		t.Errorf("%d payloads not created exactly once; %d distinct", dups, len(counts))
	}
	for i, b := range bridges {
		n := countLines(t, b.logPath, "command created")
		t.Logf("bridge %d created %d commands", i, n)
		if n == 0 {
			t.Errorf("bridge %d took no share of the requests", i)
		}
	}
}

func countLines(t *testing.T, path, s string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

func newPahoClient(brokerURL string) paho.Client {
	return paho.NewClient(paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID("pub")))
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// KORE: OAuth2 client credentials against the emulator's token endpoint,
// callbacks signed with kore-signature. The round trip works, and a forged
// webhook is refused with 403 and publishes nothing.
func TestE2ECloudKore(t *testing.T) {
	dir := t.TempDir()
	cloudB := startMosquitto(t, filepath.Join(dir, "cloud"))
	emu := startEmulator(t, dir, "-signing", "kore", "-signing-secret", "kore-webhook-secret")
	iccid := emu.iccid(t)
	obs := observe(t, cloudB.url(), "supersim")
	bdir := filepath.Join(dir, "bridge")
	br := startCloudWith(t, bdir, cloudB.url(), "bridge-kore", fmt.Sprintf(
		"  provider: kore\n  api_url: %q\n  token_url: %q\n  client_id: %q\n  client_secret_file: %q\n  signing_secret_file: %q\n",
		emu.api, emu.api+"/api-services/v1/auth/token", emu.account, writeSecret(t, bdir, "client-secret", emu.token),
		writeSecret(t, bdir, "signing-secret", "kore-webhook-secret")))
	br.waitListening(t)
	waitOnline(t, obs, 1)
	emu.call(t, "POST", "/v1/Fleets/"+emu.fleet, url.Values{"SmsCommandsUrl": {"http://" + br.listen + "/webhooks/sms"}, "SmsCommandsMethod": {"POST"}})

	publish(t, cloudB.url(), "supersim/"+iccid+"/sms/to_sim", []byte(`{"id":"k1","payload":"via kore"}`))
	// No device daemon reads the modem here: the command is created and
	// its status callbacks (signed with kore-signature) come back.
	if !waitUntil(e2eWait, func() bool { return len(statusesOf(cloudResults(t, obs, iccid+"/sms/to_sim/result"), "k1")) >= 2 }) {
		t.Fatalf("results %v", cloudResults(t, obs, iccid+"/sms/to_sim/result"))
	}
	if got := statusesOf(cloudResults(t, obs, iccid+"/sms/to_sim/result"), "k1"); got[0] != "queued" || got[1] != "sent" {
		t.Errorf("statuses %v, want queued, sent, ...", got)
	}
	if n := payloadCounts(emu.commands(t, "SmsCommands"))["via kore"]; n != 1 {
		t.Errorf("created %d times, want 1", n)
	}

	hook := "http://" + br.listen + "/webhooks/sms"
	form := url.Values{"Sid": {"HC00000000000000000000000000000042"}, "SimIccid": {iccid}, "Payload": {"forged"}, "Direction": {"from_sim"}}
	for name, sig := range map[string]string{
		"missing": "",
		"wrong secret": func() string {
			return sha256Hex("other" + "POST" + hook + form.Encode())
		}(),
	} {
		req, err := http.NewRequest("POST", hook, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("kore-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s signature: %d, want 403", name, resp.StatusCode)
		}
	}
	// The genuine signature over the same body passes.
	req, err := http.NewRequest("POST", hook, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("kore-signature", sha256Hex("kore-webhook-secret"+"POST"+hook+form.Encode()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("genuine kore-signature: %d, want 200", resp.StatusCode)
	}
	if !waitUntil(e2eWait, func() bool { return len(obs.on(iccid+"/sms/from_sim")) >= 1 }) {
		t.Fatal("genuine webhook not published")
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(obs.on(iccid + "/sms/from_sim")); n != 1 {
		t.Errorf("from_sim published %d times, want 1 (forged ones must not be)", n)
	}
	if !hasCloudEvent(obs, "bad_signature") {
		t.Error("no bad_signature event")
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
