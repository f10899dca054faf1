package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// The serial line is the floor of every paced figure: at 115200 baud 8N1 a
// module sends 11,520 bytes a second. These estimates count the bytes the
// module must send (27.005 replies as modemsim writes them) to hand one
// stored SMS to the host and delete it, so a paced result can be compared
// with what the line allows at best.

// lineTime is how long n bytes take at baud, 10 bits a byte.
func lineTime(n, baud int) time.Duration {
	return time.Duration(n) * 10 * time.Second / time.Duration(baud)
}

// tpduLen is the <length> 27.005 gives for a stored PDU: its octets less
// the service centre address in front.
func tpduLen(pduHex string) (int, error) {
	if len(pduHex) < 2 || len(pduHex)%2 != 0 {
		return 0, fmt.Errorf("PDU %q: odd or empty", pduHex)
	}
	smsc, err := strconv.ParseUint(pduHex[:2], 16, 8)
	if err != nil {
		return 0, fmt.Errorf("PDU %q: %w", pduHex, err)
	}
	n := len(pduHex)/2 - 1 - int(smsc)
	if n <= 0 {
		return 0, fmt.Errorf("PDU %q: service centre address longer than the PDU", pduHex)
	}
	return n, nil
}

// indicatedBytes are the module's bytes for one SMS announced by +CMTI and
// read with AT+CMGR, then deleted with AT+CMGD.
func indicatedBytes(s modemsim.StoredSMS) (int, error) {
	n, err := tpduLen(s.PDU)
	if err != nil {
		return 0, err
	}
	cmti := fmt.Sprintf("\r\n+CMTI: \"SM\",%d\r\n", s.Index)
	cmgr := fmt.Sprintf("\r\n+CMGR: 0,,%d\r\n%s\r\n\r\nOK\r\n", n, s.PDU)
	return len(cmti) + len(cmgr) + len("\r\nOK\r\n"), nil
}

// listedBytes are the module's bytes for SMS listed by AT+CMGL=4 and then
// deleted one by one.
func listedBytes(ss []modemsim.StoredSMS) (int, error) {
	total := len("\r\nOK\r\n")
	for _, s := range ss {
		n, err := tpduLen(s.PDU)
		if err != nil {
			return 0, err
		}
		total += len(fmt.Sprintf("\r\n+CMGL: %d,0,,%d\r\n%s", s.Index, n, s.PDU)) + len("\r\nOK\r\n")
	}
	return total, nil
}
