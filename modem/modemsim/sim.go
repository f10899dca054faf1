package modemsim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// settings are what a module forgets at every power-up (ATE is not saved,
// nor are CNMI, CMEE, CREG n...).
type settings struct {
	echo    bool
	verbose bool // ATV1
	quiet   bool // ATQ1
	cmee    int
	cmgf    int
	cscs    string
	csms    int
	cnmi    [5]int
	cregN   int
	cgregN  int
	ceregN  int
	copsFmt int  // AT+COPS=3,<format>: 0 long name, 1 short name, 2 numeric
	qisde   bool // Quectel: echo the data of AT+QISEND
	udHex   bool // u-blox AT+UDCONF=1,1: socket data in hex
	cipsrip bool // SIM7600: "RECV FROM:" before +RECEIVE
}

func (s *Sim) defaultSettings() settings {
	return settings{
		echo:    true,
		verbose: true,
		cscs:    "IRA",
		cnmi:    s.prof.cnmi,
		qisde:   true,
		cipsrip: true,
	}
}

// Sim is a running simulated module. Its methods are safe for concurrent use.
type Sim struct {
	opts Options
	prof *profile
	log  *slog.Logger

	mu sync.Mutex
	// out receives every byte for the host; it is the current link's
	// writer, or a capture in tests. nil while unplugged.
	out    sink
	link   *link
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
	rng    *rand.Rand
	faults Faults

	// plugGen counts link changes so that a late re-plug of an earlier
	// Unplug does nothing; bootGen counts power-ups so that boot steps and
	// delayed replies of an earlier boot are dropped.
	plugGen  int
	bootGen  int
	phase    int
	bootDone bool // the last boot URC has been sent
	hungTil  time.Time

	set settings
	in  input

	// The network and SIM: these survive module resets.
	netStat  int // registration state the network grants
	lastStat int // last stat reported, to emit URCs on change
	rssi     int
	cfun     int
	contexts map[int]pdpContext
	store    []*slot
	netQueue []*delivery
	cmtWait  *delivery // +CMT sent, waiting for +CNMA
	cmtQueue []*delivery
	cmtTimer *time.Timer
	mr       int
	ref8     int
	ref16    int
	sentSMS  []SentSMS
	sentUDP  []SentUDP
	counters map[string]int
	data     dataSession
	sockets  map[int]*socket
	sim7080  sim7080State
	reports  []SentReport
	sarar5   sarar5State
	ctl      *controlServer
	listener *unixPort
	gapTimer *time.Timer // Options.DeliveryGap: the next segment's turn
	hooks    Hooks
	ops      map[string]func() (any, error)
}

// sink takes bytes for the host. Writes must not block for long: the
// caller holds Sim.mu.
type sink interface {
	send(b []byte)
}

type pdpContext struct {
	pdpType string
	apn     string
}

// newSim builds a simulator with no link; Start adds the pty.
func newSim(opts Options) (*Sim, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s := &Sim{
		opts:     opts,
		prof:     profiles[opts.Profile],
		log:      opts.Logger.With("component", "modemsim", "profile", opts.Profile),
		done:     make(chan struct{}),
		rng:      rand.New(rand.NewPCG(uint64(seed), uint64(seed>>1)^0x9e3779b97f4a7c15)),
		netStat:  5, // Super SIMs roam on partner networks
		rssi:     17,
		cfun:     1,
		contexts: map[int]pdpContext{1: {"IP", "super"}},
		store:    make([]*slot, opts.Capacity),
		counters: map[string]int{},
		sockets:  map[int]*socket{},
		mr:       0,
		ref8:     0x41,
		ref16:    0x1a2b,
	}
	for _, k := range []string{CounterCommands, CounterCMTI, CounterCMGR, CounterCMGD, CounterCMGS, CounterUDPIn,
		CounterUDPOut, CounterResets, CounterUnplugs, CounterRefusedFull} {
		s.counters[k] = 0
	}
	s.set = s.defaultSettings()
	return s, nil
}

// Start creates the pty, symlinks its slave at opts.Link, powers the module
// up (boot URCs follow after BootDelay) and serves until Close.
func Start(opts Options) (*Sim, error) {
	if opts.Link == "" {
		return nil, errors.New("modemsim: Options.Link is required")
	}
	s, err := newSim(opts)
	if err != nil {
		return nil, fmt.Errorf("modemsim: %w", err)
	}
	l, err := openLink(s.opts.Link, s)
	if err != nil {
		return nil, fmt.Errorf("modemsim: %w", err)
	}
	s.mu.Lock()
	s.attach(l)
	s.powerOn()
	s.mu.Unlock()
	if s.opts.Control != "" {
		ctl, err := listenControl(s.opts.Control, s)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("modemsim: %w", err), s.Close())
		}
		s.mu.Lock()
		s.ctl = ctl
		s.mu.Unlock()
	}
	if s.opts.Listen != "" {
		lp, err := listenUnix(s.opts.Listen, s)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("modemsim: %w", err), s.Close())
		}
		s.mu.Lock()
		s.listener = lp
		s.mu.Unlock()
	}
	s.log.Info("modem ready", "link", s.opts.Link, "pty", l.slaveName, "control", s.opts.Control, "listen", s.opts.Listen)
	return s, nil
}

