package modem

// The session's URCs: routing each to the part it concerns, the backlog of
// those put aside, and the poll.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// handleURC routes one URC to the part of the session it concerns.
func (s *Session) handleURC(ctx context.Context, eng *at.Engine, u at.URC) error {
	c := onEngine{s, eng}
	if done, err := s.dp.onURC(ctx, c, u); done {
		return err
	}
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
		s.net.urc(line)
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
	if err := s.net.poll(ctx, onEngine{s, eng}); err != nil {
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

// afterInit sorts the URCs that arrived while the modem was initialised.
// Its boot announcements (RDY, SMS DONE, +CPIN) describe the boot that
// initialise just handled, and the drain that follows finds any SMS a
// +CMTI announced: those are dropped. Registration reports count; socket
// URCs (a datagram pushed meanwhile) wait in the backlog for serve.
func (s *Session) afterInit() {
	for {
		u, ok := s.urcs.NextURC()
		if !ok {
			return
		}
		switch {
		case strings.HasPrefix(u.Line, "+CEREG:") || strings.HasPrefix(u.Line, "+CGREG:") || strings.HasPrefix(u.Line, "+CREG:"):
			s.net.urc(u.Line)
		case bootURC(u.Line) || strings.HasPrefix(u.Line, "+CMTI:"):
			s.log.Debug("URC during initialisation", "line", u.Line)
		default:
			s.putBack(u)
		}
	}
}

// putBack keeps u in the backlog for serve. The backlog is bounded in
// bytes like the engine's queue: the oldest goes first.
func (s *Session) putBack(u at.URC) {
	if dropped := s.backlog.Push(u); dropped > 0 {
		s.log.Warn("URC backlog full, dropped the oldest", "dropped", dropped, "limit_bytes", at.MaxQueuedURCBytes)
	}
}

// bootURC reports the announcements a module makes while it boots.
func bootURC(line string) bool {
	for _, p := range []string{"RDY", "APP RDY", "SMS DONE", "PB DONE", "+CPIN:", "+QUSIM:", "+QIND:", "+CFUN:"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// nextURC returns a URC that is already waiting: the backlog first, then
// the engine's.
func (s *Session) nextURC() (at.URC, bool) {
	if u, ok := s.backlog.Pop(); ok {
		return u, true
	}
	return s.urcs.NextURC()
}

func (s *Session) onURC(ctx context.Context, eng *at.Engine, u at.URC) error {
	err := s.handleURC(ctx, eng, u)
	urcHandled(s, u)
	return err
}

// awaitURC waits for the URC match accepts (the +QIOPEN after AT+QIOPEN's
// OK); every other URC meanwhile is kept in the backlog, in order, for
// serve.
func (s *Session) awaitURC(ctx context.Context, eng *at.Engine, what string, timeout time.Duration, match func(at.URC) bool) (at.URC, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if u, ok := eng.NextURC(); ok {
			if match(u) {
				return u, nil
			}
			s.putBack(u)
			continue
		}
		select {
		case <-eng.URCReady():
		case <-t.C:
			return at.URC{}, fmt.Errorf("no %s within %s: %w", what, timeout, errNoURC)
		case <-ctx.Done():
			return at.URC{}, ctx.Err()
		case <-eng.Done():
			return at.URC{}, at.ErrClosed
		}
	}
}
