package modemsim

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const cloud = "100.64.0.1:6969"

// binary is a payload that breaks any line-based reader: every byte value,
// with CRLF, NUL, quotes, Ctrl-Z and ESC among them.
func binaryPayload() []byte {
	b := []byte("\r\nOK\r\n\"\x00\x1a\x1b")
	return append(b, allBytes()...)
}

func TestQuectelBufferMode(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CMEE=1", `AT+QICSGP=1,1,"super","","",1`)
	if diff := cmp.Diff("\r\n+QICSGP: 1,\"super\",\"\",\"\",1\r\n\r\nOK\r\n", e.at("AT+QICSGP=1")); diff != "" {
		t.Errorf("QICSGP read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QIOPEN: 0,561\r\n", e.at(`AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`)[6:]); diff != "" {
		t.Errorf("open without data session (-want +got):\n%s", diff)
	}
	e.quiet("AT+QIACT=1")
	if diff := cmp.Diff("\r\nERROR\r\n", e.at("AT+QIACT=1")); diff != "" {
		t.Errorf("activating an active context (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QIACT: 1,1,1,\"10.64.12.34\"\r\n\r\nOK\r\n", e.at("AT+QIACT?")); diff != "" {
		t.Errorf("QIACT? (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n", e.at(`AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`)); diff != "" {
		t.Errorf("QIOPEN (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nOK\r\n\r\n+QIOPEN: 0,563\r\n", e.at(`AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6970,0`)); diff != "" {
		t.Errorf("QIOPEN id in use (-want +got):\n%s", diff)
	}
	p := binaryPayload()
	if err := e.sim.InjectUDP(cloud, 6969, p); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.InjectUDP("100.64.0.2:1234", 6969, []byte("second")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("\r\n+QIURC: \"recv\",0\r\n", e.out.take()); diff != "" {
		t.Errorf("one URC until drained (-want +got):\n%s", diff)
	}
	want := fmt.Sprintf("\r\n+QIRD: %d,\"100.64.0.1\",6969\r\n%s\r\n\r\nOK\r\n", len(p), p)
	if diff := cmp.Diff(want, e.at("AT+QIRD=0,1500")); diff != "" {
		t.Errorf("first read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QIRD: 6,\"100.64.0.2\",1234\r\nsecond\r\n\r\nOK\r\n", e.at("AT+QIRD=0")); diff != "" {
		t.Errorf("second read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QIRD: 0\r\n\r\nOK\r\n", e.at("AT+QIRD=0,1500")); diff != "" {
		t.Errorf("drained (-want +got):\n%s", diff)
	}
	if err := e.sim.InjectUDP(cloud, 6969, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("\r\n+QIURC: \"recv\",0\r\n", e.out.take()); diff != "" {
		t.Errorf("URC again after drain (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QIRD: 1,0,1\r\n\r\nOK\r\n", e.at("AT+QIRD=0,0")); diff != "" {
		t.Errorf("QIRD=0,0 (-want +got):\n%s", diff)
	}

	// Send: "> ", exactly n raw bytes, SEND OK.
	if diff := cmp.Diff("\r\n> ", e.at(fmt.Sprintf(`AT+QISEND=0,%d,"100.64.0.1",6969`, len(p)))); diff != "" {
		t.Fatalf("QISEND prompt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nSEND OK\r\n", e.in(string(p))); diff != "" {
		t.Errorf("SEND OK (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fmt.Sprintf("\r\n+QISEND: %d,%d,0\r\n\r\nOK\r\n", len(p), len(p)), e.at("AT+QISEND=0,0")); diff != "" {
		t.Errorf("QISEND=0,0 (-want +got):\n%s", diff)
	}
	want2 := []SentUDP{{Socket: 0, Port: 6969, To: cloud, Data: p}}
	if diff := cmp.Diff(want2, e.sim.State().SentUDP); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+QISTATE: 0,\"UDP SERVICE\",\"127.0.0.1\",0,6969,2,1,0,0,\"usbat\"\r\n\r\nOK\r\n", e.at("AT+QISTATE?")); diff != "" {
		t.Errorf("QISTATE (-want +got):\n%s", diff)
	}

	// The network closes the socket: URC, no delivery, host must QICLOSE.
	e.sim.CloseSocket(0)
	if diff := cmp.Diff("\r\n+QIURC: \"closed\",0\r\n", e.out.take()); diff != "" {
		t.Errorf("closed URC (-want +got):\n%s", diff)
	}
	if err := e.sim.InjectUDP(cloud, 6969, []byte("x")); !errors.Is(err, ErrNoSocket) {
		t.Errorf("inject on closed socket: %v", err)
	}
	if diff := cmp.Diff("\r\nERROR\r\n", e.at(`AT+QISEND=0,1,"100.64.0.1",6969`)); diff != "" {
		t.Errorf("send on closed socket (-want +got):\n%s", diff)
	}
	e.quiet("AT+QICLOSE=0")
	if n := len(e.sim.State().Sockets); n != 0 {
		t.Errorf("%d sockets after QICLOSE", n)
	}

	// The data session drops: pdpdeact, sockets stay until closed.
	e.at(`AT+QIOPEN=1,1,"UDP SERVICE","127.0.0.1",0,6969,0`)
	e.sim.DropData()
	if diff := cmp.Diff("\r\n+QIURC: \"pdpdeact\",1\r\n", e.out.take()); diff != "" {
		t.Errorf("pdpdeact (-want +got):\n%s", diff)
	}
	if got := e.at("AT+QIACT?"); got != "\r\nOK\r\n" {
		t.Errorf("QIACT? after drop: %q", got)
	}
	if err := e.sim.InjectUDP(cloud, 6969, []byte("x")); err == nil {
		t.Error("inject with data session down accepted")
	}
}

func TestQuectelPushModeAndDataEcho(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("AT+QIACT=1")
	e.at(`AT+QIOPEN=1,2,"UDP SERVICE","127.0.0.1",0,7000,1`)
	p := binaryPayload()
	if err := e.sim.InjectUDP(cloud, 7000, p); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("\r\n+QIURC: \"recv\",2,%d,\"100.64.0.1\",6969\r\n%s\r\n", len(p), p)
	if diff := cmp.Diff(want, e.out.take()); diff != "" {
		t.Errorf("push (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nERROR\r\n", e.at("AT+QIRD=2")[len("AT+QIRD=2\r"):]); diff != "" {
		t.Errorf("QIRD in push mode (-want +got):\n%s", diff)
	}
	// Echo on and QISDE=1 (the default): the data is echoed too.
	cmd := `AT+QISEND=2,4,"1.2.3.4",5`
	if diff := cmp.Diff(cmd+"\r\r\n> ", e.at(cmd)); diff != "" {
		t.Errorf("prompt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("a\r\nb\r\nSEND OK\r\n", e.in("a\r\nb")); diff != "" {
		t.Errorf("echoed data (-want +got):\n%s", diff)
	}
	e.quiet("AT+QISDE=0")
	e.at(cmd)
	if diff := cmp.Diff("\r\nSEND OK\r\n", e.in("wxyz")); diff != "" {
		t.Errorf("QISDE=0 (-want +got):\n%s", diff)
	}
	e.sim.SetFaults(Faults{SocketSendFail: true})
	e.at(cmd)
	if diff := cmp.Diff("\r\nSEND FAIL\r\n", e.in("wxyz")); diff != "" {
		t.Errorf("send fault (-want +got):\n%s", diff)
	}
	if n := len(e.sim.State().SentUDP); n != 2 {
		t.Errorf("%d datagrams sent, want 2", n)
	}
}

func TestSIMComSockets(t *testing.T) {
	for _, colon := range []bool{false, true} {
		t.Run(fmt.Sprintf("colon=%v", colon), func(t *testing.T) {
			e := newEngine(t, Options{Profile: "simcom", ReceiveColon: colon})
			e.quiet("ATE0")
			if diff := cmp.Diff("\r\n+CIPOPEN: 0,2\r\n\r\nERROR\r\n", e.at(`AT+CIPOPEN=0,"UDP",,,6969`)); diff != "" {
				t.Errorf("open before NETOPEN (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\nOK\r\n\r\n+NETOPEN: 0\r\n", e.at("AT+NETOPEN")); diff != "" {
				t.Errorf("NETOPEN (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n+IP ERROR: Network is already opened\r\n\r\nERROR\r\n", e.at("AT+NETOPEN")); diff != "" {
				t.Errorf("NETOPEN twice (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n+CIPOPEN: 0,0\r\n\r\nOK\r\n", e.at(`AT+CIPOPEN=0,"UDP",,,6969`)); diff != "" {
				t.Errorf("CIPOPEN (-want +got):\n%s", diff)
			}
			p := binaryPayload()
			if err := e.sim.InjectUDP(cloud, 6969, p); err != nil {
				t.Fatal(err)
			}
			sep := ","
			if colon {
				sep = ": "
			}
			want := fmt.Sprintf("\r\nRECV FROM:100.64.0.1:6969\r\n+RECEIVE%s0,%d\r\n%s", sep, len(p), p)
			if diff := cmp.Diff(want, e.out.take()); diff != "" {
				t.Errorf("receive (-want +got):\n%s", diff)
			}
			e.quiet("AT+CIPSRIP=0")
			if err := e.sim.InjectUDP(cloud, 6969, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("\r\n+RECEIVE"+sep+"0,2\r\nhi", e.out.take()); diff != "" {
				t.Errorf("receive without source (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n>", e.at(fmt.Sprintf(`AT+CIPSEND=0,%d,"100.64.0.1",6969`, len(p)))); diff != "" {
				t.Fatalf("prompt (-want +got):\n%s", diff)
			}
			want = fmt.Sprintf("\r\nOK\r\n\r\n+CIPSEND: 0,%d,%d\r\n", len(p), len(p))
			if diff := cmp.Diff(want, e.in(string(p))); diff != "" {
				t.Errorf("send (-want +got):\n%s", diff)
			}
			e.sim.CloseSocket(0)
			if diff := cmp.Diff("\r\n+IPCLOSE: 0,1\r\n", e.out.take()); diff != "" {
				t.Errorf("IPCLOSE (-want +got):\n%s", diff)
			}
			e.at(`AT+CIPOPEN=1,"UDP",,,6969`)
			e.sim.DropData()
			if diff := cmp.Diff("\r\n+IPCLOSE: 1,1\r\n\r\n+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY\r\n", e.out.take()); diff != "" {
				t.Errorf("drop (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff("\r\n+NETOPEN: 0\r\n\r\nOK\r\n", e.at("AT+NETOPEN?")); diff != "" {
				t.Errorf("NETOPEN? (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]SentUDP{{Socket: 0, Port: 6969, To: cloud, Data: p}}, e.sim.State().SentUDP); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUbloxSockets(t *testing.T) {
	e := newEngine(t, Options{Profile: "ublox"})
	e.quiet("ATE0", "AT+CMEE=1")
	if !e.sim.State().DataUp {
		t.Fatal("SARA-R4 default bearer not up after registration")
	}
	if diff := cmp.Diff("\r\n+USOCR: 0\r\n\r\nOK\r\n", e.at("AT+USOCR=17,6969")); diff != "" {
		t.Errorf("USOCR (-want +got):\n%s", diff)
	}
	p := binaryPayload()
	if err := e.sim.InjectUDP(cloud, 6969, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fmt.Sprintf("\r\n+UUSORF: 0,%d\r\n", len(p)), e.out.take()); diff != "" {
		t.Errorf("UUSORF (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fmt.Sprintf("\r\n+USORF: 0,%d\r\n\r\nOK\r\n", len(p)), e.at("AT+USORF=0,0")); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	want := fmt.Sprintf("\r\n+USORF: 0,\"100.64.0.1\",6969,%d,\"%s\"\r\n\r\nOK\r\n", len(p), p)
	if diff := cmp.Diff(want, e.at("AT+USORF=0,1024")); diff != "" {
		t.Errorf("USORF (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+USORF: 0,0\r\n\r\nOK\r\n", e.at("AT+USORF=0,1024")); diff != "" {
		t.Errorf("USORF empty (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n@", e.at(fmt.Sprintf(`AT+USOST=0,"100.64.0.1",6969,%d`, len(p)))); diff != "" {
		t.Fatalf("prompt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(fmt.Sprintf("\r\n+USOST: 0,%d\r\n\r\nOK\r\n", len(p)), e.in(string(p))); diff != "" {
		t.Errorf("USOST (-want +got):\n%s", diff)
	}
	// Hex mode: data inline in both directions.
	e.quiet("AT+UDCONF=1,1")
	if diff := cmp.Diff("\r\n+USOST: 0,3\r\n\r\nOK\r\n", e.at(`AT+USOST=0,"100.64.0.1",6969,3,"00FF0D"`)); diff != "" {
		t.Errorf("USOST hex (-want +got):\n%s", diff)
	}
	if err := e.sim.InjectUDP(cloud, 6969, []byte{0, '"', 0xff}); err != nil {
		t.Fatal(err)
	}
	e.out.take()
	if diff := cmp.Diff("\r\n+USORF: 0,\"100.64.0.1\",6969,3,\"0022FF\"\r\n\r\nOK\r\n", e.at("AT+USORF=0,512")); diff != "" {
		t.Errorf("USORF hex (-want +got):\n%s", diff)
	}
	sent := e.sim.State().SentUDP
	if len(sent) != 2 || string(sent[0].Data) != string(p) || string(sent[1].Data) != "\x00\xff\r" {
		t.Errorf("sent %+v", sent)
	}
	e.sim.CloseSocket(0)
	if diff := cmp.Diff("\r\n+UUSOCL: 0\r\n", e.out.take()); diff != "" {
		t.Errorf("UUSOCL (-want +got):\n%s", diff)
	}
	e.at("AT+USOCR=17,6969")
	e.sim.DropData()
	if diff := cmp.Diff("\r\n+UUSOCL: 0\r\n", e.out.take()); diff != "" {
		t.Errorf("drop (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CME ERROR: 3\r\n", e.at("AT+USOCR=17,6969")); diff != "" {
		t.Errorf("USOCR without bearer (-want +got):\n%s", diff)
	}
	e.quiet("AT+CGACT=1,1")
	if diff := cmp.Diff("\r\n+USOCR: 0\r\n\r\nOK\r\n", e.at("AT+USOCR=17,6969")); diff != "" {
		t.Errorf("USOCR after CGACT (-want +got):\n%s", diff)
	}
}

func TestGenericHasNoSockets(t *testing.T) {
	e := newEngine(t, Options{Profile: "generic"})
	e.quiet("ATE0", "AT+CGACT=1,1")
	if err := e.sim.InjectUDP(cloud, 6969, []byte("x")); !errors.Is(err, ErrNoSocket) {
		t.Errorf("inject: %v", err)
	}
	if err := e.sim.InjectUDP("not an address", 6969, []byte("x")); err == nil {
		t.Error("bad source accepted")
	}
	if err := e.sim.InjectUDP(cloud, 6969, make([]byte, 1501)); err == nil {
		t.Error("1501 bytes accepted")
	}
}

// TestQuectelUDPClient covers the "UDP" service type: a fixed remote, sends
// without an address, fixed and Ctrl-Z terminated lengths.
func TestQuectelUDPClient(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+QIACT=1")
	if diff := cmp.Diff("\r\nOK\r\n\r\n+QIOPEN: 3,0\r\n", e.at(`AT+QIOPEN=1,3,"UDP","100.64.0.1",6969,0,0`)); diff != "" {
		t.Errorf("open (-want +got):\n%s", diff)
	}
	want := "\r\n+QISTATE: 3,\"UDP\",\"100.64.0.1\",6969,49155,2,1,3,0,\"usbat\"\r\n\r\nOK\r\n"
	if diff := cmp.Diff(want, e.at("AT+QISTATE=1,3")); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	e.at("AT+QISEND=3,3")
	if diff := cmp.Diff("\r\nSEND OK\r\n", e.in("a\x00b")); diff != "" {
		t.Errorf("fixed length (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n> ", e.at("AT+QISEND=3")); diff != "" {
		t.Errorf("variable prompt (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nSEND OK\r\n", e.in("text\x1a")); diff != "" {
		t.Errorf("variable length (-want +got):\n%s", diff)
	}
	e.at("AT+QISEND=3")
	if diff := cmp.Diff("\r\nOK\r\n", e.in("never\x1b")); diff != "" {
		t.Errorf("ESC (-want +got):\n%s", diff)
	}
	want2 := []SentUDP{{Socket: 3, Port: 49155, To: cloud, Data: []byte("a\x00b")}, {Socket: 3, Port: 49155, To: cloud, Data: []byte("text")}}
	if diff := cmp.Diff(want2, e.sim.State().SentUDP); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if err := e.sim.InjectUDP(cloud, 49155, []byte("back")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("\r\n+QIURC: \"recv\",3\r\n", e.out.take()); diff != "" {
		t.Errorf("recv (-want +got):\n%s", diff)
	}
}
