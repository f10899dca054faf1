package at

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

type snapshot struct {
	URCs    []URC
	Reply   Reply
	Done    bool
	Err     string
	Write   []byte
	Pending []byte
	// Owed and StaleSeen are the probe's bookkeeping (mode 4).
	Owed      int
	StaleSeen bool
}

func runMachine(mode byte, data []byte, chunk int) snapshot {
	m := newMachine(DefaultURCs())
	var a *active
	switch mode % 5 {
	case 4:
		// A resynchronisation probe after an abandoned command: whether a
		// final result is the leftover or the probe's must not depend on
		// how the bytes were split either.
		m.begin(Cmd{Line: "AT+CSQ"}, false)
		m.abandon()
		a = m.begin(Cmd{Line: probeLine}, true)
	case 1:
		a = m.begin(Cmd{Line: "AT+CMGR=5", Trailing: 1}, false)
	case 2:
		a = m.begin(Cmd{Line: "AT+CMGS=14", Data: []byte("0011\x1a")}, false)
	case 3:
		a = m.begin(Cmd{Line: "AT+QIRD=0", Framer: QuectelRead}, false)
	}
	if chunk <= 0 {
		m.feed(data)
	} else {
		for len(data) > 0 {
			n := min(chunk, len(data))
			m.feed(data[:n])
			data = data[n:]
		}
	}
	s := snapshot{URCs: m.out, Write: m.write, Pending: m.buf, Owed: m.owed}
	if a != nil {
		s.Reply, s.Done, s.StaleSeen = a.reply, a.done, a.staleSeen
		if a.err != nil {
			s.Err = a.err.Error()
		}
	}
	return s
}

// FuzzMachine feeds modem bytes to the line splitter and classifier: it
// must never panic, and how the bytes are split into reads must not change
// a single reply line, URC or byte written.
func FuzzMachine(f *testing.F) {
	seeds := []string{
		"\r\n+CMGR: 0,,24\r\n0791447779070652040C914477\r\n\r\nOK\r\n",
		"\r\n+CMTI: \"SM\",6\r\n+CMGR: 0,,24\r\nABCD\r\n+CEREG: 5\r\nOK\r\n",
		"AT+CMGS=14\r\r\n> \r\n+CMGS: 5\r\n\r\nOK\r\n",
		"\r\n+QIRD: 4,\"1.2.3.4\",5\r\n\r\nOK\r\n\r\nOK\r\n",
		"\r\n+QIURC: \"recv\",0,3,\"1.2.3.4\",5\r\n\x00\r\n\r\n+QIURC: \"closed\",0\r\n",
		"\r\n+USORF: 0,\"1.2.3.4\",5,2,\"\"\"\"\r\nOK\r\n",
		"\r\n+RECEIVE,0,2\r\n\r\n+RECEIVE: 0,1\r\nx",
		"\x00\x00\xff\xfe\r\n+CMT: ,24\r\n0791\r\n+CEREG: 2,5,\"1A\",\"2B\",7\r\n+CME ERROR: 14\r\n",
		"@\r\n> \r\n>\r\n+CMS ERROR: 500\r\n",
		"\r\nRECV FROM:100.64.0.1:6969\r\n+RECEIVE,0,4\r\n\r\nOK\r\n+IPCLOSE: 0,1\r\n",
		"\r\n+QIRD: 3,\"1.2.3.4\",5\r\n\"\r\n\r\n\r\nOK\r\n\r\n+QIRD: 0\r\n\r\nOK\r\n",
		"\r\n+USORF: 0,\"1.2.3.4\",5,3,\"\r\n\"\"\r\nOK\r\n+UUSORF: 0,1300\r\n+UUSOCL: 0\r\n",
		"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\nATE0\r\r\nOK\r\n",
		"\r\nOK\r\n\r\nERROR\r\n",
		"AT+CMEE?\r\r\nERROR\r\n\r\n+CMEE: 1\r\n\r\nOK\r\n",
	}
	for i, s := range seeds {
		f.Add(byte(i), []byte(s), uint8(i%5))
	}
	f.Fuzz(func(t *testing.T, mode byte, data []byte, chunk uint8) {
		if len(data) > 4096 { // larger inputs only slow the search down
			return
		}
		whole := runMachine(mode, data, 0)
		split := runMachine(mode, data, int(chunk%7)+1)
		// reflect.DeepEqual first: cmp's reflection, run on every input,
		// would cost more than the machine itself.
		if !reflect.DeepEqual(whole, split) {
			if diff := cmp.Diff(whole, split, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("split reads changed the outcome (-whole +split):\n%s", diff)
			}
		}
		for _, u := range whole.URCs {
			if u.Known && (u.Line == "OK" || u.Line == "ERROR") {
				t.Fatalf("final result %q reported as a known URC", u.Line)
			}
		}
	})
}

