package config

import "strings"

// The values of modem.backend.
const (
	BackendAT           = "at"
	BackendModemManager = "modemmanager"
)

// Values accepted by modem.backend and modem.modemmanager.bus.
var (
	Backends = []string{BackendAT, BackendModemManager}
	Buses    = []string{"system", "session"}
)

// ModemManager is how simgate finds ModemManager and the modem when
// modem.backend is modemmanager.
type ModemManager struct {
	// Bus is the D-Bus bus ModemManager is on: system, or session for
	// ModemManager --test-session (tests).
	Bus string `yaml:"bus"`
	// Device picks the modem by its DeviceIdentifier, EquipmentIdentifier
	// (IMEI) or D-Bus object path; "" takes the only one.
	Device string `yaml:"device"`
}

// validateBackend checks modem.backend and what it rules out: with
// ModemManager owning the modem, simgate has no AT port, so the module's
// own UDP socket (ip.mode modem) is out of reach, and the data bearer is
// NetworkManager's.
func (l *loader) validateBackend(c *Config) {
	l.oneOf("modem.backend", c.Modem.Backend, Backends)
	if c.Modem.Backend != BackendModemManager {
		return
	}
	l.oneOf("modem.modemmanager.bus", c.Modem.ModemManager.Bus, Buses)
	if strings.ContainsAny(c.Modem.ModemManager.Device, "\x00\n") {
		l.addf("modem.modemmanager.device", "must be one line")
	}
	if c.IP.Mode == "modem" {
		// Reported where the user can fix it: on ip.mode when the file sets
		// it, else on modem.backend (ip.mode modem is the default).
		key := "ip.mode"
		if l.lines[key] == 0 && l.source[key] == "" {
			key = "modem.backend"
		}
		l.addf(key, "ip.mode modem needs simgate to own the AT port, but with modem.backend modemmanager ModemManager owns it; use ip.mode os (the data bearer is NetworkManager's, IP Commands use a UDP socket of this host) or off")
	}
}
