package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// The soak runs the daemon for a long time under a steady mix of traffic
// with periodic faults, and checks the delivery promise: every SMS and
// every accepted datagram reaches MQTT, every request gets a result.
//
//	go run ./scripts/bench soak [-duration 1h] [-faults unplug,hang,broker-restart] [-rev REV] [-keep] [-v]
//
// SOAK_DURATION sets the default duration.

// soakConfig is the load and fault plan of a soak run.
type soakConfig struct {
	duration   time.Duration
	smsEvery   time.Duration
	udpEvery   time.Duration
	reqEvery   time.Duration
	faultEvery time.Duration
	faults     []string // injected round robin
	report     time.Duration
	drain      time.Duration
}

// faultKinds are the faults the soak injects, round robin by default.
var faultKinds = []string{"unplug", "hang", "broker-restart"}

// identicalCopies is how many identical copies every tenth SMS of the soak
// is sent as.
const identicalCopies = 3

// A datagram sent from atRiskBefore before a fault to atRiskGrace after it
// counts as sent into the fault: a module that re-enumerates or hangs loses
// what its socket buffered, as a real one does, and that is not the
// gateway's loss. These are reported apart and do not fail the soak.
const (
	atRiskBefore = time.Second
	atRiskGrace  = 5 * time.Second
)

func soakMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := time.Hour
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(stderr, "soak: SOAK_DURATION=%q: want a positive duration such as 1h or 2m\n", v)
			return 2
		}
		def = d
	}
	duration := fs.Duration("duration", def, "how long to run the load (then drain and check)")
	rev := fs.String("rev", os.Getenv("BENCH_REV"), "build simgate from this commit (git archive) instead of the work tree")
	keep := fs.Bool("keep", false, "keep the work directory (logs of every process)")
	verbose := fs.Bool("v", false, "log details to stderr")
	faults := fs.String("faults", strings.Join(faultKinds, ","), "faults to inject, round robin (unplug, hang, broker-restart; \"\" for none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var plan []string
	for _, f := range strings.Split(*faults, ",") {
		if f == "" {
			continue
		}
		if !slices.Contains(faultKinds, f) {
			fmt.Fprintf(stderr, "soak: unknown fault %q (want %s)\n", f, strings.Join(faultKinds, ", "))
			return 2
		}
		plan = append(plan, f)
	}
	log, root, err := setup(stderr, *verbose)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	cfg := soakConfig{
		duration: *duration, smsEvery: 500 * time.Millisecond, udpEvery: 100 * time.Millisecond,
		reqEvery: time.Second, report: time.Minute, drain: 3 * time.Minute,
		faultEvery: min(max(*duration/5, 20*time.Second), 5*time.Minute), faults: plan,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &soak{cfg: cfg, root: root, rev: *rev, log: log, out: stdout}
	lost, err := s.run(ctx, *keep)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	if lost > 0 {
		fmt.Fprintf(stderr, "soak: %d lost\n", lost)
		return 1
	}
	return 0
}

// soak is one soak run.
type soak struct {
	cfg  soakConfig
	root string
	rev  string
	log  *slog.Logger
	out  io.Writer

	work   string
	broker *broker
	sim    *modemsim.Sim
	gw     *gateway
	obs    *observer
	ipMode string
	udp    *net.UDPConn // ip.mode os: to the gateway's port

	sms, udpIn             []string    // markers expected, by kind
	udpAt                  []time.Time // when each of udpIn was accepted by the module or socket
	smsAt                  []time.Time // injection time of each of sms
	started                time.Time   // when the load started
	injectErrs, udpRefused int
	faults                 []faultSpan

	// Requests are published from goroutines of their own, so a broker
	// restart does not stall the rest of the load.
	mu        sync.Mutex
	reqs      []string // "sms/out bm-r-1": requests the broker accepted
	pubFailed int
	pubs      sync.WaitGroup
}

// faultSpan is when a fault was in force.
type faultSpan struct {
	kind       string
	start, end time.Time
}

func (s *soak) printf(format string, a ...any) { fmt.Fprintf(s.out, format, a...) }

func (s *soak) run(ctx context.Context, keep bool) (lost int, err error) {
	t := findTools()
	if t.mosquitto == "" {
		return 0, fmt.Errorf("mosquitto is not installed; %s", installHint)
	}
	s.work, err = os.MkdirTemp("", "simgate-soak-")
	if err != nil {
		return 0, fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		if keep || err != nil || lost > 0 {
			s.printf("soak: logs kept in %s\n", s.work)
			return
		}
		err = errors.Join(err, os.RemoveAll(s.work))
	}()
	src := s.root
	if s.rev != "" {
		if src, err = exportRev(ctx, s.root, s.rev, filepath.Join(s.work, "src")); err != nil {
			return 0, err
		}
	}
	bin := filepath.Join(s.work, "simgate")
	if err := goBuild(ctx, src, bin, "./cmd/simgate", "", "", ""); err != nil {
		return 0, err
	}
	if s.broker, err = startBroker(t.mosquitto, filepath.Join(s.work, "mosquitto"), true, s.log); err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.broker.stop()) }()
	if s.sim, err = modemsim.Start(modemsim.Options{Link: filepath.Join(s.work, "modem"), Baud: 115200, Logger: s.log}); err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, s.sim.Close()) }()
	if err := waitBooted(s.sim, 10*time.Second); err != nil {
		return 0, err
	}
	const prefix = "supersim/soak"
	if s.obs, err = newObserver(s.broker.url(), "bench-soak-observer", prefix, s.log); err != nil {
		return 0, err
	}
	defer s.obs.close()
	if err := s.startGateway(bin); err != nil {
		return 0, err
	}
	defer func() {
		if s.gw != nil {
			err = errors.Join(err, s.gw.stop())
		}
		if s.udp != nil {
			s.udp.Close()
		}
	}()
	s.printf("soak: %s of SMS in every %s, UDP in every %s (%s), a request every %s, a fault every %s (%v); simgate %s, broker %s\n",
		s.cfg.duration, s.cfg.smsEvery, s.cfg.udpEvery, s.ipMode, s.cfg.reqEvery, s.cfg.faultEvery, s.cfg.faults, bin, s.broker.url())
	if err := s.load(ctx); err != nil {
		return 0, err
	}
	return s.finish(ctx)
}

