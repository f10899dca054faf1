package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/modem/modemsim"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func startSim(t *testing.T) (*modemsim.Sim, string) {
	t.Helper()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	s, err := modemsim.Start(modemsim.Options{Link: filepath.Join(dir, "modem"), Control: ctl, BootDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !s.State().SMSReady {
		if time.Now().After(deadline) {
			t.Fatal("module did not boot")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return s, ctl
}

// TestClientVerbs runs the contract's client verbs against a simulator.
func TestClientVerbs(t *testing.T) {
	s, ctl := startSim(t)

	code, out, errs := run("sms", "-control", ctl, "hello €")
	if code != 0 {
		t.Fatalf("sms: exit %d: %s", code, errs)
	}
	if diff := cmp.Diff("{\n  \"indexes\": [\n    0\n  ]\n}\n", out); diff != "" {
		t.Errorf("sms output (-want +got):\n%s", diff)
	}
	code, _, errs = run("sms", "-control", ctl, "-from", "+447700900001", "-encoding", "8bit", base64.StdEncoding.EncodeToString([]byte{0, 1, 2}))
	if code != 0 {
		t.Fatalf("sms 8bit: exit %d: %s", code, errs)
	}
	code, _, errs = run("sms", "-control", ctl, "-parts", "3", "-order", "3,1,2", "-ref16", "abcdefghi")
	if code != 0 {
		t.Fatalf("sms parts: exit %d: %s", code, errs)
	}

	code, out, errs = run("state", "-control", ctl)
	if code != 0 {
		t.Fatalf("state: exit %d: %s", code, errs)
	}
	var st modemsim.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state is not JSON: %v\n%s", err, out)
	}
	if len(st.Stored) != 5 || st.Stored[0].Text != "hello €" || st.Stored[1].From != "+447700900001" || st.Stored[1].Encoding != "8bit" ||
		st.Stored[2].Seq != 3 || st.Stored[2].Total != 3 {
		t.Errorf("stored %+v", st.Stored)
	}

	if code, _, errs := run("udp", "-control", ctl, "-port", "6969", "AAE="); code != 1 || !strings.Contains(errs, "data session down") {
		t.Errorf("udp without data session: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{
		{"garbage", "-control", ctl, "00ff"},
		{"hang", "-control", ctl, "-for", "1ms"},
		{"register", "-control", ctl, "-stat", "1"},
		{"signal", "-control", ctl, "-rssi", "20"},
		{"faults", "-control", ctl, "-chunked", "-urc-noise", "0.1"},
		{"faults", "-control", ctl, "-chunked", "-chunk-max", "3", "-error-on", "AT+CMEE?", "-error-on", "AT+CSQ"},
		{"faults", "-control", ctl},
		{"drop-data", "-control", ctl},
		{"close-socket", "-control", ctl, "-id", "0"},
		{"storm", "-control", ctl, "-n", "1"},
		{"unplug", "-control", ctl, "-for", "10ms"},
	} {
		if code, _, errs := run(args...); code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errs)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.State()
		if st.Counters["unplugs"] == 1 && st.Plugged && st.Registration == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after verbs: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if code, _, errs := run("reset", "-control", ctl); code != 0 {
		t.Errorf("reset: exit %d: %s", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"dance"}, 2, "unknown verb"},
		{[]string{"-profile", "quectel"}, 2, "-link PATH is required"},
		{[]string{"-link", "/tmp/x", "-nope"}, 2, "flag provided but not defined"},
		{[]string{"state"}, 2, "-control SOCKET is required"},
		{[]string{"sms", "-control", "/nonexistent/ctl"}, 2, "exactly one TEXT"},
		{[]string{"sms", "-control", "/nonexistent/ctl", "-encoding", "8bit", "!!"}, 1, "not base64"},
		{[]string{"udp", "-control", "/nonexistent/ctl", "AA=="}, 2, "-port N"},
		{[]string{"garbage", "-control", "/nonexistent/ctl", "zz"}, 1, "not hex"},
		{[]string{"register", "-control", "/nonexistent/ctl"}, 2, "-stat is required"},
		{[]string{"state", "-control", "/nonexistent/ctl"}, 1, "no such file"},
		{[]string{"-link", "/tmp/x", "-profile", "nokia"}, 1, "unknown profile"},
		{[]string{"-listen", "/tmp/at.sock"}, 2, "want unix:PATH"},
		{[]string{"-listen", "unix:"}, 2, "want unix:PATH"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := run(tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, tt.code, tt.want)
			}
		})
	}
	if code, out, _ := run("help"); code != 0 || !strings.Contains(out, "modemsim sms") {
		t.Errorf("help: %d %q", code, out)
	}
}

// TestServe runs serve mode until SIGTERM and checks it cleans up.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	ctl := filepath.Join(dir, "ctl")
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- realMain([]string{"-link", link, "-control", ctl, "-profile", "ublox", "-capacity", "5", "-empty-read", "ok"}, &bytes.Buffer{}, &errb)
	}()
	c := &modemsim.Client{Socket: ctl}
	deadline := time.Now().Add(10 * time.Second)
	var st modemsim.State
	for {
		var err error
		if st, err = c.State(); err == nil && st.SMSReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not come up: %v\n%s", err, errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Profile != "ublox" || st.Capacity != 5 {
		t.Errorf("state %+v", st)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	for _, p := range []string{link, ctl} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// TestServeAPI runs serve mode with -api: the emulated Super SIM API
// answers with the given credentials, refuses others, and the api-state
// verb reads its state through the control socket.
func TestServeAPI(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "modem")
	ctl := filepath.Join(dir, "ctl")
	const sid, token = "AC0123456789abcdef0123456789abcdef", "tok123"
	done := make(chan int, 1)
	go func() {
		done <- realMain([]string{"-link", link, "-control", ctl, "-api", "127.0.0.1:0", "-account", sid + ":" + token}, &bytes.Buffer{}, io.Discard)
	}()
	// The API's address (a free port) is in its state on the control socket.
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if code, out, _ := run("api-state", "-control", ctl); code == 0 {
			var st struct {
				URL string `json:"url"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("api-state output %s: %v", out, err)
			}
			base = st.URL
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the API did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	get := func(user, pass string) (int, string) {
		req, err := http.NewRequest("GET", base+"/v1/Sims", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := resp.Body.Close(); err != nil {
				t.Error(err)
			}
		}()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get(sid, token); code != 200 || !strings.Contains(body, `"iccid":"89883070000012345672"`) || !strings.Contains(body, `"key":"sims"`) {
		t.Errorf("GET /v1/Sims: %d %s", code, body)
	}
	if code, body := get(sid, "wrong"); code != 401 || !strings.Contains(body, `"code":20003`) {
		t.Errorf("wrong token: %d %s", code, body)
	}
	code, out, errs := run("api-state", "-control", ctl)
	if code != 0 || !strings.Contains(out, `"account_sid": "`+sid+`"`) || !strings.Contains(out, `"deliveries": []`) {
		t.Errorf("api-state: exit %d %s %s", code, out, errs)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if code, _, _ := run("-link", link, "-account", sid+":"+token); code != 2 {
		t.Errorf("-account without -api: exit %d, want 2", code)
	}
}
