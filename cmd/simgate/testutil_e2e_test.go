package main

// The hardware-in-loop harness: the real simgate binary, built once, runs
// as a subprocess with a config file in a temp dir, against an in-process
// modemsim on a pty and a real broker (a mosquitto process of the test's
// own, or the daemon's embedded broker). A paho observer with a persistent
// session records every message the broker delivers, so tests count them
// exactly. Nothing here asserts how long anything takes: limits only keep
// a broken test from hanging.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/testenv"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/transport"
)

// e2eWait bounds one wait for the daemon; generous because a race-built
// daemon on two shared cores can be slow, and a bound is only there so a
// broken test fails instead of hanging.
const e2eWait = 60 * time.Second

// showLogs prints the daemon's, mosquitto's and modemsim's logs after
// every hardware-in-loop test, not only failed ones:
// go test ./cmd/simgate -run TestFault -v -args -e2e.logs
var showLogs = flag.Bool("e2e.logs", false, "print the logs of every hardware-in-loop test")

// debugLogs runs the gateway daemons at log.level debug. It is off by default: at
// debug the daemon logs every byte on the AT wire, which costs the suite
// more CPU than the tests themselves; turn it on to study a failure.
var debugLogs = flag.Bool("e2e.debug", false, "run the daemons of hardware-in-loop tests at log.level debug (with the AT wire log)")

// logLevel is the log.level the tests' daemons run at.
func logLevel() string {
	if *debugLogs {
		return "debug"
	}
	return "info"
}

// e2eBin is the simgate binary built for this test run.
var e2eBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBin.dir != "" {
		if err := os.RemoveAll(e2eBin.dir); err != nil {
			fmt.Fprintf(os.Stderr, "removing %s: %v\n", e2eBin.dir, err)
		}
	}
	os.Exit(code)
}

// simgateBinary builds ./cmd/simgate once per test run (with -race when
// this test binary has it) and returns its path. The build happens on the
// first hardware-in-loop test, so the quick unit tests of this package do
// not pay for it. It skips the test with -short.
func simgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("hardware-in-loop test of the simgate binary (runs without -short)")
	}
	e2eBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "simgate-e2e-")
		if err != nil {
			e2eBin.err = fmt.Errorf("temp dir for the simgate binary: %w", err)
			return
		}
		e2eBin.dir = dir
		out := filepath.Join(dir, "simgate")
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "-o", out, ".")
		cmd := exec.Command(goTool(), args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			e2eBin.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
			return
		}
		e2eBin.path = out
	})
	if e2eBin.err != nil {
		t.Fatal(e2eBin.err)
	}
	return e2eBin.path
}

// goTool is the go command of the toolchain running the tests.
func goTool() string {
	//lint:ignore SA1019 the tests run on the machine whose toolchain built them
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freeLoopback returns a loopback address nobody listens on now.
func freeLoopback(t *testing.T) string { t.Helper(); return testenv.FreeAddr(t) }

// waitUntil polls cond until it holds or limit passes, and says which.
func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// logLines is how much of the daemon's log a report shows.
func logLines() int {
	if *showLogs {
		return 100000
	}
	return 120
}

// tail returns the last n lines of a file, for failure reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// mosquitto is a broker process of the test's own on a loopback port, with
// persistence in a temp dir as a production broker is configured, so
// sessions and queued messages survive its restart.
type mosquitto struct {
	t       *testing.T
	bin     string
	conf    string
	addr    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // how the last run ended; read after done is closed
}

// startMosquitto starts mosquitto, or skips the test when it is not
// installed. extra lines are appended to its configuration.
func startMosquitto(t *testing.T, dir string, extra ...string) *mosquitto {
	t.Helper()
	bin := testenv.MosquittoBin(t, "this test needs a real broker process")
	mdir := filepath.Join(dir, "mosquitto")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	conf := testenv.MosquittoConf(t, mdir, port, append([]string{"autosave_interval 1", "log_type all"}, extra...)...)
	m := &mosquitto{t: t, bin: bin, conf: conf, addr: addr, logPath: filepath.Join(mdir, "mosquitto.log")}
	m.start()
	t.Cleanup(func() {
		if m.running() {
			m.stop(syscall.SIGTERM)
		}
		if t.Failed() || *showLogs {
			t.Logf("mosquitto log:\n%s", tail(m.logPath, 30))
		}
	})
	return m
}

func (m *mosquitto) url() string { return "tcp://" + m.addr }

func (m *mosquitto) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// start runs mosquitto and waits until it accepts connections.
func (m *mosquitto) start() {
	m.t.Helper()
	lf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(m.bin, "-c", m.conf)
	cmd.SysProcAttr = childProcAttr()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	go func() {
		m.exitErr = cmd.Wait()
		close(done)
	}()
	ok := waitUntil(e2eWait, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			return false
		}
		return c.Close() == nil
	})
	select {
	case <-done:
		m.t.Fatalf("mosquitto exited at start (%v):\n%s", m.exitErr, tail(m.logPath, 20))
	default:
	}
	if !ok {
		m.t.Fatalf("mosquitto does not listen on %s:\n%s", m.addr, tail(m.logPath, 20))
	}
}

