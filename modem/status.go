package modem

import (
	"context"
	"fmt"
	"strings"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// pollStatus refreshes signal, registration and operator. Errors other
// than a silent or vanished modem are logged: not every module knows every
// command.
func (s *Session) pollStatus(ctx context.Context, eng *at.Engine) error {
	if r, err := s.do(ctx, eng, "read signal", at.Cmd{Line: "AT+CSQ"}); err != nil {
		if isFatal(err) {
			return err
		}
		s.log.Debug("signal query failed", "err", err)
	} else if len(r.Lines) > 0 {
		if dbm, err := parseCSQ(r.Lines[0]); err == nil {
			s.update(func(st *gw.Status) { st.Network.SignalDBm = dbm })
		}
	}
	for _, q := range []string{"AT+CEREG?", "AT+CGREG?", "AT+CREG?"} {
		r, err := s.do(ctx, eng, "read registration", at.Cmd{Line: q})
		if err != nil {
			if isFatal(err) {
				return err
			}
			continue
		}
		for _, l := range r.Lines {
			if reg, err := parseRegistration(l, true); err == nil {
				s.regs[q[2:len(q)-1]] = reg // "AT+CEREG?" -> "+CEREG"
			}
		}
		if registered(s.registrationName()) {
			break // LTE registration answers it; the older ones need not be asked
		}
	}
	s.applyRegistration()
	if r, err := s.do(ctx, eng, "read operator", at.Cmd{Line: "AT+COPS?"}); err != nil {
		if isFatal(err) {
			return err
		}
	} else if len(r.Lines) > 0 {
		if op, act, err := parseCOPS(r.Lines[0]); err == nil {
			s.update(func(st *gw.Status) {
				st.Network.Operator = op
				if t := technologyName(act); t != "" {
					st.Network.Technology = t
				}
			})
		}
	}
	return nil
}

// registrationName combines +CEREG, +CGREG and +CREG: registered on any of
// them is registered (a module may be on 2G with LTE searching).
func (s *Session) registrationName() string {
	best := ""
	for _, p := range []string{"+CEREG", "+CGREG", "+CREG"} {
		r, ok := s.regs[p]
		if !ok {
			continue
		}
		name := registrationName(r.Stat)
		if registered(name) {
			return name
		}
		if best == "" {
			best = name
		}
	}
	if best == "" {
		return "unknown"
	}
	return best
}

func (s *Session) applyRegistration() {
	name := s.registrationName()
	tech := ""
	for _, p := range []string{"+CEREG", "+CGREG", "+CREG"} {
		if r, ok := s.regs[p]; ok && registered(registrationName(r.Stat)) {
			tech = technologyName(r.Act)
			break
		}
	}
	s.update(func(st *gw.Status) {
		st.Network.Registration = name
		if tech != "" {
			st.Network.Technology = tech
		}
		if !registered(name) {
			st.Network.Operator = ""
		}
	})
	s.registrationChanged(name)
}

// registrationChanged reports a registration lost or regained. Losing it
// stops nothing: SMS wait in the network, and the polls notice its return.
// Regained, a data session waiting to re-open is tried at once.
func (s *Session) registrationChanged(name string) {
	if name == "unknown" {
		return
	}
	now := "no"
	if registered(name) {
		now = "yes"
	}
	was := s.regWas
	s.regWas = now
	switch {
	case was == "yes" && now == "no":
		msg := fmt.Sprintf("network registration lost (%s); SMS and IP Commands wait until it is back", name)
		s.log.Warn(msg)
		s.event(gw.EventRegistrationLost, msg, map[string]any{"registration": name})
	case was == "no" && now == "yes":
		msg := fmt.Sprintf("network registration back (%s)", name)
		s.log.Info(msg)
		s.event(gw.EventRegistrationBack, msg, map[string]any{"registration": name})
		if s.dp.state == DataDown && s.dp.fam != nil && s.dp.timer != nil {
			s.stopDataTimer()
			s.dp.due = true
			s.dp.delay = s.cfg.RetryMin
		}
	}
}

// registrationURC takes a +CEREG/+CREG/+CGREG URC.
func (s *Session) registrationURC(line string) {
	prefix, _, _ := strings.Cut(line, ":")
	reg, err := parseRegistration(line, false)
	if err != nil {
		s.log.Debug("unreadable registration URC", "line", line, "err", err)
		return
	}
	s.regs[prefix] = reg
	s.applyRegistration()
}