// startGateway starts simgate with the IP mode that works in this build:
// modem sockets, else a host socket, else none (said in the output).
func (s *soak) startGateway(bin string) error {
	base := gwConfig{DeviceID: "soak", Port: s.sim.Link(), Broker: s.broker.url(), StoreDir: filepath.Join(s.work, "store"), LogLevel: "info"}
	try := func(c gwConfig) error {
		g, err := startGateway(bin, filepath.Join(s.work, "gw"), c)
		if err != nil {
			return err
		}
		s.gw = g
		_, err = g.waitReady(msgWait)
		return err
	}
	c := base
	c.IPMode = "modem"
	if err := try(c); err != nil {
		return err
	}
	why := modemAvailable(func(mk string) error { return s.sim.InjectUDP("100.64.0.1:6969", 6969, ipPayload(mk)) })
	if why == "" {
		s.ipMode = "ip.mode modem"
		return nil
	}
	s.printf("soak: ip.mode modem unavailable (%s); trying ip.mode os\n", why)
	if err := s.gw.stop(); err != nil {
		return err
	}
	port, err := freePort("udp")
	if err != nil {
		return err
	}
	c = base
	c.IPMode, c.IPPort, c.Bind, c.Cloud = "os", port, "127.0.0.1", "127.0.0.1:9"
	if err := try(c); err != nil {
		return err
	}
	b := &bench{root: s.root}
	if why := b.osAvailable(port); why != "" {
		s.printf("soak: UDP in skipped: %s\n", why)
		s.ipMode = "UDP in skipped"
		return nil
	}
	s.udp, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return fmt.Errorf("dial the gateway's port: %w", err)
	}
	s.ipMode = "ip.mode os"
	return nil
}

// sendUDP sends one IP Command in the mode the gateway runs.
func (s *soak) sendUDP(mk string) error {
	if s.udp != nil {
		_, err := s.udp.Write(ipPayload(mk))
		return err
	}
	return s.sim.InjectUDP("100.64.0.1:6969", 6969, ipPayload(mk))
}