// stop ends mosquitto with sig and waits for it; SIGTERM lets it save its
// persistence file first.
func (m *mosquitto) stop(sig syscall.Signal) {
	m.t.Helper()
	if !m.running() {
		m.t.Errorf("mosquitto had already exited (%v)", m.exitErr)
		return
	}
	if err := m.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.t.Errorf("signal mosquitto: %v", err)
	}
	select {
	case <-m.done:
	case <-time.After(e2eWait):
		m.t.Errorf("mosquitto ignored %v; killing it", sig)
		if err := m.cmd.Process.Kill(); err != nil {
			m.t.Errorf("kill mosquitto: %v", err)
		}
		<-m.done
	}
}

// gwConfig is what a test chooses of the daemon's configuration; the rest
// is the contract's defaults.
type gwConfig struct {
	DeviceID    string // "" names the topics by the SIM's ICCID
	Port        string
	Profile     string
	URL         string
	Embedded    bool
	StoreDir    string
	MaxMessages int
	IPMode      string
	IPPort      int    // 0: the default 6969
	IPCloud     string // "": the default 100.64.0.1:6969
	// Reports leaves sms.delivery_reports at its default (true); without
	// it the daemon asks for none, so each request has exactly one result.
	Reports    bool
	Extra      string // more YAML, appended as it is
	ModemExtra string // more keys under modem:, indented by two spaces
}

func (c gwConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "device_id: %q\n", c.DeviceID)
	fmt.Fprintf(&b, "modem:\n  port: %q\n  profile: %s\n", c.Port, c.Profile)
	b.WriteString(c.ModemExtra)
	fmt.Fprintf(&b, "sms:\n  enabled: true\n  allowed_senders: [\"000\"]\n")
	if !c.Reports {
		fmt.Fprintf(&b, "  delivery_reports: false\n")
	}
	fmt.Fprintf(&b, "ip:\n  mode: %s\n", c.IPMode)
	if c.IPPort > 0 {
		fmt.Fprintf(&b, "  port: %d\n", c.IPPort)
	}
	if c.IPCloud != "" {
		fmt.Fprintf(&b, "  cloud: %q\n", c.IPCloud)
	}
	fmt.Fprintf(&b, "mqtt:\n  url: %q\n  embedded: %t\n", c.URL, c.Embedded)
	fmt.Fprintf(&b, "store:\n  dir: %q\n", c.StoreDir)
	if c.MaxMessages > 0 {
		fmt.Fprintf(&b, "  max_messages: %d\n", c.MaxMessages)
	}
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: text\n", logLevel())
	b.WriteString(c.Extra)
	return b.String()
}

// daemon is the simgate binary running as a subprocess. Its stderr goes to
// a log file that survives restarts, shown when the test fails.
type daemon struct {
	t       *testing.T
	bin     string
	config  string
	logPath string
	starts  int
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // how the last run ended; read after done is closed
}

