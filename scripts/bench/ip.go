package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// Sizes of the IP Command measurements.
const (
	ipThroughputOS    = 5000 // datagrams in the os-mode throughput run
	ipThroughputModem = 1000 // datagrams in the modem-mode throughput run
	ipWindow          = 256  // datagrams in flight at most (sent, not yet on MQTT)
	ipOutRequests     = 500  // ip/out requests in the MQTT -> UDP run
	ipAvailableWait   = 15 * time.Second
)

// cloudListener stands in for the Super SIM cloud: it counts the datagrams
// the gateway sends in ip.mode os.
type cloudListener struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  map[string]int
	done chan struct{}
}

func listenCloud() (*cloudListener, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("cloud listener: %w", err)
	}
	l := &cloudListener{conn: c, got: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mk := findMarker(buf[:n])
			l.mu.Lock()
			l.got[mk]++
			l.mu.Unlock()
		}
	}()
	return l, nil
}

func (l *cloudListener) addr() string { return l.conn.LocalAddr().String() }

func (l *cloudListener) count(tag string, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := 0
	for i := range n {
		if l.got[marker(tag, i)] > 0 {
			c++
		}
	}
	return c
}

func (l *cloudListener) close() error {
	err := l.conn.Close()
	<-l.done
	return err
}

// ipSender sends one IP Command datagram carrying mk to the device.
type ipSender func(mk string) error

// measureIPLatency sends n datagrams one at a time and returns the time
// from each send to its arrival on P/ip/in.
func measureIPLatency(ctx context.Context, send ipSender, obs *observer, tag string, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return lat, err
		}
		mk := marker(tag, i)
		t0 := time.Now()
		if err := send(mk); err != nil {
			return lat, err
		}
		a, err := obs.wait("ip/in", mk, msgWait)
		if err != nil {
			return lat, err
		}
		lat = append(lat, a.first.Sub(t0))
	}
	return lat, nil
}

// measureIPThroughput sends n datagrams keeping at most ipWindow of them
// unrelayed (a sender that outruns the gateway would only measure the
// socket buffer's drops) and returns the rate from the first send to the
// last arrival.
func measureIPThroughput(ctx context.Context, send ipSender, obs *observer, tag string, n int) (float64, error) {
	t0 := time.Now()
	var last time.Time
	wait := func(i int) error {
		a, err := obs.wait("ip/in", marker(tag, i), msgWait)
		if err != nil {
			return err
		}
		if a.first.After(last) {
			last = a.first
		}
		return nil
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if i >= ipWindow {
			if err := wait(i - ipWindow); err != nil {
				return 0, err
			}
		}
		if err := send(marker(tag, i)); err != nil {
			return 0, err
		}
	}
	for i := max(0, n-ipWindow); i < n; i++ {
		if err := wait(i); err != nil {
			return 0, err
		}
	}
	return rate(n, last.Sub(t0)), nil
}

// ipPayload is an IP Command datagram carrying mk, about 60 bytes.
func ipPayload(mk string) []byte { return []byte(`{"cmd":"set","led":"on","ref":"` + mk + `"}`) }

// ipOS measures IP Commands with a UDP socket of this host (ip.mode os):
// datagrams over loopback to the gateway's port, the durable queue on.
func (b *bench) ipOS(ctx context.Context) (err error) {
	const section = "IP (ip.mode os)"
	port, err := freePort("udp")
	if err != nil {
		return err
	}
	cloud, err := listenCloud()
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, cloud.close()) }()
	r, err := b.startRig("ipos", rigSpec{gw: gwConfig{IPMode: "os", IPPort: port, Bind: "127.0.0.1", Cloud: cloud.addr()}})
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, r.close()) }()
	if _, err := b.ready(r); err != nil {
		return err
	}

	in := b.osAvailable(port)
	if in != "" {
		b.rep.skip(section, "UDP → MQTT latency and throughput", in)
		b.step("ip.mode os receive skipped: %s", in)
	} else {
		conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			return fmt.Errorf("dial the gateway's port: %w", err)
		}
		defer conn.Close()
		send := func(mk string) error {
			_, err := conn.Write(ipPayload(mk))
			return err
		}
		if err := b.ipInMeasures(ctx, section, "os", send, r.obs, ipThroughputOS, atLeast(2000, "≥ 2,000 msg/s")); err != nil {
			return err
		}
		if m, err := readMemory(r.gw.pid()); err == nil {
			b.rep.add("Footprint", "RSS peak (VmHWM) after the os-mode UDP runs", float64(m.HWM)/(1<<20), "MB", nil, "")
		}
	}

	rate, failed, err := requestRate(r.obs, "ip/out", "ipout", ipOutRequests, func(mk string) any {
		return map[string]string{"id": mk, "payload": string(ipPayload(mk))}
	})
	if err != nil {
		b.rep.skip(section, "MQTT → UDP send rate", "requests answered with failed: "+unavailable(err))
		b.step("ip.mode os send skipped: %v", err)
		return nil
	}
	got := cloud.count("ipout", ipOutRequests)
	b.rep.add(section, "MQTT → UDP send rate", rate, "msg/s", nil,
		fmt.Sprintf("%d requests, %d failed results, %d datagrams reached the cloud listener", ipOutRequests, failed, got))
	b.step("ip.mode os MQTT → UDP: %.0f msg/s", rate)
	return nil
}

