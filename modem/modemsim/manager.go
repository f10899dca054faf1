package modemsim

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// managerCommands are the 27.007 commands a connection manager such as
// ModemManager sends while it probes and enables a module, beyond what an
// SMS gateway needs: capability tests, SIM file reads, call and USSD
// settings. The answers are those of a module that has no voice calls and
// a SIM without a phone number, as a Super SIM in an IoT module is; a
// manager that reads them must come out with the same modem it would on
// the hardware.
func managerCommands() map[string]spec {
	return map[string]spec{
		"+WS46":   {fn: (*Sim).cmdWS46},
		"+CRSM":   {fn: (*Sim).cmdCRSM, phase: phaseSIM},
		"+CSIM":   {fn: (*Sim).cmdCSIM, phase: phaseSIM},
		"+CPLS":   {fn: (*Sim).cmdCPLS, phase: phaseSIM},
		"+CPOL":   {fn: (*Sim).cmdCPOL, phase: phaseSIM},
		"+CNUM":   {fn: (*Sim).cmdEmptyList, phase: phaseSIM},
		"+CLCK":   {fn: (*Sim).cmdCLCK, phase: phaseSIM},
		"+CUSD":   {fn: rangeCmd("+CUSD", "(0-2)", "0")},
		"+CTZU":   {fn: rangeCmd("+CTZU", "(0,1)", "0")},
		"+CTZR":   {fn: rangeCmd("+CTZR", "(0-3)", "0")},
		"+CLIP":   {fn: rangeCmd("+CLIP", "(0,1)", "0,1")},
		"+CRC":    {fn: rangeCmd("+CRC", "(0,1)", "0")},
		"+CCWA":   {fn: rangeCmd("+CCWA", "(0,1)", "0")},
		"+IFC":    {fn: rangeCmd("+IFC", "(0-2),(0-2)", "0,0")},
		"+CGEREP": {fn: rangeCmd("+CGEREP", "(0-2),(0,1)", "0,0")},
		"+CMER":   {fn: rangeCmd("+CMER", "(0-3),(0),(0),(0-2),(0,1)", "0,0,0,0,0")},
		"+CLCC":   {fn: (*Sim).cmdEmptyList},
		"+CIND":   {fn: (*Sim).cmdCIND},
	}
}

// rangeCmd is a setting the module accepts and reports but that changes
// nothing here: its test form lists ranges, its read form the value.
func rangeCmd(name, ranges, value string) handler {
	return func(s *Sim, c *command, r *reply) error {
		switch c.op {
		case opTest:
			r.line(name + ": " + ranges)
		case opRead:
			r.line(name + ": " + value)
		}
		return nil
	}
}

// cmdWS46 reports the radio access networks of an LTE-M/NB-IoT module with
// GSM fallback (BG96, SIM7080, SARA-R4): 12 GERAN, 28 E-UTRAN, 30 both.
func (s *Sim) cmdWS46(c *command, r *reply) error {
	switch c.op {
	case opTest:
		r.line("+WS46: (12,28,30)")
	case opRead:
		r.line("+WS46: 30")
	case opSet:
		if _, err := c.intArg(0, -1, 0, 31); err != nil {
			return err
		}
	default:
		return errPlain
	}
	return nil
}

// SIM elementary files that AT+CRSM READ BINARY serves (27.007 8.18,
// 31.102 for the file ids).
const (
	efICCID = 0x2FE2
	efAD    = 0x6FAD // administrative data: the MNC length
	efSPN   = 0x6F46 // service provider name
)

// cmdCRSM answers restricted SIM access. Only READ BINARY (176) of the
// files above is served; other files answer 6A82 (file not found) and
// other instructions 6D00 (instruction not supported), as a SIM does.
func (s *Sim) cmdCRSM(c *command, r *reply) error {
	if c.op == opTest {
		return nil
	}
	if c.op != opSet {
		return errPlain
	}
	cmd, err := c.intArg(0, -1, 0, 255)
	if err != nil {
		return err
	}
	if cmd != 176 {
		r.line("+CRSM: 109,0")
		return nil
	}
	file, err := c.intArg(1, -1, 0, 0xFFFF)
	if err != nil {
		return err
	}
	var data []byte
	switch file {
	case efICCID:
		data = bcdSwapped(s.opts.ICCID, 10)
	case efAD:
		// Operation mode normal, no extra info, MNC length from the IMSI's
		// network (3 digits for the default 732-123).
		data = []byte{0x00, 0x00, 0x00, byte(mncLength(s.opts.IMSI))}
	case efSPN:
		data = make([]byte, 17)
		for i := range data {
			data[i] = 0xFF
		}
		data[0] = 0x01 // display the registered network's name too
		copy(data[1:], s.opts.Operator)
	default:
		r.line("+CRSM: 106,130")
		return nil
	}
	// P3 is the length asked for; 0 (as ModemManager sends for files of
	// unknown size) means the whole file.
	if n, err := c.intArg(4, 0, 0, 255); err == nil && n > 0 && n < len(data) {
		data = data[:n]
	}
	r.line(fmt.Sprintf(`+CRSM: 144,0,"%s"`, strings.ToUpper(hex.EncodeToString(data))))
	return nil
}

