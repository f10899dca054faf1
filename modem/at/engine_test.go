package at

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/simgate/simgate/modem/at/attest"
)

// wait only keeps a broken test from hanging; nothing asserts on time.
const wait = 10 * time.Second

// sentinel ends every script so a test knows all URCs before it arrived.
const sentinel = "\r\nSENTINEL DONE\r\n"

type harness struct {
	port *attest.Port
	eng  *Engine
	urcs chan URC
}

func start(t *testing.T, chunk int, steps ...attest.Step) *harness {
	t.Helper()
	return startConfig(t, Config{}, chunk, steps...)
}

func startConfig(t *testing.T, cfg Config, chunk int, steps ...attest.Step) *harness {
	t.Helper()
	h := &harness{port: attest.New(t, steps...).Chunk(chunk), urcs: make(chan URC, 100)}
	// Close waits for OnURC: URCs the test did not read must not keep it
	// blocked once the test is over.
	over := make(chan struct{})
	cfg.OnURC = func(u URC) {
		select {
		case h.urcs <- u:
		case <-over:
		}
	}
	h.eng = New(h.port, cfg)
	t.Cleanup(func() {
		close(over)
		h.eng.Close()
		h.port.Close()
	})
	return h
}

// urcsUntilSentinel returns the URCs that arrived before the sentinel.
func (h *harness) urcsUntilSentinel(t *testing.T) []URC {
	t.Helper()
	h.port.Send(sentinel)
	var got []URC
	for {
		select {
		case u := <-h.urcs:
			if u.Line == "SENTINEL DONE" {
				return got
			}
			got = append(got, u)
		case <-time.After(wait):
			t.Fatalf("sentinel URC never arrived; got %v", got)
		}
	}
}

const pdu = "07914477790706520412000000000000000000000000" // content is irrelevant to the engine

