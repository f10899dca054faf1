package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// releaseTargets are the GOOS/GOARCH/GOARM triples of `make cross`.
var releaseTargets = []struct{ name, goos, goarch, goarm string }{
	{"linux-armv6", "linux", "arm", "6"},
	{"linux-armv7", "linux", "arm", "7"},
	{"linux-arm64", "linux", "arm64", ""},
	{"linux-amd64", "linux", "amd64", ""},
}

// footprintBinaries builds simgate for the host (the binary every run
// uses) and for each release target, and reports the stripped sizes.
func (b *bench) footprintBinaries(ctx context.Context) error {
	b.simgate = filepath.Join(b.work, "simgate")
	if err := goBuild(ctx, b.src, b.simgate, "./cmd/simgate", "", "", ""); err != nil {
		return err
	}
	for _, t := range releaseTargets {
		out := filepath.Join(b.work, "cross", "simgate-"+t.name)
		if err := goBuild(ctx, b.src, out, "./cmd/simgate", t.goos, t.goarch, t.goarm); err != nil {
			return err
		}
		fi, err := os.Stat(out)
		if err != nil {
			return fmt.Errorf("binary size: %w", err)
		}
		b.rep.add("Footprint", "binary size "+t.name, float64(fi.Size())/(1<<20), "MB", atMost(15, "≤ 15 MB"),
			"CGO_ENABLED=0 -trimpath -ldflags \"-s -w\", as make cross")
	}
	return nil
}

// settle is how long a fresh gateway is left alone before its steady RSS
// is read: the first status publish and poll are over by then.
const settle = 3 * time.Second

// idleFootprint reads the steady RSS of a gateway that is ready and idle,
// then its CPU use over the idle window.
func (b *bench) idleFootprint(ctx context.Context, r *rig) error {
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	pid := r.gw.pid()
	m, err := readMemory(pid)
	if err != nil {
		return err
	}
	b.rep.add("Footprint", "RSS steady (idle, ready)", float64(m.RSS)/(1<<20), "MB", atMost(20, "≤ 20 MB"),
		fmt.Sprintf("VmRSS %s after READY=1", settle))
	window := 60 * time.Second
	if b.short {
		window = 10 * time.Second
	}
	b.step("idle CPU over %s", window)
	c0, err := readCPU(pid)
	if err != nil {
		return err
	}
	r0, err := readSchedCPU(pid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return ctx.Err()
	}
	c1, err := readCPU(pid)
	if err != nil {
		return err
	}
	r1, err := readSchedCPU(pid)
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	pct := 100 * float64(r1-r0) / float64(wall)
	note := fmt.Sprintf("run time %s over %s from /proc/PID/task/*/schedstat (utime+stime: %s, 10 ms ticks); the modem poll runs every 30 s",
		(r1 - r0).Round(time.Microsecond), wall.Round(time.Second), c1-c0)
	if b.short {
		note += "; -short: NOT the 60 s figure"
	}
	b.rep.add("Footprint", fmt.Sprintf("idle CPU over %s", window), pct, "% of a core", atMost(0.1, "≈ 0 (≤ 0.1 %)"), note)
	b.step("idle: RSS %.1f MB, CPU %.4f %% of a core (%s in %s)", float64(m.RSS)/(1<<20), pct, (r1 - r0).Round(time.Microsecond), wall.Round(time.Second))
	return nil
}

// readyFootprint reports the time to READY=1 over every gateway start.
func (b *bench) readyFootprint() {
	if len(b.readyTimes) == 0 {
		b.rep.skip("Footprint", "start → READY=1", "no gateway became ready")
		return
	}
	b.rep.add("Footprint", "start → READY=1", median(b.readyTimes), "ms", nil,
		fmt.Sprintf("median of %d starts (modem already booted; notify socket of the bench's own)", len(b.readyTimes)))
}

func joinErr(a, b error) error { return errors.Join(a, b) }
