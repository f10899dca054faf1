package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/simgate/simgate/modem/modemsim"
)

// The soak's scenarios beyond the modem and broker faults. Each is counted
// like the rest of the load: what the gateway took in must come out.
//
//   - Identical SMS: copies with the same sender, text and service-centre
//     second are distinct messages; each must arrive under an id of its own
//     (a redelivery repeats an id and counts as a duplicate).
//   - request-flood: floodSize requests as fast as the broker takes them,
//     past store.max_messages. Every request the broker accepted must get a
//     result ("failed" is an answer); SMS and datagrams received meanwhile
//     are expected as usual.
//   - corrupt-store: the daemon is stopped, queue.db damaged and the daemon
//     started again, as systemd would (Restart=on-failure, RestartSec=5s).
//     It must start, and say so (a store_corrupt event). What was not yet
//     delivered at the stop is reported apart: it was in the damaged file.
//   - full-disk: store.dir is a small tmpfs, filled to the last byte for
//     fullHold, then freed. SMS wait on the SIM and requests at the broker,
//     so both are expected as usual; datagrams received while the disk is
//     full cannot be stored and are reported apart, like those sent into a
//     modem fault. After the drain, the queue must be empty again.

// damageKinds are the ways corrupt-store damages queue.db.
var damageKinds = []string{"page", "meta", "empty"}

// restartDelay and maxRestarts are systemd's RestartSec of the unit and how
// many failed starts the soak allows before it calls them a crash loop.
const (
	restartDelay = 5 * time.Second
	maxRestarts  = 4
)

// dupBurst is one burst of identical SMS.
type dupBurst struct {
	mk     string
	copies int
	at     time.Time
}

// floodRecord is one request flood.
type floodRecord struct {
	at                  time.Time
	size, accepted      int
	took                time.Duration
	firstMarker, number int // markers bm-f-<first> .. bm-f-<first+number-1>
}

// corruptRecord is one restart on a damaged store.
type corruptRecord struct {
	at         time.Time // when the daemon was stopped
	restarted  time.Time // when the first start on the damaged file began
	damage     string
	detail     string // what was overwritten
	exits      []string
	crashLoop  bool // it never started on the damaged file
	startedOK  bool
	undelivery int // messages not delivered at the stop
	inFile     int // of them, those queue.db held
	readErr    string
}

// fullRecord is one full-disk fault.
type fullRecord struct {
	at      time.Time
	held    time.Duration
	filled  int64
	skipped string
}

// scenarios is what the scenario faults recorded, written by the fault
// goroutine and read by the report.
type scenarios struct {
	mu         sync.Mutex
	floods     []floodRecord
	nextFlood  int
	corrupts   []corruptRecord
	fulls      []fullRecord
	damagedKey map[string]bool // "suffix marker" undelivered at a damaged stop
}

func (c *scenarios) damagedSet() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.damagedKey))
	for k := range c.damagedKey {
		out[k] = true
	}
	return out
}

// currentGW is the gateway running now (nil only before the first start).
func (s *soak) currentGW() *gateway {
	s.gwMu.Lock()
	defer s.gwMu.Unlock()
	return s.gw
}

func (s *soak) setGW(g *gateway) {
	s.gwMu.Lock()
	s.gw = g
	s.gwMu.Unlock()
}

// watchGW returns the gateway running now and a channel closed when it
// exits; the channel is nil while a fault stops and restarts the gateway
// on purpose.
func (s *soak) watchGW() (*gateway, <-chan struct{}) {
	s.gwMu.Lock()
	defer s.gwMu.Unlock()
	if s.gwDown || s.gw == nil {
		return s.gw, nil
	}
	return s.gw, s.gw.exited
}

func (s *soak) setDown(down bool) {
	s.gwMu.Lock()
	s.gwDown = down
	s.gwMu.Unlock()
}

// injectIdentical injects dupCopies SMS with the same text and the same
// service-centre second, back to back, as a cloud repeating a command does.
func (s *soak) injectIdentical(mk string) {
	sec := time.Now().UTC().Truncate(time.Second)
	n := 0
	for range s.cfg.dupCopies {
		_, err := s.sim.InjectSMS(modemsim.SMS{Text: smsText(mk), SentAt: sec})
		if err != nil && !errors.Is(err, modemsim.ErrStoreFull) {
			s.injectErrs++
			s.log.Warn("inject identical SMS", "err", err)
			continue
		}
		n++ // a full SIM leaves it in the network, still expected
	}
	if n > 0 {
		s.dups = append(s.dups, dupBurst{mk: mk, copies: n, at: time.Now()})
	}
}