// atRisk tells whether a datagram sent at t was sent into a fault.
func (s *soak) atRisk(t time.Time) bool {
	for _, f := range s.faults {
		if !t.Before(f.start.Add(-atRiskBefore)) && (f.end.IsZero() || t.Before(f.end.Add(atRiskGrace))) {
			return true
		}
	}
	return false
}

// load drives traffic and faults for the configured duration.
func (s *soak) load(ctx context.Context) error {
	start := time.Now()
	s.started = start
	end := time.After(s.cfg.duration)
	smsT := time.NewTicker(s.cfg.smsEvery)
	udpT := time.NewTicker(s.cfg.udpEvery)
	reqT := time.NewTicker(s.cfg.reqEvery)
	faultT := time.NewTicker(s.cfg.faultEvery)
	repT := time.NewTicker(s.cfg.report)
	defer func() { smsT.Stop(); udpT.Stop(); reqT.Stop(); faultT.Stop(); repT.Stop() }()
	faultDone := make(chan faultSpan, 1)
	faultBusy := false
	lastCPU, lastAt := time.Duration(0), time.Now()
	if c, err := readSchedCPU(s.gw.pid()); err == nil {
		lastCPU = c
	}
	nSMS, nUDP, nReq, nFault := 0, 0, 0, 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.gw.exited:
			return fmt.Errorf("simgate exited during the soak: %v; log:\n%s", s.gw.exitErr, s.gw.tail())
		case <-end:
			s.pubs.Wait()
			if faultBusy {
				f := <-faultDone
				s.faults[len(s.faults)-1].end = f.end
			}
			if cpu, err := readSchedCPU(s.gw.pid()); err == nil {
				s.line(time.Since(start), float64(cpu-lastCPU)/float64(time.Since(lastAt)))
			}
			return nil
		case <-smsT.C:
			mk := marker("s", nSMS)
			nSMS++
			// Every tenth is a cloud repeating a command within a second:
			// identical copies, each a message of its own.
			copies := 1
			if nSMS%10 == 0 {
				copies = identicalCopies
			}
			_, err := s.sim.InjectSMS(modemsim.SMS{Text: smsText(mk), Copies: copies})
			if err != nil && !errors.Is(err, modemsim.ErrStoreFull) {
				s.injectErrs++
				s.log.Warn("inject SMS", "err", err)
				continue
			}
			// A full store keeps the SMS in the network, to be delivered
			// once the gateway frees a slot: still expected.
			for range copies {
				s.sms = append(s.sms, mk)
				s.smsAt = append(s.smsAt, time.Now())
			}
		case <-udpT.C:
			if s.ipMode == "UDP in skipped" {
				continue
			}
			mk := marker("u", nUDP)
			nUDP++
			if err := s.sendUDP(mk); err != nil {
				// No socket (re-enumerating, data session down): the
				// network drops it, as it drops a datagram to a device
				// that is not attached.
				s.udpRefused++
				continue
			}
			s.udpIn = append(s.udpIn, mk)
			s.udpAt = append(s.udpAt, time.Now())
		case <-reqT.C:
			mk := marker("r", nReq)
			kind := "sms/out"
			if nReq%2 == 1 {
				kind = "ip/out"
			}
			nReq++
			s.pubs.Go(func() {
				err := s.obs.publish(kind, []byte(`{"id":"`+mk+`","payload":"reply `+mk+`"}`))
				s.mu.Lock()
				defer s.mu.Unlock()
				if err != nil {
					// Not accepted by the broker (it is restarting):
					// the publisher knows and would retry; not expected.
					s.pubFailed++
					return
				}
				s.reqs = append(s.reqs, kind+" "+mk)
			})
		case <-faultT.C:
			if faultBusy || len(s.cfg.faults) == 0 {
				continue
			}
			kind := s.cfg.faults[nFault%len(s.cfg.faults)]
			nFault++
			faultBusy = true
			s.faults = append(s.faults, faultSpan{kind: kind, start: time.Now()})
			go func() { faultDone <- s.fault(kind) }()
		case f := <-faultDone:
			faultBusy = false
			s.faults[len(s.faults)-1].end = f.end
		case <-repT.C:
			cpu, err := readSchedCPU(s.gw.pid())
			if err != nil {
				return err
			}
			now := time.Now()
			s.line(time.Since(start), float64(cpu-lastCPU)/float64(now.Sub(lastAt)))
			lastCPU, lastAt = cpu, now
		}
	}
}

