package modem

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at/attest"
)

// A command times out, the AT probe is answered: serving resumes on the
// same port without a re-init, and the next poll ends the recovery.
func TestSessionProbeAnswered(t *testing.T) {
	port := attest.New(t, initSteps(list())...)
	r := newRigWith(t, defaultConfig(), nil, func(s *Session) { hook(s, func(h *testHooks) { h.cmdTimeout = 50 * time.Millisecond }) }, port)
	port.Wait(wait)
	port.Append(attest.Step{Write: "AT+CSQ\r"}) // no answer
	port.Append(answer("AT+CMEE?\r", "+CMEE: 1"), ok("AT\r"))
	// SMS that reached the silent module went unannounced: a drain first,
	// then the poll that proves the modem healthy.
	port.Append(list())
	port.Append(pollSteps(0)...)
	r.poll()
	if e := r.event(gw.EventRecoveryProbe); !strings.Contains(e.Message, "did not answer") {
		t.Errorf("event %+v", e)
	}
	e := r.event(gw.EventRecoveryDone)
	if e.Fields["step"] != "probe" {
		t.Errorf("event %+v, want recovery done after the probe", e)
	}
	port.Wait(wait)
	st := r.s.Status().Recovery
	if st.Probes != 1 || st.Reinits != 0 || st.Reopens != 0 {
		t.Errorf("recovery %+v, want one probe only", st)
	}
	if err := r.s.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
}

// The port vanishes and does not come back: after PortGoneLimit the ladder
// gives up and Healthy reports it, so the service manager restarts us.
func TestSessionPortGoneTooLong(t *testing.T) {
	cfg := defaultConfig()
	cfg.PortGoneLimit = 20 * time.Millisecond
	port := attest.New(t, initSteps(list())...)
	r := newRig(t, cfg, nil, port) // no port after the first
	port.Wait(wait)
	port.Close()
	r.event(gw.EventRecoveryReopen)
	r.event(gw.EventRecoveryFailed)
	err := r.s.Healthy()
	if !errors.Is(err, errGaveUp) || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("Healthy() = %v, want recovery failed naming the open error", err)
	}
	if st := r.s.Status(); st.Ready || !strings.Contains(st.Recovery.LastError, "no such device") {
		t.Errorf("status %+v", st)
	}
}

// Healthy before the first initialisation is ErrNotReady; once serving,
// nil.
func TestSessionHealthyRule(t *testing.T) {
	port := attest.New(t)
	port.Append(attest.Step{Write: "AT\r"}) // booting: no answer yet
	r := newRig(t, defaultConfig(), nil, port)
	port.Wait(wait)
	if err := r.s.Healthy(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Healthy() before initialisation = %v, want ErrNotReady", err)
	}
	port.Append(answer("AT+CMEE?\r", "+CMEE: 0"))
	port.Append(initSteps(list())...)
	port.Wait(wait)
	r.event(gw.EventModemConnected)
	if err := r.s.Healthy(); err != nil {
		t.Errorf("Healthy() once serving = %v", err)
	}
}

// A Quectel socket left open by an earlier run (a daemon restart, a
// re-init) is kept, and the datagrams it buffered meanwhile are read.
func TestSessionKeepsOpenSocket(t *testing.T) {
	cfg := defaultConfig()
	cfg.IPMode, cfg.IPPort = "modem", 6969
	port := attest.New(t, initSteps(list(),
		answer("AT+QISTATE=1,0\r", `+QISTATE: 0,"UDP SERVICE","127.0.0.1",0,6969,2,1,0,0,"usbat"`),
		answer("AT+QIACT?\r", `+QIACT: 1,1,1,"10.64.12.34"`),
		attest.Step{Write: "AT+QIRD=0,1500\r", Read: "\r\n+QIRD: 6,\"100.64.0.1\",6969\r\nq\r\n\x00\"x\r\n\r\nOK\r\n"},
		answer("AT+QIRD=0,1500\r", "+QIRD: 0"),
	)...)
	r := newRig(t, cfg, nil, port)
	port.Wait(wait)
	got := r.messages(1)
	want := []gw.Inbound{{Channel: gw.ChannelIP, From: "100.64.0.1:6969", Port: 6969, Payload: []byte("q\r\n\x00\"x"), Binary: true}}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if e := r.event(gw.EventDataUp); !strings.Contains(e.Message, "still open") {
		t.Errorf("event %+v", e)
	}
	if d := r.s.Status().Data; d != (gw.DataInfo{Mode: "modem", State: DataUp, IP: "10.64.12.34"}) {
		t.Errorf("data = %+v", d)
	}
}

// Opening fails with an answer (no network yet): retried with backoff and
// reported, while SMS carry on.
func TestSessionDataOpenRetried(t *testing.T) {
	cfg := defaultConfig()
	cfg.IPMode, cfg.IPPort = "modem", 6969
	failOpen := []attest.Step{
		answer("AT+QISTATE=1,0\r", ""),
		ok(`AT+QICSGP=1,1,"super","","",1` + "\r"),
		ok("AT+QIACT?\r"),
		{Write: "AT+QIACT=1\r", Read: "\r\n+CME ERROR: 561\r\n"},
	}
	openOK := []attest.Step{
		answer("AT+QISTATE=1,0\r", ""),
		ok(`AT+QICSGP=1,1,"super","","",1` + "\r"),
		ok("AT+QIACT?\r"),
		ok("AT+QIACT=1\r"),
		answer("AT+QIACT?\r", `+QIACT: 1,1,1,"10.64.12.40"`),
		ok("AT+QISDE=0\r"),
		{Write: "AT+QICLOSE=0\r", Read: "\r\nERROR\r\n"},
		{Write: `AT+QIOPEN=1,0,"UDP SERVICE","127.0.0.1",0,6969,0` + "\r", Read: "\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n"},
	}
	port := attest.New(t, initSteps(append([]attest.Step{list()}, append(failOpen, openOK...)...)...)...)
	r := newRig(t, cfg, nil, port)
	if e := r.event(gw.EventDataOpenFailed); !strings.Contains(e.Message, "+CME ERROR: 561") {
		t.Errorf("event %+v does not carry the module's reason", e)
	}
	r.event(gw.EventDataUp)
	port.Wait(wait)
	if d := r.s.Status().Data; d.State != DataUp || d.IP != "10.64.12.40" {
		t.Errorf("data = %+v", d)
	}
}