func TestDo(t *testing.T) {
	tests := []struct {
		name     string
		cmd      Cmd
		steps    []attest.Step
		want     Reply
		wantURCs []URC
		wantErr  string
	}{
		{
			name:  "plain reply",
			cmd:   Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 17,99\r\n\r\nOK\r\n"}},
			want:  Reply{Lines: []string{"+CSQ: 17,99"}, Final: "OK"},
		},
		{
			name: "URC between command and reply",
			cmd:  Cmd{Line: "AT+CMGR=5", Trailing: 1},
			steps: []attest.Step{{Write: "AT+CMGR=5\r",
				Read: "\r\n+CMTI: \"SM\",6\r\n\r\n+CEREG: 5,\"1A2B\",\"01A2D001\",7\r\n\r\n+CMGR: 0,,24\r\n" + pdu + "\r\n\r\nOK\r\n"}},
			want: Reply{Lines: []string{"+CMGR: 0,,24", pdu}, Final: "OK"},
			wantURCs: []URC{
				{Line: `+CMTI: "SM",6`, Known: true},
				{Line: `+CEREG: 5,"1A2B","01A2D001",7`, Known: true},
			},
		},
		{
			name: "URCs between reply lines",
			cmd:  Cmd{Line: "AT+CMGL=4", Trailing: 1},
			steps: []attest.Step{{Write: "AT+CMGL=4\r",
				Read: "\r\n+CMGL: 1,0,,24\r\n+CMTI: \"SM\",3\r\n" + pdu + "\r\n+CEREG: 1\r\n+CMGL: 2,1,,24\r\n" + pdu + "\r\n\r\n+CMTI: \"SM\",4\r\n\r\nOK\r\n"}},
			want: Reply{Lines: []string{"+CMGL: 1,0,,24", pdu, "+CMGL: 2,1,,24", pdu}, Final: "OK"},
			wantURCs: []URC{
				{Line: `+CMTI: "SM",3`, Known: true},
				{Line: `+CEREG: 1`, Known: true},
				{Line: `+CMTI: "SM",4`, Known: true},
			},
		},
		{
			name: "registration read form is the reply, the URC is not",
			cmd:  Cmd{Line: "AT+CEREG?"},
			steps: []attest.Step{{Write: "AT+CEREG?\r",
				Read: "\r\n+CEREG: 5,\"1A2B\",\"01A2D001\",7\r\n\r\n+CEREG: 2,5,\"1A2B\",\"01A2D001\",7\r\n+CEREG: 2\r\n\r\nOK\r\n"}},
			want: Reply{Lines: []string{`+CEREG: 2,5,"1A2B","01A2D001",7`}, Final: "OK"},
			wantURCs: []URC{
				{Line: `+CEREG: 5,"1A2B","01A2D001",7`, Known: true},
				{Line: `+CEREG: 2`, Known: true},
			},
		},
		{
			name:  "echo dropped",
			cmd:   Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{{Write: "AT+CSQ\r", Read: "AT+CSQ\r\r\n+CSQ: 5,99\r\n\r\nOK\r\n"}},
			want:  Reply{Lines: []string{"+CSQ: 5,99"}, Final: "OK"},
		},
		{
			name: "garbage and NUL bytes tolerated",
			cmd:  Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{
				{Read: "\x00\x00\xff\xfe\x00"},
				{Write: "AT+CSQ\r", Read: "\r\n\x00+CSQ: 5,\x0099\r\n\x00\r\nOK\r\n"},
			},
			want:     Reply{Lines: []string{"+CSQ: 5,99"}, Final: "OK"},
			wantURCs: []URC{{Line: "\uFFFD"}},
		},
		{
			name: "unknown line during a prefixed command is not the reply",
			cmd:  Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{{Write: "AT+CSQ\r",
				Read: "\r\n+XNEW: 1\r\n+CSQ: 5,99\r\nrandom words\r\n\r\nOK\r\n"}},
			want:     Reply{Lines: []string{"+CSQ: 5,99"}, Final: "OK"},
			wantURCs: []URC{{Line: "+XNEW: 1"}, {Line: "random words"}},
		},
		{
			name: "bare reply",
			cmd:  Cmd{Line: "AT+CGSN", Bare: true},
			steps: []attest.Step{{Write: "AT+CGSN\r",
				Read: "\r\n+CMTI: \"SM\",1\r\n866425030123456\r\n\r\nOK\r\n"}},
			want:     Reply{Lines: []string{"866425030123456"}, Final: "OK"},
			wantURCs: []URC{{Line: `+CMTI: "SM",1`, Known: true}},
		},
		{
			name: "CMGS prompt and data",
			cmd:  Cmd{Line: "AT+CMGS=14", Data: []byte("000100038100F0000005E8329BFD06\x1a")},
			steps: []attest.Step{
				{Write: "AT+CMGS=14\r", Read: "\r\n> "},
				{Write: "000100038100F0000005E8329BFD06\x1a", Read: "\r\n+CMTI: \"SM\",2\r\n\r\n+CMGS: 7\r\n\r\nOK\r\n"},
			},
			want:     Reply{Lines: []string{"+CMGS: 7"}, Final: "OK"},
			wantURCs: []URC{{Line: `+CMTI: "SM",2`, Known: true}},
		},
		{
			name: "CMGS with echo on",
			cmd:  Cmd{Line: "AT+CMGS=14", Data: []byte("0001\x1a")},
			steps: []attest.Step{
				{Write: "AT+CMGS=14\r", Read: "AT+CMGS=14\r\r\n> "},
				{Write: "0001\x1a", Read: "0001\x1a\r\n+CMGS: 8\r\n\r\nOK\r\n"},
			},
			want: Reply{Lines: []string{"+CMGS: 8"}, Final: "OK"},
		},
		{
			name:    "CMGS refused before the prompt",
			cmd:     Cmd{Line: "AT+CMGS=14", Data: []byte("0001\x1a")},
			steps:   []attest.Step{{Write: "AT+CMGS=14\r", Read: "\r\n+CMS ERROR: 304\r\n"}},
			wantErr: "+CMS ERROR: 304 (invalid PDU mode parameter)",
		},
		{
			name: "u-blox @ prompt and binary data",
			cmd:  Cmd{Line: `AT+USOST=0,"100.64.0.1",6969,4`, Data: []byte("\x00\r\n\"")},
			steps: []attest.Step{
				{Write: "AT+USOST=0,\"100.64.0.1\",6969,4\r", Read: "\r\n@"},
				{Write: "\x00\r\n\"", Read: "\r\n+USOST: 0,4\r\n\r\nOK\r\n"},
			},
			want: Reply{Lines: []string{"+USOST: 0,4"}, Final: "OK"},
		},
		{
			name:    "CMS error with reason",
			cmd:     Cmd{Line: "AT+CMGR=9"},
			steps:   []attest.Step{{Write: "AT+CMGR=9\r", Read: "\r\n+CMS ERROR: 321\r\n"}},
			wantErr: "+CMS ERROR: 321 (invalid memory index)",
		},
		{
			name:    "CME error verbose text",
			cmd:     Cmd{Line: "AT+CPIN?"},
			steps:   []attest.Step{{Write: "AT+CPIN?\r", Read: "\r\n+CME ERROR: SIM busy\r\n"}},
			wantErr: "+CME ERROR: SIM busy",
		},
		{
			name:    "plain ERROR",
			cmd:     Cmd{Line: "AT+FOO"},
			steps:   []attest.Step{{Write: "AT+FOO\r", Read: "\r\nERROR\r\n"}},
			wantErr: "ERROR",
		},
		{
			name: "custom final",
			cmd:  Cmd{Line: `AT+QISEND=0,3,"100.64.0.1",6969`, Data: []byte("abc"), Final: []string{"SEND OK"}, Fail: []string{"SEND FAIL"}},
			steps: []attest.Step{
				{Write: "AT+QISEND=0,3,\"100.64.0.1\",6969\r", Read: "\r\n> "},
				{Write: "abc", Read: "\r\nSEND FAIL\r\n"},
			},
			wantErr: "SEND FAIL",
		},
		{
			name: "QIRD binary payload with CR LF NUL and OK inside",
			cmd:  Cmd{Line: "AT+QIRD=0", Framer: QuectelRead},
			steps: []attest.Step{{Write: "AT+QIRD=0\r",
				Read: "\r\n+QIRD: 8,\"100.64.0.1\",6969\r\n\r\nOK\r\n\x00\xff\r\n\r\nOK\r\n"}},
			want: Reply{Payloads: []Payload{{Head: `+QIRD: 8,"100.64.0.1",6969`, Data: []byte("\r\nOK\r\n\x00\xff")}}, Final: "OK"},
		},
		{
			name:  "QIRD nothing left is a plain line",
			cmd:   Cmd{Line: "AT+QIRD=0", Framer: QuectelRead},
			steps: []attest.Step{{Write: "AT+QIRD=0\r", Read: "\r\n+QIRD: 0\r\n\r\nOK\r\n"}},
			want:  Reply{Lines: []string{"+QIRD: 0"}, Final: "OK"},
		},
		{
			name: "USORF inline data with quotes",
			cmd:  Cmd{Line: "AT+USORF=0,1024", Framer: UbloxReadFrom},
			steps: []attest.Step{{Write: "AT+USORF=0,1024\r",
				Read: "\r\n+USORF: 0,\"100.64.0.1\",6969,5,\"a\",\"\n\"\r\n\r\nOK\r\n"}},
			want: Reply{Payloads: []Payload{{Head: `+USORF: 0,"100.64.0.1",6969,5,"`, Data: []byte("a\",\"\n")}}, Final: "OK"},
		},
		{
			name: "direct push URC with binary payload during a command",
			cmd:  Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{{Write: "AT+CSQ\r",
				Read: "\r\n+QIURC: \"recv\",0,6,\"100.64.0.1\",6969\r\nOK\r\n\x00\x01\r\n+CSQ: 9,99\r\n\r\nOK\r\n"}},
			want:     Reply{Lines: []string{"+CSQ: 9,99"}, Final: "OK"},
			wantURCs: []URC{{Line: `+QIURC: "recv",0,6,"100.64.0.1",6969`, Data: []byte("OK\r\n\x00\x01"), Known: true}},
		},
		{
			name: "SIMCom RECEIVE push",
			cmd:  Cmd{Line: "AT"},
			steps: []attest.Step{{Write: "AT\r",
				Read: "\r\n+RECEIVE,0,3\r\nA\rB\r\nOK\r\n"}},
			want:     Reply{Final: "OK"},
			wantURCs: []URC{{Line: "+RECEIVE,0,3", Data: []byte("A\rB"), Known: true}},
		},
		{
			name: "CMT two-line URC between reply lines",
			cmd:  Cmd{Line: "AT+CSQ"},
			steps: []attest.Step{{Write: "AT+CSQ\r",
				Read: "\r\n+CSQ: 9,99\r\n+CMT: ,24\r\n" + pdu + "\r\n\r\nOK\r\n"}},
			want:     Reply{Lines: []string{"+CSQ: 9,99"}, Final: "OK"},
			wantURCs: []URC{{Line: "+CMT: ,24", Extra: []string{pdu}, Known: true}},
		},
		{
			name: "CPIN reply is the reply",
			cmd:  Cmd{Line: "AT+CPIN?"},
			steps: []attest.Step{{Write: "AT+CPIN?\r",
				Read: "\r\n+CPIN: READY\r\n\r\nOK\r\n"}},
			want: Reply{Lines: []string{"+CPIN: READY"}, Final: "OK"},
		},
	}
	for _, chunk := range []int{0, 1, 3} {
		for _, tt := range tests {
			t.Run(tt.name+"/chunk="+strconv.Itoa(chunk), func(t *testing.T) {
				h := start(t, chunk, tt.steps...)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				got, err := h.eng.Do(ctx, tt.cmd)
				if tt.wantErr != "" {
					if err == nil || err.Error() != tt.wantErr {
						t.Fatalf("Do() error = %v, want %q", err, tt.wantErr)
					}
				} else if err != nil {
					t.Fatalf("Do() error = %v", err)
				}
				if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); tt.wantErr == "" && diff != "" {
					t.Errorf("reply mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantURCs, h.urcsUntilSentinel(t), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("URCs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestErrorTypes(t *testing.T) {
	h := start(t, 0,
		attest.Step{Write: "AT+CMGS=10\r", Read: "\r\n+CMS ERROR: 322\r\n"},
		attest.Step{Write: "AT+CPIN?\r", Read: "\r\n+CME ERROR: 14\r\n"},
	)
	_, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CMGS=10", Data: []byte("x")})
	var cms *CMSError
	if !errors.As(err, &cms) || cms.Code != 322 || cms.Reason() != "memory full" {
		t.Fatalf("err = %#v, want CMSError 322 memory full", err)
	}
	_, err = h.eng.Do(context.Background(), Cmd{Line: "AT+CPIN?"})
	var cme *CMEError
	if !errors.As(err, &cme) || cme.Code != 14 || cme.Reason() != "SIM busy" {
		t.Fatalf("err = %#v, want CMEError 14 SIM busy", err)
	}
	op := &OpError{Op: "read +CMGR=5", Err: &CMSError{Code: 321}}
	if got, want := op.Error(), "read +CMGR=5: +CMS ERROR: 321 (invalid memory index)"; got != want {
		t.Errorf("OpError = %q, want %q", got, want)
	}
	if !errors.As(op, &cms) {
		t.Error("OpError does not unwrap to CMSError")
	}
}

// A command that times out must not leave its late reply to be taken as the
// next command's reply: the engine probes and discards up to the probe's
// own answer.
func TestTimeoutResynchronises(t *testing.T) {
	late := "\r\n+CMGR: 0,,24\r\n" + pdu + "\r\n\r\nOK\r\n"
	h := start(t, 0,
		attest.Step{Write: "AT+CMGR=1\r"}, // the modem says nothing in time
		attest.Step{Write: "AT+CMEE?\r", Read: late + "\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"},
	)
	_, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CMGR=1", Timeout: 20 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("first Do() error = %v, want ErrTimeout", err)
	}
	got, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"})
	if err != nil {
		t.Fatalf("second Do() error = %v", err)
	}
	if diff := cmp.Diff(Reply{Lines: []string{"+CSQ: 20,99"}, Final: "OK"}, got); diff != "" {
		t.Errorf("reply after resync (-want +got):\n%s", diff)
	}
	// The late reply's lines are reported as unknown URCs, never as a reply.
	want := []URC{{Line: "+CMGR: 0,,24"}, {Line: pdu}}
	if diff := cmp.Diff(want, h.urcsUntilSentinel(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("URCs (-want +got):\n%s", diff)
	}
}

func TestCancelResynchronises(t *testing.T) {
	h := start(t, 0, attest.Step{Write: "AT+COPS=0\r"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.eng.Do(ctx, Cmd{Line: "AT+COPS=0"})
		errc <- err
	}()
	h.port.Wait(wait) // the command was written
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do() error = %v, want context.Canceled", err)
	}
	h.port.Append(
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\nOK\r\n\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"},
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatalf("Do(AT) after cancel: %v", err)
	}
}

// A prompt that arrives after its command was abandoned is cancelled with
// ESC, so the modem does not take the next command as message data.
func TestLatePromptGetsEscape(t *testing.T) {
	h := start(t, 0,
		attest.Step{Write: "AT+CMGS=14\r"},
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\n> "},
		attest.Step{Write: "\x1b", Read: "\r\nOK\r\n\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 1,99\r\n\r\nOK\r\n"},
	)
	_, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CMGS=14", Data: []byte("00\x1a"), Timeout: 20 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(CMGS) error = %v, want ErrTimeout", err)
	}
	got, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"+CSQ: 1,99"}, got.Lines); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestProbeFailureKeepsProbing(t *testing.T) {
	h := startConfig(t, Config{ProbeTimeout: 20 * time.Millisecond}, 0,
		attest.Step{Write: "AT\r"},
		attest.Step{Write: "AT+CMEE?\r"}, // the modem stays silent
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT", Timeout: 20 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(AT) error = %v, want ErrTimeout", err)
	}
	_, err := h.eng.Do(context.Background(), Cmd{Line: "AT"})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "resynchronise") {
		t.Fatalf("Do(AT) while silent: %v, want a resynchronise timeout", err)
	}
	h.port.Append(
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"},
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatalf("Do(AT) once the modem answers: %v", err)
	}
}

func TestPortFailureStopsEngine(t *testing.T) {
	h := start(t, 0, attest.Step{Write: "AT\r"})
	errc := make(chan error, 1)
	go func() {
		_, err := h.eng.Do(context.Background(), Cmd{Line: "AT"})
		errc <- err
	}()
	h.port.Wait(wait)
	h.port.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Do() error = %v, want ErrClosed", err)
	}
	<-h.eng.Done()
	if err := h.eng.Err(); err == nil || !strings.Contains(err.Error(), "read from modem") {
		t.Fatalf("Err() = %v, want a read error", err)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do() after stop = %v, want ErrClosed", err)
	}
}

