package modem

import (
	"context"
	"fmt"
	"strings"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/at"
	"github.com/warthog618/sms/encoding/tpdu"
)

// Delivery reports: with Config.DeliveryReports each SMS is sent with
// TP-SRR set, and the network's SMS-STATUS-REPORT for it arrives as +CDS
// (AT+CNMI ds=1, the PDU in the URC) or +CDSI (ds=2, stored; read with
// AT+CMGR and deleted). The report names the sent SMS by its TP-MR, the
// reference +CMGS answered; the Sink, which knows which request that was,
// turns it into a second result.

// tpStatus are the TP-ST values 3GPP TS 23.040 9.2.3.15 names.
var tpStatus = map[int]string{
	0x00: "received by the recipient", 0x01: "forwarded, delivery not confirmed", 0x02: "replaced by the service centre",
	0x20: "congestion", 0x21: "recipient busy", 0x22: "no response from the recipient", 0x23: "service rejected",
	0x24: "quality of service not available", 0x25: "error in the recipient",
	0x40: "remote procedure error", 0x41: "incompatible destination", 0x42: "connection rejected by the recipient",
	0x43: "not obtainable", 0x44: "quality of service not available", 0x45: "no interworking available",
	0x46: "validity period expired", 0x47: "deleted by the originating entity", 0x48: "deleted by the service centre administration",
	0x49: "message does not exist",
	0x60: "congestion", 0x61: "recipient busy", 0x62: "no response from the recipient", 0x63: "service rejected",
	0x64: "quality of service not available", 0x65: "error in the recipient",
}

// statusText describes a TP-ST code for the result's "error".
func statusText(st int) string {
	t, ok := tpStatus[st]
	if !ok {
		switch {
		case st < 0x20:
			t = "delivered"
		case st < 0x40:
			t = "temporary error"
		case st < 0x60:
			t = "permanent error"
		default:
			t = "temporary error, service centre gave up"
		}
	}
	return fmt.Sprintf("TP-ST 0x%02X: %s", st, t)
}

// isStatusReport reports whether a TPDU the module received is an
// SMS-STATUS-REPORT (TP-MTI 10).
func isStatusReport(tp []byte) bool { return len(tp) > 0 && tp[0]&0x03 == 0x02 }

// decodeStatusReport decodes an SMS-STATUS-REPORT TPDU. It never panics
// on bad bytes (FuzzStatusReport).
func decodeStatusReport(tp []byte) (r gw.DeliveryReport, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = gw.DeliveryReport{}, fmt.Errorf("malformed status report: %v", p)
		}
	}()
	if !isStatusReport(tp) {
		return gw.DeliveryReport{}, fmt.Errorf("not a status report (first octet %#02x)", firstByte(tp))
	}
	t := tpdu.TPDU{Direction: tpdu.MT}
	if err := t.UnmarshalBinary(tp); err != nil {
		return gw.DeliveryReport{}, fmt.Errorf("decode status report: %w", err)
	}
	r = gw.DeliveryReport{Reference: int(t.MR), Recipient: t.RA.Number(), Status: int(t.ST), DischargedAt: t.DT.Time}
	if r.Status < 0x20 {
		r.Delivered = true
	} else {
		r.Error = statusText(r.Status)
	}
	return r, nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// parseCDS decodes a +CDS URC: `+CDS: <length>` and the PDU line
// (SMSC address, then the TPDU).
func parseCDS(u at.URC) (gw.DeliveryReport, error) {
	f, err := fields(u.Line, "+CDS:")
	if err != nil {
		return gw.DeliveryReport{}, fmt.Errorf("parse +CDS: %w", err)
	}
	n, err := field(f, len(f)-1)
	if err != nil || n <= 0 {
		return gw.DeliveryReport{}, fmt.Errorf("parse %q: no TPDU length", u.Line)
	}
	if len(u.Extra) == 0 {
		return gw.DeliveryReport{}, fmt.Errorf("%q without its PDU", u.Line)
	}
	tp, err := splitPDU(u.Extra[0], n)
	if err != nil {
		return gw.DeliveryReport{}, fmt.Errorf("+CDS PDU: %w", err)
	}
	return decodeStatusReport(tp)
}

