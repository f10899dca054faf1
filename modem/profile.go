package modem

import "strings"

// profile is what differs between module families for what simgate does.
type profile struct {
	Name string
	// ICCID lists the commands that read the ICCID, tried in order: each
	// vendor has its own, and firmware versions disagree.
	ICCID []string
}

var profiles = map[string]profile{
	"quectel": {Name: "quectel", ICCID: []string{"AT+QCCID", "AT+CCID", "AT+ICCID"}},
	"simcom":  {Name: "simcom", ICCID: []string{"AT+CICCID", "AT+CCID", "AT+ICCID"}},
	"ublox":   {Name: "ublox", ICCID: []string{"AT+CCID", "AT+ICCID"}},
	"generic": {Name: "generic", ICCID: []string{"AT+CCID", "AT+ICCID", "AT+QCCID", "AT+CICCID"}},
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
