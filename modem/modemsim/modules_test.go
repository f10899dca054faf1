package modemsim

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestModuleReplies checks the exact bytes of the SIM7080 and SARA-R5
// socket commands, in process.
func TestModuleReplies(t *testing.T) {
	cnact := []string{"AT+CNACT=0,1"}
	server := append(cnact, `AT+CASERVER=0,0,"UDP",6969`)
	tests := []struct {
		name    string
		profile string
		opts    Options
		setup   []string
		in      string
		want    string
	}{
		{name: "CGMM sim7080", profile: "sim7080", in: "AT+CGMM", want: "\r\nSIMCOM_SIM7080G\r\n\r\nOK\r\n"},
		{name: "CNMP", profile: "sim7080", setup: []string{"AT+CNMP=38"}, in: "AT+CNMP?", want: "\r\n+CNMP: 38\r\n\r\nOK\r\n"},
		{name: "CNMP bad", profile: "sim7080", in: "AT+CNMP=7", want: "\r\nERROR\r\n"},
		{name: "CNACT activate", profile: "sim7080", in: "AT+CNACT=0,1", want: "\r\nOK\r\n\r\n+APP PDP: 0,ACTIVE\r\n"},
		{name: "CNACT twice", profile: "sim7080", setup: cnact, in: "AT+CNACT=0,1", want: "\r\nERROR\r\n"},
		{name: "CNACT read", profile: "sim7080", setup: cnact, in: "AT+CNACT?",
			want: "\r\n+CNACT: 0,1,\"10.64.12.34\"\r\n+CNACT: 1,0,\"0.0.0.0\"\r\n+CNACT: 2,0,\"0.0.0.0\"\r\n+CNACT: 3,0,\"0.0.0.0\"\r\n\r\nOK\r\n"},
		{name: "CNACT deactivate", profile: "sim7080", setup: cnact, in: "AT+CNACT=0,0", want: "\r\nOK\r\n\r\n+APP PDP: 0,DEACTIVE\r\n"},
		{name: "CASERVER without data", profile: "sim7080", in: `AT+CASERVER=0,0,"UDP",6969`, want: "\r\nERROR\r\n"},
		{name: "CASERVER old firmware", profile: "sim7080", opts: Options{SIM7080NoServer: true}, setup: cnact, in: `AT+CASERVER=0,0,"UDP",6969`, want: "\r\nERROR\r\n"},
		{name: "CASTATE", profile: "sim7080", setup: server, in: "AT+CASTATE?", want: "\r\n+CASTATE: 0,1\r\n\r\nOK\r\n"},
		{name: "CARECV empty", profile: "sim7080", setup: server, in: "AT+CARECV=0,1460", want: "\r\n+CARECV: 0\r\n\r\nOK\r\n"},
		{name: "CASEND without remote", profile: "sim7080", setup: server, in: "AT+CASEND=0,5", want: "\r\nERROR\r\n"},
		{name: "CASEND prompt", profile: "sim7080", setup: append(server, `AT+CACFG="REMOTEADDR",0,100.64.0.1,6969`), in: "AT+CASEND=0,5", want: "\r\n> "},
		{name: "CAOPEN", profile: "sim7080", setup: cnact, in: `AT+CAOPEN=0,0,"UDP","100.64.0.1",6969`, want: "\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n"},
		{name: "CAOPEN without data", profile: "sim7080", in: `AT+CAOPEN=0,0,"UDP","100.64.0.1",6969`, want: "\r\n+CAOPEN: 0,21\r\n\r\nOK\r\n"},
		{name: "UPSND inactive", profile: "sara-r5", in: "AT+UPSND=0,8", want: "\r\n+UPSND: 0,8,0\r\n\r\nOK\r\n"},
		{name: "UPSDA unmapped", profile: "sara-r5", setup: []string{"AT+CMEE=1"}, in: "AT+UPSDA=0,3", want: "\r\n+CME ERROR: 3\r\n"},
		{name: "UPSDA activate", profile: "sara-r5", setup: []string{"AT+UPSD=0,100,1"}, in: "AT+UPSDA=0,3", want: "\r\nOK\r\n\r\n+UUPSDA: 0,\"10.64.12.34\"\r\n"},
		{name: "UPSND address", profile: "sara-r5", setup: []string{"AT+UPSD=0,100,1", "AT+UPSDA=0,3"}, in: "AT+UPSND=0,0", want: "\r\n+UPSND: 0,0,\"10.64.12.34\"\r\n\r\nOK\r\n"},
		{name: "USOCR needs the PSD profile", profile: "sara-r5", setup: []string{"AT+CMEE=1"}, in: "AT+USOCR=17,6969", want: "\r\n+CME ERROR: 3\r\n"},
		{name: "USOCR after UPSDA", profile: "sara-r5", setup: []string{"AT+UPSD=0,100,1", "AT+UPSDA=0,3"}, in: "AT+USOCR=17,6969", want: "\r\n+USOCR: 0\r\n\r\nOK\r\n"},
		{name: "CARECV unknown on R5", profile: "sara-r5", in: "AT+CARECV=0,1", want: "\r\nERROR\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Profile = tt.profile
			e := newEngine(t, o)
			e.quiet(append([]string{"ATE0"}, tt.setup...)...)
			if diff := cmp.Diff(tt.want, e.at(tt.in)); diff != "" {
				t.Errorf("%q reply (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// A datagram on a SIM7080 server socket raises +CADATAIND once; AT+CARECV
// returns it with its sender and re-arms the URC once the buffer is empty.
func TestSIM7080Receive(t *testing.T) {
	e := newEngine(t, Options{Profile: "sim7080"})
	e.quiet("ATE0", "AT+CASRIP=1", "AT+CNACT=0,1", `AT+CASERVER=0,0,"UDP",6969`)
	e.out.take()
	if err := e.sim.InjectUDP("100.64.0.1:4242", 6969, []byte("a\r\nOK\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.InjectUDP("100.64.0.1:4242", 6969, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("\r\n+CADATAIND: 0\r\n", e.out.take()); diff != "" {
		t.Errorf("URCs (-want +got):\n%s", diff)
	}
	steps := []struct{ in, want string }{
		{"AT+CARECV=0,1460", "\r\n+CARECV: 100.64.0.1,4242,7,a\r\nOK\r\n\r\n\r\nOK\r\n"},
		{"AT+CARECV=0,1460", "\r\n+CARECV: 100.64.0.1,4242,1,b\r\n\r\nOK\r\n"},
		{"AT+CARECV=0,1460", "\r\n+CARECV: 0\r\n\r\nOK\r\n"},
	}
	for _, st := range steps {
		if diff := cmp.Diff(st.want, e.at(st.in)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", st.in, diff)
		}
	}
	if err := e.sim.InjectUDP("100.64.0.1:4242", 6969, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("\r\n+CADATAIND: 0\r\n", e.out.take()); diff != "" {
		t.Errorf("URC after the buffer was read empty (-want +got):\n%s", diff)
	}
}

// An SMS-SUBMIT with TP-SRR gets a status report as AT+CNMI ds asks.
func TestStatusReportRoutes(t *testing.T) {
	for _, tt := range []struct {
		ds    string
		route string
	}{{"1", "cds"}, {"2", "cdsi"}, {"0", "none"}} {
		t.Run(tt.route, func(t *testing.T) {
			e := newEngine(t, Options{ReportDelay: 1})
			e.quiet("ATE0", "AT+CMGF=0", "AT+CNMI=2,1,0,"+tt.ds+",0")
			// SMS-SUBMIT with TP-SRR to "000", GSM 7-bit "hi".
			e.sim.mu.Lock()
			tp := []byte{0x21, 0x00, 0x03, 0x81, 0x00, 0xF0, 0x00, 0x00, 0x02, 0xE8, 0x34}
			e.sim.scheduleReport(tp, 5, "000")
			e.sim.mu.Unlock()
			var st State
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				if st = e.sim.State(); len(st.Reports) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no status report")
				}
			}
			if st.Reports[0] != (SentReport{Reference: 5, Status: 0, Route: tt.route}) {
				t.Errorf("report %+v", st.Reports[0])
			}
			if tt.route == "cdsi" && len(st.Stored) != 1 {
				t.Errorf("stored %+v, want the report", st.Stored)
			}
		})
	}
}
