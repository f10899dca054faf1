package modemsim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCommandReplies checks the exact bytes of replies, in process.
func TestCommandReplies(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		opts    Options
		setup   []string
		in      string
		want    string
	}{
		{name: "AT", in: "AT", want: "\r\nOK\r\n"},
		{name: "empty line is ignored", in: "", want: ""},
		{name: "no AT prefix is ignored", in: "HELLO", want: ""},
		{name: "lower case", in: "at+cgmi", want: "\r\nQuectel\r\n\r\nOK\r\n"},
		{name: "garbage before AT", in: "\x00\xffAT", want: "\r\nOK\r\n"},
		{name: "ATI quectel", in: "ATI", want: "\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n"},
		{name: "CGMI", in: "AT+CGMI", want: "\r\nQuectel\r\n\r\nOK\r\n"},
		{name: "CGMM", in: "AT+CGMM", want: "\r\nBG96\r\n\r\nOK\r\n"},
		{name: "CGMR quectel", in: "AT+CGMR", want: "\r\nBG96MAR02A07M1G\r\n\r\nOK\r\n"},
		{name: "CGMR simcom", profile: "simcom", in: "AT+CGMR", want: "\r\n+CGMR: LE20B04SIM7600G22\r\n\r\nOK\r\n"},
		{name: "CGMI ublox", profile: "ublox", in: "AT+CGMI", want: "\r\nu-blox\r\n\r\nOK\r\n"},
		{name: "CGSN", in: "AT+CGSN", want: "\r\n866425030012340\r\n\r\nOK\r\n"},
		{name: "CGSN=1", in: "AT+CGSN=1", want: "\r\n+CGSN: \"866425030012340\"\r\n\r\nOK\r\n"},
		{name: "CIMI", in: "AT+CIMI", want: "\r\n732123200004178\r\n\r\nOK\r\n"},
		{name: "QCCID", in: "AT+QCCID", want: "\r\n+QCCID: 89883070000012345672\r\n\r\nOK\r\n"},
		{name: "CICCID simcom", profile: "simcom", in: "AT+CICCID", want: "\r\n+ICCID: 89883070000012345672\r\n\r\nOK\r\n"},
		{name: "CCID ublox", profile: "ublox", in: "AT+CCID", want: "\r\n+CCID: 89883070000012345672\r\n\r\nOK\r\n"},
		{name: "CCID generic", profile: "generic", in: "AT+CCID", want: "\r\n+CCID: 89883070000012345672\r\n\r\nOK\r\n"},
		{name: "CCID unknown on quectel", in: "AT+CCID", want: "\r\nERROR\r\n"},
		{name: "custom ICCID", opts: Options{ICCID: "89883230000000000018"}, in: "AT+QCCID", want: "\r\n+QCCID: 89883230000000000018\r\n\r\nOK\r\n"},
		{name: "CPIN", in: "AT+CPIN?", want: "\r\n+CPIN: READY\r\n\r\nOK\r\n"},
		{name: "CSQ", in: "AT+CSQ", want: "\r\n+CSQ: 17,99\r\n\r\nOK\r\n"},
		{name: "CSQ test", in: "AT+CSQ=?", want: "\r\n+CSQ: (0-31,99),(0-7,99)\r\n\r\nOK\r\n"},
		{name: "CESQ", in: "AT+CESQ", want: "\r\n+CESQ: 99,99,255,255,20,52\r\n\r\nOK\r\n"},
		{name: "COPS", in: "AT+COPS?", want: "\r\n+COPS: 0,0,\"Super Network\",7\r\n\r\nOK\r\n"},
		{name: "CEREG read n=0", in: "AT+CEREG?", want: "\r\n+CEREG: 0,5\r\n\r\nOK\r\n"},
		{name: "CEREG read n=2", setup: []string{"AT+CEREG=2"}, in: "AT+CEREG?", want: "\r\n+CEREG: 2,5,\"1A2B\",\"01A2D001\",7\r\n\r\nOK\r\n"},
		{name: "CREG read n=1", setup: []string{"AT+CREG=1"}, in: "AT+CREG?", want: "\r\n+CREG: 1,5\r\n\r\nOK\r\n"},
		{name: "CGREG test", in: "AT+CGREG=?", want: "\r\n+CGREG: (0-2)\r\n\r\nOK\r\n"},
		{name: "CFUN read", in: "AT+CFUN?", want: "\r\n+CFUN: 1\r\n\r\nOK\r\n"},
		{name: "CGDCONT read", in: "AT+CGDCONT?", want: "\r\n+CGDCONT: 1,\"IP\",\"super\",\"0.0.0.0\",0,0\r\n\r\nOK\r\n"},
		{name: "CGDCONT set", setup: []string{`AT+CGDCONT=2,"IPV4V6","other"`}, in: "AT+CGDCONT?",
			want: "\r\n+CGDCONT: 1,\"IP\",\"super\",\"0.0.0.0\",0,0\r\n+CGDCONT: 2,\"IPV4V6\",\"other\",\"0.0.0.0\",0,0\r\n\r\nOK\r\n"},
		{name: "CSCS read", in: "AT+CSCS?", want: "\r\n+CSCS: \"IRA\"\r\n\r\nOK\r\n"},
		{name: "CSCS bad", setup: []string{"AT+CMEE=1"}, in: `AT+CSCS="KOI8"`, want: "\r\n+CME ERROR: 50\r\n"},
		{name: "two commands", in: "AT+CGMI;+CGMM", want: "\r\nQuectel\r\n\r\nBG96\r\n\r\nOK\r\n"},
		{name: "basic commands run together", in: "ATE0V1Q0", want: "\r\nOK\r\n"},
		{name: "unknown ERROR", in: "AT+FOO", want: "\r\nERROR\r\n"},
		{name: "unknown CMEE=1", setup: []string{"AT+CMEE=1"}, in: "AT+FOO", want: "\r\n+CME ERROR: 100\r\n"},
		{name: "unknown CMEE=2", setup: []string{"AT+CMEE=2"}, in: "AT+FOO", want: "\r\n+CME ERROR: unknown\r\n"},
		{name: "error stops the line", in: "AT+CGMI;+FOO;+CGMM", want: "\r\nQuectel\r\n\r\nERROR\r\n"},
		{name: "syntax error", in: "AT+CGMI\"", want: "\r\nERROR\r\n"},
		{name: "CPIN set not allowed", setup: []string{"AT+CMEE=2"}, in: "AT+CPIN=1234", want: "\r\n+CME ERROR: operation not allowed\r\n"},
		{name: "CMEE read", setup: []string{"AT+CMEE=1"}, in: "AT+CMEE?", want: "\r\n+CMEE: 1\r\n\r\nOK\r\n"},
		{name: "ATV0 numeric codes", setup: []string{"ATV0"}, in: "AT", want: "0\r"},
		{name: "ATV0 info lines", setup: []string{"ATV0"}, in: "AT+CGMI", want: "Quectel\r\n0\r"},
		{name: "ATV0 error", setup: []string{"ATV0"}, in: "AT+FOO", want: "4\r"},
		{name: "S3 read", in: "ATS3?", want: "\r\n013\r\n\r\nOK\r\n"},
		{name: "CMGF test", in: "AT+CMGF=?", want: "\r\n+CMGF: (0,1)\r\n\r\nOK\r\n"},
		{name: "CPMS read", in: "AT+CPMS?", want: "\r\n+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30\r\n\r\nOK\r\n"},
		{name: "CPMS set", in: `AT+CPMS="SM","SM","SM"`, want: "\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n"},
		{name: "CPMS capacity", opts: Options{Capacity: 5}, in: `AT+CPMS="SM"`, want: "\r\n+CPMS: 0,5,0,5,0,5\r\n\r\nOK\r\n"},
		{name: "CPMS ME refused", setup: []string{"AT+CMEE=1"}, in: `AT+CPMS="ME"`, want: "\r\n+CMS ERROR: 302\r\n"},
		{name: "CPMS test", in: "AT+CPMS=?", want: "\r\n+CPMS: (\"SM\"),(\"SM\"),(\"SM\")\r\n\r\nOK\r\n"},
		{name: "CNMI default quectel", in: "AT+CNMI?", want: "\r\n+CNMI: 2,1,0,0,0\r\n\r\nOK\r\n"},
		{name: "CNMI default ublox", profile: "ublox", in: "AT+CNMI?", want: "\r\n+CNMI: 1,0,0,0,0\r\n\r\nOK\r\n"},
		{name: "CNMI set", setup: []string{"AT+CNMI=2,2,0,1,0"}, in: "AT+CNMI?", want: "\r\n+CNMI: 2,2,0,1,0\r\n\r\nOK\r\n"},
		{name: "CSMS", in: "AT+CSMS=1", want: "\r\n+CSMS: 1,1,1\r\n\r\nOK\r\n"},
		{name: "CSMS read", setup: []string{"AT+CSMS=1"}, in: "AT+CSMS?", want: "\r\n+CSMS: 1,1,1,1\r\n\r\nOK\r\n"},
		{name: "CSCA", in: "AT+CSCA?", want: "\r\n+CSCA: \"+447700900123\",145\r\n\r\nOK\r\n"},
		{name: "CMGR empty error", setup: []string{"AT+CMEE=1"}, in: "AT+CMGR=0", want: "\r\n+CMS ERROR: 321\r\n"},
		{name: "CMGR empty ok", opts: Options{EmptyRead: "ok"}, in: "AT+CMGR=0", want: "\r\nOK\r\n"},
		{name: "CMGR out of range", opts: Options{EmptyRead: "ok"}, setup: []string{"AT+CMEE=1"}, in: "AT+CMGR=30", want: "\r\n+CMS ERROR: 321\r\n"},
		{name: "CMGR below ublox base", profile: "ublox", setup: []string{"AT+CMEE=1"}, in: "AT+CMGR=0", want: "\r\n+CMS ERROR: 321\r\n"},
		{name: "CMGL empty", in: "AT+CMGL=4", want: "\r\nOK\r\n"},
		{name: "CMGD empty slot", in: "AT+CMGD=3", want: "\r\nOK\r\n"},
		{name: "CMGD test", in: "AT+CMGD=?", want: "\r\n+CMGD: (0-29),(0-4)\r\n\r\nOK\r\n"},
		{name: "CMGD test ublox", profile: "ublox", in: "AT+CMGD=?", want: "\r\n+CMGD: (1-30),(0-4)\r\n\r\nOK\r\n"},
		{name: "CNMA without +CMT", setup: []string{"AT+CMEE=1", "AT+CSMS=1"}, in: "AT+CNMA", want: "\r\n+CMS ERROR: 340\r\n"},
		{name: "CMGS bad length", setup: []string{"AT+CMEE=1"}, in: "AT+CMGS=999", want: "\r\n+CMS ERROR: 304\r\n"},
		{name: "ATD refused", in: "ATD*99#", want: "\r\nERROR\r\n"},
		{name: "QCFG accepted", in: `AT+QCFG="urcport","usbat"`, want: "\r\nOK\r\n"},
		{name: "QIOPEN unknown on generic", profile: "generic", in: `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`, want: "\r\nERROR\r\n"},
		{name: "GCAP", in: "AT+GCAP", want: "\r\n+GCAP: +CGSM\r\n\r\nOK\r\n"},
		{name: "CGATT", in: "AT+CGATT?", want: "\r\n+CGATT: 1\r\n\r\nOK\r\n"},
		{name: "CGACT and CGPADDR", setup: []string{"AT+CGACT=1,1"}, in: "AT+CGACT?;+CGPADDR=1", want: "\r\n+CGACT: 1,1\r\n\r\n+CGPADDR: 1,\"10.64.12.34\"\r\n\r\nOK\r\n"},
		{name: "CGPADDR without data", in: "AT+CGPADDR", want: "\r\n+CGPADDR: 1,\"0.0.0.0\"\r\n\r\nOK\r\n"},
		{name: "QCSQ", in: "AT+QCSQ", want: "\r\n+QCSQ: \"eMTC\",-79,-89,135,-10\r\n\r\nOK\r\n"},
		{name: "QNWINFO", in: "AT+QNWINFO", want: "\r\n+QNWINFO: \"eMTC\",\"90140\",\"LTE BAND 4\",2300\r\n\r\nOK\r\n"},
		{name: "CPSI", profile: "simcom", in: "AT+CPSI?", want: "\r\n+CPSI: LTE,Online,901-40,0x1A2B,27447297,302,EUTRAN-BAND4,2300,5,5,-94,-850,-580,15\r\n\r\nOK\r\n"},
		{name: "CSMP", in: "AT+CSMP?", want: "\r\n+CSMP: 17,167,0,0\r\n\r\nOK\r\n"},
		{name: "QIGETERROR", in: "AT+QIGETERROR", want: "\r\n+QIGETERROR: 0,\"operation successful\"\r\n\r\nOK\r\n"},
		{name: "QISDE read", setup: []string{"AT+QISDE=0"}, in: "AT+QISDE?", want: "\r\n+QISDE: 0\r\n\r\nOK\r\n"},
		{name: "QIDEACT closes sockets", setup: []string{"AT+QIACT=1", `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0`, "AT+QIDEACT=1"}, in: "AT+QIACT?;+QISTATE?", want: "\r\nOK\r\n"},
		{name: "CGSOCKCONT and NETCLOSE", profile: "simcom", setup: []string{`AT+CGSOCKCONT=1,"IP","super"`, "AT+NETOPEN"}, in: "AT+IPADDR", want: "\r\n+IPADDR: 10.64.12.34\r\n\r\nOK\r\n"},
		{name: "NETCLOSE", profile: "simcom", setup: []string{"AT+NETOPEN"}, in: "AT+NETCLOSE", want: "\r\nOK\r\n\r\n+NETCLOSE: 0\r\n"},
		{name: "NETCLOSE when closed", profile: "simcom", in: "AT+NETCLOSE", want: "\r\n+NETCLOSE: 2\r\n\r\nERROR\r\n"},
		{name: "IPADDR when closed", profile: "simcom", in: "AT+IPADDR", want: "\r\n+IP ERROR: Network not opened\r\n\r\nERROR\r\n"},
		{name: "CIPCLOSE", profile: "simcom", setup: []string{"AT+NETOPEN", `AT+CIPOPEN=0,"UDP",,,6969`}, in: "AT+CIPCLOSE=0", want: "\r\nOK\r\n\r\n+CIPCLOSE: 0,0\r\n"},
		{name: "CIPCLOSE read", profile: "simcom", setup: []string{"AT+NETOPEN", `AT+CIPOPEN=1,"UDP",,,6969`}, in: "AT+CIPCLOSE?", want: "\r\n+CIPCLOSE: 0,1,0,0,0,0,0,0,0,0\r\n\r\nOK\r\n"},
		{name: "CIPCLOSE unknown", profile: "simcom", in: "AT+CIPCLOSE=4", want: "\r\n+CIPCLOSE: 4,4\r\n\r\nERROR\r\n"},
		{name: "CIPSRIP read", profile: "simcom", in: "AT+CIPSRIP?", want: "\r\n+CIPSRIP: 1\r\n\r\nOK\r\n"},
		{name: "USOCL", profile: "ublox", setup: []string{"AT+CMEE=1", "AT+USOCR=17,6969", "AT+USOCL=0"}, in: "AT+USOCL=0", want: "\r\n+CME ERROR: 3\r\n"},
		{name: "USOCR TCP refused", profile: "ublox", setup: []string{"AT+CMEE=1"}, in: "AT+USOCR=6", want: "\r\n+CME ERROR: 4\r\n"},
		{name: "UDCONF read", profile: "ublox", in: "AT+UDCONF=1", want: "\r\n+UDCONF: 1,0\r\n\r\nOK\r\n"},
		{name: "CMEE read", setup: []string{"AT+CMEE=2"}, in: "AT+CMEE?", want: "\r\n+CMEE: 2\r\n\r\nOK\r\n"},
		{name: "CMEE bare resets", setup: []string{"AT+CMEE=2", "AT+CMEE"}, in: "AT+CMEE?", want: "\r\n+CMEE: 0\r\n\r\nOK\r\n"},
		{name: "CMEE test", in: "AT+CMEE=?", want: "\r\n+CMEE: (0-2)\r\n\r\nOK\r\n"},
		{name: "CMEE out of range", in: "AT+CMEE=3", want: "\r\nERROR\r\n"},
		{name: "CMGF read", setup: []string{"AT+CMGF=1"}, in: "AT+CMGF?", want: "\r\n+CMGF: 1\r\n\r\nOK\r\n"},
		{name: "CMGF empty sets 0", setup: []string{"AT+CMGF=1", "AT+CMGF="}, in: "AT+CMGF?", want: "\r\n+CMGF: 0\r\n\r\nOK\r\n"},
		{name: "ATE0", setup: []string{"ATE1", "ATE0"}, in: "AT", want: "\r\nOK\r\n"},
		{name: "ATE2", in: "ATE2", want: "\r\nERROR\r\n"},
		{name: "CNUM", in: "AT+CNUM", want: "\r\nOK\r\n"},
		{name: "CLCC read", in: "AT+CLCC?", want: "\r\nERROR\r\n"},
		// Forms other than set: the test form's answer, or ERROR.
		{name: "QIOPEN test", in: "AT+QIOPEN=?", want: "\r\n+QIOPEN: (1-16),(0-11),\"TCP/UDP/TCP LISTENER/UDP SERVICE\",\"<IP_address>/<domain_name>\",<remote_port>,<local_port>,(0-2)\r\n\r\nOK\r\n"},
		{name: "QIDEACT test", in: "AT+QIDEACT=?", want: "\r\n+QIDEACT: (1-16)\r\n\r\nOK\r\n"},
		{name: "QISEND test", in: "AT+QISEND=?", want: "\r\n+QISEND: (0-11),(0-1460)\r\n\r\nOK\r\n"},
		{name: "QIRD test", in: "AT+QIRD=?", want: "\r\n+QIRD: (0-11),(0-1500)\r\n\r\nOK\r\n"},
		{name: "QIRD read", in: "AT+QIRD?", want: "\r\nERROR\r\n"},
		{name: "QICLOSE test", in: "AT+QICLOSE=?", want: "\r\nERROR\r\n"},
		{name: "QISDE", setup: []string{"AT+QISDE=0"}, in: "AT+QISDE?", want: "\r\n+QISDE: 0\r\n\r\nOK\r\n"},
		{name: "QISDE test", in: "AT+QISDE=?", want: "\r\n+QISDE: (0,1)\r\n\r\nOK\r\n"},
		{name: "QISDE out of range", in: "AT+QISDE=2", want: "\r\nERROR\r\n"},
		{name: "CIPSEND test", profile: "simcom", in: "AT+CIPSEND=?", want: "\r\n+CIPSEND: (0-9),(1-1500)\r\n\r\nOK\r\n"},
		{name: "CIPSEND exec", profile: "simcom", in: "AT+CIPSEND", want: "\r\nERROR\r\n"},
		{name: "CIPSRIP test", profile: "simcom", in: "AT+CIPSRIP=?", want: "\r\n+CIPSRIP: (0-1)\r\n\r\nOK\r\n"},
		{name: "NETOPEN read", profile: "simcom", setup: []string{"AT+NETOPEN"}, in: "AT+NETOPEN?", want: "\r\n+NETOPEN: 1\r\n\r\nOK\r\n"},
		{name: "USOCR test", profile: "ublox", in: "AT+USOCR=?", want: "\r\n+USOCR: (6,17),(1-65535),(0-2)\r\n\r\nOK\r\n"},
		{name: "USOST test", profile: "ublox", in: "AT+USOST=?", want: "\r\n+USOST: (0-6),\"remote_host\",(1-65535),(1-1024),\"data\"\r\n\r\nOK\r\n"},
		{name: "USORF test", profile: "ublox", in: "AT+USORF=?", want: "\r\n+USORF: (0-6),(0-1024)\r\n\r\nOK\r\n"},
		{name: "USOCL read", profile: "ublox", in: "AT+USOCL?", want: "\r\nERROR\r\n"},
		{name: "UDCONF test", profile: "ublox", in: "AT+UDCONF=?", want: "\r\nERROR\r\n"},
		{name: "UPSND read", profile: "sara-r5", in: "AT+UPSND?", want: "\r\nERROR\r\n"},
		{name: "UPSND 8", profile: "sara-r5", in: "AT+UPSND=0,8", want: "\r\n+UPSND: 0,8,0\r\n\r\nOK\r\n"},
		{name: "CARECV test", profile: "sim7080", in: "AT+CARECV=?", want: "\r\nERROR\r\n"},
		{name: "CASRIP", profile: "sim7080", setup: []string{"AT+CASRIP=1"}, in: "AT+CASRIP?", want: "\r\n+CASRIP: 1\r\n\r\nOK\r\n"},
		{name: "CASRIP test", profile: "sim7080", in: "AT+CASRIP=?", want: "\r\nOK\r\n"},
		{name: "overlong line", in: "AT" + string(make([]byte, 0)) + repeat("A", maxLine+10), want: "\r\nERROR\r\n"},
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

func repeat(s string, n int) string {
	b := make([]byte, 0, n*len(s))
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

// TestEcho checks that echo repeats the line as received, including the
// CR, that ATE0 stops it and that ATZ (and a boot) bring it back.
func TestEcho(t *testing.T) {
	e := newEngine(t, Options{})
	steps := []struct{ in, want string }{
		{"AT\r", "AT\r\r\nOK\r\n"},
		{"AT\r\n", "AT\r\r\nOK\r\n\n"},
		{"ATE0\r", "ATE0\r\r\nOK\r\n"},
		{"AT\r", "\r\nOK\r\n"},
		{"ATZ\r", "\r\nOK\r\n"},
		{"AT\r", "AT\r\r\nOK\r\n"},
		{"AX\bT\r", "AX\bT\r\r\nOK\r\n"},
		{"ATE1V1\r", "ATE1V1\r\r\nOK\r\n"},
		{"A/", "A/\r\nOK\r\n"},
	}
	for _, st := range steps {
		if diff := cmp.Diff(st.want, e.in(st.in)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", st.in, diff)
		}
	}
	e.sim.mu.Lock()
	e.sim.powerOn()
	e.sim.bootNow()
	e.sim.mu.Unlock()
	e.at("ATE0")
	e.sim.mu.Lock()
	e.sim.powerOn()
	e.sim.bootNow()
	e.sim.mu.Unlock()
	if diff := cmp.Diff("AT\r\r\nOK\r\n", e.in("AT\r")); diff != "" {
		t.Errorf("after a boot echo must be on (-want +got):\n%s", diff)
	}
}

// TestCommandsSplitAcrossWrites feeds a command one byte at a time.
func TestCommandsSplitAcrossWrites(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0")
	var got string
	for _, c := range []byte("AT+CSQ\r") {
		got += e.in(string(c))
	}
	if diff := cmp.Diff("\r\n+CSQ: 17,99\r\n\r\nOK\r\n", got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestBootPhases checks what a module answers before its boot is done.
func TestBootPhases(t *testing.T) {
	tests := []struct {
		profile string
		phase   int
		in      string
		want    string
	}{
		{"quectel", phaseOff, "AT\r", ""},
		{"quectel", phaseRDY, "AT\r", "AT\r\r\nOK\r\n"},
		{"quectel", phaseRDY, "AT+CIMI\r", "AT+CIMI\r\r\n+CME ERROR: 14\r\n"},
		{"quectel", phaseSIM, "AT+CPMS?\r", "AT+CPMS?\r\r\n+CMS ERROR: 500\r\n"},
		{"quectel", phaseSIM, "AT+CMGL=4\r", "AT+CMGL=4\r\r\n+CMS ERROR: 500\r\n"},
		{"simcom", phaseSIM, "AT+CMGR=0\r", "AT+CMGR=0\r\r\n+CMS ERROR: 500\r\n"},
		{"ublox", phaseSIM, "AT+CPMS?\r", "AT+CPMS?\r\r\n+CME ERROR: 14\r\n"},
		{"quectel", phaseSIM, "AT+CIMI\r", "AT+CIMI\r\r\n732123200004178\r\n\r\nOK\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.profile+" "+tt.in, func(t *testing.T) {
			e := newEngine(t, Options{Profile: tt.profile})
			e.sim.mu.Lock()
			e.sim.set.cmee = 1
			e.sim.phase = tt.phase
			e.sim.mu.Unlock()
			if diff := cmp.Diff(tt.want, e.in(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRegistrationURCs checks +CREG/+CGREG/+CEREG URCs per their n.
func TestRegistrationURCs(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CEREG=2", "AT+CREG=1")
	e.sim.SetRegistration(1)
	if diff := cmp.Diff("\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2D001\",7\r\n", e.out.take()); diff != "" {
		t.Errorf("to home (-want +got):\n%s", diff)
	}
	e.sim.SetRegistration(1)
	if got := e.out.take(); got != "" {
		t.Errorf("no change must say nothing, got %q", got)
	}
	e.quiet("AT+CEREG=1")
	e.sim.SetRegistration(2)
	if diff := cmp.Diff("\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n", e.out.take()); diff != "" {
		t.Errorf("to searching (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+COPS: 0\r\n\r\nOK\r\n", e.at("AT+COPS?")); diff != "" {
		t.Errorf("COPS unregistered (-want +got):\n%s", diff)
	}
	e.sim.SetRegistration(5)
	e.out.take()
	if diff := cmp.Diff("\r\nOK\r\n\r\n+CREG: 0\r\n\r\n+CEREG: 0\r\n", e.at("AT+CFUN=4")); diff != "" {
		t.Errorf("radio off (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\n+CSQ: 99,99\r\n\r\nOK\r\n", e.at("AT+CSQ")); diff != "" {
		t.Errorf("CSQ with radio off (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("\r\nOK\r\n\r\n+CREG: 5\r\n\r\n+CEREG: 5\r\n", e.at("AT+CFUN=1")); diff != "" {
		t.Errorf("radio on (-want +got):\n%s", diff)
	}
}

// TestURCNoiseStaysBetweenGroups checks that noise URCs never split a
// header from its PDU, and that the reply is intact once they are removed.
func TestURCNoiseStaysBetweenGroups(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CNMI=0,0,0,0,0")
	for range 3 {
		if _, err := e.sim.InjectSMS(SMS{Text: "noise test"}); err != nil {
			t.Fatal(err)
		}
	}
	clean := e.at("AT+CMGL=4")
	e.quiet("AT+CMGD=0,4")
	for range 3 {
		if _, err := e.sim.InjectSMS(SMS{Text: "noise test"}); err != nil {
			t.Fatal(err)
		}
	}
	e.sim.SetFaults(Faults{URCNoise: 1})
	noisy := e.at("AT+CMGL=4")
	if noisy == clean {
		t.Fatal("URCNoise=1 added no URC")
	}
	var kept []string
	lines := splitLines(noisy)
	for i, l := range lines {
		if isNoise(l) {
			if i > 0 && len(lines[i-1]) > 6 && lines[i-1][:6] == "+CMGL:" {
				t.Errorf("noise %q between +CMGL header and PDU", l)
			}
			continue
		}
		kept = append(kept, l)
	}
	if diff := cmp.Diff(splitLines(clean), kept); diff != "" {
		t.Errorf("reply without noise differs (-want +got):\n%s", diff)
	}
}

func isNoise(l string) bool {
	for _, p := range []string{"+CEREG:", "+QIND:"} {
		if len(l) >= len(p) && l[:len(p)] == p {
			return true
		}
	}
	return false
}

// splitLines returns the non-empty CRLF-separated lines.
func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '\r' || s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// TestFaultErrorOn checks that the ErrorOn fault answers a plain ERROR to
// the named commands only, whatever CMEE says, and that clearing it brings
// the real answer back.
func TestFaultErrorOn(t *testing.T) {
	e := newEngine(t, Options{})
	e.quiet("ATE0", "AT+CMEE=1")
	e.sim.SetFaults(Faults{ErrorOn: []string{"AT+CMEE?", "+cfun=1,1"}})
	for _, tt := range []struct{ in, want string }{
		{"AT+CMEE?", "\r\nERROR\r\n"},
		{"at+cmee?", "\r\nERROR\r\n"},
		{"AT+CFUN=1,1", "\r\nERROR\r\n"},
		{"AT+CMEE=1", "\r\nOK\r\n"},
		{"AT+CFUN?", "\r\n+CFUN: 1\r\n\r\nOK\r\n"},
		{"AT", "\r\nOK\r\n"},
		// Each command of a line on its own: the first runs, the second fails.
		{"AT+CGMI;+CMEE?", "\r\nQuectel\r\n\r\nERROR\r\n"},
	} {
		if diff := cmp.Diff(tt.want, e.at(tt.in)); diff != "" {
			t.Errorf("%q with ErrorOn (-want +got):\n%s", tt.in, diff)
		}
	}
	e.sim.SetFaults(Faults{})
	if diff := cmp.Diff("\r\n+CMEE: 1\r\n\r\nOK\r\n", e.at("AT+CMEE?")); diff != "" {
		t.Errorf("AT+CMEE? after clearing the fault (-want +got):\n%s", diff)
	}
}