// Close removes the symlink and closes the pty and the control socket.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.bootGen++
	l := s.detach()
	ctl := s.ctl
	s.ctl = nil
	lp := s.listener
	s.listener = nil
	s.stopTimersLocked()
	s.mu.Unlock()
	var errs []error
	if ctl != nil {
		errs = append(errs, ctl.close())
	}
	if lp != nil {
		errs = append(errs, lp.close())
	}
	if l != nil {
		errs = append(errs, l.close())
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// Link returns the path of the symlink the host opens.
func (s *Sim) Link() string { return s.opts.Link }

// Options returns the options the simulator runs with, defaults applied:
// its ICCID, IMSI, operator and so on, for the network built around it.
func (s *Sim) Options() Options { return s.opts }

// attach makes l the current link. Caller holds mu.
func (s *Sim) attach(l *link) {
	s.link = l
	s.out = l
	s.plugGen++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.readLoop(s)
	}()
}

// detach forgets the current link and returns it for closing outside mu.
func (s *Sim) detach() *link {
	l := s.link
	s.link = nil
	s.out = nil
	s.plugGen++
	return l
}

func (s *Sim) stopTimersLocked() {
	if s.gapTimer != nil {
		s.gapTimer.Stop()
		s.gapTimer = nil
	}
	if s.cmtTimer != nil {
		s.cmtTimer.Stop()
		s.cmtTimer = nil
	}
}

// powerOn starts a boot: settings back to power-up values, data session
// and sockets gone, then the profile's boot URCs. Caller holds mu.
func (s *Sim) powerOn() {
	s.bootGen++
	s.counters[CounterBoots]++
	s.phase = phaseOff
	s.set = s.defaultSettings()
	s.in = input{}
	s.cfun = 1
	s.data = dataSession{}
	s.sockets = map[int]*socket{}
	s.cmtAbandonLocked()
	s.lastStat = 0
	gen := s.bootGen
	delay := s.opts.BootDelay
	gap := max(s.opts.BootDelay/4, time.Millisecond)
	s.bootDone = false
	// Each step schedules the next, so the URCs keep their order even when
	// timer goroutines run late.
	var step func(i int)
	step = func(i int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.bootGen != gen || s.closed {
			return
		}
		s.bootStep(s.prof.boot[i])
		if i == len(s.prof.boot)-1 {
			s.bootDone = true
			return
		}
		time.AfterFunc(gap, func() { step(i + 1) })
	}
	time.AfterFunc(delay, func() { step(0) })
}

// bootStep emits one boot URC and enters its phase. Caller holds mu.
func (s *Sim) bootStep(b bootStep) {
	if b.text != "" {
		s.urc(b.text)
	}
	if b.phase > s.phase {
		s.phase = b.phase
	}
	if s.phase >= phaseSIM {
		s.lastStat = s.regStat()
	}
	if s.phase == phaseSMSDone {
		s.autoDataLocked()
		s.deliverQueuedLocked()
	}
}

// autoDataLocked brings up the default bearer of modules that attach with
// one (SARA-R4 activates its PDP context when it registers).
func (s *Sim) autoDataLocked() {
	if s.prof.name == "ublox" && registered(s.regStat()) && !s.data.up {
		if err := s.activateData(); err != nil {
			s.log.Debug("default bearer", "err", err)
		}
	}
}

// bootNow completes the boot at once, without URCs; for in-process tests
// that do not want to wait.
func (s *Sim) bootNow() {
	s.bootGen++
	s.phase = phaseSMSDone
	s.bootDone = true
	s.lastStat = s.regStat()
	s.autoDataLocked()
}

// Unplug makes the link disappear, as a USB module does when it
// re-enumerates: the symlink is removed and the pty closed (the host's reads
// fail with EIO or EOF). After d a new pty appears at the same path and the
// module boots afresh (echo on, settings lost, sockets closed).
func (s *Sim) Unplug(d time.Duration) {
	s.mu.Lock()
	s.counters[CounterUnplugs]++
	s.mu.Unlock()
	s.unplugFor(d, "unplug")
}

