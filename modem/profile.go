package modem

import "strings"

// profile is what differs between module families for what simgate does.
type profile struct {
	Name string
	// ICCID lists the commands that read the ICCID, tried in order: each
	// vendor has its own, and firmware versions disagree.
	ICCID []string
	// Reset restarts the module, the recovery step after a re-init failed.
	// 27.007 AT+CFUN=1,1 for most; SARA-R4 resets with AT+CFUN=15.
	Reset string
	// Sockets runs the module's own UDP socket for ip.mode "modem"; nil
	// when the family has none simgate can use.
	Sockets socketFamily
	// Setup are commands run once the SIM is ready, before SMS and data
	// are set up; a refusal is logged and does not stop the init.
	Setup []string
}

var profiles = map[string]profile{
	"quectel": {Name: "quectel", ICCID: []string{"AT+QCCID", "AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=1,1", Sockets: quectelSockets{}},
	"simcom":  {Name: "simcom", ICCID: []string{"AT+CICCID", "AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=1,1", Sockets: simcomSockets{}},
	"ublox":   {Name: "ublox", ICCID: []string{"AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=15", Sockets: ubloxSockets{}},
	// SIM7080G: Cat-M only (AT+CNMP=38 LTE, AT+CMNB=1 Cat-M): Super SIM
	// has no NB-IoT, and a search of both wastes minutes at every boot.
	"sim7080": {Name: "sim7080", ICCID: []string{"AT+CCID", "AT+CICCID", "AT+ICCID"}, Reset: "AT+CFUN=1,1", Sockets: sim7080Sockets{}, Setup: []string{"AT+CNMP=38", "AT+CMNB=1"}},
	"generic": {Name: "generic", ICCID: []string{"AT+CCID", "AT+ICCID", "AT+QCCID", "AT+CICCID"}, Reset: "AT+CFUN=1,1"},
}

// chooseProfile returns the configured profile, or for "auto" (or empty)
// the one matching the module's +CGMI/+CGMM answers.
func chooseProfile(configured, manufacturer, model string) profile {
	m := strings.ToUpper(manufacturer + " " + model)
	if p, ok := profiles[configured]; ok {
		if p.Name == "ublox" && isSARAR5(m) {
			p.Sockets = ubloxSockets{PSD: true}
		}
		return p
	}
	switch {
	case isSARAR5(m):
		p := profiles["ublox"]
		p.Sockets = ubloxSockets{PSD: true}
		return p
	// Before SIMCom's other modules: the SIM7070/7080/7090 have a socket
	// command set of their own (AT+CNACT, AT+CA...).
	case strings.Contains(m, "SIM7080"), strings.Contains(m, "SIM7070"), strings.Contains(m, "SIM7090"):
		return profiles["sim7080"]
	case strings.Contains(m, "QUECTEL"):
		return profiles["quectel"]
	case strings.Contains(m, "SIMCOM"), strings.Contains(m, "SIM7"):
		return profiles["simcom"]
	case strings.Contains(m, "U-BLOX"), strings.Contains(m, "UBLOX"), strings.Contains(m, "SARA-"):
		return profiles["ublox"]
	}
	return profiles["generic"]
}

// isSARAR5 tells a SARA-R5 (R500S, R510M8S, R510S) from the R4: its data
// runs through a packet switched data profile (AT+UPSD, AT+UPSDA).
func isSARAR5(m string) bool { return strings.Contains(m, "SARA-R5") }
