package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// The serial line is the floor of every paced figure: at 115200 baud 8N1 a
// module sends 11,520 bytes a second, and receives as many. These
// estimates count the bytes that must cross the line one after another
// (27.005 replies as modemsim writes them, ATV1: "\r\n<line>\r\n" blocks,
// then "\r\nOK\r\n") for the gateway to read one stored SMS and delete it, so
// a paced result can be compared with what the line allows at best. A
// command's own bytes count: the module answers only once its final CR
// has arrived, and modemsim paces what the host writes too.

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

// cmdBytes are the bytes of one command line as the host writes it.
func cmdBytes(line string) int { return len(line) + len("\r") }

// okBytes is a final OK (ATV1).
var okBytes = len("\r\nOK\r\n")

// listingBytes are the module's bytes for an AT+CMGL=4 answer listing ss:
// "\r\n", each entry's header and PDU lines each ended by "\r\n", then OK.
func listingBytes(ss []modemsim.StoredSMS) (int, error) {
	total := len("\r\n") + okBytes
	for _, s := range ss {
		n, err := tpduLen(s.PDU)
		if err != nil {
			return 0, err
		}
		total += len(fmt.Sprintf("+CMGL: %d,0,,%d\r\n%s\r\n", s.Index, n, s.PDU))
	}
	return total, nil
}

// indicatedBytes are the bytes on the line, in turn, for one SMS announced
// by +CMTI, taken by the gateway's drain (AT+CMGL=4, which lists it) and
// deleted: the +CMTI, the AT+CMGL=4 command and its listing, and the OK of
// AT+CMGD. The deletion's command goes the other way while a +CMTI is on
// the line, so only its OK is counted: the paced step injects each SMS as
// the one before arrives on MQTT, which the gateway publishes before it
// deletes, so that OK follows the next +CMTI on the line.
func indicatedBytes(s modemsim.StoredSMS) (int, error) {
	list, err := listingBytes([]modemsim.StoredSMS{s})
	if err != nil {
		return 0, err
	}
	cmti := len(fmt.Sprintf("\r\n+CMTI: \"SM\",%d\r\n", s.Index))
	return cmti + cmdBytes("AT+CMGL=4") + list + okBytes, nil
}

// burstBytes are the bytes on the line for SMS listed by AT+CMGL=4 and
// then deleted one by one, each AT+CMGD=<index> waiting for its OK. toLast
// are those before the last SMS can be on MQTT: the AT+CMGL=4 command and
// its listing, as the gateway stores the whole listing in one commit and
// publishes it before it deletes; all adds the deletions that follow.
func burstBytes(ss []modemsim.StoredSMS) (toLast, all int, err error) {
	list, err := listingBytes(ss)
	if err != nil {
		return 0, 0, err
	}
	toLast = cmdBytes("AT+CMGL=4") + list
	all = toLast
	for _, s := range ss {
		all += cmdBytes(fmt.Sprintf("AT+CMGD=%d", s.Index)) + okBytes
	}
	return toLast, all, nil
}
