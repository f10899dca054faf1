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
// Bursts of identical SMS (same sender, text and second) run with the load:
// each copy must arrive under an id of its own. The faults, round robin,
// are the modem's (unplug, hang), the broker's (restart), a flood of
// requests, a restart on a damaged queue.db, and a full disk under
// store.dir (a small tmpfs; root only).
//
//	go run ./scripts/bench soak [-duration 1h] [-faults unplug,hang,broker-restart,...] [-rev REV] [-keep] [-v]
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

	dupEvery    time.Duration // a burst of identical SMS this often
	dupCopies   int           // copies in each burst
	floodSize   int           // requests in one request-flood
	maxMessages int           // store.max_messages, so a flood meets the bound
	fullHold    time.Duration // how long a full-disk fault keeps the disk full
	storeMiB    int           // size of the tmpfs under store.dir
}

// faultKinds are the faults the soak injects, round robin by default.
// The full disk comes before the damaged store, so the restart after it
// shows whether the queue shrank again once the disk was freed.
var faultKinds = []string{"unplug", "full-disk", "hang", "request-flood", "broker-restart", "corrupt-store"}

// modemFaults are the faults that take the module's buffers with them (a
// re-enumeration, a hang, a re-initialisation after the daemon restarts):
// datagrams sent into them are at risk. A broker restart counts too, as it
// always has. A request flood and a full disk put nothing at risk.
var modemFaults = []string{"unplug", "hang", "broker-restart", "corrupt-store"}

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
	faults := fs.String("faults", strings.Join(faultKinds, ","), "faults to inject, round robin ("+strings.Join(faultKinds, ", ")+"; \"\" for none)")
	damage := fs.String("damage", "page", "how corrupt-store damages queue.db: page (random bytes over a page of live data), meta (both meta pages), empty (zero length)")
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
	if !slices.Contains(damageKinds, *damage) {
		fmt.Fprintf(stderr, "soak: unknown damage %q (want %s)\n", *damage, strings.Join(damageKinds, ", "))
		return 2
	}
	cfg := soakConfig{
		duration: *duration, smsEvery: 500 * time.Millisecond, udpEvery: 100 * time.Millisecond,
		reqEvery: time.Second, report: time.Minute, drain: 3 * time.Minute,
		// Every fault comes round at least once in the run.
		faultEvery: min(max(*duration/time.Duration(len(plan)+1), 20*time.Second), 5*time.Minute), faults: plan,
		dupEvery: 15 * time.Second, dupCopies: 3, floodSize: 2000, maxMessages: 1000,
		fullHold: 15 * time.Second, storeMiB: 64,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &soak{cfg: cfg, root: root, rev: *rev, log: log, out: stdout, damage: *damage, snapReq: make(chan chan []string)}
	lost, err := s.run(ctx, *keep)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	if lost > 0 {
		fmt.Fprintf(stderr, "soak: %d lost or failed checks\n", lost)
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
	dups                   []dupBurst // identical SMS bursts injected

	// The gateway is replaced by the corrupt-store fault; gwMu guards gw
	// and gwDown (the fault's own stop and restarts are not a crash).
	gwMu   sync.Mutex
	gwDown bool
	bin    string
	gwCfg  gwConfig

	damage     string
	storeDir   string // store.dir
	storeMount string // the tmpfs mounted at storeDir, "" when none
	mountNote  string // why there is none
	scen       scenarios
	snapReq    chan chan []string // a fault asking the load goroutine for pendingNow

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
	s.storeDir = filepath.Join(s.work, "store")
	if slices.Contains(s.cfg.faults, "full-disk") {
		// Unmounted after the gateway has stopped (deferred first).
		s.mountStore()
		defer func() { err = errors.Join(err, s.unmountStore()) }()
	}
	if err := s.startGateway(bin); err != nil {
		return 0, err
	}
	defer func() {
		if g := s.currentGW(); g != nil {
			err = errors.Join(err, g.stop())
		}
		if s.udp != nil {
			s.udp.Close()
		}
	}()
	s.printf("soak: %s of SMS in every %s, UDP in every %s (%s), a request every %s, %d identical SMS every %s, a fault every %s (%v); store.max_messages %d; simgate %s, broker %s\n",
		s.cfg.duration, s.cfg.smsEvery, s.cfg.udpEvery, s.ipMode, s.cfg.reqEvery, s.cfg.dupCopies, s.cfg.dupEvery,
		s.cfg.faultEvery, s.cfg.faults, s.cfg.maxMessages, bin, s.broker.url())
	if s.mountNote != "" {
		s.printf("soak: %s\n", s.mountNote)
	}
	if err := s.load(ctx); err != nil {
		return 0, err
	}
	return s.finish(ctx)
}

// startGateway starts simgate with the IP mode that works in this build:
// modem sockets, else a host socket, else none (said in the output).
func (s *soak) startGateway(bin string) error {
	base := gwConfig{DeviceID: "soak", Port: s.sim.Link(), Broker: s.broker.url(), StoreDir: s.storeDir, LogLevel: "info", MaxMessages: s.cfg.maxMessages}
	s.bin = bin
	try := func(c gwConfig) error {
		g, err := startGateway(bin, filepath.Join(s.work, "gw"), c)
		if err != nil {
			return err
		}
		s.setGW(g)
		s.gwCfg = c
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
	if err := s.currentGW().stop(); err != nil {
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
	return s.during(t, modemFaults...)
}

// during tells whether t falls in a fault of one of the kinds, from
// atRiskBefore before it to atRiskGrace after it.
func (s *soak) during(t time.Time, kinds ...string) bool {
	for _, f := range s.faults {
		if !slices.Contains(kinds, f.kind) {
			continue
		}
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
	dupT := time.NewTicker(s.cfg.dupEvery)
	defer func() {
		smsT.Stop()
		udpT.Stop()
		reqT.Stop()
		faultT.Stop()
		repT.Stop()
		dupT.Stop()
	}()
	faultDone := make(chan faultSpan, 1)
	faultBusy := false
	cpuPID, lastCPU, lastAt := 0, time.Duration(0), time.Now()
	// cpuShare is the gateway's CPU since the last line; a gateway
	// restarted meanwhile (corrupt-store) starts its count again.
	cpuShare := func() float64 {
		g := s.currentGW()
		if g == nil {
			return 0
		}
		cpu, err := readSchedCPU(g.pid())
		if err != nil {
			return 0
		}
		now := time.Now()
		share := 0.0
		if g.pid() == cpuPID && cpu >= lastCPU {
			share = float64(cpu-lastCPU) / float64(now.Sub(lastAt))
		}
		cpuPID, lastCPU, lastAt = g.pid(), cpu, now
		return share
	}
	cpuShare()
	nSMS, nUDP, nReq, nFault, nDup := 0, 0, 0, 0, 0
	for {
		watched, exited := s.watchGW()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			if g, still := s.watchGW(); g != watched || still == nil {
				continue // stopped on purpose by a fault, which restarts it
			}
			return fmt.Errorf("simgate exited during the soak: %v; log:\n%s", watched.exitErr, watched.tail())
		case reply := <-s.snapReq:
			reply <- s.pendingNow()
		case <-end:
			s.pubs.Wait()
			for faultBusy {
				select {
				case f := <-faultDone:
					s.faults[len(s.faults)-1].end = f.end
					faultBusy = false
				case reply := <-s.snapReq:
					reply <- s.pendingNow()
				}
			}
			s.line(time.Since(start), cpuShare())
			return nil
		case <-dupT.C:
			mk := marker("d", nDup)
			nDup++
			s.injectIdentical(mk)
		case <-smsT.C:
			mk := marker("s", nSMS)
			nSMS++
			_, err := s.sim.InjectSMS(modemsim.SMS{Text: smsText(mk)})
			if err != nil && !errors.Is(err, modemsim.ErrStoreFull) {
				s.injectErrs++
				s.log.Warn("inject SMS", "err", err)
				continue
			}
			// A full store keeps the SMS in the network, to be delivered
			// once the gateway frees a slot: still expected.
			s.sms = append(s.sms, mk)
			s.smsAt = append(s.smsAt, time.Now())
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
			s.line(time.Since(start), cpuShare())
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
	case "request-flood":
		s.flood()
	case "corrupt-store":
		s.corruptStore()
	case "full-disk":
		s.fillDisk()
	}
	f.end = time.Now()
	return f
}

// tally counts what arrived of the expected markers.
type tally struct {
	smsExpected, udpExpected, reqExpected int // counted as lost when missing
	riskSent, fullSent                    int // datagrams sent into a modem fault, into a full disk
	sms, udp, risk, full, reqs            int // received
	smsDup, udpDup, reqDup                int // extra copies
	failedResults                         int
	failReasons                           map[string]int // error of failed results

	// Identical SMS: each copy must arrive under an id of its own.
	identExpected, ident, identDup int
	// Messages not yet delivered when queue.db was damaged: reported
	// apart, as what the damaged file held.
	damaged, damagedGot int
}

func (s *soak) count() tally {
	t := tally{failReasons: map[string]int{}}
	damaged := s.scen.damagedSet()
	got := func(suffix, mk string) (bool, int) {
		a := s.obs.got(suffix, mk)
		return a.count > 0, max(0, a.count-1)
	}
	for _, mk := range s.sms {
		ok, d := got("sms/in", mk)
		t.smsDup += d
		if damaged["sms/in "+mk] {
			t.damaged++
			if ok {
				t.damagedGot++
			}
			continue
		}
		t.smsExpected++
		if ok {
			t.sms++
		}
	}
	for _, b := range s.identical() {
		a := s.obs.got("sms/in", b.mk)
		distinct := len(a.ids)
		t.identExpected += b.copies
		t.ident += min(distinct, b.copies)
		// A redelivery repeats an id; more ids than copies is a duplicate too.
		t.identDup += a.count - distinct + max(0, distinct-b.copies)
	}
	for i, mk := range s.udpIn {
		ok, d := got("ip/in", mk)
		t.udpDup += d
		switch {
		case damaged["ip/in "+mk]:
			t.damaged++
			if ok {
				t.damagedGot++
			}
		case s.atRisk(s.udpAt[i]):
			t.riskSent++
			if ok {
				t.risk++
			}
		case s.during(s.udpAt[i], "full-disk"):
			t.fullSent++
			if ok {
				t.full++
			}
		default:
			t.udpExpected++
			if ok {
				t.udp++
			}
		}
	}
	for _, km := range s.requests() {
		kind, mk := splitReq(km)
		a := s.obs.got(kind+"/result", mk)
		t.reqDup += max(0, a.count-1)
		if damaged[kind+"/result "+mk] {
			t.damaged++
			if a.count > 0 {
				t.damagedGot++
			}
			continue
		}
		t.reqExpected++
		if a.count > 0 {
			t.reqs++
			if a.status != "sent" {
				t.failedResults++
				t.failReasons[a.err]++
			}
		}
	}
	return t
}

// complete tells whether everything expected has arrived.
func (t tally) complete() bool {
	return t.sms == t.smsExpected && t.udp == t.udpExpected && t.reqs == t.reqExpected && t.ident == t.identExpected
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
	if g := s.currentGW(); g != nil {
		if m, err := readMemory(g.pid()); err == nil {
			rss = fmt.Sprintf("%.1f MB", float64(m.RSS)/(1<<20))
		}
	}
	exp := t.smsExpected + t.udpExpected + t.reqExpected + t.identExpected
	got := t.sms + t.udp + t.reqs + t.ident
	s.printf("soak %6s: in sms %d/%d identical %d/%d udp %d/%d (+%d/%d at risk, +%d/%d into a full disk) | out requests %d/%d results (%d failed) | outstanding %d | dups %d | faults %d | RSS %s | CPU %.1f%%\n",
		elapsed.Round(time.Second), t.sms, t.smsExpected, t.ident, t.identExpected, t.udp, t.udpExpected, t.risk, t.riskSent, t.full, t.fullSent,
		t.reqs, t.reqExpected, t.failedResults, exp-got, t.smsDup+t.udpDup+t.reqDup+t.identDup, len(s.faults), rss, 100*cpu)
}

// finish waits for what is still in flight, prints the verdict and
// returns how many expected messages never arrived, plus the defects the
// scenarios found (a crash loop on a damaged store, a damaged store taken
// without a word).
func (s *soak) finish(ctx context.Context) (int, error) {
	s.printf("soak: load stopped; waiting up to %s for what is in flight\n", s.cfg.drain)
	deadline := time.Now().Add(s.cfg.drain)
	var t tally
	for {
		t = s.count()
		if t.complete() || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	lostSMS, lostUDP, lostReq, lostIdent := t.smsExpected-t.sms, t.udpExpected-t.udp, t.reqExpected-t.reqs, t.identExpected-t.ident
	st := s.sim.State()
	s.printf("soak: SMS in %d/%d (lost %d, duplicates %d); UDP in %d/%d (lost %d, duplicates %d; %d/%d sent into a fault arrived, %d refused by the network); requests %d/%d answered (lost %d, %d failed results, %d duplicate results, %d not accepted by the broker)\n",
		t.sms, t.smsExpected, lostSMS, t.smsDup, t.udp, t.udpExpected, lostUDP, t.udpDup, t.risk, t.riskSent, s.udpRefused,
		t.reqs, t.reqExpected, lostReq, t.failedResults, t.reqDup, s.pubFailed)
	if t.failedResults > 0 {
		s.printf("soak: failed results by error: %s\n", topReasons(t.failReasons, 4))
	}
	s.printf("soak: faults %d; modem counters: cmti %d cmgr %d cmgl %d cmgd %d cmgs %d resets %d unplugs %d hangs %d; SIM holds %d, network holds %d; inject errors %d\n",
		len(s.faults), st.Counters[modemsim.CounterCMTI], st.Counters[modemsim.CounterCMGR], st.Counters[modemsim.CounterCMGL],
		st.Counters[modemsim.CounterCMGD], st.Counters[modemsim.CounterCMGS], st.Counters[modemsim.CounterResets],
		st.Counters[modemsim.CounterUnplugs], st.Counters[modemsim.CounterHangs], len(st.Stored), st.NetworkQueue, s.injectErrs)
	defects := s.scenarioReport(t)
	s.recovery()
	lost := lostSMS + lostUDP + lostReq + lostIdent
	switch {
	case lost > 0 || defects > 0:
		s.printf("soak: FAIL: %d lost (SMS %d, identical SMS %d, UDP %d, requests %d), %d scenario defects; first missing: %v\n",
			lost, lostSMS, lostIdent, lostUDP, lostReq, defects, s.missing(5))
	default:
		s.printf("soak: PASS: nothing lost\n")
	}
	return lost + defects, nil
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
	// A datagram counts at the end however late it came: its delay shows a
	// socket that stopped being read until something restarted it.
	var worstUDP time.Duration
	worstUDPMk := ""
	for i, mk := range s.udpIn {
		if a := s.obs.got("ip/in", mk); a.count > 0 {
			if d := a.first.Sub(s.udpAt[i]); d > worstUDP {
				worstUDP, worstUDPMk = d, mk
			}
		}
	}
	s.printf("soak: worst UDP delay %s (%s)\n", worstUDP.Round(time.Millisecond), worstUDPMk)
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
	damaged := s.scen.damagedSet()
	for _, mk := range s.sms {
		if !damaged["sms/in "+mk] {
			add("sms/in", mk)
		}
	}
	for _, b := range s.identical() {
		if a := s.obs.got("sms/in", b.mk); len(a.ids) < b.copies && len(out) < n {
			out = append(out, fmt.Sprintf("sms/in %s (%d of %d copies)", b.mk, b.copies-len(a.ids), b.copies))
		}
	}
	for i, mk := range s.udpIn {
		if !s.atRisk(s.udpAt[i]) && !s.during(s.udpAt[i], "full-disk") && !damaged["ip/in "+mk] {
			add("ip/in", mk)
		}
	}
	for _, km := range s.requests() {
		kind, mk := splitReq(km)
		if !damaged[kind+"/result "+mk] {
			add(kind+"/result", mk)
		}
	}
	return out
}