func newDaemon(t *testing.T, bin, dir string, c gwConfig) *daemon {
	t.Helper()
	cfgPath := filepath.Join(dir, "simgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, bin: bin, config: cfgPath, logPath: filepath.Join(dir, "simgate.log")}
	t.Cleanup(func() {
		if d.running() {
			d.stop(syscall.SIGTERM)
		}
		d.checkLog()
		if t.Failed() || *showLogs {
			t.Logf("simgate log:\n%s", tail(d.logPath, logLines()))
		}
	})
	return d
}

// childProcAttr is how the tests start the daemons they run (simgate,
// ModemManager, dbus-run-session): the kernel kills one with SIGKILL when
// the test binary dies (a -timeout panic, a kill), when no Cleanup runs.
// A simgate that outlives its test keeps reopening its port, a symlink to
// /dev/pts/N; once another test's modemsim gets that pty number, the
// leftover daemon reads replies and URCs meant for that test's host and
// sends its own AT commands, which makes the other test fail at random.
// Pdeathsig fires when the thread that started the child exits; Go keeps
// its threads unless a goroutine exits locked to one, which these tests
// never do.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// daemonEnv is this process's environment without what would change the
// daemon's behaviour: SIMGATE_ overrides and systemd's variables.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SIMGATE_") || strings.HasPrefix(name, "WATCHDOG_") ||
			strings.HasPrefix(name, "LISTEN_") || name == "NOTIFY_SOCKET" || name == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (d *daemon) start() {
	d.t.Helper()
	d.starts++
	lf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "==== test: simgate start %d at %s ====\n", d.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, "run", "-config", d.config)
	cmd.Env = daemonEnv()
	cmd.SysProcAttr = childProcAttr()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start simgate: %v", err)
	}
	done := make(chan struct{})
	d.cmd, d.done = cmd, done
	go func() {
		d.exitErr = cmd.Wait()
		close(done)
	}()
}

func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop signals the daemon and returns its exit code (-1 when a signal
// ended it). A daemon that does not exit is killed and fails the test.
func (d *daemon) stop(sig syscall.Signal) int {
	d.t.Helper()
	if !d.running() {
		d.t.Errorf("simgate had exited before %v (%v)", sig, d.exitErr)
		return d.cmd.ProcessState.ExitCode()
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.t.Errorf("signal simgate: %v", err)
	}
	return d.wait()
}

// kill ends the daemon with SIGKILL, as a power cut or the OOM killer
// would: nothing of its own runs after.
func (d *daemon) kill() {
	d.t.Helper()
	if code := d.stop(syscall.SIGKILL); code != -1 {
		d.t.Errorf("simgate exited with %d before SIGKILL reached it", code)
	}
}

// wait waits for the daemon to exit and returns its exit code.
func (d *daemon) wait() int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(e2eWait):
		d.t.Errorf("simgate did not exit within %s; killing it", e2eWait)
		if err := d.cmd.Process.Kill(); err != nil {
			d.t.Errorf("kill simgate: %v", err)
		}
		<-d.done
	}
	return d.cmd.ProcessState.ExitCode()
}

// checkLog fails the test for a data race or a panic in the daemon.
func (d *daemon) checkLog() {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.t.Errorf("read simgate log: %v", err)
		}
		return
	}
	for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
		if i := bytes.Index(b, []byte(bad)); i >= 0 {
			end := min(len(b), i+4000)
			d.t.Errorf("simgate log has %q:\n%s", bad, b[i:end])
		}
	}
}

// obsMsg is one message the observer received.
type obsMsg struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// observer subscribes to everything under a prefix with QoS 1 and a
// persistent session (clean_session=false), so it misses nothing across a
// broker restart, and keeps every message in the order the broker
// delivered them.
type observer struct {
	t      *testing.T
	prefix string
	client paho.Client
	mu     sync.Mutex
	msgs   []obsMsg
	bad    map[string]bool // problems already reported
}

