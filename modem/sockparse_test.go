package modem

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/modem/at"
)

var src = netip.MustParseAddrPort("100.64.0.1:6969")

func TestParseQIURC(t *testing.T) {
	tests := []struct {
		line    string
		want    qiurc
		wantErr string
	}{
		{`+QIURC: "recv",0`, qiurc{Kind: "recv", ID: 0, Len: -1}, ""},
		{`+QIURC: "recv",3,5,"100.64.0.1",6969`, qiurc{Kind: "recv", ID: 3, Len: 5, From: src}, ""},
		{`+QIURC: "recv",0,0`, qiurc{Kind: "recv", ID: 0, Len: 0}, ""},
		{`+QIURC: "closed",2`, qiurc{Kind: "closed", ID: 2, Len: -1}, ""},
		{`+QIURC: "pdpdeact",1`, qiurc{Kind: "pdpdeact", ID: 1, Len: -1}, ""},
		{`+QIURC: "incoming full"`, qiurc{Kind: "incoming full", ID: -1, Len: -1}, ""},
		{`+QIURC: "recv",x`, qiurc{}, "not a number"},
		{`+QIURC: "recv",0,-4,"1.2.3.4",5`, qiurc{}, "bad length"},
		{`+QIURC: "recv",0,4,"1.2.3",5`, qiurc{}, "address"},
		{`+QIURC: "recv",0,4,"1.2.3.4",70000`, qiurc{}, "not a port number"},
	}
	for _, tt := range tests {
		got, err := parseQIURC(tt.line)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseQIURC(%q) error = %v, want %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseQIURC(%q): %v", tt.line, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("parseQIURC(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
}

// head is what the socket head parsers return, for table tests.
type head struct {
	ID, N int
	From  string
}

func addrStr(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func headQIRD(l string) (head, error) {
	n, f, err := parseQIRD(l)
	return head{N: n, From: addrStr(f)}, err
}

func headRecvFrom(l string) (head, error) {
	f, err := parseRecvFrom(l)
	return head{From: addrStr(f)}, err
}

func headReceive(l string) (head, error) {
	id, n, err := parseReceive(l)
	return head{ID: id, N: n}, err
}

func headUUSORF(l string) (head, error) {
	id, n, err := parseUUSORF(l)
	return head{ID: id, N: n}, err
}

func headUSORF(l string) (head, error) {
	id, f, n, err := parseUSORF(l)
	return head{ID: id, N: n, From: addrStr(f)}, err
}

func headID(prefix string) func(string) (head, error) {
	return func(l string) (head, error) {
		id, err := parseIDLine(l, prefix)
		return head{ID: id}, err
	}
}

func headOpen(prefix string) func(string) (head, error) {
	return func(l string) (head, error) {
		id, code, err := parseOpenResult(l, prefix)
		return head{ID: id, N: code}, err
	}
}

func TestSocketHeads(t *testing.T) {
	tests := []struct {
		name    string
		parse   func(string) (head, error)
		line    string
		want    head
		wantErr string
	}{
		{"qird", headQIRD, `+QIRD: 5,"100.64.0.1",6969`, head{N: 5, From: "100.64.0.1:6969"}, ""},
		{"qird empty", headQIRD, `+QIRD: 0`, head{}, ""},
		{"qird ipv6", headQIRD, `+QIRD: 2,"2001:db8::1",53`, head{N: 2, From: "[2001:db8::1]:53"}, ""},
		{"qird no sender", headQIRD, `+QIRD: 5`, head{}, "no sender"},
		{"recv from", headRecvFrom, `RECV FROM:100.64.0.1:6969`, head{From: "100.64.0.1:6969"}, ""},
		{"recv from ipv6", headRecvFrom, `RECV FROM:2001:db8::1:6969`, head{From: "[2001:db8::1]:6969"}, ""},
		{"recv from no port", headRecvFrom, `RECV FROM:100.64.0.1`, head{}, "no port"},
		{"receive comma", headReceive, `+RECEIVE,1,1300`, head{ID: 1, N: 1300}, ""},
		{"receive colon", headReceive, `+RECEIVE: 0,5`, head{ID: 0, N: 5}, ""},
		{"receive short", headReceive, `+RECEIVE,0`, head{}, "want <id>,<len>"},
		{"uusorf", headUUSORF, `+UUSORF: 2,1300`, head{ID: 2, N: 1300}, ""},
		{"usorf query", headUUSORF, `+USORF: 0,12`, head{ID: 0, N: 12}, ""},
		{"uusorf negative", headUUSORF, `+UUSORF: 0,-1`, head{}, "negative"},
		{"usorf head", headUSORF, `+USORF: 1,"100.64.0.1",6969,5,"`, head{ID: 1, N: 5, From: "100.64.0.1:6969"}, ""},
		{"usorf head short", headUSORF, `+USORF: 1,5`, head{}, "want 4 fields"},
		{"usocr", headID("+USOCR:"), `+USOCR: 3`, head{ID: 3}, ""},
		{"uusocl bad", headID("+UUSOCL:"), `+UUSOCL: -1`, head{}, "negative"},
		{"qiopen", headOpen("+QIOPEN:"), `+QIOPEN: 0,563`, head{ID: 0, N: 563}, ""},
		{"netopen", headOpen("+NETOPEN:"), `+NETOPEN: 0`, head{ID: -1, N: 0}, ""},
		{"cipopen read form", headOpen("+CIPOPEN:"), `+CIPOPEN: 0,"UDP",,,6969`, head{}, "want 1 or 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSocketStateReads(t *testing.T) {
	qiact := []string{`+QIACT: 2,1,1,"10.0.0.9"`, `+QIACT: 1,1,1,"10.64.12.34"`}
	if up, ip := parseQIACT(qiact, 1); !up || ip != "10.64.12.34" {
		t.Errorf("parseQIACT = %v, %q", up, ip)
	}
	if up, _ := parseQIACT([]string{`+QIACT: 1,0,1,"0.0.0.0"`}, 1); up {
		t.Error("parseQIACT: context in state 0 reported active")
	}
	qistate := []string{`+QISTATE: 0,"UDP SERVICE","127.0.0.1",0,6969,2,1,0,0,"usbat"`}
	if !parseQISTATE(qistate, 0, 6969, 0) {
		t.Error("parseQISTATE: open buffer-mode socket not recognised")
	}
	for _, c := range []struct{ id, port, mode int }{{1, 6969, 0}, {0, 7000, 0}, {0, 6969, 1}} {
		if parseQISTATE(qistate, c.id, c.port, c.mode) {
			t.Errorf("parseQISTATE(%+v) matched a different socket", c)
		}
	}
	if parseQISTATE([]string{`+QISTATE: 0,"UDP SERVICE","127.0.0.1",0,6969,4,1,0,0,"usbat"`}, 0, 6969, 0) {
		t.Error("parseQISTATE: a closing socket (state 4) counted as open")
	}
	if !parseCGACT([]string{"+CGACT: 1,1"}, 1) || parseCGACT([]string{"+CGACT: 1,0"}, 1) || parseCGACT([]string{"+CGACT: 2,1"}, 1) {
		t.Error("parseCGACT")
	}
	if apn, ok := parseCGDCONT([]string{`+CGDCONT: 1,"IP","super","0.0.0.0",0,0`}, 1); !ok || apn != "super" {
		t.Errorf("parseCGDCONT = %q, %v", apn, ok)
	}
	if !parseCIPOPENRead([]string{`+CIPOPEN: 0,"UDP",,,6969`, "+CIPOPEN: 1"}, 0, 6969) || parseCIPOPENRead([]string{"+CIPOPEN: 0"}, 0, 6969) {
		t.Error("parseCIPOPENRead")
	}
	for line, want := range map[string]string{
		"+IPADDR: 10.64.12.34":       "10.64.12.34",
		`+CGPADDR: 1,"10.64.12.35"`:  "10.64.12.35",
		`+CGPADDR: 1,"0.0.0.0"`:      "",
		`+CGPADDR: 1,"2001:db8::5"`:  "2001:db8::5",
		"+IPADDR: Network not ready": "error",
	} {
		got, err := parseAddrLine(line)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("parseAddrLine(%q) = %q, want %q", line, got, want)
		}
	}
}

// The families read URCs into events; a URC of another family, or none,
// is sockNone.
func TestSocketURCs(t *testing.T) {
	tests := []struct {
		fam  socketFamily
		u    at.URC
		kind sockEventKind
		id   int
		n    int
	}{
		{quectelSockets{}, at.URC{Line: `+QIURC: "recv",0`}, sockReadable, 0, 0},
		{quectelSockets{}, at.URC{Line: `+QIURC: "recv",0,3,"1.2.3.4",5`, Data: []byte{0, 1, 2}}, sockData, 0, 0},
		{quectelSockets{}, at.URC{Line: `+QIURC: "recv",0,3,"1.2.3.4",5`}, sockBad, 0, 0},
		{quectelSockets{}, at.URC{Line: `+QIURC: "closed",0`}, sockClosed, 0, 0},
		{quectelSockets{}, at.URC{Line: `+QIURC: "pdpdeact",1`}, sockDeact, 1, 0},
		{quectelSockets{}, at.URC{Line: `+QIURC: "dnsgip",0`}, sockInfoURC, 0, 0},
		{quectelSockets{}, at.URC{Line: `+CMTI: "SM",1`}, sockNone, 0, 0},
		{simcomSockets{}, at.URC{Line: "RECV FROM:1.2.3.4:5"}, sockSource, -1, 0},
		{simcomSockets{}, at.URC{Line: "+RECEIVE,0,2", Data: []byte("hi")}, sockData, 0, 0},
		{simcomSockets{}, at.URC{Line: "+IPCLOSE: 0,1"}, sockClosed, 0, 0},
		{simcomSockets{}, at.URC{Line: "+IPCLOSE: 0,0"}, sockInfoURC, 0, 0},
		{simcomSockets{}, at.URC{Line: "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY"}, sockDeact, -1, 0},
		{simcomSockets{}, at.URC{Line: `+QIURC: "closed",0`}, sockNone, 0, 0},
		{ubloxSockets{}, at.URC{Line: "+UUSORF: 1,1300"}, sockReadable, 1, 1300},
		{ubloxSockets{}, at.URC{Line: "+UUSORD: 1,4"}, sockReadable, 1, 4},
		{ubloxSockets{}, at.URC{Line: "+UUSOCL: 1"}, sockClosed, 1, 0},
		{ubloxSockets{}, at.URC{Line: "+UUSORF: x"}, sockBad, -1, 0},
	}
	for _, tt := range tests {
		ev := tt.fam.urc(tt.u)
		if ev.kind != tt.kind || (tt.kind != sockNone && (ev.id != tt.id || ev.n != tt.n)) {
			t.Errorf("%T.urc(%q) = kind %d id %d n %d, want kind %d id %d n %d", tt.fam, tt.u.Line, ev.kind, ev.id, ev.n, tt.kind, tt.id, tt.n)
		}
	}
}

// FuzzSocketParsers runs every socket parser on arbitrary modem text:
// none may panic, and what parses must be sane.
func FuzzSocketParsers(f *testing.F) {
	for _, s := range []string{
		`+QIURC: "recv",0`, `+QIURC: "recv",0,5,"100.64.0.1",6969`, `+QIURC: "closed",0`, `+QIURC: "pdpdeact",1`,
		`+QIRD: 5,"100.64.0.1",6969`, `+QIRD: 0`, `+QIACT: 1,1,1,"10.64.12.34"`,
		`+QISTATE: 0,"UDP SERVICE","127.0.0.1",0,6969,2,1,0,0,"usbat"`, `+QIOPEN: 0,0`, `+NETOPEN: 0`,
		`+CIPOPEN: 0,"UDP",,,6969`, `RECV FROM:100.64.0.1:6969`, `RECV FROM:[::1]:1`, `+RECEIVE,0,5`, `+RECEIVE: 0,5`,
		`+IPCLOSE: 0,1`, `+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY`, `+UUSORF: 0,12`, `+USORF: 0,"100.64.0.1",6969,5,"`,
		`+USOCR: 0`, `+UUSOCL: 0`, `+IPADDR: 10.64.12.34`, `+CGPADDR: 1,"10.64.12.34"`, `+CGACT: 1,1`,
		`+CGDCONT: 1,"IP","super","0.0.0.0",0,0`, `+QIURC: "recv",,,"",`, `RECV FROM::`, `+USORF: "",",",-1,"`,
	} {
		f.Add(s)
	}
	fams := []socketFamily{quectelSockets{}, simcomSockets{}, ubloxSockets{}}
	f.Fuzz(func(t *testing.T, line string) {
		if q, err := parseQIURC(line); err == nil && q.Kind == "recv" && q.Len < -1 {
			t.Fatalf("parseQIURC(%q) length %d", line, q.Len)
		}
		if n, _, err := parseQIRD(line); err == nil && n < 0 {
			t.Fatalf("parseQIRD(%q) = %d", line, n)
		}
		parseRecvFrom(line)
		parseReceive(line)
		if id, n, err := parseUUSORF(line); err == nil && (id < 0 || n < 0) {
			t.Fatalf("parseUUSORF(%q) = %d, %d", line, id, n)
		}
		parseUSORF(line)
		if id, err := parseIDLine(line, "+USOCR:"); err == nil && id < 0 {
			t.Fatalf("parseIDLine(%q) = %d", line, id)
		}
		parseOpenResult(line, "+QIOPEN:")
		parseOpenResult(line, "+NETOPEN:")
		parseAddrLine(line)
		lines := []string{line}
		parseQIACT(lines, 1)
		parseQISTATE(lines, 0, 6969, 0)
		parseCGACT(lines, 1)
		parseCGDCONT(lines, 1)
		parseCIPOPENRead(lines, 0, 6969)
		for _, fam := range fams {
			fam.urc(at.URC{Line: line})
			fam.urc(at.URC{Line: line, Data: []byte(line)})
		}
	})
}
