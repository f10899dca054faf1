package main

import (
	"context"
	"log/slog"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem"
	"github.com/simgate/simgate/modem/mmbackend"
	"github.com/simgate/simgate/transport"
)

// modemBackend is what runGateway drives, whoever talks to the modem: the
// AT session of package modem (modem.backend at) or ModemManager over
// D-Bus (modem.backend modemmanager).
type modemBackend interface {
	transport.Device
	// Run serves the modem until ctx ends; it returns early only for a
	// configuration it cannot use.
	Run(ctx context.Context) error
	// Healthy is the watchdog's view of the modem.
	Healthy() error
}

var (
	_ modemBackend = (*modem.Session)(nil)
	_ modemBackend = (*mmbackend.Backend)(nil)
)

// newModemManager is the backend for modem.backend modemmanager; the sink
// and the callbacks are those the AT session gets.
func newModemManager(cfg *config.Config, h *hub, sink gw.Sink, log *slog.Logger) *mmbackend.Backend {
	return mmbackend.New(mmbackend.Config{
		Bus:            cfg.Modem.ModemManager.Bus,
		Device:         cfg.Modem.ModemManager.Device,
		SMS:            cfg.SMS.Enabled,
		AllowedSenders: cfg.SMS.AllowedSenders,
		OnEvent:        h.event,
		OnStatus:       h.status,
		Logger:         log,
	}, sink)
}

// modemName says in logs which modem the gateway uses.
func modemName(cfg *config.Config) string {
	if cfg.Modem.Backend == config.BackendModemManager {
		if cfg.Modem.ModemManager.Device != "" {
			return "modemmanager:" + cfg.Modem.ModemManager.Device
		}
		return "modemmanager"
	}
	return cfg.Modem.Port
}

// Both backends are devices the relay can send through.
var (
	_ modemBackend = (*modem.Session)(nil)
	_ modemBackend = (*mmbackend.Backend)(nil)
)
