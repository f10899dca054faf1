package modem

import (
	"context"
	"strings"

	"github.com/simgate/simgate/modem/at"
)

// handleURC routes one URC to the part of the session it concerns.
func (s *Session) handleURC(ctx context.Context, eng *at.Engine, u at.URC) error {
	if done, err := s.dataURC(ctx, eng, u); done {
		return err
	}
	c := onEngine{s, eng}
	if done, err := s.sms.reportURC(ctx, c, u); done {
		return err
	}
	line := u.Line
	switch {
	case strings.HasPrefix(line, "+CMTI:"):
		s.sms.cmti(line)
	case strings.HasPrefix(line, "+CMT:"):
		return s.sms.directSMS(ctx, c, u)
	case line == "SMS DONE" || strings.HasSuffix(line, ": SMS DONE") || line == "SMS Ready":
		s.sms.storeReady()
	case line == "RDY":
		return errRestarted
	case strings.HasPrefix(line, "+CEREG:"), strings.HasPrefix(line, "+CGREG:"), strings.HasPrefix(line, "+CREG:"):
		s.registrationURC(line)
	case strings.HasPrefix(line, "+CPIN:"):
		if state, err := parseCPIN(line); err == nil && state != "READY" {
			s.log.Warn("SIM state changed", "state", state)
		}
	default:
		s.log.Debug("URC", "line", line, "known", u.Known, "bytes", len(u.Data))
	}
	return nil
}

// poll refreshes the status, notices a module that reset, watches the SMS
// store and times out incomplete concatenated SMS.
func (s *Session) poll(ctx context.Context, eng *at.Engine) error {
	if eng.Echoes() > s.echoBase {
		return errRestarted // echo is back on: the module reset
	}
	if err := s.pollStatus(ctx, eng); err != nil {
		return err
	}
	if eng.Echoes() > s.echoBase {
		return errRestarted
	}
	if !s.cfg.SMS {
		return nil
	}
	return s.sms.poll(ctx, onEngine{s, eng})
}

// takeWaiting removes and returns every URC waiting: the backlog first,
// then the engine's.
func (s *Session) takeWaiting() []at.URC {
	waiting := s.backlog.Drain()
	for {
		u, ok := s.urcs.NextURC()
		if !ok {
			return waiting
		}
		waiting = append(waiting, u)
	}
}
