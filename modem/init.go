package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// initWire is the engine as an initialisation uses it: named commands,
// and the engine's own Do for the first AT, whose errors are bare.
type initWire interface {
	commander
	Do(ctx context.Context, c at.Cmd) (at.Reply, error)
}

// bringUp runs the commands of one initialisation that need nothing of
// the session: waiting for the modem and its SIM, retrying what a booting
// module refuses, reading identities.
type bringUp struct {
	w   initWire
	log *slog.Logger
}

// initialise brings a freshly opened modem into the state simgate needs.
func (s *Session) initialise(ctx context.Context, eng *at.Engine) error {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.BootTimeout)
	defer cancel()
	b := bringUp{w: onEngine{s, eng}, log: s.log}
	if err := b.waitAT(bctx); err != nil {
		return err
	}
	// Echo is on after every reset (ATE is not saved); numeric errors
	// because verbose texts differ between vendors.
	if _, err := b.retry(bctx, "disable echo", at.Cmd{Line: "ATE0"}); err != nil {
		return err
	}
	if _, err := b.retry(bctx, "enable numeric errors", at.Cmd{Line: "AT+CMEE=1"}); err != nil {
		return err
	}
	info := gw.ModemInfo{
		Manufacturer: b.identity(bctx, "AT+CGMI"),
		Model:        b.identity(bctx, "AT+CGMM"),
		Revision:     b.identity(bctx, "AT+CGMR"),
		IMEI:         b.identity(bctx, "AT+CGSN"),
	}
	s.prof = chooseProfile(s.cfg.Profile, info.Manufacturer, info.Model)
	s.prof.Sockets = withSettings(s.prof.Sockets, s.cfg)
	s.rec.reset = s.prof.Reset
	info.Profile = s.prof.Name
	s.update(func(st *gw.Status) { st.Modem = info })
	s.log.Info("modem identified", "manufacturer", info.Manufacturer, "model", info.Model, "revision", info.Revision, "profile", info.Profile)

	if err := b.waitSIM(bctx, s.cfg.BootTimeout); err != nil {
		return err
	}
	sim := gw.SIMInfo{ICCID: b.iccid(bctx, s.prof.ICCID), IMSI: b.identity(bctx, "AT+CIMI")}
	s.update(func(st *gw.Status) { st.SIM = sim })
	for _, line := range s.prof.Setup {
		if _, err := b.w.do(bctx, "module setup", at.Cmd{Line: line}); err != nil {
			if isFatal(err) {
				return err
			}
			s.log.Warn("module setup command refused", "command", line, "profile", s.prof.Name, "err", err)
		}
	}

	if s.cfg.SMS {
		if err := s.sms.setup(bctx, b, s.cfg.DeliveryReports); err != nil {
			return err
		}
	}
	// Registration URCs with location and technology. A module without
	// LTE has no +CEREG; +CREG then tells the same for GSM/UMTS.
	if _, err := b.retry(bctx, "enable registration reports", at.Cmd{Line: "AT+CEREG=2"}); err != nil {
		if isFatal(err) {
			return err
		}
		if _, err := b.retry(bctx, "enable registration reports", at.Cmd{Line: "AT+CREG=2"}); isFatal(err) {
			return err
		}
	}
	for _, line := range s.cfg.Init {
		if _, err := b.w.do(bctx, "modem.init", at.Cmd{Line: line, Bare: true}); err != nil {
			if isFatal(err) {
				return err
			}
			s.log.Warn("modem.init command failed", "command", line, "err", err)
			s.event(gw.EventInitFailed, fmt.Sprintf("modem.init command %q failed: %v", line, err), map[string]any{"command": line})
		}
	}
	s.echoBase = eng.Echoes()
	if err := s.net.poll(bctx, b.w); isFatal(err) {
		return err
	}
	return nil
}

