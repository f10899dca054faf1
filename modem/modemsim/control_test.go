package modemsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestControlClient drives a simulator through its control socket.
func TestControlClient(t *testing.T) {
	ctl := filepath.Join(t.TempDir(), "ctl")
	s := startSim(t, Options{Control: ctl, Capacity: 2})
	c := &Client{Socket: ctl}
	h := openHost(t, s.Link())
	bootDone(t, s, h)
	cmd(t, h, "ATE0", "OK")

	idx, err := c.InjectSMS(SMS{Text: "via control"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{0}, idx); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if got := h.line(); got != `+CMTI: "SM",0` {
		t.Errorf("indication %q", got)
	}
	if _, err := c.InjectSMS(SMS{Text: "abcd", Parts: 2}); !errors.Is(err, ErrStoreFull) {
		t.Errorf("full store: %v", err)
	}
	h.line()

	cmd(t, h, "AT+QIACT=1", "OK")
	cmd(t, h, `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,1`, "OK")
	h.line()
	if err := c.InjectUDP(cloud, 6969, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	h.expect("+QIURC: \"recv\",0,3,\"100.64.0.1\",6969\r\n\x00\x01\x02")
	if err := c.InjectUDP(cloud, 1, []byte{0}); !errors.Is(err, ErrNoSocket) {
		t.Errorf("no socket: %v", err)
	}

	if err := c.Garbage([]byte("\x00junk")); err != nil {
		t.Fatal(err)
	}
	h.expect("\x00junk")
	if err := c.SetFaults(Faults{URCNoise: 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSignal(25); err != nil {
		t.Fatal(err)
	}
	cmd(t, h, "AT+CSQ", "+CSQ: 25,99", "OK")
	if err := c.SetRegistration(1); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseSocket(0); err != nil {
		t.Fatal(err)
	}
	h.expect(`+QIURC: "closed",0`)
	if err := c.DropData(); err != nil {
		t.Fatal(err)
	}
	h.expect(`+QIURC: "pdpdeact",1`)

	st, err := c.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Profile != "quectel" || len(st.Stored) != 2 || st.NetworkQueue != 1 || st.Counters[CounterUDPIn] != 1 || st.Registration != 1 {
		t.Errorf("state %+v", st)
	}
	if err := c.Hang(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.BootStorm(1); err != nil {
		t.Fatal(err)
	}
	h.expect("APP RDY")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := h.readErr(); err == nil {
		t.Error("reset did not drop the link")
	}
	if err := c.Unplug(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "unplug counted", func(st State) bool { return st.Counters[CounterUnplugs] == 1 && st.Plugged })
}

// TestControlRequests checks the server's answers to bad requests.
func TestControlRequests(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("AT+QIACT=1")
	tests := []struct {
		raw      string
		wantOK   bool
		wantCode string
		wantErr  string
	}{
		{`{"op":"state"}`, true, "", ""},
		{`{"op":"sms","sms":{"text":"hi"}}`, true, "", ""},
		{`{"op":"sms"}`, false, "bad_request", "missing"},
		{`{"op":"sms","sms":{"text":"😀","encoding":"gsm7"}}`, false, "bad_request", "GSM 7-bit"},
		{`{"op":"udp","from":"100.64.0.1:1","port":9,"data":"AA=="}`, false, "no_socket", "no socket"},
		{`{"op":"unplug","duration":"soon"}`, false, "bad_request", "duration"},
		{`{"op":"hang","duration":"-1s"}`, false, "bad_request", "0..24h"},
		{`{"op":"faults","faults":{"urc_noise":2}}`, false, "bad_request", "urc_noise"},
		{`{"op":"faults","faults":{"error_on":[""]}}`, false, "bad_request", "error_on"},
		{`{"op":"register","value":99}`, false, "bad_request", "stat"},
		{`{"op":"boot-storm","value":0}`, false, "bad_request", "count"},
		{`{"op":"dance"}`, false, "bad_request", "unknown op"},
		{`{"op":"state","extra":1}`, false, "bad_request", "unknown field"},
		{`not json`, false, "bad_request", "bad request"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			r := e.sim.handleRequest([]byte(tt.raw))
			if r.OK != tt.wantOK || r.Code != tt.wantCode || !strings.Contains(r.Error, tt.wantErr) {
				t.Errorf("got %+v, want ok=%v code=%q error containing %q", r, tt.wantOK, tt.wantCode, tt.wantErr)
			}
		})
	}
}

// FuzzControlRequest feeds arbitrary bytes to the control protocol.
func FuzzControlRequest(f *testing.F) {
	f.Add([]byte(`{"op":"sms","sms":{"text":"hi","parts":2,"order":[2,1]}}`))
	f.Add([]byte(`{"op":"udp","from":"1.2.3.4:5","port":6969,"data":"AAEC"}`))
	f.Add([]byte(`{"op":"garbage","data":"AA=="}`))
	f.Add([]byte(`{"op":"faults","faults":{"chunked":true}}`))
	f.Add([]byte(`{"op":"faults","faults":{"chunked":true,"chunk_max":3,"error_on":["AT+CMEE?","+CSQ"]}}`))
	f.Add([]byte(`{"op":"sms","sms":{"data":"/w==","encoding":"8bit","ref16":true}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := newSim(Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		s.out = &capture{}
		s.bootNow()
		defer func() {
			s.closed = true
			close(s.done)
		}()
		// These start timers and links that outlive the call; the pty tests
		// cover them. The op is read as handleRequest reads it, so an
		// escaped name ("\u0075nplug") is skipped too and other fields may
		// hold these words.
		var req Request
		if json.NewDecoder(bytes.NewReader(raw)).Decode(&req) == nil {
			switch req.Op {
			case OpUnplug, OpReset, OpBootStorm:
				return
			}
		}
		r := s.handleRequest(raw)
		if !r.OK && r.Error == "" {
			t.Fatalf("failure without a reason: %+v", r)
		}
	})
}
