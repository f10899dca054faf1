package modem

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/simgate/simgate/modem/at"
)

// fields splits the text after "<prefix>:" with at.SplitFields: at commas
// outside quotes, trimmed, quotes kept so callers can tell strings from
// numbers.
func fields(line, prefix string) ([]string, error) {
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return nil, fmt.Errorf("%q does not start with %s", line, prefix)
	}
	return at.SplitFields(rest), nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

func field(f []string, i int) (int, error) {
	if i >= len(f) {
		return 0, fmt.Errorf("field %d missing", i+1)
	}
	n, err := strconv.Atoi(unquote(f[i]))
	if err != nil {
		return 0, fmt.Errorf("field %d %q is not a number", i+1, f[i])
	}
	return n, nil
}

// parseCMTI reads `+CMTI: "SM",5`.
func parseCMTI(line string) (mem string, index int, err error) {
	f, err := fields(line, "+CMTI:")
	if err == nil && len(f) != 2 {
		err = fmt.Errorf("%q: want 2 fields", line)
	}
	if err == nil {
		index, err = field(f, 1)
	}
	if err == nil && index < 0 {
		err = fmt.Errorf("%q: negative index", line)
	}
	if err != nil {
		return "", 0, fmt.Errorf("parse +CMTI: %w", err)
	}
	return unquote(f[0]), index, nil
}

// parseCMGR reads `+CMGR: <stat>,[<alpha>],<length>`.
func parseCMGR(line string) (stat, length int, err error) {
	f, err := fields(line, "+CMGR:")
	if err == nil && len(f) < 2 {
		err = fmt.Errorf("%q: want at least 2 fields", line)
	}
	if err == nil {
		stat, err = field(f, 0)
	}
	if err == nil {
		length, err = field(f, len(f)-1)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse +CMGR: %w", err)
	}
	return stat, length, nil
}

// parseCMGL reads `+CMGL: <index>,<stat>,[<alpha>],<length>`.
func parseCMGL(line string) (index, stat, length int, err error) {
	f, err := fields(line, "+CMGL:")
	if err == nil && len(f) < 3 {
		err = fmt.Errorf("%q: want at least 3 fields", line)
	}
	if err == nil {
		index, err = field(f, 0)
	}
	if err == nil {
		stat, err = field(f, 1)
	}
	if err == nil {
		length, err = field(f, len(f)-1)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("parse +CMGL: %w", err)
	}
	return index, stat, length, nil
}

// parseCPMS reads the first storage's use from the read form
// `+CPMS: "SM",3,50,"SM",3,50,"SM",3,50` or the set form `+CPMS: 3,50,...`.
func parseCPMS(line string) (used, total int, err error) {
	f, err := fields(line, "+CPMS:")
	if err == nil && len(f) > 0 && strings.HasPrefix(f[0], `"`) {
		f = f[1:]
	}
	if err == nil {
		used, err = field(f, 0)
	}
	if err == nil {
		total, err = field(f, 1)
	}
	if err == nil && (used < 0 || total < 0) {
		err = fmt.Errorf("%q: negative count", line)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("parse +CPMS: %w", err)
	}
	return used, total, nil
}

// parseCMGS reads `+CMGS: <mr>`.
func parseCMGS(line string) (int, error) {
	f, err := fields(line, "+CMGS:")
	var mr int
	if err == nil {
		mr, err = field(f, 0)
	}
	if err != nil {
		return 0, fmt.Errorf("parse +CMGS: %w", err)
	}
	return mr, nil
}

// registration is one +CEREG/+CREG/+CGREG report.
type registration struct {
	Stat int
	Act  int // access technology, -1 when not given
}

// parseRegistration reads the URC form "+CEREG: <stat>[,<tac>,<ci>[,<AcT>]]"
// or, when read is set, the read form "+CEREG: <n>,<stat>[,...]".
func parseRegistration(line string, read bool) (registration, error) {
	prefix, _, ok := strings.Cut(line, ":")
	if !ok {
		return registration{}, fmt.Errorf("parse registration: %q has no ':'", line)
	}
	f, err := fields(line, prefix+":")
	if err != nil {
		return registration{}, fmt.Errorf("parse %s: %w", prefix, err)
	}
	if read {
		if len(f) < 2 {
			return registration{}, fmt.Errorf("parse %s: %q: want <n>,<stat>", prefix, line)
		}
		f = f[1:]
	}
	r := registration{Act: -1}
	if r.Stat, err = field(f, 0); err != nil {
		return registration{}, fmt.Errorf("parse %s: %w", prefix, err)
	}
	if len(f) >= 4 && f[3] != "" {
		if r.Act, err = field(f, 3); err != nil {
			return registration{}, fmt.Errorf("parse %s: %w", prefix, err)
		}
	}
	return r, nil
}