func TestInvalidLine(t *testing.T) {
	h := start(t, 0)
	for _, line := range []string{"", "AT\rAT", "AT\x1a"} {
		if _, err := h.eng.Do(context.Background(), Cmd{Line: line}); err == nil {
			t.Errorf("Do(%q) accepted", line)
		}
	}
}

func TestStaleFinalIgnoredWhenIdle(t *testing.T) {
	h := start(t, 0,
		attest.Step{Read: "\r\nOK\r\n\r\nERROR\r\nAT+CSQ\r\n"},
		attest.Step{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 2,99\r\n\r\nOK\r\n"},
	)
	// Let the stale bytes be read before the command goes out.
	if got := h.urcsUntilSentinel(t); len(got) != 0 {
		t.Errorf("stale finals became URCs: %v", got)
	}
	got, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"})
	if err != nil || len(got.Lines) != 1 || got.Lines[0] != "+CSQ: 2,99" {
		t.Fatalf("Do() = %v, %v", got, err)
	}
}

func TestLastAnswerAndBusy(t *testing.T) {
	h := start(t, 0, attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"})
	if !h.eng.LastAnswer().IsZero() {
		t.Error("LastAnswer set before any answer")
	}
	before := time.Now()
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatal(err)
	}
	if h.eng.LastAnswer().Before(before) {
		t.Errorf("LastAnswer %v before the command was sent (%v)", h.eng.LastAnswer(), before)
	}
	if _, busy := h.eng.Busy(); busy {
		t.Error("Busy after the command ended")
	}
}

func TestDefaultTimeout(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
	}{
		{"AT+CMGS=14", 120 * time.Second},
		{"AT+COPS=0", 180 * time.Second},
		{"AT+COPS?", 5 * time.Second},
		{`AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`, 150 * time.Second},
		{"AT+CFUN=1,1", 15 * time.Second},
		{"AT+CSQ", 5 * time.Second},
	}
	for _, tt := range tests {
		if got := DefaultTimeout(tt.line); got != tt.want {
			t.Errorf("DefaultTimeout(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestDerivePrefix(t *testing.T) {
	tests := map[string]string{
		"AT+CMGR=5": "+CMGR:", "AT+CEREG?": "+CEREG:", "at+csq": "+CSQ:", "ATE0": "", "AT": "",
		"AT+CGSN": "+CGSN:", "ATI": "", "AT$QCSIMSTAT?": "$QCSIMSTAT:",
	}
	for line, want := range tests {
		if got := derivePrefix(line); got != want {
			t.Errorf("derivePrefix(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestEchoesCounted(t *testing.T) {
	h := start(t, 0,
		attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"},
		attest.Step{Write: "AT+CSQ\r", Read: "AT+CSQ\r\r\n+CSQ: 5,99\r\n\r\nOK\r\n"},
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatal(err)
	}
	if n := h.eng.Echoes(); n != 0 {
		t.Fatalf("Echoes() = %d before any echo", n)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"}); err != nil {
		t.Fatal(err)
	}
	if n := h.eng.Echoes(); n != 1 {
		t.Fatalf("Echoes() = %d after one echo, want 1", n)
	}
}

// A reset sent to a module that stopped answering must be written even
// though the resynchronisation probe would never be answered; the engine
// stays out of step and probes before the next command.
func TestSkipSyncWritesAtOnce(t *testing.T) {
	h := startConfig(t, Config{ProbeTimeout: 20 * time.Millisecond}, 0,
		attest.Step{Write: "AT+CSQ\r"}, // silent
		attest.Step{Write: "AT+CFUN=1,1\r", Read: "\r\nOK\r\n"},
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"},
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ", Timeout: 20 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(CSQ) error = %v, want ErrTimeout", err)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CFUN=1,1", SkipSync: true}); err != nil {
		t.Fatalf("Do(CFUN) with SkipSync: %v", err)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatalf("Do(AT) after the reset: %v", err)
	}
}

// A module that announces a boot while a command waits will never answer
// it: the command fails with ErrReset at once, the announcement is still a
// URC, and the next command resynchronises first.
func TestBootAnnouncementInterruptsCommand(t *testing.T) {
	h := start(t, 0,
		attest.Step{Write: "AT+CMGD=3\r", Read: "\r\nRDY\r\n"},
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\n+CMEE: 0\r\n\r\nOK\r\n"},
		attest.Step{Write: "ATE0\r", Read: "ATE0\r\r\nOK\r\n"},
	)
	_, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CMGD=3", Timeout: wait})
	if !errors.Is(err, ErrReset) || !strings.Contains(err.Error(), "AT+CMGD=3") {
		t.Fatalf("Do(CMGD) error = %v, want ErrReset naming the command", err)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "ATE0"}); err != nil {
		t.Fatalf("Do(ATE0) after the boot: %v", err)
	}
	want := []URC{{Line: "RDY", Known: true}}
	if diff := cmp.Diff(want, h.urcsUntilSentinel(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("URCs (-want +got):\n%s", diff)
	}
}

// A boot announcement after the command's final result, in the same read,
// does not take the answer away.
func TestBootAnnouncementAfterFinal(t *testing.T) {
	h := start(t, 0, attest.Step{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 9,99\r\n\r\nOK\r\n\r\nRDY\r\n"})
	got, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"})
	if err != nil {
		t.Fatalf("Do(CSQ): %v", err)
	}
	if diff := cmp.Diff([]string{"+CSQ: 9,99"}, got.Lines); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// delayPort records when the data after a prompt is written, relative to
// when the prompt was handed to the engine.
type delayPort struct {
	*attest.Port
	mu       sync.Mutex
	prompted time.Time
	gap      time.Duration
}

func (p *delayPort) Read(b []byte) (int, error) {
	n, err := p.Port.Read(b)
	if strings.Contains(string(b[:n]), "@") {
		p.mu.Lock()
		p.prompted = time.Now()
		p.mu.Unlock()
	}
	return n, err
}

func (p *delayPort) Write(b []byte) (int, error) {
	if string(b) == "data" {
		p.mu.Lock()
		p.gap = time.Since(p.prompted)
		p.mu.Unlock()
	}
	return p.Port.Write(b)
}

// u-blox wants 50 ms between "@" and the data: PromptDelay holds the data
// back at least that long. (A lower bound only: it asserts no latency.)
func TestPromptDelay(t *testing.T) {
	p := &delayPort{Port: attest.New(t,
		attest.Step{Write: "AT+USOST=0,\"1.2.3.4\",5,4\r", Read: "\r\n@"},
		attest.Step{Write: "data", Read: "\r\n+USOST: 0,4\r\n\r\nOK\r\n"},
	)}
	eng := New(p, Config{})
	t.Cleanup(func() {
		eng.Close()
		p.Close()
	})
	got, err := eng.Do(context.Background(), Cmd{Line: `AT+USOST=0,"1.2.3.4",5,4`, Data: []byte("data"), PromptDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Do(USOST): %v", err)
	}
	if diff := cmp.Diff([]string{"+USOST: 0,4"}, got.Lines); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gap < 50*time.Millisecond {
		t.Errorf("data written %s after the prompt, want at least 50ms", p.gap)
	}
}

// LastRead moves with every byte from the modem, so a session can tell a
// silent line from a busy one.
func TestLastRead(t *testing.T) {
	h := start(t, 0, attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"})
	before := h.eng.LastRead()
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatal(err)
	}
	if after := h.eng.LastRead(); !after.After(before) {
		t.Errorf("LastRead() = %v after an answer, not after %v", after, before)
	}
}

// TestURCQueueBoundedInBytes queues framed 64 KiB URCs that nobody takes,
// as a module pushing data to a reader stuck in a long command does: the
// queue keeps the newest within MaxQueuedURCBytes and counts the rest as
// dropped.
func TestURCQueueBoundedInBytes(t *testing.T) {
	h := startConfig(t, Config{PullURCs: true}, 0)
	data := make([]byte, maxFrame)
	const n = 200
	for i := range n {
		h.eng.queueURCs([]URC{{Line: `+QIURC: "recv",0,65536`, Data: data, Known: true, Extra: []string{strconv.Itoa(i)}}})
	}
	count, size := h.eng.queuedURCs()
	// 1 MiB, written out so that raising the constant fails the test: the
	// daemon's memory target is 20 MB in all.
	if size > 1<<20 || size > MaxQueuedURCBytes {
		t.Errorf("%d URCs of %d bytes wait; want at most 1 MiB", count, size)
	}
	if count == 0 {
		t.Fatal("every URC was dropped; the newest must be kept")
	}
	// The oldest went: what is left is the newest, in order.
	for i := n - count; i < n; i++ {
		u, ok := h.eng.NextURC()
		if !ok || u.Extra[0] != strconv.Itoa(i) {
			t.Fatalf("URC %d: got %v (ok %v)", i, u.Extra, ok)
		}
	}
	if _, ok := h.eng.NextURC(); ok {
		t.Error("more URCs than counted")
	}
	if _, size := h.eng.queuedURCs(); size != 0 {
		t.Errorf("empty queue accounts %d bytes", size)
	}
}

// TestPullURCsBeforeReply checks that with PullURCs every URC that arrived
// before a command's final result can be taken as soon as Do returns.
func TestPullURCsBeforeReply(t *testing.T) {
	port := attest.New(t, attest.Step{Write: "AT+CMGL=4\r", Read: "\r\n+CMTI: \"SM\",3\r\n+CMGL: 1,0,,2\r\nABCD\r\n+CMTI: \"SM\",4\r\n\r\nOK\r\n"})
	eng := New(port, Config{PullURCs: true})
	t.Cleanup(func() {
		eng.Close()
		port.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := eng.Do(ctx, Cmd{Line: "AT+CMGL=4", Trailing: 1}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		u, ok := eng.NextURC()
		if !ok {
			break
		}
		got = append(got, u.Line)
	}
	if diff := cmp.Diff([]string{`+CMTI: "SM",3`, `+CMTI: "SM",4`}, got); diff != "" {
		t.Errorf("URCs waiting after the reply (-want +got):\n%s", diff)
	}
}

// A module that boots while the first command runs, says so in pieces of a
// few bytes and answers ERROR to the resynchronisation probe is in step
// once it has answered: the next command is written and answered, instead
// of every command being replaced by a probe that never succeeds.
func TestProbeAnsweredWithErrorAfterBoot(t *testing.T) {
	for _, chunk := range []int{1, 2, 3} {
		h := startConfig(t, Config{ProbeTimeout: 50 * time.Millisecond}, chunk,
			attest.Step{Write: "AT\r", Read: "\r\nRDY\r\n\r\n+CPIN: READY\r\n"},
			attest.Step{Write: "AT+CMEE?\r", Read: "AT+CMEE?\r\r\nERROR\r\n\r\n+QUSIM: 1\r\n"},
			attest.Step{Write: "ATE0\r", Read: "ATE0\r\r\nOK\r\n"},
			attest.Step{Write: "AT+CMEE=1\r", Read: "\r\nOK\r\n\r\n+QIND: SMS DONE\r\n"},
		)
		if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT", Timeout: wait}); !errors.Is(err, ErrReset) {
			t.Fatalf("chunk %d: Do(AT) error = %v, want ErrReset", chunk, err)
		}
		for _, line := range []string{"ATE0", "AT+CMEE=1"} {
			if _, err := h.eng.Do(context.Background(), Cmd{Line: line}); err != nil {
				t.Fatalf("chunk %d: Do(%s) after the boot: %v", chunk, line, err)
			}
		}
		want := []URC{{Line: "RDY", Known: true}, {Line: "+CPIN: READY", Known: true}, {Line: "+QUSIM: 1", Known: true}, {Line: "+QIND: SMS DONE", Known: true}}
		if diff := cmp.Diff(want, h.urcsUntilSentinel(t), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("chunk %d: URCs (-want +got):\n%s", chunk, diff)
		}
	}
}

// The probe's ERROR follows the late final result of the command that
// timed out: the late one is dropped, the ERROR ends the probe, and the
// next command is written only then, so neither final is taken as its
// answer.
func TestProbeErrorAfterLateFinal(t *testing.T) {
	h := startConfig(t, Config{ProbeTimeout: wait}, 0,
		attest.Step{Write: "AT+CSQ\r"}, // silent in time
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\n+CSQ: 3,99\r\n\r\nOK\r\n"},
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ", Timeout: 20 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(CSQ) error = %v, want ErrTimeout", err)
	}
	type res struct {
		r   Reply
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CGMI", Bare: true})
		done <- res{r, err}
	}()
	h.port.Wait(wait)
	// The late OK has been read: the sentinel behind it arrived. Had the
	// engine taken it for the probe's answer, it would have written
	// AT+CGMI by now, which the script does not allow yet.
	if got := h.urcsUntilSentinel(t); len(got) != 1 || got[0].Line != "+CSQ: 3,99" {
		t.Errorf("URCs before the probe's answer: %v, want the late +CSQ line", got)
	}
	h.port.Append(attest.Step{Write: "AT+CGMI\r", Read: "\r\nQuectel\r\n\r\nOK\r\n"})
	h.port.Send("\r\nERROR\r\n")
	got := <-done
	if got.err != nil {
		t.Fatalf("Do(CGMI) after the probe's ERROR: %v", got.err)
	}
	if diff := cmp.Diff(Reply{Lines: []string{"Quectel"}, Final: "OK"}, got.r); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
}

// A probe answered with nothing at all still fails, and the engine keeps
// probing; the final results it owes are counted, so the silent probe's
// late ERROR, arriving with the next probe's, does not end that one early.
func TestSilentProbesOweTheirFinals(t *testing.T) {
	h := startConfig(t, Config{ProbeTimeout: 20 * time.Millisecond}, 0,
		attest.Step{Write: "AT\r"},       // silent
		attest.Step{Write: "AT+CMEE?\r"}, // silent too
	)
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT", Timeout: 20 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Do(AT) error = %v, want ErrTimeout", err)
	}
	if _, err := h.eng.Do(context.Background(), Cmd{Line: "AT"}); !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "resynchronise") {
		t.Fatalf("Do(AT) while silent: %v, want a resynchronise timeout", err)
	}
	// Both late finals arrive (the first AT's OK, the silent probe's
	// ERROR), then this probe's own ERROR: only the third ends it.
	h.port.Append(
		attest.Step{Write: "AT+CMEE?\r", Read: "\r\nOK\r\n\r\nERROR\r\n\r\nERROR\r\n"},
		attest.Step{Write: "AT+CSQ\r", Read: "\r\n+CSQ: 7,99\r\n\r\nOK\r\n"},
	)
	r, err := h.eng.Do(context.Background(), Cmd{Line: "AT+CSQ"})
	if err != nil || len(r.Lines) != 1 || r.Lines[0] != "+CSQ: 7,99" {
		t.Fatalf("Do(CSQ) once the modem answers = %+v, %v", r, err)
	}
}

// A bare OK is never the probe's own answer, even when no final result is
// owed: AT+CMEE? succeeds with "+CMEE: <n>" first. A late answer the count
// missed is dropped, and the probe ends at its own reply; an error alone
// still ends it (a module that refuses AT+CMEE?).
func TestProbeBareOKIsALeftover(t *testing.T) {
	m := newMachine(DefaultURCs())
	a := m.begin(Cmd{Line: probeLine}, true)
	m.feed([]byte("\r\nOK\r\n"))
	if a.done || !a.staleSeen {
		t.Fatalf("bare OK: done %v, staleSeen %v; want a leftover", a.done, a.staleSeen)
	}
	m.feed([]byte("\r\n+CMEE: 1\r\n\r\nOK\r\n"))
	if !a.done || a.err != nil || len(a.reply.Lines) != 1 || a.reply.Lines[0] != "+CMEE: 1" {
		t.Fatalf("probe's own answer: done %v, err %v, reply %+v", a.done, a.err, a.reply)
	}
	if diff := cmp.Diff([]string{"OK"}, m.stale); diff != "" {
		t.Errorf("leftovers (-want +got):\n%s", diff)
	}

	m = newMachine(DefaultURCs())
	a = m.begin(Cmd{Line: probeLine}, true)
	m.feed([]byte("\r\n+CME ERROR: 3\r\n"))
	if !a.done || a.err == nil {
		t.Fatalf("an error alone: done %v, err %v; want the probe ended by it", a.done, a.err)
	}
}
