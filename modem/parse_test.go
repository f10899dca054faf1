package modem

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func intp(n int) *int { return &n }

func TestParsers(t *testing.T) {
	tests := []struct {
		name    string
		parse   func(string) (out, error)
		line    string
		want    out
		wantErr string
	}{
		{"cmti", wrapCMTI, `+CMTI: "SM",5`, out{S: "SM", A: 5}, ""},
		{"cmti ME", wrapCMTI, `+CMTI: "ME", 12`, out{S: "ME", A: 12}, ""},
		{"cmti no index", wrapCMTI, `+CMTI: "SM"`, out{}, "want 2 fields"},
		{"cmti bad index", wrapCMTI, `+CMTI: "SM",x`, out{}, "not a number"},
		{"cmgr", wrapCMGR, `+CMGR: 0,,24`, out{A: 0, B: 24}, ""},
		{"cmgr alpha", wrapCMGR, `+CMGR: 1,"Bob, Jr",30`, out{A: 1, B: 30}, ""},
		{"cmgr short", wrapCMGR, `+CMGR: 0`, out{}, "at least 2"},
		{"cmgl", wrapCMGL, `+CMGL: 3,1,,24`, out{A: 3, B: 1, C: 24}, ""},
		{"cmgl bad", wrapCMGL, `+CMGL: ,1,,24`, out{}, "not a number"},
		{"cpms read", wrapCPMS, `+CPMS: "SM",3,50,"SM",3,50,"SM",3,50`, out{A: 3, B: 50}, ""},
		{"cpms set", wrapCPMS, `+CPMS: 29,30,29,30,29,30`, out{A: 29, B: 30}, ""},
		{"cpms bad", wrapCPMS, `+CPMS: "SM"`, out{}, "missing"},
		{"cmgs", wrapCMGS, `+CMGS: 17`, out{A: 17}, ""},
		{"cmgs bad", wrapCMGS, `+CMGS:`, out{}, "not a number"},
		{"csq", wrapCSQ, `+CSQ: 17,99`, out{P: intp(-79)}, ""},
		{"csq max", wrapCSQ, `+CSQ: 31,0`, out{P: intp(-51)}, ""},
		{"csq unknown", wrapCSQ, `+CSQ: 99,99`, out{}, ""},
		{"cops", wrapCOPS, `+COPS: 0,0,"Operator, Inc",7`, out{S: "Operator, Inc", A: 7}, ""},
		{"cops no operator", wrapCOPS, `+COPS: 0`, out{A: -1}, ""},
		{"cereg urc", wrapRegURC, `+CEREG: 5,"1A2B","01A2D001",7`, out{A: 5, B: 7}, ""},
		{"cereg urc short", wrapRegURC, `+CEREG: 2`, out{A: 2, B: -1}, ""},
		{"cereg read", wrapRegRead, `+CEREG: 2,5,"1A2B","01A2D001",7`, out{A: 5, B: 7}, ""},
		{"creg read n=0", wrapRegRead, `+CREG: 0,1`, out{A: 1, B: -1}, ""},
		{"cereg read short", wrapRegRead, `+CEREG: 2`, out{}, "want <n>,<stat>"},
		{"cpin", wrapCPIN, `+CPIN: READY`, out{S: "READY"}, ""},
		{"cpin pin", wrapCPIN, `+CPIN: SIM PIN`, out{S: "SIM PIN"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
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

// out holds whatever a parser returned, so one table covers them all.
type out struct {
	A, B, C int
	S       string
	P       *int
}

func wrapCMTI(l string) (out, error) { s, i, err := parseCMTI(l); return out{S: s, A: i}, err }

func wrapCMGR(l string) (out, error) { a, b, err := parseCMGR(l); return out{A: a, B: b}, err }
func wrapCMGL(l string) (out, error) {
	a, b, c, err := parseCMGL(l)
	return out{A: a, B: b, C: c}, err
}
func wrapCPMS(l string) (out, error) { a, b, err := parseCPMS(l); return out{A: a, B: b}, err }
func wrapCMGS(l string) (out, error) { a, err := parseCMGS(l); return out{A: a}, err }
func wrapCSQ(l string) (out, error)  { p, err := parseCSQ(l); return out{P: p}, err }
func wrapCOPS(l string) (out, error) { s, a, err := parseCOPS(l); return out{S: s, A: a}, err }
func wrapCPIN(l string) (out, error) { s, err := parseCPIN(l); return out{S: s}, err }
func wrapRegURC(l string) (out, error) {
	r, err := parseRegistration(l, false)
	return out{A: r.Stat, B: r.Act}, err
}
func wrapRegRead(l string) (out, error) {
	r, err := parseRegistration(l, true)
	return out{A: r.Stat, B: r.Act}, err
}

func TestRegistrationNames(t *testing.T) {
	for stat, want := range map[int]string{0: "not_registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"} {
		if got := registrationName(stat); got != want {
			t.Errorf("registrationName(%d) = %q, want %q", stat, got, want)
		}
	}
	if !registered("home") || !registered("roaming") || registered("searching") {
		t.Error("registered() must accept home and roaming only")
	}
}

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		lines []string
		want  string
	}{
		{[]string{"Quectel"}, "Quectel"},
		{[]string{"+CGMI: \"SIMCOM INCORPORATED\""}, "SIMCOM INCORPORATED"},
		{[]string{"", "866425030123456"}, "866425030123456"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := parseIdentity(tt.lines); got != tt.want {
			t.Errorf("parseIdentity(%q) = %q, want %q", tt.lines, got, tt.want)
		}
	}
	iccids := []struct {
		lines []string
		want  string
		ok    bool
	}{
		{[]string{"+QCCID: 89883070000012345678"}, "89883070000012345678", true},
		{[]string{"+ICCID: 8988323000001234567F"}, "8988323000001234567", true},
		{[]string{"+CCID: \"89883070000012345678\""}, "89883070000012345678", true},
		{[]string{"ERROR"}, "", false},
		{[]string{"+CCID: 12"}, "", false},
	}
	for _, tt := range iccids {
		got, err := parseICCID(tt.lines)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseICCID(%q) = %q, %v; want %q ok=%v", tt.lines, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzURCParsers runs every parser of modem lines on arbitrary text: none
// may panic, and a parse that succeeds must give sane values.
func FuzzURCParsers(f *testing.F) {
	for _, s := range []string{
		`+CMTI: "SM",5`, `+CMGR: 0,,24`, `+CMGL: 3,1,"a,b",24`, `+CPMS: "SM",3,50,"SM",3,50`,
		`+CMGS: 17`, `+CSQ: 17,99`, `+COPS: 0,0,"Op",7`, `+CEREG: 2,5,"1A2B","01A2D001",7`,
		`+CEREG: 5`, `+CPIN: READY`, `+QCCID: 8988307000001234567F`, `+CEREG: ,,,"`, `+CPMS: -1,-2`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if _, i, err := parseCMTI(line); err == nil && i < 0 {
			t.Fatalf("parseCMTI(%q) index %d", line, i)
		}
		parseCMGR(line)
		parseCMGL(line)
		if u, n, err := parseCPMS(line); err == nil && (u < 0 || n < 0) {
			t.Fatalf("parseCPMS(%q) = %d, %d", line, u, n)
		}
		parseCMGS(line)
		if p, err := parseCSQ(line); err == nil && p != nil && (*p < -113 || *p > -51) {
			t.Fatalf("parseCSQ(%q) = %d dBm", line, *p)
		}
		parseCOPS(line)
		parseRegistration(line, false)
		parseRegistration(line, true)
		parseCPIN(line)
		parseIdentity([]string{line})
		parseICCID([]string{line})
	})
}
