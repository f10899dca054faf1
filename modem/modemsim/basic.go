package modemsim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// basicCommands are V.250 and 27.007 commands common to every profile.
func basicCommands() map[string]spec {
	ok := func(*Sim, *command, *reply) error { return nil }
	return map[string]spec{
		"E":        {fn: (*Sim).cmdEcho},
		"V":        {fn: (*Sim).cmdVerbose},
		"Q":        {fn: (*Sim).cmdQuiet},
		"Z":        {fn: (*Sim).cmdDefaults},
		"&F":       {fn: (*Sim).cmdDefaults},
		"&W":       {fn: ok},
		"&C":       {fn: ok},
		"&D":       {fn: ok},
		"&K":       {fn: ok},
		"X":        {fn: ok},
		"L":        {fn: ok},
		"M":        {fn: ok},
		"H":        {fn: ok},
		"D":        {fn: func(*Sim, *command, *reply) error { return errPlain }},
		"I":        {fn: (*Sim).cmdInfo},
		"S0":       {fn: (*Sim).cmdSReg},
		"S3":       {fn: (*Sim).cmdSReg},
		"S4":       {fn: (*Sim).cmdSReg},
		"S5":       {fn: (*Sim).cmdSReg},
		"S7":       {fn: (*Sim).cmdSReg},
		"+CMEE":    {fn: (*Sim).cmdCMEE},
		"+CGMI":    {fn: (*Sim).cmdCGMI},
		"+GMI":     {fn: (*Sim).cmdCGMI},
		"+CGMM":    {fn: (*Sim).cmdCGMM},
		"+GMM":     {fn: (*Sim).cmdCGMM},
		"+CGMR":    {fn: (*Sim).cmdCGMR},
		"+GMR":     {fn: (*Sim).cmdCGMR},
		"+CGSN":    {fn: (*Sim).cmdCGSN},
		"+GSN":     {fn: (*Sim).cmdCGSN},
		"+GCAP":    {fn: (*Sim).cmdGCAP},
		"+CIMI":    {fn: (*Sim).cmdCIMI, phase: phaseSIM},
		"+CPIN":    {fn: (*Sim).cmdCPIN, phase: phaseSIM},
		"+CSQ":     {fn: (*Sim).cmdCSQ},
		"+CESQ":    {fn: (*Sim).cmdCESQ},
		"+COPS":    {fn: (*Sim).cmdCOPS},
		"+CREG":    {fn: (*Sim).cmdReg},
		"+CGREG":   {fn: (*Sim).cmdReg},
		"+CEREG":   {fn: (*Sim).cmdReg},
		"+CFUN":    {fn: (*Sim).cmdCFUN},
		"+CGDCONT": {fn: (*Sim).cmdCGDCONT},
		"+CGATT":   {fn: (*Sim).cmdCGATT},
		"+CGACT":   {fn: (*Sim).cmdCGACT},
		"+CGPADDR": {fn: (*Sim).cmdCGPADDR},
		"+CSCS":    {fn: (*Sim).cmdCSCS},
		"+CCLK":    {fn: (*Sim).cmdCCLK},
		"+CCID":    {fn: (*Sim).cmdICCID, phase: phaseSIM, profiles: []string{"ublox", "sara-r5", "sim7080", "generic"}},
		// Vendor configuration commands hosts send during init; accepted.
		"+QCFG":       {fn: (*Sim).cmdAccept, profiles: []string{"quectel"}},
		"+QURCCFG":    {fn: (*Sim).cmdAccept, profiles: []string{"quectel"}},
		"+QINDCFG":    {fn: (*Sim).cmdAccept, profiles: []string{"quectel"}},
		"+QCSQ":       {fn: (*Sim).cmdQCSQ, profiles: []string{"quectel"}},
		"+QNWINFO":    {fn: (*Sim).cmdQNWINFO, profiles: []string{"quectel"}},
		"+CPSI":       {fn: (*Sim).cmdCPSI, profiles: []string{"simcom", "sim7080"}},
		"+CRESET":     {fn: (*Sim).cmdCRESET, profiles: []string{"simcom"}},
		"+CIPMODE":    {fn: (*Sim).cmdAccept, profiles: []string{"simcom"}},
		"+CIPCCFG":    {fn: (*Sim).cmdAccept, profiles: []string{"simcom"}},
		"+CSOCKSETPN": {fn: (*Sim).cmdAccept, profiles: []string{"simcom"}},
		"+UPSV":       {fn: (*Sim).cmdAccept, profiles: []string{"ublox", "sara-r5"}},
		"+CMUX":       {fn: func(*Sim, *command, *reply) error { return errPlain }},
	}
}

