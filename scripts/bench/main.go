// Command bench measures simgate as it runs in the field: the real daemon
// binary as a subprocess, a mosquitto broker on a loopback port and the
// simulated modem (modemsim, in-process, on a real pty). It prints a table,
// writes it to dist/bench/results.md with a machine-readable results.json,
// and compares simgate with gammu-smsd driving the same simulated modem and
// publishing to the same broker.
//
//	go run ./scripts/bench [-out dist/bench] [-n 200] [-short] [-no-peer] [-rev REV] [-keep] [-v]
//	go run ./scripts/bench soak [-duration 1h]
//
// -short (or BENCH_SHORT=1) measures idle CPU over 10 s instead of 60 s,
// for iterating; the reported figure is the 60 s one. The soak verb runs the
// daemon under a steady load with faults; see soak.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "soak" {
		return soakMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "dist/bench", "directory for results.md and results.json")
	n := fs.Int("n", 200, "messages per latency measurement (each waits for the previous)")
	short := fs.Bool("short", os.Getenv("BENCH_SHORT") != "", "idle CPU over 10 s instead of 60 s (iterating only)")
	noPeer := fs.Bool("no-peer", false, "skip the gammu-smsd comparison")
	verbose := fs.Bool("v", false, "log progress details to stderr")
	keep := fs.Bool("keep", false, "keep the work directory (logs of every process)")
	only := fs.String("only", "", "comma-separated steps to run (sms, paced, burst, ipos, ipmodem, peer, cloud); default all")
	rev := fs.String("rev", os.Getenv("BENCH_REV"), "build simgate from this commit (git archive) instead of the work tree")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 {
		fmt.Fprintln(stderr, "bench: -n must be at least 1")
		return 2
	}
	log, root, err := setup(stderr, *verbose)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{
		root: root, rev: *rev, only: *only, n: *n, short: *short, peer: !*noPeer, log: log, progress: stderr,
		rep: &report{
			Started: time.Now(), Command: strings.TrimSpace("make bench (scripts/bench.sh "+strings.Join(args, " ")) + ")",
			Commit: gitDescribe(root), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Short: *short,
		},
	}
	err = b.run(ctx, *keep)
	b.rep.Seconds = time.Since(b.rep.Started).Round(time.Second).Seconds()
	b.rep.sortRows()
	if werr := b.rep.write(filepath.Join(root, *out)); werr != nil {
		err = errors.Join(err, werr)
	}
	fmt.Fprintln(stdout)
	if terr := b.rep.text(stdout); terr != nil {
		err = errors.Join(err, terr)
	}
	fmt.Fprintf(stdout, "\nresults: %s, %s (%.0f s)\n", filepath.Join(*out, "results.md"), filepath.Join(*out, "results.json"), b.rep.Seconds)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench holds what the measurements share: the work directory, the built
// daemon and the broker.
type bench struct {
	root     string
	rev      string // "" builds the work tree
	only     string // steps to run, "" for all
	src      string // where simgate is built from
	work     string
	n        int
	short    bool
	peer     bool
	log      *slog.Logger
	progress io.Writer
	rep      *report

	tools   tools
	simgate string // path of the built daemon
	broker  *broker
	runs    int // rigs started, for unique names

	// Figures later steps compare with.
	readyTimes         []float64 // ms from start to READY=1, every gateway start
	simgateUnpacedSMS  summary
	simgatePacedSMS    summary
	simgateBurst       float64 // ms, start → last, unpaced, median
	simgateBurstSpread float64 // ms, first → last, unpaced, median
}

func (b *bench) step(format string, a ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", a...)
}

func (b *bench) run(ctx context.Context, keep bool) (err error) {
	b.tools = findTools()
	if b.tools.mosquitto == "" {
		return fmt.Errorf("mosquitto is not installed; %s", installHint)
	}
	if b.peer && (b.tools.gammuSMSD == "" || b.tools.mosquittoPub == "") {
		b.rep.Notes = append(b.rep.Notes, "gammu-smsd comparison skipped: gammu-smsd or mosquitto_pub missing; "+installHint)
		b.step("gammu-smsd or mosquitto_pub missing (%s): skipping the peer comparison", installHint)
		b.peer = false
	}
	b.work, err = os.MkdirTemp("", "simgate-bench-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		if keep {
			b.step("logs kept in %s", b.work)
			return
		}
		if rerr := os.RemoveAll(b.work); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	b.src = b.root
	if b.rev != "" {
		if b.src, err = exportRev(ctx, b.root, b.rev, filepath.Join(b.work, "src")); err != nil {
			return err
		}
		b.rep.Commit = b.rev + " = " + gitDescribe(b.root)
		if h, err := revParse(b.root, b.rev); err == nil {
			b.rep.Commit = h
		}
	}
	b.step("building simgate (go build -trimpath -ldflags \"-s -w\", CGO_ENABLED=0) for the host and for the release targets")
	if err := b.footprintBinaries(ctx); err != nil {
		return err
	}
	b.broker, err = startBroker(b.tools.mosquitto, filepath.Join(b.work, "mosquitto"), false, b.log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.broker.stop()) }()
	b.step("mosquitto on %s", b.broker.url())

	steps := []struct {
		id, name string
		fn       func(context.Context) error
	}{
		{"sms", "SMS latency, unpaced (with idle RSS and CPU)", func(ctx context.Context) error { return b.smsLatency(ctx, 0) }},
		{"paced", "SMS latency, 115200 baud", func(ctx context.Context) error { return b.smsLatency(ctx, 115200) }},
		{"burst", "SMS burst", b.smsBurst},
		{"ipos", "IP Commands, ip.mode os", b.ipOS},
		{"ipmodem", "IP Commands, ip.mode modem", b.ipModem},
		{"peer", "gammu-smsd peer", b.gammuPeer},
		{"cloud", "cloud bridge (simgate cloud)", b.cloudBridge},
	}
	var errs []error
	for _, s := range steps {
		if b.only != "" && !slices.Contains(strings.Split(b.only, ","), s.id) {
			continue
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		b.step("%s", s.name)
		if err := s.fn(ctx); err != nil {
			b.step("%s failed: %v", s.name, err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	b.readyFootprint()
	return errors.Join(errs...)
}

// setup gives bench and soak their logger (debug when verbose, else
// warnings) and the repository root they run from.
func setup(stderr io.Writer, verbose bool) (*slog.Logger, string, error) {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	root, err := os.Getwd()
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), root, err
}