// isFatal reports whether err means the modem is gone or silent rather
// than that it refused one command.
func isFatal(err error) bool {
	return err != nil && (errors.Is(err, at.ErrTimeout) || errors.Is(err, at.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// waitAT sends AT until the modem answers: it may be booting (modules
// ignore input until they are up) and spewing power-up noise. A live module
// answers AT within milliseconds, so each try is short.
func (b bringUp) waitAT(ctx context.Context) error {
	for {
		_, err := b.w.Do(ctx, at.Cmd{Line: "AT", Timeout: 500 * time.Millisecond})
		if err == nil || errors.Is(err, at.ErrError) {
			return nil // any answer proves it listens
		}
		if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
			return &OpError{Op: "wait for the modem to answer AT", Err: err}
		}
		if err := backoff.Sleep(ctx, 100*time.Millisecond); err != nil {
			return &OpError{Op: "wait for the modem to answer AT", Err: err}
		}
	}
}

// transient reports errors a booting module answers until it is ready:
// SIM busy, operation not allowed yet, unknown error after a mode change.
func transient(err error) bool {
	switch cmeCode(err) {
	case 3, 14:
		return true
	}
	switch cmsCode(err) {
	case 302, 314, 500:
		return true
	}
	return false
}

// retry runs a command until it stops failing transiently or ctx ends.
func (b bringUp) retry(ctx context.Context, op string, c at.Cmd) (at.Reply, error) {
	delay := 250 * time.Millisecond
	for {
		r, err := b.w.do(ctx, op, c)
		if err == nil || !transient(err) {
			return r, err
		}
		b.log.Debug("modem not ready yet", "op", op, "err", err)
		if serr := backoff.Sleep(ctx, delay); serr != nil {
			return r, err
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// identity reads one identity value; "" when the modem has none to give.
func (b bringUp) identity(ctx context.Context, line string) string {
	r, err := b.retry(ctx, "read", at.Cmd{Line: line, Bare: true})
	if err != nil {
		b.log.Warn("could not read modem identity", "command", line, "err", err)
		return ""
	}
	return parseIdentity(r.Lines)
}

// iccid reads the ICCID with the profile's commands in turn.
func (b bringUp) iccid(ctx context.Context, cmds []string) string {
	for _, line := range cmds {
		r, err := b.retry(ctx, "read ICCID", at.Cmd{Line: line, Bare: true})
		if err == nil {
			v, perr := parseICCID(r.Lines)
			if perr == nil {
				return v
			}
			err = perr
		}
		if isFatal(err) {
			break
		}
		b.log.Debug("ICCID command did not work", "command", line, "err", err)
	}
	b.log.Warn("could not read the SIM's ICCID", "tried", strings.Join(cmds, ", "))
	return ""
}

// waitSIM waits until the SIM is ready; ctx ends after boot (the boot
// timeout), which the error names. A SIM that wants a PIN is an error:
// simgate does not unlock SIMs (Super SIMs have no PIN).
func (b bringUp) waitSIM(ctx context.Context, boot time.Duration) error {
	delay := 250 * time.Millisecond
	for {
		state, err := b.simState(ctx)
		switch {
		case err == nil && state == "READY":
			return nil
		case err == nil && (strings.Contains(state, "PIN") || strings.Contains(state, "PUK")):
			return fmt.Errorf("the SIM asks for %s; simgate does not unlock SIMs", state)
		case err == nil:
			err = fmt.Errorf("SIM state %q", state)
		case errors.Is(err, at.ErrClosed):
			return err
		case cmeCode(err) == 10 || cmsCode(err) == 310:
			err = fmt.Errorf("no SIM inserted: %w", err)
		}
		if serr := backoff.Sleep(ctx, delay); serr != nil {
			return fmt.Errorf("SIM not ready after %s: %w", boot, err)
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func (b bringUp) simState(ctx context.Context) (string, error) {
	r, err := b.w.do(ctx, "query SIM", at.Cmd{Line: "AT+CPIN?"})
	if err != nil {
		return "", err
	}
	if len(r.Lines) == 0 {
		return "", errors.New("query SIM +CPIN?: no +CPIN line in the answer")
	}
	return parseCPIN(r.Lines[0])
}

// setup is the SMS step of an initialisation: it selects PDU mode and SIM
// storage and asks for +CMTI (store, then indicate): an SMS stays on the
// SIM until simgate has handed it off, unlike +CMT direct delivery, which
// loses it if the host is down. deliveryReports asks for status reports
// too (Config.DeliveryReports).
func (s *smsReceiver) setup(ctx context.Context, b bringUp, deliveryReports bool) error {
	if _, err := b.retry(ctx, "select PDU mode", at.Cmd{Line: "AT+CMGF=0"}); err != nil {
		return err
	}
	r, err := b.retry(ctx, "select SMS storage", at.Cmd{Line: `AT+CPMS="SM","SM","SM"`})
	if err != nil {
		return err
	}
	if len(r.Lines) > 0 {
		if used, total, err := parseCPMS(r.Lines[0]); err == nil {
			s.log.Info("SIM SMS storage", "used", used, "capacity", total)
			s.storeUse(gw.StoreUse{Used: used, Total: total})
			if total > 0 && used >= total && s.storageAlarm != gw.EventStorageFull {
				// The network has been refusing SMS; the drain that follows
				// frees the SIM, and the network delivers what it held.
				msg := fmt.Sprintf("SIM SMS store is full (%d of %d): the network refuses new SMS until it is drained; draining it", used, total)
				s.log.Warn(msg)
				s.event(gw.EventStorageFull, msg, map[string]any{"used": used, "total": total})
				s.storageAlarm = gw.EventStorageFull
			}
		}
	}
	cnmi := "AT+CNMI=2,1,0,0,0"
	if deliveryReports {
		cnmi = "AT+CNMI=2,1,0,1,0" // ds=1: status reports as +CDS
	}
	if _, err := b.retry(ctx, "route new SMS", at.Cmd{Line: cnmi}); err != nil {
		if !deliveryReports || isFatal(err) {
			return err
		}
		// A module without +CDS may store the reports instead (+CDSI).
		s.log.Warn("the module refused status reports as +CDS; asking for them stored", "err", err)
		if _, err := b.retry(ctx, "route new SMS", at.Cmd{Line: "AT+CNMI=2,1,0,2,0"}); err != nil {
			if isFatal(err) {
				return err
			}
			s.log.Warn("the module refused status report routing; SMS results stay \"sent\"", "err", err)
			if _, err := b.retry(ctx, "route new SMS", at.Cmd{Line: "AT+CNMI=2,1,0,0,0"}); err != nil {
				return err
			}
		}
	}
	return nil
}
