package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The cloud bridge step: `simgate cloud` as a subprocess between the bench's
// mosquitto and a Super SIM API served in-process, which answers at once so
// the figures are the bridge's own (queue commit, MQTT, HTTP), not an API's.

const cloudSection = "Cloud bridge"

// benchAPI answers POST /v1/SmsCommands with 201 and notes when each
// request arrived, by payload.
type benchAPI struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	arrived map[string]time.Time
	n       atomic.Int64
}

func startBenchAPI() (*benchAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("api listen: %w", err)
	}
	a := &benchAPI{url: "http://" + ln.Addr().String(), arrived: map[string]time.Time{}}
	a.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(a.serve)}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *benchAPI) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(400)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/Sims":
		fmt.Fprintf(w, `{"sims":[{"sid":"HS00000000000000000000000000000001","iccid":%q,"status":"active"}],"meta":{}}`, r.Form.Get("Iccid"))
	case r.Method == "POST" && r.URL.Path == "/v1/SmsCommands":
		now := time.Now()
		p := r.PostForm.Get("Payload")
		a.mu.Lock()
		a.arrived[p] = now
		a.mu.Unlock()
		n := a.n.Add(1)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"sid":"HC%032x","sim_sid":"HS00000000000000000000000000000001","status":"queued","payload":%q,"direction":"to_sim"}`, n, p)
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"code":20404,"message":"not found","status":404}`)
	}
}

func (a *benchAPI) when(payload string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.arrived[payload]
	return t, ok
}

const (
	benchAccount = "AC00000000000000000000000000000001"
	benchToken   = "benchtoken"
	benchICCID   = "89883070000000000001"
)

