package at

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/modem/at/attest"
)

// logBuffer collects JSON log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

type wireRecord struct {
	Msg   string `json:"msg"`
	Dir   string `json:"dir"`
	Len   int    `json:"len"`
	Bytes string `json:"bytes"`
	Hex   string `json:"hex"`
	More  int    `json:"more"`
}

// wire returns the wire log's records, and the bytes they show per
// direction with the escapes undone.
func (l *logBuffer) wire(t *testing.T) (recs []wireRecord, shown map[string]string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	shown = map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r wireRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r.Msg != "wire" {
			continue
		}
		recs = append(recs, r)
		b, err := hex.DecodeString(r.Hex)
		if err != nil {
			t.Fatalf("wire hex %q: %v", r.Hex, err)
		}
		shown[r.Dir] += r.Bytes + string(b)
	}
	return recs, shown
}

func traceEngine(t *testing.T, level slog.Level, chunk int, steps ...attest.Step) (*Engine, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	port := attest.New(t, steps...).Chunk(chunk)
	eng := New(port, Config{
		PullURCs: true,
		Trace:    true,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level})),
	})
	t.Cleanup(func() {
		eng.Close()
		port.Close()
	})
	return eng, logs
}

// At debug level every byte to and from the modem is in the log, in the
// order of each direction.
func TestTraceLogsWire(t *testing.T) {
	eng, logs := traceEngine(t, slog.LevelDebug, 3,
		attest.Step{Write: "AT+CSQ\r", Read: "AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n"},
		attest.Step{Write: "AT+QISEND=0,3\r", Read: "\r\n> "},
		attest.Step{Write: "\x00\xff\r", Read: "\r\nSEND OK\r\n"},
	)
	ctx := context.Background()
	if _, err := eng.Do(ctx, Cmd{Line: "AT+CSQ"}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Do(ctx, Cmd{Line: "AT+QISEND=0,3", Data: []byte("\x00\xff\r"), Final: []string{"SEND OK"}}); err != nil {
		t.Fatal(err)
	}
	recs, shown := logs.wire(t)
	want := map[string]string{
		"write": "AT+CSQ\rAT+QISEND=0,3\r\x00\xff\r",
		"read":  "AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n\r\n> \r\nSEND OK\r\n",
	}
	if diff := cmp.Diff(want, shown); diff != "" {
		t.Errorf("wire log (-want +got):\n%s", diff)
	}
	binary := false
	for _, r := range recs {
		if r.Dir == "read" && r.Len > 3 {
			t.Errorf("a read of %d bytes logged; the port returns at most 3", r.Len)
		}
		binary = binary || r.Hex == "00ff0d"
	}
	if !binary {
		t.Errorf("the data written, not UTF-8, was not logged as hex: %+v", recs)
	}
}

// Without debug level there is no wire log at all.
func TestTraceOffBelowDebug(t *testing.T) {
	eng, logs := traceEngine(t, slog.LevelInfo, 0, attest.Step{Write: "AT\r", Read: "\r\nOK\r\n"})
	if _, err := eng.Do(context.Background(), Cmd{Line: "AT"}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := logs.wire(t); len(recs) != 0 {
		t.Errorf("wire logged at info level: %+v", recs)
	}
}

// A PIN is neither logged as written nor as the modem echoes it back in
// pieces; a long payload is shortened to one bounded line.
func TestTraceRedactsAndBounds(t *testing.T) {
	payload := strings.Repeat("\x01", 2000)
	eng, logs := traceEngine(t, slog.LevelDebug, 2,
		attest.Step{Write: "AT+CPIN=\"4711\"\r", Read: "AT+CPIN=\"4711\"\r\r\nOK\r\n"},
		attest.Step{Write: "AT+QISEND=0,2000\r", Read: "\r\n> "},
		attest.Step{Write: payload, Read: "\r\nSEND OK\r\n"},
	)
	ctx := context.Background()
	if _, err := eng.Do(ctx, Cmd{Line: `AT+CPIN="4711"`}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Do(ctx, Cmd{Line: "AT+QISEND=0,2000", Data: []byte(payload), Final: []string{"SEND OK"}}); err != nil {
		t.Fatal(err)
	}
	recs, shown := logs.wire(t)
	if !strings.HasPrefix(shown["read"], "AT+CPIN=\"***\"\r\r\nOK") || strings.ContainsAny(shown["read"], "0123456789") {
		t.Errorf("echo logged as %q, want the PIN as *** and no digit of it", shown["read"])
	}
	if !strings.HasPrefix(shown["write"], "AT+CPIN=\"***\"\r") || strings.Contains(shown["write"], "4711") {
		t.Errorf("command logged as %q, want the PIN as ***", shown["write"])
	}
	for _, r := range recs {
		if len(r.Bytes) > traceShown || len(r.Hex) > 2*traceShown {
			t.Errorf("a %d-byte %s logged as %d bytes, %d hex digits", r.Len, r.Dir, len(r.Bytes), len(r.Hex))
		}
		if r.Len == len(payload) && (r.Bytes != payload[:traceShown] || r.More != len(payload)-traceShown) {
			t.Errorf("payload logged as %q and %d more, want it shortened to %d bytes", r.Bytes, r.More, traceShown)
		}
	}
}

func TestRedactLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{`AT+CPIN="1234"`, `AT+CPIN="***"`},
		{`at+cpin=1234,5678`, `at+cpin=***,***`},
		{`AT+CPIN?`, `AT+CPIN?`},
		{`+CPIN: READY`, `+CPIN: READY`},
		{`AT+CGAUTH=1,1,"user","secret"`, `AT+CGAUTH=1,1,"***","***"`},
		{`AT+QICSGP=1,1,"super","me","pw",1`, `AT+QICSGP=1,1,"super","***","***",1`},
		{`AT+QICSGP=1,1,"super","","",1`, `AT+QICSGP=1,1,"super","","",1`},
		{`AT+CNCFG=0,1,"super","u,v","p",2`, `AT+CNCFG=0,1,"super","***","***",2`},
		{`AT+UPSD=0,1,"super"`, `AT+UPSD=0,1,"super"`},
		{`AT+UPSD=0,2,"user"`, `AT+UPSD=0,2,"***"`},
		{`AT+UPSD=0,3,"pw"`, `AT+UPSD=0,3,"***"`},
		{`AT+UPSD=0,100,1`, `AT+UPSD=0,100,1`},
		{`AT+CLCK="SC",1,"1234"`, `AT+CLCK="SC",1,"***"`},
		{`ATE0;+CPIN=1234`, `ATE0;+CPIN=***`},
		{"AT+CPIN=12\r\nAT+CSQ=34", "AT+CPIN=***\r\nAT+CSQ=34"},
		{`AT+CSQ`, `AT+CSQ`},
	}
	for _, tt := range tests {
		if got := redactLine(tt.in); got != tt.want {
			t.Errorf("redactLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedact checks that redaction does not depend on how the bytes are
// split into reads, and changes nothing in bytes without a secret-bearing
// command.
func FuzzRedact(f *testing.F) {
	f.Add([]byte("AT+CPIN=\"1234\"\r\r\nOK\r\n"), uint8(3))
	f.Add([]byte("AT+UPSD=0,3,\"pw\"\rAT+QICSGP=1,1,\"a\",\"b\",\"c\"\r"), uint8(1))
	f.Add([]byte("\r\n+CSQ: 17,99\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		var whole redactor
		want := whole.redact(nil, b)
		var pieces redactor
		var got []byte
		n := max(int(chunk), 1)
		for i := 0; i < len(b); i += n {
			got = pieces.redact(got, b[i:min(i+n, len(b))])
		}
		if !bytes.Equal(want, got) {
			t.Fatalf("redact(%q) = %q whole, %q in pieces of %d", b, want, got, n)
		}
		if !bytes.Contains(b, []byte("=")) && !bytes.Equal(want, b) {
			t.Fatalf("redact(%q) = %q without any command", b, want)
		}
		if ref := redactByByte(b); !bytes.Equal(want, ref) {
			t.Fatalf("redact(%q) = %q, byte by byte %q", b, want, ref)
		}
	})
}

// redactByByte is redaction written plainly, one byte at a time, for
// FuzzRedact to hold redactor's faster copy to.
func redactByByte(b []byte) []byte {
	var (
		out, win, second []byte
		rule             *secretRule
		field            int
		inQuote, hidden  bool
	)
	for _, c := range b {
		switch {
		case c == '\r' || c == '\n' || c == 0x1a || c == 0x1b:
			win, rule, field, inQuote, second, hidden = nil, nil, 0, false, nil, false
			out = append(out, c)
		case rule == nil:
			out = append(out, c)
			u := c
			if 'a' <= u && u <= 'z' {
				u -= 'a' - 'A'
			}
			win = append(win, u)
			if c != '=' {
				continue
			}
			for i := range secretRules {
				if cmd := secretRules[i].cmd; strings.HasSuffix(string(win), cmd) {
					rule, win = &secretRules[i], nil
					break
				}
			}
		case c == '"':
			inQuote = !inQuote
			out = append(out, c)
		case c == ',' && !inQuote:
			field++
			hidden = false
			out = append(out, c)
		default:
			if field == 1 && len(second) < 8 {
				second = append(second, c)
			}
			if !rule.secret(field, string(second)) {
				out = append(out, c)
			} else if !hidden {
				hidden = true
				out = append(out, "***"...)
			}
		}
	}
	return out
}

// BenchmarkWireLogRead logs 4 KiB reads of a socket payload, the most the
// engine reads at once, at debug level to a discarding handler.
func BenchmarkWireLogRead(b *testing.B) {
	w := &wireLog{log: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	buf := bytes.Repeat([]byte("\x00\x01payload=,\"x\"\xff"), 4096/16)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		w.Printf(traceRead, buf)
	}
}