// identical returns the identical bursts injected so far (load goroutine).
func (s *soak) identical() []dupBurst { return s.dups }

// flood publishes floodSize requests as fast as the broker takes them:
// three in four on ip/out (sent quickly), one in four on sms/out.
func (s *soak) flood() {
	s.scen.mu.Lock()
	first := s.scen.nextFlood
	s.scen.nextFlood += s.cfg.floodSize
	s.scen.mu.Unlock()
	start := time.Now()
	type pending struct {
		kind, mk string
		wait     func() error
	}
	ps := make([]pending, 0, s.cfg.floodSize)
	for i := range s.cfg.floodSize {
		mk := marker("f", first+i)
		kind := "ip/out"
		if i%4 == 3 {
			kind = "sms/out"
		}
		t := s.obs.c.Publish(s.obs.prefix+"/"+kind, 1, false, []byte(`{"id":"`+mk+`","payload":"flood `+mk+`"}`))
		ps = append(ps, pending{kind, mk, func() error {
			if !t.WaitTimeout(30 * time.Second) {
				return errors.New("no PUBACK within 30s")
			}
			return t.Error()
		}})
	}
	accepted := 0
	for _, p := range ps {
		err := p.wait()
		s.mu.Lock()
		if err != nil {
			s.pubFailed++
		} else {
			s.reqs = append(s.reqs, p.kind+" "+p.mk)
			accepted++
		}
		s.mu.Unlock()
	}
	s.scen.mu.Lock()
	s.scen.floods = append(s.scen.floods, floodRecord{at: start, size: s.cfg.floodSize, accepted: accepted,
		took: time.Since(start), firstMarker: first, number: s.cfg.floodSize})
	s.scen.mu.Unlock()
}

// pendingNow lists, as "suffix marker", what was expected and has not
// arrived. It reads the load's lists, so only the load goroutine calls it.
func (s *soak) pendingNow() []string {
	var out []string
	for _, mk := range s.sms {
		if s.obs.got("sms/in", mk).count == 0 {
			out = append(out, "sms/in "+mk)
		}
	}
	for _, mk := range s.udpIn {
		if s.obs.got("ip/in", mk).count == 0 {
			out = append(out, "ip/in "+mk)
		}
	}
	for _, km := range s.requests() {
		kind, mk := splitReq(km)
		if s.obs.got(kind+"/result", mk).count == 0 {
			out = append(out, kind+"/result "+mk)
		}
	}
	return out
}

// corruptStore stops the daemon, damages queue.db and starts the daemon
// again, retrying like systemd while it fails.
func (s *soak) corruptStore() {
	rec := corruptRecord{at: time.Now(), damage: s.damage}
	s.setDown(true)
	defer s.setDown(false)
	if err := s.currentGW().stop(); err != nil {
		s.log.Warn("corrupt-store: stop", "err", err)
	}
	// What the gateway published before it stopped may still be on its
	// way to the observer: let that settle, so only what the stop left
	// undelivered counts as undelivered.
	s.obs.waitQuiet(2*time.Second, 30*time.Second)
	// Asked of the load goroutine, which owns the lists.
	reply := make(chan []string, 1)
	s.snapReq <- reply
	undelivered := <-reply
	rec.undelivery = len(undelivered)
	path := filepath.Join(s.storeDir, "queue.db")
	// Of those, what the file holds is what the damage takes; the rest is
	// still on the SIM, in the module or at the broker, and expected.
	stored, err := storedMarkers(path)
	if err != nil {
		rec.readErr = err.Error()
	}
	s.scen.mu.Lock()
	if s.scen.damagedKey == nil {
		s.scen.damagedKey = map[string]bool{}
	}
	for _, k := range undelivered {
		if stored[k] {
			s.scen.damagedKey[k] = true
			rec.inFile++
		}
	}
	s.scen.mu.Unlock()

	detail, err := damageStore(path, s.damage)
	rec.detail = detail
	if err != nil {
		rec.detail = "not damaged: " + err.Error()
	}
	rec.restarted = time.Now()
	logPath := filepath.Join(s.work, "gw", "simgate.log")
	for attempt := 0; ; attempt++ {
		var from int64
		if st, err := os.Stat(logPath); err == nil {
			from = st.Size()
		}
		g, err := startGateway(s.bin, filepath.Join(s.work, "gw"), s.gwCfg)
		if err != nil {
			rec.exits = append(rec.exits, err.Error())
			break
		}
		s.setGW(g)
		if _, err := g.waitReady(msgWait); err == nil {
			rec.startedOK = true
			break
		}
		<-g.exited
		rec.exits = append(rec.exits, exitSummary(g, from))
		if attempt == maxRestarts {
			// What an operator would do: move the file aside by hand.
			rec.crashLoop = true
			aside := path + ".soak-moved-aside"
			if err := os.Rename(path, aside); err != nil {
				s.log.Warn("corrupt-store: move aside", "err", err)
			}
			g, err := startGateway(s.bin, filepath.Join(s.work, "gw"), s.gwCfg)
			if err == nil {
				s.setGW(g)
				_, err = g.waitReady(msgWait)
			}
			if err != nil {
				rec.exits = append(rec.exits, "after moving queue.db aside: "+err.Error())
			}
			break
		}
		time.Sleep(restartDelay)
	}
	s.scen.mu.Lock()
	s.scen.corrupts = append(s.scen.corrupts, rec)
	s.scen.mu.Unlock()
}

