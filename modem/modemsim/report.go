package modemsim

import (
	"fmt"
	"strings"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

// Status reports (3GPP TS 23.040 9.2.2.3): an SMS-SUBMIT with TP-SRR set
// gets an SMS-STATUS-REPORT from the network Options.ReportDelay later,
// routed as AT+CNMI <ds> asks: 1 "+CDS: <len>" and the PDU, 2 stored on
// the SIM with "+CDSI: "SM",<index>", 0 not at all. Faults.ReportStatus
// picks its TP-ST (0, the default, is "received by the recipient");
// Faults.ReportLost makes the network never send it.

// defaultReportDelay is the time from a sent SMS to its status report.
const defaultReportDelay = 100 * time.Millisecond

// SentReport is one status report the network sent the host.
type SentReport struct {
	Reference int    `json:"reference"`
	Status    int    `json:"status"` // TP-ST
	Route     string `json:"route"`  // "cds", "cdsi" or "none" (AT+CNMI ds=0)
}

// scheduleReport arranges the status report of a submitted SMS. Caller
// holds mu.
func (s *Sim) scheduleReport(tp []byte, mr int, to string) {
	if len(tp) == 0 || tp[0]&byte(tpdu.FoSRR) == 0 || s.faults.ReportLost {
		return
	}
	st := s.faults.ReportStatus
	gen := s.bootGen
	delay := s.opts.ReportDelay
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// A module that reset or closed in between has lost the report
		// (the network does not repeat it).
		if s.closed || s.bootGen != gen {
			return
		}
		s.sendReport(mr, to, st)
	})
}

// sendReport emits one status report. Caller holds mu.
func (s *Sim) sendReport(mr int, to string, st int) {
	tp, err := statusReport(mr, to, st, time.Now())
	if err != nil {
		s.log.Debug("status report", "err", err)
		return
	}
	rep := SentReport{Reference: mr, Status: st}
	switch s.set.cnmi[3] {
	case 1:
		rep.Route = "cds"
		sl := &slot{tpdu: tp}
		s.emit([]byte(fmt.Sprintf("\r\n+CDS: %d\r\n%s\r\n", len(tp), s.pduHex(sl))))
	case 2:
		rep.Route = "cdsi"
		for i, sl := range s.store {
			if sl == nil {
				s.store[i] = &slot{status: statRecUnread, tpdu: tp}
				s.urc(fmt.Sprintf(`+CDSI: "SM",%d`, i+s.prof.indexBase))
				break
			}
		}
	default:
		rep.Route = "none"
	}
	s.reports = trim(append(s.reports, rep))
}

// statusReport builds an SMS-STATUS-REPORT TPDU for reference mr to to.
func statusReport(mr int, to string, st int, now time.Time) ([]byte, error) {
	digits, intl := strings.CutPrefix(to, "+")
	ra := tpdu.Address{TOA: 0x81, Addr: digits}
	if intl {
		ra.TOA = 0x91
	}
	t := tpdu.TPDU{
		Direction: tpdu.MT,
		// SMS-STATUS-REPORT, no more messages waiting.
		FirstOctet: tpdu.FirstOctet(0x02 | 0x04),
		MR:         byte(mr),
		RA:         ra,
		SCTS:       tpdu.Timestamp{Time: now},
		DT:         tpdu.Timestamp{Time: now},
		ST:         byte(st),
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode status report: %w", err)
	}
	return b, nil
}