// problem fails the test once per distinct problem: decoders run in
// polling loops and would repeat it.
func (o *observer) problem(format string, args ...any) {
	o.t.Helper()
	msg := fmt.Sprintf(format, args...)
	o.mu.Lock()
	seen := o.bad[msg]
	if o.bad == nil {
		o.bad = map[string]bool{}
	}
	o.bad[msg] = true
	o.mu.Unlock()
	if !seen {
		o.t.Error(msg)
	}
}

var clientSeq atomic.Int64

func clientID(kind string) string {
	return fmt.Sprintf("%s-%d-%d", kind, os.Getpid(), clientSeq.Add(1))
}

func observe(t *testing.T, url, prefix string) *observer {
	t.Helper()
	o := &observer{t: t, prefix: prefix}
	var connected atomic.Bool
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID("observer")).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(250 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).SetOrderMatters(true)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		o.mu.Lock()
		o.msgs = append(o.msgs, obsMsg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()})
		o.mu.Unlock()
	})
	opts.SetOnConnectHandler(func(c paho.Client) {
		// The broker keeps the subscription of a persistent session; after
		// a restart without it, subscribing again loses nothing either.
		if connected.Swap(true) {
			c.Subscribe(prefix+"/#", 1, nil)
		}
	})
	o.client = paho.NewClient(opts)
	if tok := o.client.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("observer connect to %s: %v", url, tok.Error())
	}
	if tok := o.client.Subscribe(prefix+"/#", 1, nil); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { o.client.Disconnect(100) })
	return o
}

// on returns what arrived on a topic under the prefix, in order.
func (o *observer) on(suffix string) []obsMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []obsMsg
	for _, m := range o.msgs {
		if m.Topic == o.prefix+"/"+suffix {
			out = append(out, m)
		}
	}
	return out
}

// smsIn is P/sms/in as docs/contract.md defines it ("partial" only on a
// concatenated SMS delivered incomplete).
type smsIn struct {
	ID         string `json:"id"`
	Channel    string `json:"channel"`
	From       string `json:"from"`
	Payload    string `json:"payload"`
	Encoding   string `json:"encoding"`
	Parts      int    `json:"parts"`
	Partial    bool   `json:"partial,omitempty"`
	SentAt     string `json:"sent_at"`
	ReceivedAt string `json:"received_at"`
}

// smsInKeys are the keys every P/sms/in message must carry.
var smsInKeys = []string{"id", "channel", "from", "payload", "encoding", "parts", "sent_at", "received_at"}

// decodeStrict decodes one JSON object into v, refusing unknown fields, and
// checks that every key in required is present.
func decodeStrict(b []byte, v any, required []string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", b, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return fmt.Errorf("decode %s: %w", b, err)
	}
	for _, k := range required {
		if _, ok := keys[k]; !ok {
			return fmt.Errorf("%s lacks %q", b, k)
		}
	}
	return nil
}

