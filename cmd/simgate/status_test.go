package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/internal/systemd"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/transport"
)

// A socket answer as the daemon renders it, with a modem that sends an
// escape sequence in its operator name.
const socketAnswer = `{"online":true,"version":"v1.4.0","modem":{"manufacturer":"Quectel","model":"BG96","revision":"BG96MAR02A07M1G","imei":"866425030012340"},` +
	`"sim":{"iccid":"89883070000012345672","imsi":"732123200004178"},"network":{"registration":"roaming","operator":"Super\u001b[31m Network","technology":"lte","signal_dbm":-79},` +
	`"data":{"mode":"modem","state":"up","ip":"10.64.1.2"},"recovery":{"probes":1,"reinits":0,"resets":0,"reopens":2,"last_error":"read: EOF"},"ready":true,` +
	`"queue":{"pending":3,"inbound":2,"outbound":1,"results":0,"segments":1},"updated_at":"2026-12-01T17:00:00Z",` +
	`"healthy":true,"device_id":"pump-7","pid":4242,"started_at":"2026-12-01T16:00:00Z","broker":{"url":"tcp://127.0.0.1:1883","connected":true},` +
	`"sms_store":{"used":1,"total":50},"messages":{"sms":{"in":12,"last_in":"2026-12-01T16:59:00Z","sent":3,"failed":1,"last_out":"2026-12-01T16:58:00Z","rejected":2,"duplicates":0,"full":0},` +
	`"ip":{"in":40,"sent":5,"failed":0,"rejected":0,"duplicates":1,"full":0}}}`

func TestStatusSummary(t *testing.T) {
	obj, err := parseStatus([]byte(socketAnswer))
	if err != nil {
		t.Fatal(err)
	}
	got := summarize(obj, "the status socket /var/lib/simgate/simgate.sock")
	for _, want := range []string{
		"simgate v1.4.0 is running (pid 4242, since 2026-12-01T16:00:00Z): healthy\n",
		"  device    pump-7\n",
		"  modem     Quectel BG96 (BG96MAR02A07M1G), IMEI 866425030012340, ready\n",
		"  SIM       ICCID 89883070000012345672, IMSI 732123200004178\n",
		"  network   registered (roaming) on Super [31m Network lte, signal -79 dBm\n",
		"  data      modem: up 10.64.1.2\n",
		"  broker    connected (tcp://127.0.0.1:1883)\n",
		"  queue     3 pending (2 messages, 1 requests, 0 results; 1 SMS parts waiting for the rest); SIM holds 1 of 50 SMS\n",
		"  recovery  1 probes, 0 re-inits, 0 resets, 2 reopens; last error: read: EOF\n",
		"  SMS       12 in (last 2026-12-01T16:59:00Z), 3 sent (last 2026-12-01T16:58:00Z), 1 failed, 2 rejected, 0 duplicates\n",
		"  IP        40 in, 5 sent, 0 failed, 0 rejected, 1 duplicates\n",
		"  from      the status socket /var/lib/simgate/simgate.sock\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.ContainsRune(got, 0x1b) {
		t.Errorf("an escape sequence from the modem reached the summary:\n%q", got)
	}

	obj.Healthy = new(bool)
	obj.Reason = "modem: the modem has not answered for over 1m30s"
	if got := summarize(obj, "x"); !strings.Contains(got, "is running (pid 4242, since 2026-12-01T16:00:00Z): UNHEALTHY: modem: the modem has not answered for over 1m30s\n") {
		t.Errorf("unhealthy summary:\n%s", got)
	}
}

func TestStatusVerdictOfRetainedStatus(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		ok   bool
		why  string
		fail bool
	}{
		{raw: `{"online":true,"ready":true,"network":{"registration":"home"}}`, ok: true},
		{raw: `{"online":true,"ready":false,"network":{"registration":"home"}}`, why: "modem not ready"},
		{raw: `{"online":true,"ready":true,"network":{"registration":"searching"}}`, why: "not registered on a network (searching)"},
		{raw: `{"online":false}`, why: "not running"},
		{raw: `{"online":true,"healthy":false,"reason":"relay: relay loop has not moved for 20s","ready":true,"network":{"registration":"home"}}`, why: "relay: relay loop has not moved for 20s"},
		{raw: `{"ready":true}`, fail: true},
		{raw: `[1]`, fail: true},
		{raw: `{"online":"yes"}`, fail: true},
	} {
		obj, err := parseStatus([]byte(tt.raw))
		if (err != nil) != tt.fail {
			t.Errorf("parseStatus(%s) error %v, want failure %t", tt.raw, err, tt.fail)
			continue
		}
		if tt.fail {
			continue
		}
		if ok, why := verdict(obj); ok != tt.ok || why != tt.why {
			t.Errorf("verdict(%s) = %t, %q; want %t, %q", tt.raw, ok, why, tt.ok, tt.why)
		}
	}
}