func (s *Sim) cmdAccept(c *command, r *reply) error { return nil }

func (s *Sim) cmdEcho(c *command, r *reply) error { return basicFlag(c, &s.set.echo) }

func (s *Sim) cmdVerbose(c *command, r *reply) error { return basicFlag(c, &s.set.verbose) }

// basicFlag sets a flag of a basic command (ATE, ATV): 1 sets it, 0 or no
// number clears it.
func basicFlag(c *command, flag *bool) error {
	switch c.num {
	case -1, 0:
		*flag = false
	case 1:
		*flag = true
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdQuiet(c *command, r *reply) error {
	if c.num > 1 {
		return errPlain
	}
	s.set.quiet = c.num == 1
	return nil
}

// cmdDefaults is ATZ / AT&F: the power-up settings come back (echo on).
func (s *Sim) cmdDefaults(c *command, r *reply) error {
	s.set = s.defaultSettings()
	return nil
}

func (s *Sim) cmdInfo(c *command, r *reply) error {
	if c.num > 0 {
		return errPlain
	}
	for _, l := range s.prof.ati(&s.opts) {
		r.line(l)
	}
	return nil
}

func (s *Sim) cmdSReg(c *command, r *reply) error {
	vals := map[string]int{"S0": 0, "S3": 13, "S4": 10, "S5": 8, "S7": 60}
	switch c.op {
	case opRead:
		r.line(fmt.Sprintf("%03d", vals[c.name]))
	case opSet:
		// Changing S3/S4/S5 would change the line discipline; the simulator
		// keeps the defaults every host relies on.
	}
	return nil
}

func (s *Sim) cmdCMEE(c *command, r *reply) error {
	return numberSetting(c, r, "+CMEE", &s.set.cmee, 2, "(0-2)")
}

// numberSetting answers a setting of 0 to hi as 27.007 defines them: =<n>
// sets it (no number: 0), ? reads it, =? lists test, and the bare command
// sets 0.
func numberSetting(c *command, r *reply, name string, v *int, hi int, test string) error {
	switch c.op {
	case opSet:
		n, err := c.intArg(0, 0, 0, hi)
		if err != nil {
			return err
		}
		*v = n
	case opRead:
		r.line(fmt.Sprintf("%s: %d", name, *v))
	case opTest:
		r.line(name + ": " + test)
	default:
		*v = 0
	}
	return nil
}

func (s *Sim) cmdCGMI(c *command, r *reply) error {
	if c.op == opExec {
		r.line(s.prof.manufacturer)
	}
	return nil
}

func (s *Sim) cmdCGMM(c *command, r *reply) error {
	if c.op == opExec {
		r.line(s.prof.model)
	}
	return nil
}

func (s *Sim) cmdCGMR(c *command, r *reply) error {
	if c.op == opExec {
		r.line(s.prof.cgmrPrefix + s.prof.revision)
	}
	return nil
}

func (s *Sim) cmdCGSN(c *command, r *reply) error {
	switch c.op {
	case opExec:
		r.line(s.opts.IMEI)
	case opSet:
		n, err := c.intArg(0, 0, 0, 3)
		if err != nil {
			return err
		}
		if n != 1 {
			return errParam
		}
		r.line(fmt.Sprintf(`+CGSN: "%s"`, s.opts.IMEI))
	case opTest:
		r.line("+CGSN: (0-3)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdGCAP(c *command, r *reply) error {
	r.line("+GCAP: +CGSM")
	return nil
}

func (s *Sim) cmdCIMI(c *command, r *reply) error {
	if c.op == opExec {
		r.line(s.opts.IMSI)
	}
	return nil
}

func (s *Sim) cmdICCID(c *command, r *reply) error {
	if c.op == opExec || c.op == opRead {
		r.line(s.prof.iccidPrefix + s.opts.ICCID)
	}
	return nil
}

func (s *Sim) cmdCPIN(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line("+CPIN: READY")
	case opSet:
		// The SIM has no PIN: entering one is not allowed.
		return cme(3)
	}
	return nil
}

func (s *Sim) signal() (rssi int, ok bool) {
	if s.cfun != 1 || !registered(s.regStat()) || s.rssi == 99 {
		return 99, false
	}
	return s.rssi, true
}

func (s *Sim) cmdCSQ(c *command, r *reply) error {
	switch c.op {
	case opExec:
		rssi, _ := s.signal()
		r.line(fmt.Sprintf("+CSQ: %d,99", rssi))
	case opTest:
		r.line("+CSQ: (0-31,99),(0-7,99)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCESQ(c *command, r *reply) error {
	switch c.op {
	case opExec:
		rssi, ok := s.signal()
		if !ok {
			r.line("+CESQ: 99,99,255,255,255,255")
			break
		}
		// RSRP index: dBm = index - 141; take the RSSI's dBm minus 10 dB.
		dbm := -113 + 2*rssi
		rsrp := min(max(dbm-10+141, 0), 97)
		r.line(fmt.Sprintf("+CESQ: 99,99,255,255,20,%d", rsrp))
	case opTest:
		r.line("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
	default:
		return errPlain
	}
	return nil
}

// operatorNumeric is the MCC-MNC of the simulated network, the one its
// AT+COPS=? list has always shown.
const operatorNumeric = "90140"

func (s *Sim) cmdCOPS(c *command, r *reply) error {
	switch c.op {
	case opRead:
		if registered(s.regStat()) {
			name := s.opts.Operator
			if s.set.copsFmt == 2 {
				name = operatorNumeric
			}
			r.line(fmt.Sprintf(`+COPS: 0,%d,"%s",%d`, s.set.copsFmt, name, regAcT))
		} else {
			r.line("+COPS: 0")
		}
	case opSet:
		mode, err := c.intArg(0, -1, 0, 4)
		if err != nil {
			return err
		}
		if mode == 3 {
			// Sets only the format of the read form (27.007 7.3).
			f, err := c.intArg(1, -1, 0, 2)
			if err != nil {
				return err
			}
			s.set.copsFmt = f
		}
	case opTest:
		r.line(fmt.Sprintf(`+COPS: (2,"%s","%s","%s",%d),,(0-4),(0-2)`, s.opts.Operator, s.opts.Operator, operatorNumeric, regAcT))
	default:
		return errPlain
	}
	return nil
}

// cmdReg handles +CREG, +CGREG and +CEREG.
func (s *Sim) cmdReg(c *command, r *reply) error {
	n := map[string]*int{"+CREG": &s.set.cregN, "+CGREG": &s.set.cgregN, "+CEREG": &s.set.ceregN}[c.name]
	hi := 2
	if c.name == "+CEREG" {
		hi = 5 // 3..5 add PSM and cause fields this simulator does not report
	}
	switch c.op {
	case opSet:
		v, err := c.intArg(0, 0, 0, hi)
		if err != nil {
			return err
		}
		*n = v
	case opRead:
		r.line(c.name + ": " + regFields(s.regStat(), *n, true))
	case opTest:
		r.line(fmt.Sprintf("%s: (0-%d)", c.name, hi))
	default:
		*n = 0
	}
	return nil
}

func (s *Sim) cmdCFUN(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line(fmt.Sprintf("+CFUN: %d", s.cfun))
	case opTest:
		r.line("+CFUN: (0,1,4,15),(0-1)")
	case opSet:
		fun, err := c.intArg(0, -1, 0, 127)
		if err != nil {
			return err
		}
		rst, err := c.intArg(1, 0, 0, 1)
		if err != nil {
			return err
		}
		switch {
		case (fun == 1 && rst == 1) || (s.prof.resetFun != 0 && fun == s.prof.resetFun):
			r.then(s.resetLocked)
		case fun == 0 || fun == 1 || fun == 4:
			s.cfun = fun
			// The network reacts after the module has answered.
			r.then(s.regChangedLocked)
		default:
			return errParam
		}
	default:
		return errPlain
	}
	return nil
}

// cmdCRESET is the SIM7600 reset command: OK, then as AT+CFUN=1,1.
func (s *Sim) cmdCRESET(c *command, r *reply) error {
	if c.op != opExec {
		return errPlain
	}
	r.then(s.resetLocked)
	return nil
}

func (s *Sim) cmdCGDCONT(c *command, r *reply) error {
	switch c.op {
	case opSet:
		cid, err := c.intArg(0, -1, 1, 15)
		if err != nil {
			return err
		}
		if len(c.args) == 1 {
			delete(s.contexts, cid)
			return nil
		}
		typ := strings.ToUpper(c.strArg(1, "IP"))
		switch typ {
		case "IP", "IPV6", "IPV4V6", "NON-IP":
		default:
			return errParam
		}
		s.contexts[cid] = pdpContext{pdpType: typ, apn: c.strArg(2, "")}
	case opRead:
		cids := make([]int, 0, len(s.contexts))
		for cid := range s.contexts {
			cids = append(cids, cid)
		}
		sort.Ints(cids)
		for _, cid := range cids {
			ctx := s.contexts[cid]
			r.line(fmt.Sprintf(`+CGDCONT: %d,"%s","%s","0.0.0.0",0,0`, cid, ctx.pdpType, ctx.apn))
		}
	case opTest:
		r.line(`+CGDCONT: (1-15),"IP",,,(0-2),(0-4)`)
		r.line(`+CGDCONT: (1-15),"IPV6",,,(0-2),(0-4)`)
		r.line(`+CGDCONT: (1-15),"IPV4V6",,,(0-2),(0-4)`)
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCGATT(c *command, r *reply) error {
	switch c.op {
	case opRead:
		att := 0
		if registered(s.regStat()) {
			att = 1
		}
		r.line(fmt.Sprintf("+CGATT: %d", att))
	case opSet:
		if _, err := c.intArg(0, -1, 0, 1); err != nil {
			return err
		}
	case opTest:
		r.line("+CGATT: (0-1)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCGACT(c *command, r *reply) error {
	switch c.op {
	case opRead:
		up := 0
		if s.data.up {
			up = 1
		}
		r.line(fmt.Sprintf("+CGACT: 1,%d", up))
	case opSet:
		st, err := c.intArg(0, -1, 0, 1)
		if err != nil {
			return err
		}
		if _, err := c.intArg(1, 1, 1, 15); err != nil {
			return err
		}
		if st == 1 {
			return s.activateData()
		}
		s.deactivateData()
	case opTest:
		r.line("+CGACT: (0,1)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCGPADDR(c *command, r *reply) error {
	switch c.op {
	case opExec, opSet:
		ip := "0.0.0.0"
		if s.data.up {
			ip = s.data.ip
		}
		r.line(fmt.Sprintf(`+CGPADDR: 1,"%s"`, ip))
	case opTest:
		r.line("+CGPADDR: (1)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCSCS(c *command, r *reply) error {
	switch c.op {
	case opSet:
		cs := strings.ToUpper(c.strArg(0, ""))
		switch cs {
		case "GSM", "IRA", "UCS2":
			s.set.cscs = cs
		default:
			return errParam
		}
	case opRead:
		r.line(fmt.Sprintf(`+CSCS: "%s"`, s.set.cscs))
	case opTest:
		r.line(`+CSCS: ("GSM","IRA","UCS2")`)
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdCCLK(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line(`+CCLK: "` + time.Now().UTC().Format("06/01/02,15:04:05") + `+00"`)
	case opSet:
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdQCSQ(c *command, r *reply) error {
	rssi, ok := s.signal()
	if !ok {
		r.line(`+QCSQ: "NOSERVICE"`)
		return nil
	}
	dbm := -113 + 2*rssi
	r.line(fmt.Sprintf(`+QCSQ: "eMTC",%d,%d,135,-10`, dbm, dbm-10))
	return nil
}

func (s *Sim) cmdQNWINFO(c *command, r *reply) error {
	if !registered(s.regStat()) {
		r.line(`+QNWINFO: No Service`)
		return nil
	}
	r.line(`+QNWINFO: "eMTC","90140","LTE BAND 4",2300`)
	return nil
}

func (s *Sim) cmdCPSI(c *command, r *reply) error {
	if !registered(s.regStat()) {
		r.line("+CPSI: NO SERVICE,Online")
		return nil
	}
	r.line("+CPSI: LTE,Online,901-40,0x1A2B,27447297,302,EUTRAN-BAND4,2300,5,5,-94,-850,-580,15")
	return nil
}