// reportURC acts on +CDS and +CDSI; it reports false for other URCs.
func (s *smsReceiver) reportURC(ctx context.Context, c commander, u at.URC) (bool, error) {
	switch {
	case strings.HasPrefix(u.Line, "+CDS:"):
		r, err := parseCDS(u)
		if err != nil {
			s.log.Warn("unreadable delivery report", "line", u.Line, "err", err)
			return true, nil
		}
		s.report(ctx, r)
		return true, nil
	case strings.HasPrefix(u.Line, "+CDSI:"):
		mem, idx, err := parseCMTI(strings.Replace(u.Line, "+CDSI:", "+CMTI:", 1))
		if err != nil {
			s.log.Warn("unreadable +CDSI", "line", u.Line, "err", err)
			return true, nil
		}
		return true, s.storedReport(ctx, c, mem, idx)
	}
	return false, nil
}

// storedReport reads the status report the module stored at idx, hands it
// over and deletes it.
func (s *smsReceiver) storedReport(ctx context.Context, c commander, mem string, idx int) error {
	if !strings.EqualFold(mem, "SM") {
		// AT+CMGR reads the SIM ("SM", AT+CPMS); a report stored elsewhere
		// is left to the module.
		s.log.Warn("delivery report stored outside the SIM store is not read", "memory", mem, "index", idx)
		return nil
	}
	r, err := c.do(ctx, "read delivery report", at.Cmd{Line: fmt.Sprintf("AT+CMGR=%d", idx), Trailing: 1})
	if err != nil {
		if isFatal(err) {
			return err
		}
		s.log.Warn("could not read a stored delivery report", "index", idx, "err", err)
		return nil
	}
	if len(r.Lines) >= 2 {
		_, n, perr := parseCMGR(r.Lines[0])
		var rep gw.DeliveryReport
		tp, err := splitPDU(r.Lines[1], n)
		if err == nil && perr == nil {
			rep, err = decodeStatusReport(tp)
		}
		if err != nil {
			s.log.Warn("unreadable stored delivery report; deleting it", "index", idx, "err", err)
		} else if !s.report(ctx, rep) {
			return nil // kept on the SIM: the drain hands it over later
		}
	}
	return s.delete(ctx, c, idx)
}

// report hands one delivery report to the Sink; false when the Sink
// refused it.
func (s *smsReceiver) report(ctx context.Context, r gw.DeliveryReport) bool {
	state := "delivered"
	if !r.Delivered {
		state = "failed: " + r.Error
	}
	if !r.Final() {
		s.log.Info("SMS not delivered yet; the service centre keeps trying", "reference", r.Reference, "status", statusText(r.Status))
		return true
	}
	rs, ok := s.sink.(gw.ReportSink)
	if !ok {
		s.log.Info("SMS delivery report", "reference", r.Reference, "to", r.Recipient, "state", state)
		return true
	}
	if err := rs.PutReport(ctx, r); err != nil {
		msg := fmt.Sprintf("delivery report for SMS reference %d (%s) could not be stored: %v", r.Reference, state, err)
		s.log.Error(msg)
		s.event(gw.EventReportLost, msg, map[string]any{"reference": r.Reference})
		return false
	}
	s.log.Info("SMS delivery report", "reference", r.Reference, "to", r.Recipient, "state", state)
	return true
}

// statusReport decodes an entry the drain found that is a status report
// rather than an SMS.
func (e *smsEntry) statusReport() (gw.DeliveryReport, bool) {
	if e.d != nil {
		return gw.DeliveryReport{}, false
	}
	if !isStatusReport(e.tp) {
		return gw.DeliveryReport{}, false
	}
	r, err := decodeStatusReport(e.tp)
	if err != nil {
		return gw.DeliveryReport{}, false
	}
	return r, true
}
