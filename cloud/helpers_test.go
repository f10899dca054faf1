package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/internal/testenv"
	"github.com/simgate/simgate/transport"
)

const testWait = 20 * time.Second

func waitFor(limit time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func freeAddr(t *testing.T) string { t.Helper(); return testenv.FreeAddr(t) }

// broker is a mosquitto process on a free loopback port.
type broker struct {
	t    *testing.T
	conf string
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	bin := testenv.MosquittoBin(t, "these tests need a broker with shared subscriptions")
	dir := t.TempDir()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := testenv.MosquittoConf(t, dir, port, "log_type error", "log_type warning")
	b := &broker{t: t, conf: conf, addr: addr, log: filepath.Join(dir, "log")}
	b.cmdPath(bin)
	b.start()
	t.Cleanup(func() { b.stop() })
	return b
}

func (b *broker) cmdPath(bin string) { b.cmd = exec.Command(bin, "-c", b.conf) }

func (b *broker) url() string { return "tcp://" + b.addr }

func (b *broker) start() {
	b.t.Helper()
	lf, err := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(b.cmd.Path, b.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.cmd, b.done = cmd, make(chan struct{})
	done := b.done
	go func() { _ = cmd.Wait(); close(done) }()
	if !waitFor(testWait, func() bool {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			return false
		}
		return c.Close() == nil
	}) {
		b.t.Fatalf("mosquitto does not listen on %s", b.addr)
	}
}

func (b *broker) stop() {
	if b.done == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.t.Errorf("stop mosquitto: %v", err)
	}
	<-b.done
}

// observer records what the bridge publishes.
type observer struct {
	t  *testing.T
	c  paho.Client
	mu sync.Mutex
	m  []obsMsg
}

type obsMsg struct {
	topic   string
	payload []byte
}

func observe(t *testing.T, url, filter string) *observer {
	t.Helper()
	o := &observer{t: t}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("obs-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second)
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
			o.mu.Lock()
			o.m = append(o.m, obsMsg{m.Topic(), append([]byte(nil), m.Payload()...)})
			o.mu.Unlock()
		}).Wait()
	})
	o.c = paho.NewClient(opts)
	if tok := o.c.Connect(); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	time.Sleep(100 * time.Millisecond)
	t.Cleanup(func() { o.c.Disconnect(100) })
	return o
}

func (o *observer) on(suffix string) []obsMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []obsMsg
	for _, m := range o.m {
		if strings.HasSuffix(m.topic, suffix) {
			out = append(out, m)
		}
	}
	return out
}

func (o *observer) results(suffix string) []ResultJSON {
	var out []ResultJSON
	for _, m := range o.on(suffix) {
		var r ResultJSON
		if err := json.Unmarshal(m.payload, &r); err != nil {
			o.t.Errorf("result %s: %v", m.payload, err)
			continue
		}
		out = append(out, r)
	}
	return out
}

func publish(t *testing.T, url, topic string, payloads ...string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(testWait) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// fakeAPI is a scripted Super SIM API: it answers Sims lookups for its SIMs,
// creates commands, and fails the next calls as a test scripts them.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	sims    map[string]string // iccid -> sid
	sms     []created
	ip      []created
	fail    []fakeAnswer // answers for the next create calls, in order
	calls   int          // create calls, failures included
	lookups int
	user    string
	pass    string
	bearer  string
	// afterCreate, when set, runs once a command is created, without the
	// lock; the answer is written only when it returns true.
	afterCreate func(w http.ResponseWriter, r *http.Request, c created) bool
}

type created struct {
	Sid  string
	Form url.Values
}

