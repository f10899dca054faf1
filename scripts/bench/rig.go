package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// rig is one simulated modem with a gateway on it and an observer of the
// gateway's topics.
type rig struct {
	name   string
	dir    string
	sim    *modemsim.Sim
	gw     *gateway
	obs    *observer
	prefix string
}

// rigSpec says how to build a rig.
type rigSpec struct {
	sim modemsim.Options
	gw  gwConfig
	// before runs once the module has booted and before the gateway
	// starts (e.g. to store SMS on the SIM).
	before func(*modemsim.Sim) error
}

// startRig starts modemsim, waits for its boot to finish, runs
// spec.before, subscribes and starts the gateway. It does not wait for
// READY=1: the caller times that.
func (b *bench) startRig(name string, spec rigSpec) (r *rig, err error) {
	b.runs++
	name = fmt.Sprintf("%s%d", name, b.runs)
	dir := filepath.Join(b.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rig dir: %w", err)
	}
	r = &rig{name: name, dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	spec.sim.Link = filepath.Join(dir, "modem")
	if r.sim, err = modemsim.Start(spec.sim); err != nil {
		return r, err
	}
	if err := waitBooted(r.sim, 10*time.Second); err != nil {
		return r, err
	}
	if spec.before != nil {
		if err := spec.before(r.sim); err != nil {
			return r, err
		}
	}
	gc := spec.gw
	gc.DeviceID = name
	gc.Port = spec.sim.Link
	gc.Broker = b.broker.url()
	gc.StoreDir = filepath.Join(dir, "store")
	r.prefix = "supersim/" + name
	if r.obs, err = newObserver(b.broker.url(), "bench-obs-"+name, r.prefix, b.log); err != nil {
		return r, err
	}
	if r.gw, err = startGateway(b.simgate, filepath.Join(dir, "gw"), gc); err != nil {
		return r, err
	}
	return r, nil
}

// ready waits for the gateway's READY=1 and records the time it took.
func (b *bench) ready(r *rig) (time.Duration, error) {
	d, err := r.gw.waitReady(msgWait)
	if err != nil {
		return 0, err
	}
	b.readyTimes = append(b.readyTimes, ms(d))
	return d, nil
}

// close stops the gateway (a clean stop is part of the measurement: an
// error is returned), the observer and the simulator.
func (r *rig) close() error {
	var errs []error
	if r.gw != nil {
		errs = append(errs, r.gw.stop())
	}
	if r.obs != nil {
		r.obs.close()
	}
	if r.sim != nil {
		errs = append(errs, r.sim.Close())
	}
	return errors.Join(errs...)
}

// waitBooted waits until the simulated module has sent its last boot URC,
// so that what is injected next is stored and announced, not held.
func waitBooted(s *modemsim.Sim, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !s.State().BootDone {
		if time.Now().After(deadline) {
			return fmt.Errorf("modemsim did not finish booting within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