func (s *Sim) unplugFor(d time.Duration, why string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	l := s.detach()
	s.bootGen++
	s.phase = phaseOff
	s.bootDone = false
	s.data = dataSession{}
	s.sockets = map[int]*socket{}
	s.cmtAbandonLocked()
	gen := s.plugGen
	s.mu.Unlock()
	s.log.Info("link down", "why", why, "for", d)
	if l != nil {
		if err := l.close(); err != nil {
			s.log.Warn("closing link", "err", err)
		}
	}
	time.AfterFunc(d, func() { s.replug(gen) })
}

// replug brings the link back after an unplug, unless something else
// (another unplug, Close) happened since.
func (s *Sim) replug(gen int) {
	s.mu.Lock()
	if s.closed || s.plugGen != gen {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	l, err := openLink(s.opts.Link, s)
	if err != nil {
		s.log.Error("re-plug failed", "err", err)
		return
	}
	s.mu.Lock()
	if s.closed || s.plugGen != gen {
		s.mu.Unlock()
		if err := l.close(); err != nil {
			s.log.Warn("closing unused link", "err", err)
		}
		return
	}
	s.attach(l)
	s.powerOn()
	s.mu.Unlock()
	s.log.Info("link up", "pty", l.slaveName)
}

// Reset restarts the module as AT+CFUN=1,1 does: the link drops for
// Options.ResetDrop (unless negative), then the module boots with echo on.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.resetLocked()
	s.mu.Unlock()
}

// resetLocked starts a reset after what is queued for the host has been
// written, so that the OK of AT+CFUN=1,1 reaches the host first.
func (s *Sim) resetLocked() {
	if s.closed {
		return
	}
	s.counters[CounterResets]++
	s.bootGen++
	s.phase = phaseOff
	s.bootDone = false
	l := s.link
	if s.opts.ResetDrop < 0 || l == nil {
		s.data = dataSession{}
		s.sockets = map[int]*socket{}
		s.powerOn()
		return
	}
	gen := s.plugGen
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.waitFlushed(time.Second)
		s.mu.Lock()
		stale := s.plugGen != gen || s.closed
		s.mu.Unlock()
		if !stale {
			s.unplugFor(s.opts.ResetDrop, "reset")
		}
	}()
}

// Hang makes the module stop answering for d: input is read and dropped
// and nothing is said, not even URCs.
func (s *Sim) Hang(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[CounterHangs]++
	s.hungTil = time.Now().Add(d)
}

func (s *Sim) hung() bool { return time.Now().Before(s.hungTil) }

// Garbage writes b to the host now, as modules do at power-up or when a
// line glitches.
func (s *Sim) Garbage(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out != nil {
		s.out.send(append([]byte(nil), b...))
	}
}

// Waiting is how many bytes wait for the host to read them. Output beyond
// 1 MiB waiting is dropped, as a USB serial driver drops what nobody
// reads, so a test that floods the line paces itself by this.
func (s *Sim) Waiting() int {
	s.mu.Lock()
	l, ok := s.out.(*link)
	s.mu.Unlock()
	if !ok || l == nil {
		return 0
	}
	return l.waiting()
}

// SetFaults replaces the active line faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	if s.link != nil {
		s.link.setChunk(f.chunk())
	}
}

// BootStorm makes the module reboot n times in quick succession without
// dropping the link, as a module on a failing supply does: n bursts of boot
// URCs, each boot forgetting the settings.
func (s *Sim) BootStorm(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || s.closed {
		return
	}
	for range n - 1 {
		s.counters[CounterBoots]++
		for _, b := range s.prof.boot {
			if b.text != "" {
				s.urc(b.text)
			}
		}
	}
	s.counters[CounterResets] += n
	s.powerOn()
}

// SetRegistration sets the registration state the network grants (0 not
// registered, 1 home, 2 searching, 3 denied, 5 roaming) and emits
// +CREG/+CGREG/+CEREG URCs as enabled by their n. Leaving 1 and 5 drops the
// data session.
func (s *Sim) SetRegistration(stat int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.netStat = stat
	s.regChangedLocked()
}

// Hooks are told what the host sent to the network, so that a simulated
// network beyond the module (such as an emulated Super SIM API) can carry
// it on. They run with the simulator's lock held, in the order the host
// sent: they must return quickly and must not call methods of Sim.
type Hooks struct {
	// SMS is called for every SMS-SUBMIT segment the network accepted.
	SMS func(SentSMS)
	// UDP is called for every datagram the host sent through a module socket.
	UDP func(SentUDP)
}

// SetHooks replaces the hooks; the zero Hooks removes them.
func (s *Sim) SetHooks(h Hooks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = h
}

