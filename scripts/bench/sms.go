package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// msgWait bounds the wait for any one message; it only keeps a broken
// run from hanging.
const msgWait = 60 * time.Second

// smsText is the SMS Command text carrying mk: 30 characters or so, like a
// short device command.
func smsText(mk string) string { return "SMS Command " + mk + " set led on" }

// measureSMSLatency injects n SMS one at a time and returns, for each, the
// time from the injection (modemsim queues +CMTI to the host within
// InjectSMS) to its arrival on suffix.
func measureSMSLatency(ctx context.Context, sim *modemsim.Sim, obs *observer, tag string, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return lat, err
		}
		mk := marker(tag, i)
		t0 := time.Now()
		if _, err := sim.InjectSMS(modemsim.SMS{Text: smsText(mk)}); err != nil {
			return lat, fmt.Errorf("inject SMS %d: %w", i, err)
		}
		a, err := obs.wait("sms/in", mk, msgWait)
		if err != nil {
			return lat, err
		}
		lat = append(lat, a.first.Sub(t0))
	}
	return lat, nil
}

func pacing(baud int) string {
	if baud == 0 {
		return "unpaced"
	}
	return fmt.Sprintf("%d baud", baud)
}

// smsLatency measures SMS latency and the MQTT -> SMS send rate at baud (0:
// unpaced). The unpaced run also measures the footprint of an idle
// gateway: time to READY=1, RSS once settled, CPU over the idle window.
func (b *bench) smsLatency(ctx context.Context, baud int) (err error) {
	r, err := b.startRig("sms", rigSpec{sim: modemsim.Options{Baud: baud}})
	if err != nil {
		return err
	}
	defer func() { err = joinErr(err, r.close()) }()
	if _, err := b.ready(r); err != nil {
		return err
	}
	if baud == 0 {
		if err := b.idleFootprint(ctx, r); err != nil {
			return err
		}
	}
	// One SMS first so the first measured one does not pay for the
	// broker's first delivery to the observer; its stored form, seen the
	// moment it is injected, gives the serial line's share.
	floor := ""
	if _, err := r.sim.InjectSMS(modemsim.SMS{Text: smsText(marker("warm", 0))}); err != nil {
		return fmt.Errorf("inject SMS: %w", err)
	}
	if st := r.sim.State().Stored; baud > 0 && len(st) == 1 {
		if n, err := indicatedBytes(st[0]); err == nil {
			floor = fmt.Sprintf("; serial floor ≈ %.1f ms (%d bytes on the line in turn: +CMTI, AT+CMGL=4 and its listing, CMGD OK)", ms(lineTime(n, baud)), n)
		}
	}
	if _, err := r.obs.wait("sms/in", marker("warm", 0), msgWait); err != nil {
		return err
	}
	lat, err := measureSMSLatency(ctx, r.sim, r.obs, "sms", b.n)
	if err != nil {
		return err
	}
	s := summarize(lat)
	var t *target
	if baud == 0 {
		t = atMost(20, "p50 ≤ 20 ms")
		b.simgateUnpacedSMS = s
	} else {
		b.simgatePacedSMS = s
	}
	b.rep.latency("SMS in", "simgate "+pacing(baud), s, t, "+CMTI → P/sms/in"+floor)
	b.step("SMS latency %s: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms", pacing(baud), s.P50, s.P95, s.P99)

	// MQTT -> SMS: requests published back to back, results counted.
	nOut := min(b.n, 200)
	rate, failed, err := requestRate(r.obs, "sms/out", "smsout", nOut, func(mk string) any {
		return map[string]string{"id": mk, "payload": "reply " + mk}
	})
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d requests published back to back, %d failed results", nOut, failed)
	b.rep.add("SMS out", "MQTT → SMS "+pacing(baud), rate, "msg/s", nil, note)
	b.step("MQTT → SMS %s: %.1f msg/s (%s)", pacing(baud), rate, note)
	return nil
}

// requestRate publishes n requests on suffix and waits for every result;
// the rate is n over the time from the first publish to the last result.
func requestRate(obs *observer, suffix, tag string, n int, body func(mk string) any) (float64, int, error) {
	t0 := time.Now()
	for i := range n {
		p, err := json.Marshal(body(marker(tag, i)))
		if err != nil {
			return 0, 0, fmt.Errorf("encode request: %w", err)
		}
		if err := obs.publish(suffix, p); err != nil {
			return 0, 0, err
		}
	}
	var last time.Time
	failed := 0
	var firstErr string
	for i := range n {
		a, err := obs.wait(suffix+"/result", marker(tag, i), msgWait)
		if err != nil {
			return 0, 0, err
		}
		if a.status != "sent" {
			failed++
			if firstErr == "" {
				firstErr = a.err
			}
		}
		if a.first.After(last) {
			last = a.first
		}
	}
	if failed == n {
		return 0, failed, fmt.Errorf("every %s request failed: %s", suffix, firstErr)
	}
	return rate(n, last.Sub(t0)), failed, nil
}

// burstSize is how many SMS are stored on the SIM before a burst run.
const burstSize = 100