// exitSummary says how a gateway ended, with the line of its log (written
// from offset from) that says why: a panic, else the last error, else the
// last line.
func exitSummary(g *gateway, from int64) string {
	b, err := os.ReadFile(g.logPath)
	if err != nil || int64(len(b)) < from {
		return fmt.Sprintf("%v", g.exitErr)
	}
	lines := strings.Split(strings.TrimRight(string(b[from:]), "\n"), "\n")
	why := lines[len(lines)-1]
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			why = l
			break
		}
		if strings.Contains(l, "level=ERROR") && !strings.HasPrefix(why, "panic:") {
			why = l
		}
	}
	return fmt.Sprintf("%v: %.200s", g.exitErr, why)
}

// storedMarkers reads the queue file of a stopped gateway and returns, as
// "suffix marker", the messages and requests it holds undelivered: inbound
// messages, requests not yet sent and results not yet published.
func storedMarkers(path string) (map[string]bool, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	out := map[string]bool{}
	var rec struct {
		ID      string `json:"id"`
		Channel string `json:"channel"`
		Payload []byte `json:"payload"`
	}
	each := func(tx *bolt.Tx, bucket string, f func(v []byte)) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil // a layout without it
		}
		return b.ForEach(func(_, v []byte) error { f(v); return nil })
	}
	err = db.View(func(tx *bolt.Tx) error {
		if err := each(tx, "in", func(v []byte) {
			rec.Payload = nil
			if json.Unmarshal(v, &rec) == nil {
				if mk := findMarker(rec.Payload); mk != "" {
					out[rec.Channel+"/in "+mk] = true
				}
			}
		}); err != nil {
			return err
		}
		for bucket, ch := range map[string]string{"out_sms": "sms", "out_ip": "ip", "results": ""} {
			if err := each(tx, bucket, func(v []byte) {
				if json.Unmarshal(v, &rec) != nil {
					return
				}
				c := ch
				if c == "" {
					c = rec.Channel
				}
				if mk := findMarker([]byte(rec.ID)); mk != "" {
					out[c+"/out/result "+mk] = true
				}
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// damageStore damages the bbolt file at path and says what it did:
// "page" writes random bytes over the root bucket's page (live data), the
// case that made the daemon panic; "meta" spoils the checksum of the newer
// meta page, which bbolt silently replaces by the older transaction;
// "empty" truncates the file.
func damageStore(path, how string) (string, error) {
	if how == "empty" {
		st, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("truncated %d bytes to 0", st.Size()), os.Truncate(path, 0)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The meta pages: page header (16 bytes), then magic, version, page
	// size, flags, root bucket (root page, sequence), freelist, high page,
	// txid, checksum.
	type meta struct {
		pageSize    uint32
		root, txid  uint64
		offset      int64
		checksumOff int64
	}
	var metas []meta
	head := make([]byte, 80)
	for i := range 2 {
		off := int64(i) * int64(os.Getpagesize())
		if i == 1 && len(metas) == 1 {
			off = int64(metas[0].pageSize)
		}
		if _, err := f.ReadAt(head, off); err != nil {
			return "", fmt.Errorf("read meta %d: %w", i, err)
		}
		if binary.LittleEndian.Uint32(head[16:]) != 0xED0CDAED {
			return "", fmt.Errorf("meta %d: not a bbolt file", i)
		}
		metas = append(metas, meta{pageSize: binary.LittleEndian.Uint32(head[24:]), root: binary.LittleEndian.Uint64(head[32:]),
			txid: binary.LittleEndian.Uint64(head[64:]), offset: off, checksumOff: off + 72})
	}
	newer := metas[0]
	if metas[1].txid > newer.txid {
		newer = metas[1]
	}
	noise := make([]byte, newer.pageSize)
	if _, err := io.ReadFull(rand.Reader, noise); err != nil {
		return "", err
	}
	switch how {
	case "meta":
		if _, err := f.WriteAt(noise[:8], newer.checksumOff); err != nil {
			return "", err
		}
		return fmt.Sprintf("checksum of the meta page of txid %d spoiled", newer.txid), f.Sync()
	default:
		off := int64(newer.root) * int64(newer.pageSize)
		if _, err := f.WriteAt(noise, off); err != nil {
			return "", err
		}
		return fmt.Sprintf("random bytes over page %d (the root bucket's, txid %d)", newer.root, newer.txid), f.Sync()
	}
}

// mountStore puts store.dir on a tmpfs of storeMiB, so full-disk can fill
// it without touching the host's disk. Without root it notes why not.
func (s *soak) mountStore() {
	if err := os.MkdirAll(s.storeDir, 0o750); err != nil {
		s.mountNote = "full-disk skipped: " + err.Error()
		return
	}
	if os.Geteuid() != 0 {
		s.mountNote = "full-disk skipped: mounting a tmpfs under store.dir needs root"
		return
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0750", s.cfg.storeMiB), "soak-store", s.storeDir).CombinedOutput()
	if err != nil {
		s.mountNote = fmt.Sprintf("full-disk skipped: mount tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
		return
	}
	s.storeMount = s.storeDir
	s.mountNote = fmt.Sprintf("store.dir is a %d MiB tmpfs (full-disk fills it)", s.cfg.storeMiB)
}

func (s *soak) unmountStore() error {
	if s.storeMount == "" {
		return nil
	}
	var out []byte
	var err error
	for range 10 {
		if out, err = exec.Command("umount", s.storeMount).CombinedOutput(); err == nil {
			s.storeMount = ""
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("umount %s: %v: %s", s.storeMount, err, strings.TrimSpace(string(out)))
}

// fillDisk fills store.dir's filesystem to the last byte, keeps it full
// for fullHold, and frees it.
func (s *soak) fillDisk() {
	rec := fullRecord{at: time.Now()}
	defer func() {
		s.scen.mu.Lock()
		s.scen.fulls = append(s.scen.fulls, rec)
		s.scen.mu.Unlock()
	}()
	if s.storeMount == "" {
		rec.skipped = s.mountNote
		return
	}
	path := filepath.Join(s.storeDir, "soak-filler")
	f, err := os.Create(path)
	if err != nil {
		rec.skipped = err.Error()
		return
	}
	chunk := make([]byte, 64<<10)
	for {
		n, err := f.Write(chunk)
		rec.filled += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				s.log.Warn("full-disk: fill", "err", err)
			}
			break
		}
	}
	// Smaller writes take the last partial chunk.
	for _, n := range []int{4096, 512, 1} {
		for {
			w, err := f.Write(chunk[:n])
			rec.filled += int64(w)
			if err != nil {
				break
			}
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		s.log.Warn("full-disk: close", "err", err)
	}
	time.Sleep(s.cfg.fullHold)
	rec.held = time.Since(rec.at)
	if err := os.Remove(path); err != nil {
		s.log.Error("full-disk: free", "err", err)
	}
}

// waitStatusAfter waits up to limit for a P/status that arrived after t and
// returns its queue.pending (-1 when none came).
func (s *soak) waitStatusAfter(t time.Time, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		n, at := s.obs.lastPending()
		if at.After(t) {
			return n
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// scenarioReport prints what each scenario showed and returns the number
// of defects found beyond lost messages (counted in t).
func (s *soak) scenarioReport(t tally) int {
	defects := 0
	if n := len(s.dups); n > 0 {
		s.printf("soak: identical SMS: %d bursts of %d from 000 in one second each: %d/%d arrived under ids of their own (lost %d: merged with a copy; %d duplicates)\n",
			n, s.cfg.dupCopies, t.ident, t.identExpected, t.identExpected-t.ident, t.identDup)
	}
	s.scen.mu.Lock()
	floods := slices.Clone(s.scen.floods)
	corrupts := slices.Clone(s.scen.corrupts)
	fulls := slices.Clone(s.scen.fulls)
	s.scen.mu.Unlock()
	for _, f := range floods {
		answered, sent := 0, 0
		reasons := map[string]int{}
		for _, km := range s.requests() {
			kind, mk := splitReq(km)
			var seq int
			if _, err := fmt.Sscanf(mk, "bm-f-%d", &seq); err != nil || seq < f.firstMarker || seq >= f.firstMarker+f.number {
				continue
			}
			a := s.obs.got(kind+"/result", mk)
			if a.count == 0 {
				continue
			}
			answered++
			if a.status == "sent" {
				sent++
			} else {
				reasons[a.err]++
			}
		}
		s.printf("soak: request flood at +%s: %d published in %s, %d accepted by the broker, %d answered (%d sent, %d failed: %s), %d never answered\n",
			f.at.Sub(s.started).Round(time.Second), f.size, f.took.Round(time.Millisecond), f.accepted, answered, sent,
			answered-sent, topReasons(reasons, 3), f.accepted-answered)
	}
	for _, c := range corrupts {
		events := s.obs.eventsSince("store_corrupt", c.restarted)
		how := "started on it"
		switch {
		case c.crashLoop:
			how = fmt.Sprintf("CRASH LOOP: exited %d times, started only once queue.db was moved aside by hand", len(c.exits))
			defects++
		case !c.startedOK:
			how = "did not start"
			defects++
		case len(c.exits) > 0:
			how = fmt.Sprintf("started after %d failed starts", len(c.exits))
		}
		said := fmt.Sprintf("%d store_corrupt events", events)
		if events == 0 {
			said = "NO store_corrupt event: the damage went unreported"
			defects++
		}
		inFile := fmt.Sprintf("%d of them in queue.db (counted apart)", c.inFile)
		if c.readErr != "" {
			inFile = "queue.db could not be read before the damage (" + c.readErr + "): all counted as usual"
		}
		s.printf("soak: corrupt store at +%s (%s): %s; %s; %d messages undelivered at the stop, %s\n",
			c.at.Sub(s.started).Round(time.Second), c.detail, how, said, c.undelivery, inFile)
		for i, e := range c.exits {
			s.printf("soak:   exit %d: %s\n", i+1, e)
		}
	}
	if len(corrupts) > 0 {
		s.printf("soak: of the messages in queue.db when it was damaged, %d/%d arrived since\n", t.damagedGot, t.damaged)
	}
	for _, f := range fulls {
		if f.skipped != "" {
			s.printf("soak: full disk at +%s: %s\n", f.at.Sub(s.started).Round(time.Second), f.skipped)
			continue
		}
		s.printf("soak: full disk at +%s: %d KiB filler, full for %s\n", f.at.Sub(s.started).Round(time.Second), f.filled>>10, f.held.Round(100*time.Millisecond))
	}
	if len(fulls) > 0 && t.fullSent > 0 {
		s.printf("soak: datagrams sent while the disk was full: %d/%d arrived (counted apart)\n", t.full, t.fullSent)
	}
	// After the drain the queue must say it is empty (what was lost is
	// not in it either). P/status is refreshed every minute, so wait for
	// one from after the drain.
	drained := time.Now()
	switch n := s.waitStatusAfter(drained, 70*time.Second); {
	case n < 0:
		s.printf("soak: no P/status within 70s of the drain\n")
	case n > 0:
		s.printf("soak: queue.pending is still %d after the drain (the queue did not shrink)\n", n)
		defects++
	default:
		s.printf("soak: queue.pending 0 after the drain\n")
	}
	if counts := s.obs.eventCounts(); len(counts) > 0 {
		s.printf("soak: events: %s\n", topReasons(counts, 12))
	}
	return defects
}

// topReasons lists the n most frequent keys with their counts.
func topReasons(m map[string]int, n int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for i, k := range keys {
		if i == n {
			parts = append(parts, fmt.Sprintf("%d more kinds", len(keys)-n))
			break
		}
		name := k
		if name == "" {
			name = "(none)"
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", name, m[k]))
	}
	return strings.Join(parts, ", ")
}