func twilioSign(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := u
	for _, k := range keys {
		s += k + form.Get(k)
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (b *bench) cloudBridge(ctx context.Context) error {
	api, err := startBenchAPI()
	if err != nil {
		return err
	}
	defer api.srv.Close()
	dir := filepath.Join(b.work, "cloud")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cloud dir: %w", err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(benchToken), 0o600); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	port, err := freePort("tcp")
	if err != nil {
		return err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf("mqtt:\n  url: %q\n  client_id: bench-cloud\nstore:\n  dir: %q\nlog:\n  level: warn\ncloud:\n  api_url: %q\n  account_sid: %s\n  auth_token_file: %q\n  listen: %q\n  public_url: \"http://%s\"\n",
		b.broker.url(), filepath.Join(dir, "store"), api.url, benchAccount, tokenFile, listen, listen)
	cfgPath := filepath.Join(dir, "cloud.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("cloud config: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "simgate-cloud.log"))
	if err != nil {
		return fmt.Errorf("cloud log: %w", err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, b.simgate, "cloud", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start simgate cloud: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()

	// A subscriber for what the bridge publishes.
	var mu sync.Mutex
	seen := map[string]time.Time{}
	online := make(chan struct{}, 1)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.broker.url()).SetClientID("bench-cloud-sub").
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			if strings.HasSuffix(m.Topic(), "bridge/status") {
				select {
				case online <- struct{}{}:
				default:
				}
				return
			}
			var v struct {
				ID, Payload, Status string
			}
			if json.Unmarshal(m.Payload(), &v) != nil {
				return
			}
			key := v.Payload
			if strings.HasSuffix(m.Topic(), "/result") {
				key = "result " + v.ID + " " + v.Status
			}
			mu.Lock()
			if _, dup := seen[key]; !dup {
				seen[key] = time.Now()
			}
			mu.Unlock()
		}))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("bench subscriber: %v", t.Error())
	}
	defer sub.Disconnect(100)
	if t := sub.Subscribe("supersim/#", 1, nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("bench subscribe: %v", t.Error())
	}
	select {
	case <-online:
	case <-time.After(30 * time.Second):
		return errors.New("simgate cloud did not come online")
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.broker.url()).SetClientID("bench-cloud-pub"))
	if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return fmt.Errorf("bench publisher: %v", t.Error())
	}
	defer pub.Disconnect(100)
	got := func(key string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		t, ok := seen[key]
		return t, ok
	}
	wait := func(cond func() bool) error {
		end := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(end) || ctx.Err() != nil {
				return errors.New("timed out")
			}
			time.Sleep(200 * time.Microsecond)
		}
		return nil
	}

	// MQTT request -> API call, one at a time.
	var reqLat []time.Duration
	for i := range b.n {
		p := fmt.Sprintf("lat %d", i)
		start := time.Now()
		t := pub.Publish("supersim/"+benchICCID+"/sms/to_sim", 1, false, fmt.Sprintf(`{"id":"l%d","payload":%q}`, i, p))
		if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return fmt.Errorf("publish: %v", t.Error())
		}
		if err := wait(func() bool { _, ok := api.when(p); return ok }); err != nil {
			return fmt.Errorf("request %d never reached the API: %w", i, err)
		}
		at, _ := api.when(p)
		reqLat = append(reqLat, at.Sub(start))
	}
	b.rep.latency(cloudSection, "MQTT to_sim → API call", summarize(reqLat), nil,
		"publish QoS 1 → POST /v1/SmsCommands arrives; includes the PUBACK-after-commit and the attempt commit")

	// Webhook -> MQTT, one at a time.
	client := &http.Client{Timeout: 10 * time.Second}
	hook := "http://" + listen + "/webhooks/sms"
	post := func(i int, tag string) error {
		form := url.Values{"Sid": {fmt.Sprintf("HC%s%08d", tag, i)}, "SimSid": {"HS00000000000000000000000000000001"},
			"SimIccid": {benchICCID}, "Payload": {fmt.Sprintf("%s %d", tag, i)}, "Direction": {"from_sim"}, "Status": {"received"}}
		req, err := http.NewRequest("POST", hook, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", twilioSign(benchToken, hook, form))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("webhook answered %d", resp.StatusCode)
		}
		return nil
	}
	var hookLat []time.Duration
	for i := range b.n {
		start := time.Now()
		if err := post(i, "wl"); err != nil {
			return err
		}
		key := fmt.Sprintf("wl %d", i)
		if err := wait(func() bool { _, ok := got(key); return ok }); err != nil {
			return fmt.Errorf("webhook %d never reached MQTT: %w", i, err)
		}
		at, _ := got(key)
		hookLat = append(hookLat, at.Sub(start))
	}
	b.rep.latency(cloudSection, "webhook → MQTT from_sim", summarize(hookLat), nil,
		"signed POST /webhooks/sms → message at a subscriber; the 200 waits for the commit")

	// Sustained webhooks: 16 senders, 2000 webhooks, until the last is on
	// MQTT; the median of 3 runs.
	const total, senders = 2000, 16
	var rates []float64
	for run := range 3 {
		tag := fmt.Sprintf("ws%d", run)
		var next atomic.Int64
		var errMu sync.Mutex
		var firstErr error
		start := time.Now()
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					if err := post(i, tag); err != nil {
						errMu.Lock()
						firstErr = errors.Join(firstErr, err)
						errMu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		last := fmt.Sprintf("%s %d", tag, total-1)
		if err := wait(func() bool {
			for i := range total {
				if _, ok := got(fmt.Sprintf("%s %d", tag, i)); !ok {
					return false
				}
			}
			return true
		}); err != nil {
			return fmt.Errorf("sustained webhooks: %w", err)
		}
		end := start
		for i := range total {
			if at, _ := got(fmt.Sprintf("%s %d", tag, i)); at.After(end) {
				end = at
			}
		}
		_ = last
		rates = append(rates, rate(total, end.Sub(start)))
	}
	b.rep.add(cloudSection, "sustained webhooks → MQTT", median(rates), "msg/s", nil,
		fmt.Sprintf("median of 3 runs of %d signed webhooks from %d concurrent senders, until the last is on MQTT; runs %.0f / %.0f / %.0f", total, senders, rates[0], rates[1], rates[2]))
	if m, err := readMemory(cmd.Process.Pid); err == nil {
		b.rep.add(cloudSection, "RSS after the runs / peak", float64(m.RSS)/(1<<20), "MB", nil, fmt.Sprintf("VmHWM %.1f MB", float64(m.HWM)/(1<<20)))
	} else {
		b.rep.skip(cloudSection, "RSS", err.Error())
	}
	return nil
}