// registrationName maps a 27.007 <stat> to Status.Network.Registration.
// Super SIM roams on partner networks, so 5 (roaming) is registered.
func registrationName(stat int) string {
	switch stat {
	case 0:
		return "not_registered"
	case 1, 6, 9:
		return "home"
	case 2:
		return "searching"
	case 3:
		return "denied"
	case 5, 7, 10:
		return "roaming"
	default:
		return "unknown"
	}
}

// registered reports whether a registration name can carry SMS and data.
func registered(name string) bool { return name == "home" || name == "roaming" }

// RegistrationName is the registration name of a 27.007 <stat>, for the
// other backends: ModemManager's MMModem3gppRegistrationState numbers the
// states as <stat> does, so both name them alike.
func RegistrationName(stat int) string { return registrationName(stat) }

// Registered reports whether a registration name can carry SMS and data.
func Registered(name string) bool { return registered(name) }

// technologyName maps a 27.007 <AcT>. Quectel and SIMCom report LTE-M as 8,
// the value 27.007 gives EC-GSM-IoT, which no Super SIM module uses.
func technologyName(act int) string {
	switch act {
	case 0, 1, 3:
		return "gsm"
	case 2, 4, 5, 6:
		return "umts"
	case 7:
		return "lte"
	case 8:
		return "lte-m"
	case 9:
		return "nb-iot"
	case 10, 11, 12, 13:
		return "5g"
	}
	return ""
}

// parseCSQ reads "+CSQ: <rssi>,<ber>" and returns dBm (-113 + 2*rssi), or
// nil when the modem does not know (99).
func parseCSQ(line string) (*int, error) {
	f, err := fields(line, "+CSQ:")
	var rssi int
	if err == nil {
		rssi, err = field(f, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("parse +CSQ: %w", err)
	}
	if rssi < 0 || rssi > 31 {
		return nil, nil // 99: not known or not detectable
	}
	dbm := -113 + 2*rssi
	return &dbm, nil
}

// parseCOPS reads "+COPS: <mode>[,<format>,<oper>[,<AcT>]]".
func parseCOPS(line string) (operator string, act int, err error) {
	f, err := fields(line, "+COPS:")
	if err != nil {
		return "", -1, fmt.Errorf("parse +COPS: %w", err)
	}
	act = -1
	if len(f) >= 3 {
		operator = unquote(f[2])
	}
	if len(f) >= 4 {
		if act, err = field(f, 3); err != nil {
			return "", -1, fmt.Errorf("parse +COPS: %w", err)
		}
	}
	return operator, act, nil
}

// parseCPIN reads "+CPIN: READY" (or SIM PIN, NOT READY, ...).
func parseCPIN(line string) (string, error) {
	rest, ok := strings.CutPrefix(line, "+CPIN:")
	if !ok {
		return "", fmt.Errorf("parse +CPIN: %q", line)
	}
	return strings.TrimSpace(unquote(strings.TrimSpace(rest))), nil
}

// parseIdentity takes the answer of AT+CGMI, AT+CGSN, AT+QCCID... in either
// bare form ("Quectel") or prefixed form ("+CGMI: Quectel") and returns the
// value.
func parseIdentity(lines []string) string {
	for _, l := range lines {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "+") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				l = v
			}
		}
		return unquote(strings.TrimSpace(l))
	}
	return ""
}

// parseICCID cleans an ICCID: some SIMs pad it with F, some modems swap
// nibbles into a leading/trailing quote mess.
func parseICCID(lines []string) (string, error) {
	v := strings.TrimRight(strings.ToUpper(parseIdentity(lines)), "F")
	if len(v) < 18 || len(v) > 22 || strings.Trim(v, "0123456789") != "" {
		return "", fmt.Errorf("ICCID %q is not 18-22 digits", v)
	}
	return v, nil
}
