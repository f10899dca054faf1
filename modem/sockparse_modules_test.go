package modem

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/simgate/simgate/modem/at"
)

func TestParseSIM7080(t *testing.T) {
	if up, ip := parseCNACT([]string{`+CNACT: 0,1,"10.64.12.34"`, `+CNACT: 1,0,"0.0.0.0"`}, 0); !up || ip != "10.64.12.34" {
		t.Errorf("parseCNACT = %v, %q", up, ip)
	}
	if up, _ := parseCNACT([]string{`+CNACT: 0,0,"0.0.0.0"`}, 0); up {
		t.Errorf("parseCNACT: an inactive session reads as up")
	}
	if id, st, err := parseCASTATE("+CASTATE: 2,0"); err != nil || id != 2 || st != 0 {
		t.Errorf("parseCASTATE = %d, %d, %v", id, st, err)
	}
	if !parseCASTATERead([]string{"+CASTATE: 0,1"}, 0) || parseCASTATERead([]string{"+CASTATE: 1,1"}, 0) {
		t.Errorf("parseCASTATERead")
	}
	for line, want := range map[string]bool{"+APP PDP: 0,ACTIVE": true, "+APP PDP: 0,DEACTIVE": false} {
		if pdp, active, err := parseAPPPDP(line); err != nil || pdp != 0 || active != want {
			t.Errorf("parseAPPPDP(%q) = %d, %v, %v", line, pdp, active, err)
		}
	}
	if _, _, err := parseAPPPDP("+APP PDP: 0,MAYBE"); err == nil {
		t.Errorf("parseAPPPDP took an unknown state")
	}
	if id, srv, err := parseCANEW("+CANEW: 1,0"); err != nil || id != 1 || srv != 0 {
		t.Errorf("parseCANEW = %d, %d, %v", id, srv, err)
	}
	tests := []struct {
		head    string
		from    string
		n       int
		wantErr string
	}{
		{"+CARECV: 5,", "", 5, ""},
		{"+CARECV: 100.64.0.1,6969,5,", "100.64.0.1:6969", 5, ""},
		{"+CARECV: 100.64.0.1,70000,5,", "", 0, "port"},
		{"+CARECV: -3,", "", 0, "negative"},
		{"+CARECV: a,b", "", 0, "want"},
	}
	for _, tt := range tests {
		from, n, err := parseCARECV(tt.head)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseCARECV(%q) error %v, want %q", tt.head, err, tt.wantErr)
			}
			continue
		}
		if err != nil || addrStr(from) != tt.from || n != tt.n {
			t.Errorf("parseCARECV(%q) = %v, %d, %v", tt.head, from, n, err)
		}
	}
	f := sim7080Sockets{}
	for line, want := range map[string]sockEventKind{
		"+CADATAIND: 0": sockReadable, "+CANEW: 1,0": sockReadable, "+CASTATE: 0,0": sockClosed,
		"+CASTATE: 0,1": sockInfoURC, "+APP PDP: 0,DEACTIVE": sockDeact, "+APP PDP: 0,ACTIVE": sockInfoURC,
		"+CADATAIND: x": sockBad, "+CMTI: \"SM\",1": sockNone,
	} {
		if got := f.urc(at.URC{Line: line}).kind; got != want {
			t.Errorf("urc(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestParseSARAR5(t *testing.T) {
	if up, err := parseUPSND8([]string{"+UPSND: 0,8,1"}, 0); err != nil || !up {
		t.Errorf("parseUPSND8 = %v, %v", up, err)
	}
	if _, err := parseUPSND8([]string{"+UPSND: 0,0,\"1.2.3.4\""}, 0); err == nil {
		t.Errorf("parseUPSND8 took the address line")
	}
	if ip, err := parseUPSND0(`+UPSND: 0,0,"10.64.12.34"`); err != nil || ip != "10.64.12.34" {
		t.Errorf("parseUPSND0 = %q, %v", ip, err)
	}
	if ip, err := parseUPSND0(`+UPSND: 0,0,"0.0.0.0"`); err != nil || ip != "" {
		t.Errorf("parseUPSND0(0.0.0.0) = %q, %v", ip, err)
	}
	if code, err := parseUUPSDA(`+UUPSDA: 0,"10.64.12.34"`); err != nil || code != 0 {
		t.Errorf("parseUUPSDA = %d, %v", code, err)
	}
	if code, err := parseUUPSDA(`+UUPSDA: 17`); err != nil || code != 17 {
		t.Errorf("parseUUPSDA = %d, %v", code, err)
	}
}

// FuzzModuleParsers feeds the SIM7080 and SARA-R5 parsers arbitrary lines:
// they return errors, never panic, and never report negative ids or
// lengths.
func FuzzModuleParsers(f *testing.F) {
	for _, s := range []string{
		`+CNACT: 0,1,"10.64.12.34"`, `+CASTATE: 0,1`, `+APP PDP: 0,ACTIVE`, `+APP PDP: 0,DEACTIVE`, `+CANEW: 1,0`,
		`+CADATAIND: 0`, `+CARECV: 5,`, `+CARECV: 100.64.0.1,6969,5,`, `+CARECV: ,,,`, `+CAOPEN: 0,21`,
		`+UPSND: 0,8,1`, `+UPSND: 0,0,"10.64.12.34"`, `+UUPSDA: 0,"10.64.12.34"`, `+UUPSDD: 0`, `+UPSND: 0,0,""`,
	} {
		f.Add(s)
	}
	fams := []socketFamily{sim7080Sockets{}, ubloxSockets{PSD: true}}
	f.Fuzz(func(t *testing.T, line string) {
		lines := []string{line}
		parseCNACT(lines, 0)
		if id, st, err := parseCASTATE(line); err == nil && (id < 0 || st < 0) {
			t.Fatalf("parseCASTATE(%q) = %d, %d", line, id, st)
		}
		parseCASTATERead(lines, 0)
		parseAPPPDP(line)
		if id, srv, err := parseCANEW(line); err == nil && (id < 0 || srv < 0) {
			t.Fatalf("parseCANEW(%q) = %d, %d", line, id, srv)
		}
		if from, n, err := parseCARECV(line); err == nil && (n < 0 || (from != netip.AddrPort{} && !from.IsValid())) {
			t.Fatalf("parseCARECV(%q) = %v, %d", line, from, n)
		}
		parseUPSND8(lines, 0)
		parseUPSND0(line)
		parseUUPSDA(line)
		for _, fam := range fams {
			fam.urc(at.URC{Line: line})
		}
	})
}