// burstRuns is how many times each burst is repeated; medians are reported.
const burstRuns = 3

// listedLine are the bytes on the line for a burst (burstBytes).
type listedLine struct{ toLast, all int }

// storeBurst fills the SIM with burstSize SMS tagged tag. When listed is
// not nil it is set to the bytes on the line to list and delete them.
func storeBurst(tag string, listed *listedLine) func(*modemsim.Sim) error {
	return func(s *modemsim.Sim) error {
		for i := range burstSize {
			if _, err := s.InjectSMS(modemsim.SMS{Text: smsText(marker(tag, i))}); err != nil {
				return fmt.Errorf("store SMS %d: %w", i, err)
			}
		}
		st := s.State().Stored
		if len(st) != burstSize {
			return fmt.Errorf("%d SMS on the SIM, want %d", len(st), burstSize)
		}
		if listed != nil {
			toLast, all, err := burstBytes(st)
			if err != nil {
				return err
			}
			*listed = listedLine{toLast, all}
		}
		return nil
	}
}

// burstTimes are the times of one burst run, from process start.
type burstTimes struct {
	ready, first, last time.Duration
}

// awaitBurst waits for every SMS of a burst and returns when the first and
// the last arrived, relative to start.
func awaitBurst(obs *observer, tag string, start time.Time) (burstTimes, error) {
	var bt burstTimes
	for i := range burstSize {
		a, err := obs.wait("sms/in", marker(tag, i), msgWait)
		if err != nil {
			return bt, err
		}
		d := a.first.Sub(start)
		if i == 0 || d < bt.first {
			bt.first = d
		}
		bt.last = max(bt.last, d)
	}
	return bt, nil
}

// smsBurst stores 100 SMS on the SIM, starts the gateway and times the
// drain, unpaced and at 115200 baud, burstRuns times each.
func (b *bench) smsBurst(ctx context.Context) error {
	for _, baud := range []int{0, 115200} {
		var total, drain, spread []float64
		var hwm int64
		var listed listedLine
		for run := range burstRuns {
			if err := ctx.Err(); err != nil {
				return err
			}
			bt, h, err := b.burstOnce(baud, run, &listed)
			if err != nil {
				return err
			}
			total = append(total, ms(bt.last))
			drain = append(drain, ms(bt.last-min(bt.ready, bt.first)))
			spread = append(spread, ms(bt.last-bt.first))
			hwm = max(hwm, h)
		}
		note := fmt.Sprintf("median of %d runs: %v ms", burstRuns, total)
		b.rep.add("SMS burst", fmt.Sprintf("100 stored, start → last on MQTT, %s", pacing(baud)), median(total), "ms", nil, note)
		var t *target
		if baud == 0 {
			t = atMost(1000, "≤ 1 s")
			b.simgateBurst = median(total)
			b.simgateBurstSpread = median(spread)
		}
		note = fmt.Sprintf("first → last %.0f ms (median)", median(spread))
		if baud > 0 {
			note += fmt.Sprintf("; serial floor ≈ %.0f ms to the last on MQTT (AT+CMGL=4 and its listing: %d bytes at %d baud); %.0f ms with the AT+CMGD and OK of each, which follow (%d bytes)",
				ms(lineTime(listed.toLast, baud)), listed.toLast, baud, ms(lineTime(listed.all, baud)), listed.all)
		}
		b.rep.add("SMS burst", fmt.Sprintf("100 stored, READY=1 → last, %s", pacing(baud)), median(drain), "ms", t, note)
		b.rep.add("Footprint", fmt.Sprintf("RSS peak (VmHWM) after 100-SMS burst, %s", pacing(baud)), float64(hwm)/(1<<20), "MB", nil, "max over runs")
		b.step("burst %s: start → last %.0f ms, READY → last %.0f ms, peak RSS %.1f MB", pacing(baud), median(total), median(drain), float64(hwm)/(1<<20))
	}
	return nil
}

// burstOnce is one burst run; it returns its times and the gateway's VmHWM.
func (b *bench) burstOnce(baud, run int, listed *listedLine) (bt burstTimes, hwm int64, err error) {
	tag := fmt.Sprintf("burst%d", run)
	r, err := b.startRig("burst", rigSpec{sim: modemsim.Options{Baud: baud, Capacity: 120}, before: storeBurst(tag, listed)})
	if err != nil {
		return bt, 0, err
	}
	defer func() { err = joinErr(err, r.close()) }()
	bt, err = awaitBurst(r.obs, tag, r.gw.started)
	if err != nil {
		return bt, 0, err
	}
	if bt.ready, err = b.ready(r); err != nil {
		return bt, 0, err
	}
	m, err := readMemory(r.gw.pid())
	if err != nil {
		return bt, 0, err
	}
	// The gateway deletes an SMS once it is durably queued, which may be
	// a moment after its publish.
	deadline := time.Now().Add(10 * time.Second)
	for left := len(r.sim.State().Stored); left != 0; left = len(r.sim.State().Stored) {
		if time.Now().After(deadline) {
			return bt, 0, fmt.Errorf("%d SMS still on the SIM 10s after all arrived", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return bt, m.HWM, nil
}
