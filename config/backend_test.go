package config

import (
	"strings"
	"testing"
)

func TestBackendModemManager(t *testing.T) {
	doc := "modem:\n  backend: modemmanager\n  modemmanager:\n    bus: session\n    device: \"866425030012340\"\nip:\n  mode: os\n"
	got, err := Parse("mm.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Modem.Backend != BackendModemManager || got.Modem.ModemManager != (ModemManager{Bus: "session", Device: "866425030012340"}) {
		t.Errorf("modem = %+v", got.Modem)
	}
	if d := Default(); d.Modem.Backend != "at" || d.Modem.ModemManager.Bus != "system" || d.Modem.ModemManager.Device != "" {
		t.Errorf("defaults %+v, want backend at, bus system, device empty", d.Modem)
	}
	// The port is ModemManager's business with this backend.
	if _, err := Parse("mm.yaml", []byte("modem:\n  port: \"\"\n  backend: modemmanager\nip:\n  mode: off\n"), nil); err != nil {
		t.Errorf("empty modem.port with the ModemManager backend: %v", err)
	}
	if _, err := Parse("at.yaml", []byte("modem:\n  port: \"\"\n"), nil); err == nil || !strings.Contains(err.Error(), "modem.port") {
		t.Errorf("empty modem.port with the AT backend: %v", err)
	}
}

// ip.mode modem needs the AT port: refused with this backend, with the
// reason, at the line to change.
func TestBackendModemManagerRefusesIPModeModem(t *testing.T) {
	for _, tt := range []struct{ doc, want string }{
		{"modem:\n  backend: modemmanager\nip:\n  mode: modem\n", "mm.yaml:4: ip.mode: "},
		// ip.mode left at its default (modem): the backend line is where
		// the choice was made.
		{"sms:\n  enabled: true\nmodem:\n  backend: modemmanager\n", "mm.yaml:4: modem.backend: "},
	} {
		_, err := Parse("mm.yaml", []byte(tt.doc), nil)
		if err == nil {
			t.Fatalf("%q: accepted", tt.doc)
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "ModemManager owns it") || !strings.Contains(err.Error(), "ip.mode os") {
			t.Errorf("%q: %v, want %q with the reason", tt.doc, err, tt.want)
		}
	}
	for _, tt := range []struct{ doc, want string }{
		{"modem:\n  backend: mm\n", "mm.yaml:2: modem.backend: must be one of at, modemmanager"},
		{"modem:\n  backend: modemmanager\n  modemmanager:\n    bus: user\nip:\n  mode: off\n", "mm.yaml:4: modem.modemmanager.bus: must be one of system, session"},
	} {
		if _, err := Parse("mm.yaml", []byte(tt.doc), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.doc, err, tt.want)
		}
	}
	// The AT backend keeps ip.mode modem.
	if _, err := Parse("at.yaml", []byte("modem:\n  backend: at\nip:\n  mode: modem\n"), nil); err != nil {
		t.Errorf("at backend with ip.mode modem: %v", err)
	}
}