// FuzzFramers checks that no framer panics or frames outside the buffer.
func FuzzFramers(f *testing.F) {
	for _, s := range []string{
		"+QIRD: 5,\"1.2.3.4\",6969\r\nhello",
		"+QIURC: \"recv\",0,5,\"1.2.3.4\",6969\r\n",
		"+USORF: 0,\"1.2.3.4\",6969,5,\"hello\"",
		"+RECEIVE,0,5\r\n",
		"+CARECV: 5,hello",
		"+CARECV: 100.64.0.1,6969,5,hello",
		"+CARECV: 1.2.3.4,1,1300,",
		"+CARECV: 0\r\n",
		"+QIRD: 99999999999999999999\r\n",
		"+USORF: 0,\"a,b\",1,-1,\"",
		"+USORF: 0,\"100.64.0.1\",6969,1024,\"",
		"+RECEIVE: 0,1300\r\n",
		"+QIURC: \"recv\",0\r\n",
	} {
		f.Add([]byte(s))
	}
	framers := map[string]Framer{
		"qird": QuectelRead, "qiurc": QuectelRecvPush, "usorf": UbloxReadFrom,
		"receive": SIMComReceive, "carecv": SIMComCARecv,
		"sim7080": SIM7080Recv,
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		for name, fr := range framers {
			spec, ok, more := fr(buf)
			if ok && more {
				t.Fatalf("%s: ok and more at once", name)
			}
			if ok && (spec.Head <= 0 || spec.Head > len(buf) || spec.Len <= 0 || spec.Len > maxFrame) {
				t.Fatalf("%s: bad frame %+v for %d bytes", name, spec, len(buf))
			}
		}
	})
}

