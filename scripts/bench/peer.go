package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// gammuRC configures gammu-smsd as the fastest receiver it can be: the
// files backend, no battery, signal, network or PIN checks, no status
// refresh, one-second loops. RunOnReceive relays each message to the broker
// with mosquitto_pub, as a gammu-smsd based SMS-to-MQTT bridge does. gammu
// 1.42 also reacts to +CMTI (its incoming-SMS callback), so it does not wait
// for a poll.
const gammuRC = `[gammu]
device = %[1]s
connection = at115200
model = at

[smsd]
service = files
inboxpath = %[2]s/inbox/
outboxpath = %[2]s/outbox/
sentsmspath = %[2]s/sent/
errorsmspath = %[2]s/error/
inboxformat = unicode
logfile = %[2]s/smsd.log
debuglevel = 0
runonreceive = %[2]s/on-receive.sh
checksecurity = 0
checkbattery = 0
checksignal = 0
checknetwork = 0
statusfrequency = 0
commtimeout = 1
receivefrequency = 1
loopsleep = %[3]d
`

// gammuLoopSleep is gammu-smsd's LoopSleep, in seconds. 1 is its default;
// 0 gives the same one-second latency (gammu-smsd's timers count whole
// seconds) and spins a core.
const gammuLoopSleep = 1

// onReceive publishes what gammu-smsd received: it exports SMS_<n>_NUMBER
// and SMS_<n>_TEXT for each part of the message.
const onReceive = `#!/bin/sh
exec %[1]s -h 127.0.0.1 -p %[2]d -q 1 -t %[3]s/sms/in -m "{\"channel\":\"sms\",\"from\":\"$SMS_1_NUMBER\",\"payload\":\"$SMS_1_TEXT\"}"
`

// smsd is a gammu-smsd subprocess on a simulated modem.
type smsd struct {
	cmd     *exec.Cmd
	started time.Time
	dir     string
	exited  chan struct{}
	exitErr error
}

// startSMSD starts gammu-smsd on link, relaying to prefix/sms/in.
func (b *bench) startSMSD(dir, link, prefix string) (*smsd, error) {
	for _, d := range []string{"inbox", "outbox", "sent", "error"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("gammu-smsd dirs: %w", err)
		}
	}
	rc := filepath.Join(dir, "smsdrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(gammuRC, link, dir, gammuLoopSleep)), 0o644); err != nil {
		return nil, fmt.Errorf("gammu-smsd config: %w", err)
	}
	script := fmt.Sprintf(onReceive, b.tools.mosquittoPub, b.broker.port, prefix)
	if err := os.WriteFile(filepath.Join(dir, "on-receive.sh"), []byte(script), 0o755); err != nil {
		return nil, fmt.Errorf("gammu-smsd script: %w", err)
	}
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, fmt.Errorf("gammu-smsd log: %w", err)
	}
	s := &smsd{dir: dir, exited: make(chan struct{})}
	s.cmd = exec.Command(b.tools.gammuSMSD, "-c", rc)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start gammu-smsd: %w", err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		out.Close()
		close(s.exited)
	}()
	return s, nil
}

func (s *smsd) stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("gammu-smsd had exited: %v (see %s)", s.exitErr, s.dir)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop gammu-smsd: %w", err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(20 * time.Second):
		if err := s.cmd.Process.Kill(); err != nil {
			return fmt.Errorf("kill gammu-smsd: %w", err)
		}
		<-s.exited
		return errors.New("gammu-smsd ignored SIGTERM for 20s and was killed")
	}
}

// peerRig is gammu-smsd on its own simulated modem, with an observer.
type peerRig struct {
	sim  *modemsim.Sim
	smsd *smsd
	obs  *observer
}

func (p *peerRig) close() error {
	var errs []error
	if p.smsd != nil {
		errs = append(errs, p.smsd.stop())
	}
	if p.obs != nil {
		p.obs.close()
	}
	if p.sim != nil {
		errs = append(errs, p.sim.Close())
	}
	return errors.Join(errs...)
}