// HandleOp adds a control operation: a request naming op is answered with
// the JSON of what fn returns, in Response.Data. It lets a component built
// on the simulator (the Super SIM API emulator) show its state through the
// same control socket. An op the simulator itself defines cannot be
// replaced.
func (s *Sim) HandleOp(op string, fn func() (any, error)) error {
	if builtinOps[op] {
		return fmt.Errorf("control op %q is built in", op)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = map[string]func() (any, error){}
	}
	s.ops[op] = fn
	return nil
}

// SetSignal sets the RSSI reported by AT+CSQ (0..31, 99 unknown).
func (s *Sim) SetSignal(rssi int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rssi = rssi
}

func registered(stat int) bool { return stat == 1 || stat == 5 }

// regStat is the registration state the module reports now.
func (s *Sim) regStat() int {
	if s.phase < phaseSIM || s.cfun != 1 {
		return 0
	}
	return s.netStat
}

// regChangedLocked reports a change of registration to the host and reacts
// to it: a lost registration takes the data session with it; a new one
// lets the network deliver what it holds.
func (s *Sim) regChangedLocked() {
	st := s.regStat()
	if st == s.lastStat {
		return
	}
	s.lastStat = st
	if s.phase >= phaseRDY {
		for _, r := range []struct {
			name string
			n    int
		}{{"+CREG", s.set.cregN}, {"+CGREG", s.set.cgregN}, {"+CEREG", s.set.ceregN}} {
			if r.n > 0 {
				s.urc(r.name + ": " + regFields(st, r.n, false))
			}
		}
	}
	if !registered(st) {
		s.dropDataLocked()
	} else {
		s.autoDataLocked()
		s.deliverQueuedLocked()
	}
}

const (
	regTAC = "1A2B"
	regCI  = "01A2D001"
	regAcT = 7
)

// regFields formats <stat>[,<tac>,<ci>,<AcT>] for URCs, or
// <n>,<stat>[,...] for the read form.
func regFields(stat, n int, read bool) string {
	s := fmt.Sprint(stat)
	if n >= 2 && registered(stat) {
		s += fmt.Sprintf(`,"%s","%s",%d`, regTAC, regCI, regAcT)
	}
	if read {
		s = fmt.Sprintf("%d,%s", n, s)
	}
	return s
}

// urc sends an unsolicited result code. Caller holds mu.
func (s *Sim) urc(text string) {
	s.emit([]byte("\r\n" + text + "\r\n"))
}

// emit sends bytes to the host unless the link is gone or the module hangs.
// Caller holds mu.
func (s *Sim) emit(b []byte) {
	if s.out == nil || s.hung() || len(b) == 0 {
		return
	}
	s.out.send(b)
}

func (s *Sim) count(name string) { s.counters[name]++ }

// maxRecords bounds the sent SMS and datagrams State keeps, so that a soak
// run does not grow without end; the counters keep the totals.
const maxRecords = 10000

func trim[T any](recs []T) []T {
	if len(recs) > maxRecords {
		return append(recs[:0:0], recs[len(recs)-maxRecords:]...)
	}
	return recs
}

// State returns a snapshot of the simulator.
func (s *Sim) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Profile:      s.prof.name,
		Link:         s.opts.Link,
		Plugged:      s.link != nil,
		Booted:       s.phase >= phaseRDY,
		SMSReady:     s.phase >= phaseSMSDone,
		BootDone:     s.bootDone,
		Hung:         s.hung(),
		Echo:         s.set.echo,
		CMEE:         s.set.cmee,
		CMGF:         s.set.cmgf,
		CSMS:         s.set.csms,
		CNMI:         append([]int(nil), s.set.cnmi[:]...),
		CFUN:         s.cfun,
		Registration: s.regStat(),
		DataUp:       s.data.up,
		IP:           s.data.ip,
		Capacity:     len(s.store),
		Stored:       []StoredSMS{},
		NetworkQueue: len(s.netQueue),
		SentSMS:      append([]SentSMS{}, s.sentSMS...),
		SentUDP:      append([]SentUDP{}, s.sentUDP...),
		Reports:      append([]SentReport{}, s.reports...),
		RadioMode:    [2]int{s.sim7080.cnmp, s.sim7080.cmnb},
		Sockets:      []Socket{},
		Counters:     map[string]int{},
	}
	for i, sl := range s.store {
		if sl != nil {
			st.Stored = append(st.Stored, sl.state(i+s.prof.indexBase, s.opts.SMSC))
		}
	}
	for _, sk := range s.sockets {
		st.Sockets = append(st.Sockets, sk.state())
	}
	sort.Slice(st.Sockets, func(i, j int) bool { return st.Sockets[i].ID < st.Sockets[j].ID })
	for k, v := range s.counters {
		st.Counters[k] = v
	}
	return st
}