// fault injects one fault and returns when it is over.
func (s *soak) fault(kind string) faultSpan {
	f := faultSpan{kind: kind, start: time.Now()}
	switch kind {
	case "unplug":
		s.sim.Unplug(3 * time.Second)
		time.Sleep(3 * time.Second)
	case "hang":
		s.sim.Hang(10 * time.Second)
		time.Sleep(10 * time.Second)
	case "broker-restart":
		if err := s.broker.stop(); err != nil {
			s.log.Warn("broker stop", "err", err)
		}
		time.Sleep(3 * time.Second)
		if err := s.broker.start(); err != nil {
			s.log.Error("broker start", "err", err)
		}
	}
	f.end = time.Now()
	return f
}

// tally counts what arrived of the expected markers.
type tally struct {
	udpExpected, riskSent  int // datagrams outside faults, and sent into one
	sms, udp, risk, reqs   int // received
	smsDup, udpDup, reqDup int // extra copies
	failedResults          int
}

func (s *soak) count() tally {
	var t tally
	got := func(suffix, mk string) (bool, int) {
		a := s.obs.got(suffix, mk)
		return a.count > 0, max(0, a.count-1)
	}
	// An SMS injected as identical copies is listed once per copy; each
	// copy must arrive under an id of its own.
	copies := map[string]int{}
	for _, mk := range s.sms {
		copies[mk]++
	}
	for mk, n := range copies {
		a := s.obs.got("sms/in", mk)
		if n == 1 {
			ok, d := got("sms/in", mk)
			if ok {
				t.sms++
			}
			t.smsDup += d
			continue
		}
		distinct := min(a.ids, n)
		t.sms += distinct
		t.smsDup += max(0, a.count-distinct)
	}
	for i, mk := range s.udpIn {
		ok, d := got("ip/in", mk)
		t.udpDup += d
		if s.atRisk(s.udpAt[i]) {
			t.riskSent++
			if ok {
				t.risk++
			}
			continue
		}
		t.udpExpected++
		if ok {
			t.udp++
		}
	}
	for _, km := range s.requests() {
		kind, mk := splitReq(km)
		a := s.obs.got(kind+"/result", mk)
		if a.count > 0 {
			t.reqs++
			if a.status != "sent" {
				t.failedResults++
			}
		}
		t.reqDup += max(0, a.count-1)
	}
	return t
}

// requests returns the requests the broker accepted so far.
func (s *soak) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

func splitReq(km string) (string, string) {
	for i := range len(km) {
		if km[i] == ' ' {
			return km[:i], km[i+1:]
		}
	}
	return km, ""
}

// line prints one progress line.
func (s *soak) line(elapsed time.Duration, cpu float64) {
	t := s.count()
	rss := "?"
	if m, err := readMemory(s.gw.pid()); err == nil {
		rss = fmt.Sprintf("%.1f MB", float64(m.RSS)/(1<<20))
	}
	nReqs := len(s.requests())
	exp := len(s.sms) + t.udpExpected + nReqs
	got := t.sms + t.udp + t.reqs
	s.printf("soak %6s: in sms %d/%d udp %d/%d (+%d/%d at risk) | out requests %d/%d results (%d failed) | outstanding %d | dups %d | faults %d | RSS %s | CPU %.1f%%\n",
		elapsed.Round(time.Second), t.sms, len(s.sms), t.udp, t.udpExpected, t.risk, t.riskSent,
		t.reqs, nReqs, t.failedResults, exp-got, t.smsDup+t.udpDup+t.reqDup, len(s.faults), rss, 100*cpu)
}

