package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// packagedBrokerConf is the mosquitto snippet the package installs in
// /etc/mosquitto/conf.d, as configuration lines.
func packagedBrokerConf(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "mosquitto-simgate.conf"))
	if err != nil {
		t.Fatalf("the packaged mosquitto snippet: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// publishBurst publishes n QoS 1 requests as fast as one client can, each
// waiting only for the broker's PUBACK, and returns their ids.
func publishBurst(t *testing.T, url, topic, tag string, n int) map[string]bool {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(clientID("burst")).SetMaxResumePubInFlight(0))
	if tok := c.Connect(); !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
		t.Fatalf("burst publisher connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	ids := make(map[string]bool, n)
	toks := make([]paho.Token, 0, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", tag, i)
		ids[id] = true
		toks = append(toks, c.Publish(topic, 1, false, fmt.Sprintf(`{"id":%q,"payload":"b%d"}`, id, i)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(e2eWait) || tok.Error() != nil {
			t.Fatalf("burst publish: %v", tok.Error())
		}
	}
	return ids
}

// waitResults waits until every id has a result, or the results stop
// coming, and returns how many of ids have one.
func (r *rig) waitResults(ids map[string]bool) int {
	r.t.Helper()
	count := func() int {
		n := 0
		for _, res := range r.obs.results("sms/out/result") {
			if ids[res.ID] {
				n++
			}
		}
		return n
	}
	last, still := -1, time.Now()
	for {
		n := count()
		if n >= len(ids) {
			return n
		}
		if n != last {
			last, still = n, time.Now()
		}
		if time.Since(still) > 20*time.Second {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestE2ERequestsBrokerQueue sends requests faster than the gateway takes
// them in, and while it restarts, through mosquitto configured with the
// package's conf.d snippet: mosquitto's default holds only 1000 QoS 1
// messages per client and drops the rest without a word ("Outgoing messages
// are being dropped"), so requests never got a result. Every request must
// get exactly one.
func TestE2ERequestsBrokerQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("hardware-in-loop")
	}
	r := newRig(t, rigOptions{BrokerConf: packagedBrokerConf(t)})
	r.waitReady()
	topic := r.prefix + "/sms/out"

	// While the daemon is down, its persistent session collects them.
	if code := r.gw.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("simgate exited with %d on SIGTERM", code)
	}
	down := publishBurst(t, r.url, topic, "down", 2500)
	r.gw.start()
	if got := r.waitResults(down); got != len(down) {
		t.Errorf("requests sent while simgate was down: %d of %d got a result", got, len(down))
	}

	// A burst while it runs.
	burst := publishBurst(t, r.url, topic, "burst", 5000)
	if got := r.waitResults(burst); got != len(burst) {
		t.Errorf("burst of %d requests: %d got a result", len(burst), got)
	}
	seen := map[string]int{}
	for _, res := range r.obs.results("sms/out/result") {
		seen[res.ID]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("request %s got %d results", id, n)
		}
	}
	if log, err := os.ReadFile(r.mq.logPath); err == nil && strings.Contains(string(log), "are being dropped") {
		t.Errorf("mosquitto dropped messages:\n%s", tail(r.mq.logPath, 5))
	}
}
