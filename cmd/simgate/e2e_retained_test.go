package main

import (
	"syscall"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestE2ERetainedRequestNotRepeated publishes an id-less request with the
// retain flag, as `mosquitto_pub -r` does, then restarts the daemon three
// times. mosquitto hands the retained copy over again on every
// subscription, and each copy used to get a fresh id: the SMS went out four
// times. It goes out once, live; each retained copy is refused with a
// request_rejected event.
func TestE2ERetainedRequestNotRepeated(t *testing.T) {
	if testing.Short() {
		t.Skip("hardware-in-loop")
	}
	r := newRig(t, rigOptions{})
	r.waitReady()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(r.url).SetClientID(clientID("pub")))
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	if tok := c.Publish(r.prefix+"/sms/out", 1, true, `{"payload":"standing order"}`); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	c.Disconnect(100)
	if !waitUntil(e2eWait, func() bool { return len(r.obs.results("sms/out/result")) == 1 }) {
		t.Fatalf("no result for the live request")
	}
	rejected := func() int {
		n := 0
		for _, e := range r.obs.events() {
			if e.Type == "request_rejected" {
				n++
			}
		}
		return n
	}
	for i := 1; i <= 3; i++ {
		if code := r.gw.stop(syscall.SIGTERM); code != 0 {
			t.Fatalf("simgate exited with %d", code)
		}
		r.gw.start()
		if !waitUntil(e2eWait, func() bool { return rejected() >= i }) {
			t.Fatalf("restart %d: no request_rejected for the retained copy; events %v", i, eventTypes(r.obs.events()))
		}
	}
	sent := 0
	for _, s := range r.sim.State().SentSMS {
		if s.Text == "standing order" {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("the retained request was sent %d times over 3 restarts, want once", sent)
	}
	res := r.obs.results("sms/out/result")
	if len(res) != 4 || res[0].Status != "sent" {
		t.Errorf("results %+v, want the live one sent and three failed", res)
	}
	for _, x := range res[1:] {
		if x.Status != "failed" || x.ID != res[1].ID {
			t.Errorf("result of a retained copy %+v, want failed under one id", x)
		}
	}
}