// smsIn returns every P/sms/in message so far, decoded; a message that does
// not decode fails the test.
func (o *observer) smsIn() []smsIn {
	o.t.Helper()
	var out []smsIn
	for _, m := range o.on("sms/in") {
		var s smsIn
		if err := decodeStrict(m.Payload, &s, smsInKeys); err != nil {
			o.problem("P/sms/in: %v", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// smsIDs returns the ids that have arrived on P/sms/in; smsIn reports
// messages that do not decode.
func (o *observer) smsIDs() map[string]bool {
	seen := map[string]bool{}
	for _, m := range o.on("sms/in") {
		var s struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Payload, &s) == nil {
			seen[s.ID] = true
		}
	}
	return seen
}

// event is one P/events entry; Fields holds the whole object.
type event struct {
	Type    string
	Message string
	Fields  map[string]any
}

// events decodes every P/events entry so far, in order.
func (o *observer) events() []event {
	o.t.Helper()
	var out []event
	for _, m := range o.on("events") {
		var f map[string]any
		if err := json.Unmarshal(m.Payload, &f); err != nil {
			o.problem("P/events: %s: %v", m.Payload, err)
			continue
		}
		typ, _ := f["type"].(string)
		msg, _ := f["message"].(string)
		if typ == "" || msg == "" || f["time"] == nil {
			o.problem("P/events entry without type, message or time: %s", m.Payload)
		}
		out = append(out, event{Type: typ, Message: msg, Fields: f})
	}
	return out
}

// eventTypes lists the types of the events so far, for failure reports.
func eventTypes(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// result is P/sms/out/result and P/ip/out/result.
type result struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Reference *int   `json:"reference,omitempty"`
	Error     string `json:"error,omitempty"`
}

// results decodes every result on P/<suffix> so far, in order.
func (o *observer) results(suffix string) []result {
	o.t.Helper()
	var out []result
	for _, m := range o.on(suffix) {
		var r result
		if err := decodeStrict(m.Payload, &r, []string{"id", "status"}); err != nil {
			o.problem("P/%s: %v", suffix, err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// statusMsg is P/status.
type statusMsg struct {
	Online  bool   `json:"online"`
	Version string `json:"version"`
	Modem   struct {
		Manufacturer string `json:"manufacturer"`
		Model        string `json:"model"`
		Revision     string `json:"revision"`
		IMEI         string `json:"imei"`
	} `json:"modem"`
	SIM struct {
		ICCID string `json:"iccid"`
		IMSI  string `json:"imsi"`
	} `json:"sim"`
	Network struct {
		Registration string `json:"registration"`
		Operator     string `json:"operator"`
		Technology   string `json:"technology"`
		SignalDBm    *int   `json:"signal_dbm"`
	} `json:"network"`
	Queue struct {
		Pending int `json:"pending"`
	} `json:"queue"`
	Ready     bool   `json:"ready"`
	UpdatedAt string `json:"updated_at"`
}

// statuses decodes every P/status message so far, retained or not.
func (o *observer) statuses() []statusMsg {
	var out []statusMsg
	for _, m := range o.on("status") {
		var s statusMsg
		if err := json.Unmarshal(m.Payload, &s); err != nil {
			o.problem("P/status: %s: %v", m.Payload, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// publish sends one request with QoS 1 from a client of its own.
func publish(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID("pub")))
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// retainedOn returns the retained message of topic as a fresh subscriber
// sees it, or fails the test when there is none.
func retainedOn(t *testing.T, url, topic string) []byte {
	t.Helper()
	got := make(chan obsMsg, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID("fresh")).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("fresh subscriber connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- obsMsg{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()}:
		default:
		}
	})
	if !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("fresh subscriber subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if !m.Retained {
			t.Errorf("first message a fresh subscriber got on %s is not retained: %s", topic, m.Payload)
		}
		return m.Payload
	case <-time.After(e2eWait):
		t.Fatalf("no retained message on %s", topic)
		return nil
	}
}

// rig is one hardware-in-loop setup: simulator, broker, daemon, observer.
type rig struct {
	t      *testing.T
	dir    string
	sim    *modemsim.Sim
	mq     *mosquitto // nil with the embedded broker
	url    string
	conf   gwConfig
	gw     *daemon
	obs    *observer
	prefix string
}

type rigOptions struct {
	Sim modemsim.Options
	// Embedded runs the daemon's own broker instead of mosquitto.
	Embedded bool
	// DeviceID defaults to "e2e"; "-" leaves it empty, so the ICCID,
	// which Sim.ICCID must then set, names the topics.
	DeviceID    string
	MaxMessages int
	IPMode      string // default "off"
	// Stopped leaves the daemon to the test to start.
	Stopped bool
	// BrokerConf is added to mosquitto's configuration.
	BrokerConf []string
	// Extra is YAML appended to the daemon's configuration; ModemExtra
	// goes under modem:.
	Extra      string
	ModemExtra string
	// Reports keeps sms.delivery_reports at its default, true.
	Reports bool
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	bin := simgateBinary(t)
	r := &rig{t: t, dir: t.TempDir()}
	r.sim = startE2ESim(t, r.dir, o.Sim)
	id := o.DeviceID
	switch id {
	case "":
		id = "e2e"
	case "-":
		id = ""
	}
	if o.IPMode == "" {
		o.IPMode = "off"
	}
	r.prefix = "supersim/" + id
	if id == "" {
		if o.Sim.ICCID == "" {
			t.Fatal("test bug: topics named by the ICCID need rigOptions.Sim.ICCID")
		}
		r.prefix = "supersim/" + o.Sim.ICCID
	}
	if !o.Embedded {
		r.mq = startMosquitto(t, r.dir, o.BrokerConf...)
		r.url = r.mq.url()
	} else {
		r.url = "tcp://" + freeLoopback(t)
	}
	r.conf = gwConfig{
		DeviceID:    id,
		Port:        r.sim.Link(),
		Profile:     "auto",
		URL:         r.url,
		Embedded:    o.Embedded,
		StoreDir:    filepath.Join(r.dir, "store"),
		MaxMessages: o.MaxMessages,
		IPMode:      o.IPMode,
		Extra:       o.Extra,
		Reports:     o.Reports,
		ModemExtra:  o.ModemExtra,
	}
	r.gw = newDaemon(t, bin, r.dir, r.conf)
	if !o.Embedded {
		r.obs = observe(t, r.url, r.prefix)
	}
	if !o.Stopped {
		r.start()
	}
	return r
}

// start starts the daemon; with the embedded broker the observer connects
// once it listens.
func (r *rig) start() {
	r.t.Helper()
	r.gw.start()
	if r.obs == nil {
		r.obs = observe(r.t, r.url, r.prefix)
	}
}

// waitReady waits until a status the observer received says the gateway
// is online with an initialised, registered modem. Any status since the
// observer connected counts, so after a restart it returns at once.
func (r *rig) waitReady() statusMsg {
	r.t.Helper()
	var last statusMsg
	ok := waitUntil(e2eWait, func() bool {
		for _, s := range r.obs.statuses() {
			if s.Online && s.Ready && (s.Network.Registration == "home" || s.Network.Registration == "roaming") {
				last = s
				return true
			}
		}
		return false
	})
	if !ok {
		r.t.Fatalf("no online, ready, registered status on %s/status; got %d status messages", r.prefix, len(r.obs.on("status")))
	}
	return last
}

// inject hands m to the simulated network. A full SIM is not an error:
// the network holds the SMS and delivers it once a slot is freed.
func (r *rig) inject(m modemsim.SMS) {
	r.t.Helper()
	if _, err := r.sim.InjectSMS(m); err != nil && !errors.Is(err, modemsim.ErrStoreFull) {
		r.t.Fatalf("inject %q: %v", m.Text, err)
	}
}

// simSummary describes the simulator for failure reports.
func (r *rig) simSummary() string {
	st := r.sim.State()
	var stored []string
	for _, s := range st.Stored {
		stored = append(stored, fmt.Sprintf("%d:%q", s.Index, s.Text))
	}
	return fmt.Sprintf("modemsim: plugged=%t booted=%t sms_ready=%t hung=%t echo=%t cnmi=%v stored=%d/%d %v network_queue=%d counters=%v",
		st.Plugged, st.Booted, st.SMSReady, st.Hung, st.Echo, st.CNMI, len(st.Stored), st.Capacity, stored, st.NetworkQueue, st.Counters)
}

// waitSMS waits until every wanted id has arrived on P/sms/in, then checks
// the stream exactly (see checkSMS). On timeout it reports what is missing
// and what the simulator still holds.
func (r *rig) waitSMS(want []smsIn, dupsOK bool, limit time.Duration) int {
	r.t.Helper()
	ok := waitUntil(limit, func() bool {
		seen := r.obs.smsIDs()
		for _, w := range want {
			if !seen[w.ID] {
				return false
			}
		}
		return true
	})
	if !ok {
		r.t.Errorf("after %s not every SMS arrived on P/sms/in; %s; events %v", limit, r.simSummary(), eventTypes(r.obs.events()))
	}
	return checkSMS(r.t, r.obs.smsIn(), want, dupsOK)
}

// checkSMS checks what arrived on P/sms/in against want: every wanted
// message at least once and exactly as wanted (payload, encoding, parts,
// sender, timestamps, id), nothing that was not wanted, first deliveries in
// want's order and, unless dupsOK, nothing twice. A repeated message must
// repeat the same id and content. It returns how many repeats arrived.
func checkSMS(t *testing.T, got, want []smsIn, dupsOK bool) int {
	t.Helper()
	byID := map[string]smsIn{}
	for _, w := range want {
		if _, dup := byID[w.ID]; dup {
			t.Fatalf("test bug: two wanted SMS share id %s", w.ID)
		}
		byID[w.ID] = w
	}
	seen := map[string]bool{}
	var first []string
	dups := 0
	for i, g := range got {
		if ts, err := time.Parse(time.RFC3339, g.ReceivedAt); err != nil || ts.Location() != time.UTC {
			t.Errorf("message %d (%s): received_at %q is not RFC 3339 UTC", i, g.ID, g.ReceivedAt)
		}
		g.ReceivedAt = ""
		w, ok := byID[g.ID]
		if !ok {
			t.Errorf("message %d on P/sms/in was never injected: %+v", i, g)
			continue
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("message %d on P/sms/in (-want +got):\n%s", i, diff)
		}
		if seen[g.ID] {
			dups++
			continue
		}
		seen[g.ID] = true
		first = append(first, g.ID)
	}
	var missing []string
	var order []string
	for _, w := range want {
		if seen[w.ID] {
			order = append(order, w.ID)
		} else {
			missing = append(missing, fmt.Sprintf("%q", w.Payload))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d SMS never arrived on P/sms/in: %s", len(missing), len(want), strings.Join(missing, ", "))
	}
	if diff := cmp.Diff(order, first); diff != "" {
		t.Errorf("first deliveries out of order (-want +got):\n%s", diff)
	}
	if dups > 0 && !dupsOK {
		t.Errorf("%d SMS arrived more than once on P/sms/in, with nothing that excuses a redelivery", dups)
	}
	return dups
}

// wantText is how a text SMS must look on P/sms/in.
func wantText(from, text string, parts int, sentAt time.Time) smsIn {
	return smsIn{
		ID:       gw.MessageID(gw.Inbound{Channel: gw.ChannelSMS, From: from, Payload: []byte(text), SentAt: sentAt}),
		Channel:  "sms",
		From:     from,
		Payload:  text,
		Encoding: "text",
		Parts:    parts,
		SentAt:   sentAt.UTC().Format(time.RFC3339),
	}
}

// wantData is how an 8-bit SMS must look on P/sms/in.
func wantData(from string, data []byte, sentAt time.Time) smsIn {
	return smsIn{
		ID:       gw.MessageID(gw.Inbound{Channel: gw.ChannelSMS, From: from, Payload: data, SentAt: sentAt}),
		Channel:  "sms",
		From:     from,
		Payload:  base64.StdEncoding.EncodeToString(data),
		Encoding: "base64",
		Parts:    1,
		SentAt:   sentAt.UTC().Format(time.RFC3339),
	}
}

// sentAtBase is a service centre time for a burst: whole seconds (the PDU's
// resolution), in the past, so successive messages can be a second apart.
func sentAtBase() time.Time {
	return time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
}

// burst makes n distinct GSM 7-bit SMS Commands from 000, a second apart
// by their service centre timestamps (the only order a SIM keeps: a drain
// after a restart hands messages over by timestamp, then SIM index), and
// what each must look like on P/sms/in. The text uses the extension table;
// every tenth message (7, 17, ...) is concatenated from three parts that
// arrive out of order, so faults also hit messages mid-reassembly.
func burst(tag string, n int, base time.Time) ([]modemsim.SMS, []smsIn) {
	var in []modemsim.SMS
	var want []smsIn
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		if i%10 == 7 {
			text := fmt.Sprintf("%s %03d in three parts {€}: ", tag, i) + strings.Repeat("a long command [~] ", 16)
			in = append(in, modemsim.SMS{From: "000", Text: text, Encoding: "gsm7", Parts: 3, Order: []int{3, 1, 2}, SentAt: at})
			want = append(want, wantText("000", text, 3, at))
			continue
		}
		text := fmt.Sprintf("%s %03d {€} [~]", tag, i)
		in = append(in, modemsim.SMS{From: "000", Text: text, Encoding: "gsm7", SentAt: at})
		want = append(want, wantText("000", text, 1, at))
	}
	return in, want
}

// startE2ESim starts the simulator with its pty linked in dir and its debug
// log in a file shown when the test fails.
func startE2ESim(t *testing.T, dir string, o modemsim.Options) *modemsim.Sim {
	t.Helper()
	o.Link = filepath.Join(dir, "ttyModem")
	logPath := filepath.Join(dir, "modemsim.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim, err := modemsim.Start(o)
	if err != nil {
		t.Fatalf("modemsim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("modemsim Close: %v", err)
		}
		if err := lf.Close(); err != nil {
			t.Errorf("close modemsim log: %v", err)
		}
		if t.Failed() || *showLogs {
			t.Logf("modemsim log:\n%s", tail(logPath, logLines()/2))
		}
	})
	return sim
}

// logLines returns the daemon's log lines containing s, for checks on what
// it told the operator.
func (d *daemon) logLines(s string) []string {
	f, err := os.Open(d.logPath)
	if err != nil {
		d.t.Errorf("open simgate log: %v", err)
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// hasEvent reports whether an event of one of the types arrived.
func hasEvent(evs []event, types ...string) bool {
	return slices.ContainsFunc(evs, func(e event) bool { return slices.Contains(types, e.Type) })
}

// injector feeds a burst to the simulated network from a goroutine.
type injector struct {
	n    atomic.Int64 // how many have been injected
	done chan struct{}
}

// injectPaced injects msgs in order, gap apart, while the test does
// something else; wait for done before checking delivery.
func (r *rig) injectPaced(msgs []modemsim.SMS, gap time.Duration) *injector {
	in := &injector{done: make(chan struct{})}
	// A test that fails early must not end while the goroutine can still
	// report; this runs before the simulator closes.
	r.t.Cleanup(func() { <-in.done })
	go func() {
		defer close(in.done)
		for _, m := range msgs {
			if _, err := r.sim.InjectSMS(m); err != nil && !errors.Is(err, modemsim.ErrStoreFull) {
				r.t.Errorf("inject %q: %v", m.Text, err)
				return
			}
			in.n.Add(1)
			time.Sleep(gap)
		}
	}()
	return in
}

// waitInjected waits for the injector to finish.
func (in *injector) wait(t *testing.T) {
	t.Helper()
	select {
	case <-in.done:
	case <-time.After(e2eWait):
		t.Fatalf("injection stuck after %d messages", in.n.Load())
	}
}

// waitSeen waits until at least n distinct SMS have arrived on P/sms/in.
func (r *rig) waitSeen(n int) {
	r.t.Helper()
	if !waitUntil(e2eWait, func() bool { return len(r.obs.smsIDs()) >= n }) {
		r.t.Fatalf("only %d SMS arrived on P/sms/in, waiting for %d; %s", len(r.obs.smsIDs()), n, r.simSummary())
	}
}

// heldByDaemon opens the durable queue of a daemon that is not running and
// returns what it holds; the daemon's own code reads it the same way.
func (r *rig) heldByDaemon() transport.QueueStats {
	r.t.Helper()
	if r.gw.running() {
		r.t.Fatal("test bug: the queue is opened only while the daemon is down")
	}
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: r.conf.StoreDir}, slog.New(slog.DiscardHandler))
	if err != nil {
		r.t.Fatalf("open the daemon's queue: %v", err)
	}
	st := q.Stats()
	if err := q.Close(); err != nil {
		r.t.Fatalf("close the daemon's queue: %v", err)
	}
	return st
}

// onSIM counts what the simulated network and SIM still hold for the host:
// segments stored on the SIM and segments the network has not delivered.
func (r *rig) onSIM() (stored, network int) {
	st := r.sim.State()
	return len(st.Stored), st.NetworkQueue
}
