package modemsim

import "fmt"

// Boot phases: what a module can do after each of its boot URCs.
const (
	phaseOff     = iota // no power, or booting before RDY: input is dropped
	phaseRDY            // answers AT commands
	phaseSIM            // SIM ready (+CPIN: READY)
	phaseSMSDone        // SMS storage usable
)

// bootStep is one boot URC and the phase the module reaches with it. An
// empty text reaches the phase silently (u-blox and generic modules say
// nothing at boot).
type bootStep struct {
	text  string
	phase int
}

// profile is everything that differs between module families.
type profile struct {
	name         string
	manufacturer string
	model        string
	revision     string
	// cgmrPrefix is put before the revision in AT+CGMR (SIM7600 says
	// "+CGMR: ...", the others answer bare).
	cgmrPrefix string
	// ati builds the AT I answer.
	ati  func(o *Options) []string
	imei string
	// iccidCmd is the command that reads the ICCID and iccidPrefix its reply.
	iccidCmd    string
	iccidPrefix string
	boot        []bootStep
	// indexBase is the first SMS storage index (Quectel and SIMCom count
	// from 0, u-blox and most others from 1).
	indexBase int
	// cnmi is the power-up +CNMI setting.
	cnmi [5]int
	// busyCMS is the error code SMS commands get before SMS DONE: a +CMS
	// ERROR code, or 0 to answer +CME ERROR: 14 (SIM busy) instead.
	busyCMS int
	// resetFun is the +CFUN <fun> that resets the module besides "1,1".
	resetFun int
	// sockets names the module socket command family ("" for none).
	sockets string
	// noise are the unrelated URCs this module may interleave with replies.
	noise []string
}

var profiles = map[string]*profile{
	"quectel": {
		name:         "quectel",
		manufacturer: "Quectel",
		model:        "BG96",
		revision:     "BG96MAR02A07M1G",
		ati: func(o *Options) []string {
			return []string{"Quectel", "BG96", "Revision: BG96MAR02A07M1G"}
		},
		imei:        "866425030012340",
		iccidCmd:    "+QCCID",
		iccidPrefix: "+QCCID: ",
		boot: []bootStep{
			{"RDY", phaseRDY},
			{"+CPIN: READY", phaseSIM},
			{"+QUSIM: 1", phaseSIM},
			{"+QIND: SMS DONE", phaseSMSDone},
			{"+QIND: PB DONE", phaseSMSDone},
			{"APP RDY", phaseSMSDone},
		},
		indexBase: 0,
		cnmi:      [5]int{2, 1, 0, 0, 0},
		busyCMS:   500,
		sockets:   "quectel",
		noise:     []string{`+QIND: "csq",17,99`, `+QIND: "act","CAT-M1"`},
	},
	"simcom": simcom(profile{
		name:        "simcom",
		model:       "SIMCOM_SIM7600G-H",
		revision:    "LE20B04SIM7600G22",
		cgmrPrefix:  "+CGMR: ",
		ati:         simcomATI("SIMCOM_SIM7600G-H", "SIM7600G_V2.0.2", "+GCAP: +CGSM"),
		imei:        "861447030012349",
		iccidCmd:    "+CICCID",
		iccidPrefix: "+ICCID: ",
		boot:        []bootStep{{"RDY", phaseRDY}, {"+CPIN: READY", phaseSIM}, {"SMS DONE", phaseSMSDone}, {"PB DONE", phaseSMSDone}},
		sockets:     "simcom",
		noise:       []string{"+CPSI: LTE,Online", "+CGEV: ME PDN ACT 1"},
	}),
	"ublox": ublox("ublox", "SARA-R410M-02B", "L0.0.00.00.05.06 [Feb 03 2018 13:00:41]", "L0.0.00.00.05.06", "06", "352924090012340"),
	// After a reset the SIM7080 says "SMS Ready" last, and echo is on
	// again (every power-up default returns).
	"sim7080": simcom(profile{
		name:     "sim7080",
		model:    "SIMCOM_SIM7080G",
		revision: "1951B16SIM7080",
		ati:      simcomATI("SIMCOM_SIM7080G", "1951B16SIM7080"),
		imei:     "869951030012342",
		iccidCmd: "+CCID",
		boot:     []bootStep{{"RDY", phaseRDY}, {"+CFUN: 1", phaseRDY}, {"+CPIN: READY", phaseSIM}, {"SMS Ready", phaseSMSDone}},
		sockets:  "sim7080",
		noise:    []string{"+CPSI: LTE CAT-M1,Online", "*PSUTTZ: 2026/12/01,18:40:00\",\"+00\",0"},
	}),
	"sara-r5": ublox("sara-r5", "SARA-R510M8S", "03.15", "03.15", "01", "352753090012343"),
	"generic": {
		name:         "generic",
		manufacturer: "SIMGATE",
		model:        "SIM-27007",
		revision:     "1.0.0",
		ati: func(o *Options) []string {
			return []string{"SIMGATE", "SIM-27007", "Revision: 1.0.0"}
		},
		imei:        "350000000012340",
		iccidCmd:    "+CCID",
		iccidPrefix: "+CCID: ",
		boot:        []bootStep{{"", phaseSMSDone}},
		indexBase:   1,
		cnmi:        [5]int{0, 0, 0, 0, 0},
		busyCMS:     0,
	},
}

// simcom is a SIMCom module: the SIM7600 and the SIM7080 share the maker,
// the power-up +CNMI and the +CMS ERROR before SMS is ready; storage
// indexes count from 0.
func simcom(p profile) *profile {
	p.manufacturer = "SIMCOM INCORPORATED"
	p.cnmi = [5]int{2, 1, 0, 0, 0}
	p.busyCMS = 500
	return &p
}

// simcomATI is a SIMCom AT I answer: maker, model and revision lines, the
// IMEI, then extra lines.
func simcomATI(model, revision string, extra ...string) func(o *Options) []string {
	return func(o *Options) []string {
		return append([]string{"Manufacturer: SIMCOM INCORPORATED", "Model: " + model, "Revision: " + revision, "IMEI: " + o.IMEI}, extra...)
	}
}

// ublox is a u-blox SARA module: the R4 and the R5 answer the commands this
// simulator knows alike, but for their names (the R5's PSD profile is in
// sock_sarar5.go, keyed by name). atiRevision is the revision AT I shows,
// shorter than AT+CGMR's on the R4.
func ublox(name, model, revision, atiRevision, svn, imei string) *profile {
	return &profile{
		name:         name,
		manufacturer: "u-blox",
		model:        model,
		revision:     revision,
		ati: func(o *Options) []string {
			return []string{"Manufacturer: u-blox", "Model: " + model, "Revision: " + atiRevision, "SVN: " + svn, "IMEI: " + o.IMEI}
		},
		imei:        imei,
		iccidCmd:    "+CCID",
		iccidPrefix: "+CCID: ",
		boot:        []bootStep{{"", phaseSMSDone}},
		indexBase:   1,
		cnmi:        [5]int{1, 0, 0, 0, 0},
		resetFun:    15,
		sockets:     "ublox",
		noise:       []string{"+CIEV: 2,3", "+CIEV: 7,1"},
	}
}

// noiseURC picks an unrelated URC for the URCNoise fault. Registration
// reports repeat the current state, so noise never changes what a host
// should believe; it only tests that URCs stay out of replies.
func (s *Sim) noiseURC() string {
	choices := append([]string{fmt.Sprintf("+CEREG: %d", s.regStat())}, s.prof.noise...)
	return choices[s.rng.IntN(len(choices))]
}