// osAvailable returns "" when something listens on the gateway's UDP port
// after READY=1, or why the os-mode receive cannot be measured.
func (b *bench) osAvailable(port int) string {
	deadline := time.Now().Add(ipAvailableWait)
	for {
		bound, err := udpBound(port)
		if err != nil {
			return err.Error()
		}
		if bound {
			return ""
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("nothing bound UDP port %d within %s of READY=1: the ip.mode os receiver is not wired into this build "+
				"(newest commit on transport/udp*.go: %s)", port, ipAvailableWait, lastCommit(b.root, "transport/udp*.go"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ipInMeasures runs the latency and throughput measurements of one mode.
func (b *bench) ipInMeasures(ctx context.Context, section, mode string, send ipSender, obs *observer, n int, t *target) error {
	// The first datagram also proves the path works end to end.
	if _, err := measureIPLatency(ctx, send, obs, "ipwarm"+mode, 1); err != nil {
		return err
	}
	lat, err := measureIPLatency(ctx, send, obs, "iplat"+mode, b.n)
	if err != nil {
		return err
	}
	s := summarize(lat)
	b.rep.latency(section, "UDP → MQTT "+mode, s, nil, "one at a time")
	tp, err := measureIPThroughput(ctx, send, obs, "iptp"+mode, n)
	if err != nil {
		return err
	}
	b.rep.add(section, "UDP → MQTT throughput "+mode, tp, "msg/s", t, fmt.Sprintf("%d datagrams, ≤ %d in flight, durable queue on", n, ipWindow))
	b.step("UDP → MQTT %s: p50 %.2f ms, %.0f msg/s", mode, s.P50, tp)
	return nil
}

// ipModem measures IP Commands through the module's own UDP socket
// (ip.mode modem), with the serial line paced at 115200 baud.
func (b *bench) ipModem(ctx context.Context) (err error) {
	const section = "IP (ip.mode modem, 115200 baud)"
	const port = 6969
	r, err := b.startRig("ipmodem", rigSpec{sim: modemsim.Options{Baud: 115200}, gw: gwConfig{IPMode: "modem", IPPort: port}})
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, r.close()) }()
	if _, err := b.ready(r); err != nil {
		return err
	}
	send := func(mk string) error { return r.sim.InjectUDP("100.64.0.1:6969", port, ipPayload(mk)) }
	if why := modemAvailable(send); why != "" {
		b.rep.skip(section, "UDP → MQTT latency and throughput", why)
		b.step("ip.mode modem receive skipped: %s", why)
	} else if err := b.ipInMeasures(ctx, section, "modem", send, r.obs, ipThroughputModem, nil); err != nil {
		return err
	}

	n := min(ipOutRequests, 200)
	rate, failed, err := requestRate(r.obs, "ip/out", "ipout", n, func(mk string) any {
		return map[string]string{"id": mk, "payload": string(ipPayload(mk))}
	})
	if err != nil {
		b.rep.skip(section, "MQTT → UDP send rate", "requests answered with failed: "+unavailable(err))
		b.step("ip.mode modem send skipped: %v", err)
		return nil
	}
	sent := 0
	for _, u := range r.sim.State().SentUDP {
		if strings.Contains(string(u.Data), "bm-ipout-") {
			sent++
		}
	}
	b.rep.add(section, "MQTT → UDP send rate", rate, "msg/s", nil,
		fmt.Sprintf("%d requests, %d failed results, %d datagrams sent by the module", n, failed, sent))
	b.step("ip.mode modem MQTT → UDP: %.1f msg/s", rate)
	return nil
}

// modemAvailable waits for the gateway to open its module socket; it
// returns "" once a datagram was accepted, or why not.
func modemAvailable(send ipSender) string {
	deadline := time.Now().Add(ipAvailableWait)
	for {
		err := send(marker("ipprobe", 0))
		if err == nil {
			return ""
		}
		if time.Now().After(deadline) {
			if errors.Is(err, modemsim.ErrNoSocket) || strings.Contains(err.Error(), "data session down") {
				return fmt.Sprintf("the gateway opened no module socket within %s of READY=1 (modemsim: %v): module sockets are not in this build", ipAvailableWait, err)
			}
			return err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unavailable shortens the error of a request run that only got failed
// results to its reason.
func unavailable(err error) string {
	s := err.Error()
	if _, after, ok := strings.Cut(s, "failed: "); ok {
		return after
	}
	return s
}
