package modemsim

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzHostInput feeds arbitrary host bytes to every profile's command
// parser. The module must never panic, and whatever state the bytes left it
// in (a half line, a prompt waiting for data), ESC, enough padding to end a
// data prompt and a fresh "AT" must bring back an OK.
func FuzzHostInput(f *testing.F) {
	seeds := []string{
		"AT\r", "ATE0\r", "AT+CMGF=0;+CNMI=2,1,0,0,0\r", "AT+CMGR=0\r", "AT+CMGL=4\r",
		"AT+CMGS=24\r0001000381000F0000026F37\x1a", "AT+CMGS=5\r00\x1b", "AT+CMGF=1\rAT+CMGS=\"000\"\rhi\x1a",
		"AT+CPMS=\"SM\",\"SM\",\"SM\"\r", "AT+CMGD=0,4\r", "AT+CSMS=1;+CNMA\r", "AT+CEREG=2;+CEREG?\r",
		"AT+QIACT=1\rAT+QIOPEN=1,0,\"UDP SERVICE\",\"127.0.0.1\",0,6969,0\rAT+QISEND=0,3,\"1.2.3.4\",5\r\x00\r\n",
		"AT+QIRD=0,1500\r", "AT+NETOPEN\rAT+CIPOPEN=0,\"UDP\",,,6969\rAT+CIPSEND=0,2,\"1.2.3.4\",5\rab",
		"AT+USOCR=17,6969\rAT+USOST=0,\"1.2.3.4\",5,2\r\xff\xfe", "AT+UDCONF=1,1\rAT+USOST=0,\"1.2.3.4\",5,1,\"0G\"\r",
		"ATV0Q1E0\r", "A/", "AT\x08\x08T\r", "\x00\xff\xfeAT+CGMI\r", "AT+CFUN=4;+CFUN=1\r", `AT+CSCS="UCS2"` + "\r",
		"AT+CGDCONT=1,\"IP\",\"super\r", "AT+" + strings.Repeat("X", 3000) + "\r", "AT+CMGR=99999999999999999999\r",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		names := []string{"quectel", "simcom", "ublox", "generic"}
		e := newEngine(t, Options{Profile: names[int(which)%len(names)], EmptyRead: []string{"ok", "error"}[int(which/4)%2]})
		if _, err := e.sim.InjectSMS(SMS{Text: "seed", Parts: 2}); err != nil {
			t.Fatal(err)
		}
		e.sim.mu.Lock()
		if !e.sim.data.up {
			e.sim.data.up = true
			e.sim.data.ip = "10.64.0.1"
		}
		e.sim.mu.Unlock()
		e.in(string(in))
		if err := e.sim.InjectUDP(cloud, 6969, []byte("x")); err != nil && !strings.Contains(err.Error(), "no socket") && !strings.Contains(err.Error(), "data session") {
			t.Fatalf("InjectUDP after fuzz: %v", err)
		}
		_ = e.sim.State()
		// Recover to command mode: CR ends a half-typed line (which may
		// open a prompt), ESC ends a text prompt, a data prompt wants at
		// most 1500 bytes, and a last CR flushes the padding as a line
		// without AT.
		e.in("\r" + strings.Repeat("\x1b", maxDatagram+1) + "\r")
		e.sim.mu.Lock()
		e.sim.set.verbose, e.sim.set.quiet, e.sim.cfun = true, false, 1
		e.sim.mu.Unlock()
		if e.sim.phase < phaseRDY {
			return // a CFUN reset in the input: the module is rebooting
		}
		got := e.in("\rAT\r")
		if !bytes.HasSuffix([]byte(got), []byte("\r\nOK\r\n")) {
			t.Fatalf("after %q the module answers %q to AT", in, got)
		}
	})
}