// bcdSwapped packs digits two per byte, low nibble first, padded with F,
// as the SIM stores the ICCID.
func bcdSwapped(digits string, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = 0xFF
	}
	for i := 0; i < len(digits) && i/2 < n; i++ {
		d := digits[i] - '0'
		if digits[i] == 'F' || digits[i] == 'f' {
			d = 0xF
		}
		if i%2 == 0 {
			out[i/2] = out[i/2]&0xF0 | d
		} else {
			out[i/2] = out[i/2]&0x0F | d<<4
		}
	}
	return out
}

// mncLength is the length of the MNC in imsi: 3 in the countries that use
// three-digit MNCs (Colombia 732, the USA 310-316, ...), 2 elsewhere.
func mncLength(imsi string) int {
	if len(imsi) < 3 {
		return 2
	}
	switch imsi[:3] {
	case "732", "310", "311", "312", "313", "314", "315", "316", "338", "342", "344", "346", "348", "356", "358", "360", "365", "376", "405", "708", "722":
		return 3
	}
	return 2
}

// cmdCSIM refuses generic SIM access: modules that offer it differ in
// framing, and a manager falls back to other ways of reading PIN retries.
func (s *Sim) cmdCSIM(c *command, r *reply) error {
	if c.op == opTest {
		return nil
	}
	return cme(4)
}

// cmdCPLS selects the preferred-operator list; only the user list (0).
func (s *Sim) cmdCPLS(c *command, r *reply) error {
	switch c.op {
	case opTest:
		r.line("+CPLS: (0)")
	case opRead:
		r.line("+CPLS: 0")
	case opSet:
		if _, err := c.intArg(0, 0, 0, 0); err != nil {
			return err
		}
	default:
		return errPlain
	}
	return nil
}

// cmdCPOL: the SIM's preferred-operator list is empty (Super SIM steers by
// its own applet); entries cannot be written.
func (s *Sim) cmdCPOL(c *command, r *reply) error {
	switch c.op {
	case opTest:
		r.line("+CPOL: (1-8),(0-2)")
	case opRead:
	case opSet:
		if len(c.args) > 2 {
			return cme(3)
		}
		if _, err := c.intArg(1, 0, 0, 2); err != nil {
			return err
		}
	default:
		return errPlain
	}
	return nil
}

// cmdEmptyList answers a list that is always empty: AT+CNUM (a Super SIM
// has no MSISDN on the SIM) and AT+CLCC (no calls on a data-only module).
func (s *Sim) cmdEmptyList(c *command, r *reply) error {
	if c.op != opExec && c.op != opTest {
		return errPlain
	}
	return nil
}

// cmdCLCK reports facility locks: none is active, and none can be set (the
// SIM has no PIN).
func (s *Sim) cmdCLCK(c *command, r *reply) error {
	switch c.op {
	case opTest:
		r.line(`+CLCK: ("SC","FD","PN","PU","PP","PC","PF","AO","OI","OX","AI","IR","AB","AG","AC")`)
		return nil
	case opSet:
		mode, err := c.intArg(1, -1, 0, 2)
		if err != nil {
			return err
		}
		if mode == 2 {
			r.line("+CLCK: 0")
			return nil
		}
		return cme(3)
	}
	return errPlain
}

// cmdCIND reports the indicators of 27.007 8.9 from the simulated state.
func (s *Sim) cmdCIND(c *command, r *reply) error {
	switch c.op {
	case opTest:
		r.line(`+CIND: ("battchg",(0-5)),("signal",(0-5)),("service",(0,1)),("call",(0,1)),("roam",(0,1)),("smsfull",(0,1))`)
	case opRead:
		sig := 0
		if s.rssi != 99 {
			sig = min(5, (s.rssi+5)/6)
		}
		stat := s.regStat()
		service, roam := 0, 0
		if registered(stat) {
			service = 1
		}
		if stat == 5 {
			roam = 1
		}
		full := 0
		if s.used() == len(s.store) {
			full = 1
		}
		r.line(fmt.Sprintf("+CIND: 5,%d,%d,0,%d,%d", sig, service, roam, full))
	case opSet:
		return cme(3)
	default:
		return errPlain
	}
	return nil
}