type fakeAnswer struct {
	status     int
	code       int
	message    string
	retryAfter string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, sims: map[string]string{"8988307000000000001": "HS00000000000000000000000000000001"}, user: "AC00000000000000000000000000000001", pass: "token"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) authorized(r *http.Request) bool {
	if f.bearer != "" {
		return r.Header.Get("Authorization") == "Bearer "+f.bearer
	}
	u, p, ok := r.BasicAuth()
	return ok && u == f.user && p == f.pass
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !f.authorized(r) {
		w.WriteHeader(401)
		io.WriteString(w, `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`)
		return
	}
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(400)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/Sims":
		f.lookups++
		iccid := r.URL.Query().Get("Iccid")
		var sims []map[string]string
		if sid, ok := f.sims[iccid]; ok {
			sims = append(sims, map[string]string{"sid": sid, "iccid": iccid, "status": "active"})
		}
		json.NewEncoder(w).Encode(map[string]any{"sims": sims, "meta": map[string]any{"page": 0}})
	case r.Method == "POST" && (r.URL.Path == "/v1/SmsCommands" || r.URL.Path == "/v1/IpCommands"):
		f.calls++
		if len(f.fail) > 0 {
			a := f.fail[0]
			f.fail = f.fail[1:]
			if a.retryAfter != "" {
				w.Header().Set("Retry-After", a.retryAfter)
			}
			w.WriteHeader(a.status)
			fmt.Fprintf(w, `{"code":%d,"message":%q,"more_info":"x","status":%d}`, a.code, a.message, a.status)
			return
		}
		form := r.PostForm
		c := created{Form: form}
		if r.URL.Path == "/v1/SmsCommands" {
			c.Sid = fmt.Sprintf("HC%032x", len(f.sms)+1)
			f.sms = append(f.sms, c)
		} else {
			c.Sid = fmt.Sprintf("HG%032x", len(f.ip)+1)
			f.ip = append(f.ip, c)
		}
		if hook := f.afterCreate; hook != nil {
			f.mu.Unlock()
			answer := hook(w, r, c)
			f.mu.Lock()
			if !answer {
				return
			}
		}
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"sid": c.Sid, "sim_sid": form.Get("Sim"), "status": "queued",
			"payload": form.Get("Payload"), "direction": "to_sim", "date_created": time.Now().UTC().Format(time.RFC3339)})
	case r.Method == "GET" && (r.URL.Path == "/v1/SmsCommands" || r.URL.Path == "/v1/IpCommands"):
		list, key := f.sms, "sms_commands"
		if r.URL.Path == "/v1/IpCommands" {
			list, key = f.ip, "ip_commands"
		}
		var out []map[string]any
		for i := len(list) - 1; i >= 0; i-- {
			c := list[i]
			out = append(out, map[string]any{"sid": c.Sid, "sim_sid": c.Form.Get("Sim"), "status": "queued", "payload": c.Form.Get("Payload"),
				"direction": "to_sim", "date_created": time.Now().UTC().Format(time.RFC3339)})
		}
		json.NewEncoder(w).Encode(map[string]any{key: out, "meta": map[string]any{}})
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"code":20404,"message":"The requested resource was not found","status":404}`)
	}
}

func (f *fakeAPI) created() (sms, ip []created) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]created(nil), f.sms...), append([]created(nil), f.ip...)
}

func (f *fakeAPI) script(a ...fakeAnswer) {
	f.mu.Lock()
	f.fail = append(f.fail, a...)
	f.mu.Unlock()
}

// testBridge runs a bridge with its own store against url and api.
type testBridge struct {
	b      *Bridge
	q      *transport.Queue
	cancel context.CancelFunc
	done   chan error
	public string
}

func runBridge(t *testing.T, brokerURL string, api *API, v Verifier, dir, clientID string, opts ...func(*Config)) *testBridge {
	t.Helper()
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := Config{
		MQTT:     transport.MQTTConfig{URL: brokerURL, ClientID: clientID, TopicPrefix: "supersim", MaxReconnectInterval: time.Second},
		Provider: "twilio", API: api, Verifier: v, Listen: listen, PublicURL: "http://" + listen,
		StoreDir: dir, Version: "test", RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	b, err := New(cfg, q, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb := &testBridge{b: b, q: q, cancel: cancel, done: make(chan error, 1), public: "http://" + listen}
	go func() { tb.done <- b.Run(ctx) }()
	t.Cleanup(func() { tb.stop(t) })
	if !waitFor(testWait, func() bool { up, _ := b.conn.state(); return up }) {
		t.Fatal("bridge did not connect")
	}
	// The subscription is made by onConnect right after the connection.
	time.Sleep(200 * time.Millisecond)
	return tb
}

func (tb *testBridge) stop(t *testing.T) {
	if tb.cancel == nil {
		return
	}
	tb.cancel()
	if err := <-tb.done; err != nil {
		t.Errorf("bridge Run: %v", err)
	}
	tb.cancel = nil
	if err := tb.q.Close(); err != nil {
		t.Errorf("close queue: %v", err)
	}
}

func twilioAPI(t *testing.T, f *fakeAPI) *API {
	t.Helper()
	a, err := NewAPI(APIConfig{BaseURL: f.srv.URL, Username: f.user, Password: f.pass, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return a
}