func (b *bench) startPeer(name string, opts modemsim.Options, before func(*modemsim.Sim) error) (p *peerRig, err error) {
	b.runs++
	name = fmt.Sprintf("%s%d", name, b.runs)
	dir := filepath.Join(b.work, name)
	p = &peerRig{}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close())
		}
	}()
	opts.Link = filepath.Join(dir, "modem")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return p, fmt.Errorf("peer dir: %w", err)
	}
	if p.sim, err = modemsim.Start(opts); err != nil {
		return p, err
	}
	if err := waitBooted(p.sim, 10*time.Second); err != nil {
		return p, err
	}
	if before != nil {
		if err := before(p.sim); err != nil {
			return p, err
		}
	}
	prefix := "gammu/" + name
	if p.obs, err = newObserver(b.broker.url(), "bench-obs-"+name, prefix, b.log); err != nil {
		return p, err
	}
	p.smsd, err = b.startSMSD(filepath.Join(dir, "smsd"), opts.Link, prefix)
	return p, err
}

// gammuPeer runs the SMS latency and the stored burst against gammu-smsd
// and reports ratios to simgate's figures from the same run.
func (b *bench) gammuPeer(ctx context.Context) (err error) {
	const section = "Peer: gammu-smsd"
	if !b.peer {
		b.rep.skip(section, "SMS latency and burst", "gammu-smsd comparison off (-no-peer, or gammu-smsd/mosquitto_pub missing: "+installHint+")")
		return nil
	}
	p, err := b.startPeer("gammu", modemsim.Options{}, nil)
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, p.close()) }()
	// gammu-smsd has no readiness signal: the first SMS relayed says it
	// is up.
	if _, err := measureSMSLatency(ctx, p.sim, p.obs, "warm", 1); err != nil {
		return fmt.Errorf("gammu-smsd relayed nothing (%w); its log: %s", err, tailFile(filepath.Join(p.smsd.dir, "smsd.log")))
	}
	lat, err := measureSMSLatency(ctx, p.sim, p.obs, "sms", b.n)
	if err != nil {
		return err
	}
	s := summarize(lat)
	b.rep.latency(section, "gammu-smsd unpaced", s, nil, "+CMTI → RunOnReceive mosquitto_pub → P/sms/in")
	if b.simgateUnpacedSMS.N > 0 {
		b.rep.add(section, "latency ratio simgate/gammu p50 (unpaced)", b.simgateUnpacedSMS.P50/s.P50, "x", nil,
			fmt.Sprintf("gammu-smsd %.0f× slower; it polls once a second (CommTimeout, ReceiveFrequency, LoopSleep 1 s: its floor)", s.P50/b.simgateUnpacedSMS.P50))
		b.rep.add(section, "latency ratio simgate/gammu p99 (unpaced)", b.simgateUnpacedSMS.P99/s.P99, "x", nil, "")
	}
	b.step("gammu-smsd SMS latency: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", s.P50, s.P95, s.P99)

	var total, spread []float64
	for run := range burstRuns {
		if err := ctx.Err(); err != nil {
			return err
		}
		tag := fmt.Sprintf("gburst%d", run)
		pb, err := b.startPeer("gammuburst", modemsim.Options{Capacity: 120}, storeBurst(tag, nil))
		if err != nil {
			return err
		}
		bt, err := awaitBurst(pb.obs, tag, pb.smsd.started)
		if cerr := pb.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		total = append(total, ms(bt.last))
		spread = append(spread, ms(bt.last-bt.first))
	}
	b.rep.add(section, "100 stored, start → last on MQTT", median(total), "ms", nil,
		fmt.Sprintf("median of %d runs: %v ms; first → last %.0f ms", burstRuns, total, median(spread)))
	if b.simgateBurst > 0 {
		b.rep.add(section, "burst ratio simgate/gammu (start → last)", b.simgateBurst/median(total), "x", nil,
			fmt.Sprintf("unpaced; gammu-smsd %.0f× slower (a shell and mosquitto_pub per message)", median(total)/b.simgateBurst))
	}
	b.step("gammu-smsd burst: start → last %.0f ms", median(total))
	return nil
}

// tailFile is the end of a log file, for error messages.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
