package modem

import (
	"context"
	"fmt"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
)

// SendSMS sends one SMS to to (SMSRecipient when empty) in GSM 7-bit when
// the text fits the default alphabet, else UCS-2, or as 8-bit data when
// binary. It returns the message reference the network assigned. A payload
// that does not fit one SMS is refused before the modem sees it.
func (s *Session) SendSMS(ctx context.Context, to string, payload []byte, binary bool) (int, error) {
	if to == "" {
		to = gw.SMSRecipient
	}
	op := "send SMS to " + to
	if !s.cfg.SMS {
		return 0, &OpError{Op: op, Err: ErrSMSDisabled}
	}
	alpha, err := gw.CheckSMS(payload, binary)
	if err != nil {
		return 0, &OpError{Op: op, Err: err}
	}
	tp, err := encodeSubmit(to, payload, alpha, s.cfg.DeliveryReports)
	if err != nil {
		return 0, &OpError{Op: op, Err: err}
	}
	eng, err := s.health.engine()
	if err != nil {
		return 0, &OpError{Op: op, Err: err}
	}
	// "00": no SMSC address, the modem uses the SIM's.
	line := fmt.Sprintf("AT+CMGS=%d", len(tp))
	r, err := eng.Do(ctx, at.Cmd{Line: line, Data: []byte("00" + hexUpper(tp) + "\x1a")})
	if err != nil {
		return 0, &OpError{Op: op + " (+CMGS)", Err: err}
	}
	for _, l := range r.Lines {
		if mr, err := parseCMGS(l); err == nil {
			s.log.Info("SMS sent", "to", to, "alphabet", alpha, "reference", mr)
			return mr, nil
		}
	}
	return 0, &OpError{Op: op + " (+CMGS)", Err: fmt.Errorf("no message reference in the answer %q", r.Lines)}
}

// SendUDP sends one IP Command to Config.Cloud through the module's UDP
// socket (ip.mode "modem"), with the exact byte count. A payload over the
// limit is refused before the modem sees it; while the data session is down
// the error says "data session down: <why>", so the relay can report a
// failed result rather than wait.
func (s *Session) SendUDP(ctx context.Context, payload []byte) error {
	const op = "send IP Command"
	if err := gw.CheckUDP(payload); err != nil {
		return &OpError{Op: op, Err: err}
	}
	switch s.cfg.IPMode {
	case "off":
		return &OpError{Op: op, Err: fmt.Errorf("IP Commands are off (ip.mode: off)")}
	case "modem":
		return s.dp.sendUDP(ctx, op, payload, s.health.engine, func() string { return s.Status().Modem.Profile })
	case "os":
		return &OpError{Op: op, Err: fmt.Errorf("ip.mode os sends datagrams from the host, not through the modem")}
	}
	return &OpError{Op: op, Err: fmt.Errorf("%w (ip.mode %q)", ErrIPUnavailable, s.cfg.IPMode)}
}
