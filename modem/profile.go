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
}

var profiles = map[string]profile{
	"quectel": {Name: "quectel", ICCID: []string{"AT+QCCID", "AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=1,1", Sockets: quectelSockets{}},
	"simcom":  {Name: "simcom", ICCID: []string{"AT+CICCID", "AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=1,1", Sockets: simcomSockets{}},
	"ublox":   {Name: "ublox", ICCID: []string{"AT+CCID", "AT+ICCID"}, Reset: "AT+CFUN=15", Sockets: ubloxSockets{}},
	"generic": {Name: "generic", ICCID: []string{"AT+CCID", "AT+ICCID", "AT+QCCID", "AT+CICCID"}, Reset: "AT+CFUN=1,1"},
}

// Profiles are the names modem.profile accepts besides "auto".
func Profiles() []string { return []string{"generic", "quectel", "simcom", "ublox"} }

// chooseProfile returns the configured profile, or for "auto" (or empty)
// the one matching the module's +CGMI/+CGMM answers.
func chooseProfile(configured, manufacturer, model string) profile {
	if p, ok := profiles[configured]; ok {
		return p
	}
	m := strings.ToUpper(manufacturer + " " + model)
	switch {
	case strings.Contains(m, "QUECTEL"):
		return profiles["quectel"]
	case strings.Contains(m, "SIMCOM"), strings.Contains(m, "SIM7"):
		return profiles["simcom"]
	case strings.Contains(m, "U-BLOX"), strings.Contains(m, "UBLOX"), strings.Contains(m, "SARA-"):
		return profiles["ublox"]
	}
	return profiles["generic"]
}