func TestFramers(t *testing.T) {
	tests := []struct {
		name   string
		framer Framer
		buf    string
		want   FrameSpec
		ok     bool
		more   bool
	}{
		{"qird", QuectelRead, "+QIRD: 5,\"1.2.3.4\",6969\r\nhello", FrameSpec{Head: 25, Len: 5}, true, false},
		{"qird zero", QuectelRead, "+QIRD: 0\r\n", FrameSpec{}, false, false},
		{"qird CR pending", QuectelRead, "+QIRD: 5,\"1.2.3.4\",6969\r", FrameSpec{}, false, true},
		{"qird partial prefix", QuectelRead, "+QI", FrameSpec{}, false, true},
		{"other line", QuectelRead, "+CSQ: 1,2\r\n", FrameSpec{}, false, false},
		{"qiurc push", QuectelRecvPush, "+QIURC: \"recv\",0,3\r\n", FrameSpec{Head: 20, Len: 3}, true, false},
		{"qiurc buffer mode", QuectelRecvPush, "+QIURC: \"recv\",0\r\n", FrameSpec{}, false, false},
		{"qiurc closed", QuectelRecvPush, "+QIURC: \"closed\",0\r\n", FrameSpec{}, false, false},
		{"receive comma", SIMComReceive, "+RECEIVE,0,7\r\n", FrameSpec{Head: 14, Len: 7}, true, false},
		{"receive colon", SIMComReceive, "+RECEIVE: 0,7\r\n", FrameSpec{Head: 15, Len: 7}, true, false},
		{"usorf", UbloxReadFrom, "+USORF: 0,\"1.2.3.4\",6969,5,\"hello\"", FrameSpec{Head: 28, Len: 5, Tail: `"`}, true, false},
		{"usorf waiting for quote", UbloxReadFrom, "+USORF: 0,\"1.2.3.4\",6969,5,", FrameSpec{}, false, true},
		{"usorf empty", UbloxReadFrom, "+USORF: 0,0\r\n", FrameSpec{}, false, false},
		{"carecv", SIMComCARecv, "+CARECV: 3,abc", FrameSpec{Head: 11, Len: 3}, true, false},
		{"sim7080 short", SIM7080Recv, "+CARECV: 3,abc", FrameSpec{Head: 11, Len: 3}, true, false},
		{"sim7080 sender", SIM7080Recv, "+CARECV: 100.64.0.1,6969,3,abc", FrameSpec{Head: 27, Len: 3}, true, false},
		{"sim7080 sender pending", SIM7080Recv, "+CARECV: 100.64.0.1,69", FrameSpec{}, false, true},
		{"sim7080 empty", SIM7080Recv, "+CARECV: 0\r\n", FrameSpec{}, false, false},
		{"sim7080 bad length", SIM7080Recv, "+CARECV: 1.2.3.4,1,x,abc", FrameSpec{}, false, false},
		{"huge length", QuectelRead, "+QIRD: 99999999\r\n", FrameSpec{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, more := tt.framer([]byte(tt.buf))
			if ok != tt.ok || more != tt.more {
				t.Fatalf("ok, more = %v, %v; want %v, %v", ok, more, tt.ok, tt.more)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistrationReadForm(t *testing.T) {
	tests := map[string]bool{
		`+CEREG: 2,5,"1A2B","01A2D001",7`: true,
		`+CEREG: 0,1`:                     true,
		`+CEREG: 5,"1A2B","01A2D001",7`:   false,
		`+CEREG: 5`:                       false,
		`+CEREG: 1,,,7`:                   false,
		`+CREG: 1,5`:                      true,
		`+CEREG`:                          false,
	}
	for line, want := range tests {
		if got := RegistrationReadForm(line); got != want {
			t.Errorf("RegistrationReadForm(%q) = %v, want %v", line, got, want)
		}
	}
}

// BenchmarkMachineCMGL measures parsing a 30-entry AT+CMGL answer with URCs
// between its lines, fed in 64-byte reads as a UART delivers it.
func BenchmarkMachineCMGL(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("\r\n")
	for i := range 30 {
		fmt.Fprintf(&sb, "+CMGL: %d,0,,40\r\n07914477790706520411000C914477\r\n", i)
		if i%5 == 0 {
			sb.WriteString("+CEREG: 5\r\n")
		}
	}
	sb.WriteString("\r\nOK\r\n")
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m := newMachine(DefaultURCs())
		a := m.begin(Cmd{Line: "AT+CMGL=4", Trailing: 1}, false)
		for off := 0; off < len(data); off += 64 {
			m.feed(data[off:min(off+64, len(data))])
		}
		if !a.done || len(a.reply.Lines) != 60 {
			b.Fatalf("done=%v lines=%d", a.done, len(a.reply.Lines))
		}
	}
}

// TestMachineLinearScan feeds long lines one byte per read, as a slow UART
// can deliver them: the line-end search must look at each byte a bounded
// number of times, not search the line from its start on every read.
func TestMachineLinearScan(t *testing.T) {
	const n = 16 << 10
	for _, tc := range []struct {
		name string
		line string
	}{
		{"plain line", "+XYZ: " + strings.Repeat("a", n-8) + "\r\n"},
		{"framer prefix", "+QIURC: \"recv\",0," + strings.Repeat("7", n-24) + "\r\n"},
		{"prefix of a reply", "+QIRD: " + strings.Repeat("1", n-9) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(DefaultURCs())
			m.begin(Cmd{Line: "AT+QIRD=0", Framer: QuectelRead}, false)
			data := []byte(tc.line)
			for i := range data {
				m.feed(data[i : i+1])
			}
			if limit := int64(4 * len(data)); m.examined > limit {
				t.Errorf("the line-end search looked at %d bytes for a %d-byte line fed a byte at a time; want at most %d", m.examined, len(data), limit)
			}
			if len(m.buf) != 0 {
				t.Errorf("%d bytes left unparsed", len(m.buf))
			}
		})
	}
}

// BenchmarkMachineLongLine parses a 16 KiB line delivered one byte per
// read.
func BenchmarkMachineLongLine(b *testing.B) {
	data := []byte("+XYZ: " + strings.Repeat("a", 16<<10) + "\r\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m := newMachine(DefaultURCs())
		for i := range data {
			m.feed(data[i : i+1])
		}
	}
}