// finish waits for what is still in flight, prints the verdict and
// returns how many expected messages never arrived.
func (s *soak) finish(ctx context.Context) (int, error) {
	s.printf("soak: load stopped; waiting up to %s for what is in flight\n", s.cfg.drain)
	deadline := time.Now().Add(s.cfg.drain)
	var t tally
	for {
		t = s.count()
		if t.sms == len(s.sms) && t.udp == t.udpExpected && t.reqs == len(s.requests()) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	reqs := s.requests()
	lostSMS, lostUDP, lostReq := len(s.sms)-t.sms, t.udpExpected-t.udp, len(reqs)-t.reqs
	st := s.sim.State()
	s.printf("soak: SMS in %d/%d (lost %d, duplicates %d); UDP in %d/%d (lost %d, duplicates %d; %d/%d sent into a fault arrived, %d refused by the network); requests %d/%d answered (lost %d, %d failed results, %d duplicate results, %d not accepted by the broker)\n",
		t.sms, len(s.sms), lostSMS, t.smsDup, t.udp, t.udpExpected, lostUDP, t.udpDup, t.risk, t.riskSent, s.udpRefused,
		t.reqs, len(reqs), lostReq, t.failedResults, t.reqDup, s.pubFailed)
	s.printf("soak: faults %d; modem counters: cmti %d cmgr %d cmgl %d cmgd %d cmgs %d resets %d unplugs %d hangs %d; SIM holds %d, network holds %d; inject errors %d\n",
		len(s.faults), st.Counters[modemsim.CounterCMTI], st.Counters[modemsim.CounterCMGR], st.Counters[modemsim.CounterCMGL],
		st.Counters[modemsim.CounterCMGD], st.Counters[modemsim.CounterCMGS], st.Counters[modemsim.CounterResets],
		st.Counters[modemsim.CounterUnplugs], st.Counters[modemsim.CounterHangs], len(st.Stored), st.NetworkQueue, s.injectErrs)
	s.recovery()
	lost := lostSMS + lostUDP + lostReq
	if lost > 0 {
		s.printf("soak: FAIL: %d lost; first missing: %v\n", lost, s.missing(5))
	} else {
		s.printf("soak: PASS: nothing lost\n")
	}
	return lost, nil
}

// recovery prints, for each fault, how long after it ended SMS flowed
// again (the first SMS injected after the end reaching MQTT), and the worst
// delay of any SMS.
func (s *soak) recovery() {
	var worst time.Duration
	worstMk := ""
	for i, mk := range s.sms {
		if a := s.obs.got("sms/in", mk); a.count > 0 {
			if d := a.first.Sub(s.smsAt[i]); d > worst {
				worst, worstMk = d, mk
			}
		}
	}
	s.printf("soak: worst SMS delay %s (%s)\n", worst.Round(time.Millisecond), worstMk)
	for _, f := range s.faults {
		i, _ := slices.BinarySearchFunc(s.smsAt, f.end, func(t, end time.Time) int { return t.Compare(end) })
		what := "no SMS injected after it"
		if i < len(s.sms) {
			if a := s.obs.got("sms/in", s.sms[i]); a.count > 0 {
				what = fmt.Sprintf("SMS flowing again %s after it ended", a.first.Sub(f.end).Round(time.Millisecond))
			} else {
				what = "the next SMS never arrived"
			}
		}
		s.printf("soak: fault %-14s at +%-6s for %-5s %s\n", f.kind, f.start.Sub(s.started).Round(time.Second),
			f.end.Sub(f.start).Round(100*time.Millisecond), what)
	}
}

// missing lists up to n expected markers that never arrived.
func (s *soak) missing(n int) []string {
	var out []string
	add := func(suffix, mk string) {
		if len(out) < n && s.obs.got(suffix, mk).count == 0 {
			out = append(out, suffix+" "+mk)
		}
	}
	copies := map[string]int{}
	for _, mk := range s.sms {
		if copies[mk]++; copies[mk] == 1 {
			add("sms/in", mk)
		}
	}
	for mk, n := range copies {
		if a := s.obs.got("sms/in", mk); n > 1 && a.count > 0 && a.ids < n && len(out) < 10 {
			out = append(out, fmt.Sprintf("sms/in %s (%d of %d identical copies)", mk, a.ids, n))
		}
	}
	for i, mk := range s.udpIn {
		if !s.atRisk(s.udpAt[i]) {
			add("ip/in", mk)
		}
	}
	for _, km := range s.requests() {
		kind, mk := splitReq(km)
		add(kind+"/result", mk)
	}
	return out
}