// statusConfig writes a config whose store.dir and broker the test owns.
func statusConfig(t *testing.T, url string) (path, storeDir string) {
	t.Helper()
	dir := t.TempDir()
	storeDir = filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("device_id: pump-7\nmqtt:\n  url: %q\nstore:\n  dir: %q\n", url, storeDir)
	path = filepath.Join(dir, "simgate.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, storeDir
}

// serveFakeStatus serves answer on the status socket in dir until the test
// ends.
func serveFakeStatus(t *testing.T, dir, answer string) string {
	t.Helper()
	path := filepath.Join(dir, statusSocketName)
	ln, err := listenStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveStatus(ctx, ln, func() []byte { return []byte(answer) }, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return path
}

func TestStatusVerbReadsTheSocket(t *testing.T) {
	cfg, store := statusConfig(t, "tcp://"+freeLoopback(t))
	sock := serveFakeStatus(t, store, socketAnswer)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("status socket mode %v, want a socket with 0660", fi.Mode())
	}
	code, out, errOut := run(t, "status", "-config", cfg)
	if code != exitOK || !strings.Contains(out, "is running (pid 4242") || !strings.Contains(out, "from      the status socket "+sock) {
		t.Errorf("status: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = run(t, "status", "-json", "-config", cfg)
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); code != exitOK || err != nil || obj["device_id"] != "pump-7" {
		t.Errorf("status -json: exit %d, %v, stdout %q", code, err, out)
	}

	// An unhealthy daemon: exit 1.
	cfg2, store2 := statusConfig(t, "tcp://"+freeLoopback(t))
	serveFakeStatus(t, store2, strings.Replace(socketAnswer, `"healthy":true`, `"healthy":false,"reason":"modem not ready"`, 1))
	if code, out, _ := run(t, "status", "-config", cfg2); code != exitError || !strings.Contains(out, "UNHEALTHY: modem not ready") {
		t.Errorf("unhealthy status: exit %d, stdout:\n%s", code, out)
	}

	// A socket left by a daemon that was killed answers nothing: with no
	// broker either, the daemon is not running.
	cfg3, store3 := statusConfig(t, "tcp://"+freeLoopback(t))
	ln, err := listenStatus(filepath.Join(store3, statusSocketName))
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "status", "-config", cfg3, "-timeout", "2s"); code != exitNotRunning || !strings.Contains(errOut, "simgate is not running") {
		t.Errorf("no daemon, no broker: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := run(t, "status", "-json", "-config", cfg3, "-timeout", "2s"); code != exitNotRunning || out != "{\"online\":false}\n" {
		t.Errorf("no daemon, -json: exit %d, stdout %q", code, out)
	}
}

// Without the socket (another host, no permission, not running) the verb
// reads the retained P/status from the broker.
func TestStatusVerbFallsBackToRetainedStatus(t *testing.T) {
	url := "tcp://" + freeLoopback(t)
	stop, err := transport.StartEmbedded(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stop broker: %v", err)
		}
	})
	retain := func(payload string) {
		t.Helper()
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID("retain")))
		if tok := c.Connect(); !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(100)
		if tok := c.Publish("supersim/pump-7/status", 1, true, payload); !tok.WaitTimeout(testWait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	cfg, _ := statusConfig(t, url)
	retain(`{"online":true,"version":"v1","ready":true,"network":{"registration":"roaming","operator":"Op","technology":"lte","signal_dbm":-70},"queue":{"pending":0}}`)
	code, out, errOut := run(t, "status", "-config", cfg)
	if code != exitOK || !strings.Contains(out, "simgate v1 is running: healthy") || !strings.Contains(out, "the retained supersim/pump-7/status on "+url) {
		t.Errorf("retained online status: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	retain(`{"online":true,"version":"v1","ready":false,"network":{"registration":"unknown"},"queue":{"pending":4}}`)
	if code, out, _ := run(t, "status", "-config", cfg); code != exitError || !strings.Contains(out, "UNHEALTHY: modem not ready") {
		t.Errorf("retained not-ready status: exit %d, stdout:\n%s", code, out)
	}
	retain(`{"online":false}`)
	if code, out, _ := run(t, "status", "-config", cfg); code != exitNotRunning || !strings.Contains(out, "simgate is not running (its retained status says offline)") {
		t.Errorf("retained will: exit %d, stdout:\n%s", code, out)
	}
}

// Whatever the socket or the broker hands over, the verb prints readable
// words or refuses; nothing it prints carries control characters.
func FuzzStatusSummary(f *testing.F) {
	f.Add([]byte(socketAnswer))
	f.Add([]byte(`{"online":false}`))
	f.Add([]byte(`{"online":true,"network":{"signal_dbm":null},"messages":{"sms":{}}}`))
	f.Add([]byte(`{"online":true,"modem":{"model":"\u0007\u009b2J"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		obj, err := parseStatus(raw)
		if err != nil {
			return
		}
		out := summarize(obj, "fuzz")
		for _, r := range out {
			if r != '\n' && unicode.IsControl(r) {
				t.Fatalf("control character %U in the summary of %q:\n%q", r, raw, out)
			}
		}
		verdict(obj)
	})
}

// An http.listen address in use stops the start with a plain error (exit
// 1, so systemd tries again), not a configuration error (78).
func TestGatewayHTTPListenInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	cfg := testConfig(t, sim)
	cfg.HTTP.Listen = held.Addr().String()
	done := make(chan error, 1)
	go func() {
		done <- runGateway(context.Background(), cfg, testLog(t), gatewayOptions{Notifier: systemd.New(nil)})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "http.listen") || errors.As(err, new(errConfig)) {
			t.Errorf("runGateway with http.listen in use: %v, want a plain error naming http.listen", err)
		}
		if code := exitCode(testLog(t), err); code != exitError {
			t.Errorf("exit code %d, want %d", code, exitError)
		}
	case <-time.After(testWait):
		t.Fatal("the gateway started with its http.listen address in use")
	}
}
