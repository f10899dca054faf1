package main

// Home Assistant MQTT discovery (homeassistant.discovery): retained sensor
// configs on the relay's connection, published again on every connection
// and when the modem's identity becomes known, and removed when discovery is
// turned off. See the README's "Home Assistant".

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/hass"
	"github.com/simgate/simgate/transport"
)

// haMarkerFile in store.dir lists the discovery topics this gateway has
// published, so that turning discovery off (or changing the prefix or the
// device id) removes exactly those, once.
const haMarkerFile = "homeassistant.json"

// haRecheck is how often the loop looks for a new connection when no
// status change wakes it.
const haRecheck = 5 * time.Second

func homeAssistant(ctx context.Context, cfg *config.Config, deviceID, prefix string, r *transport.Relay, dev *device, h *hub, log *slog.Logger) {
	log = log.With("component", "homeassistant")
	marker := filepath.Join(cfg.Store.Dir, haMarkerFile)
	published, err := readHAMarker(marker)
	if err != nil {
		log.Warn("cannot read which discovery configs were published; none will be removed", "err", err)
	}
	var want []string
	if cfg.HomeAssistant.Discovery {
		want = hass.ConfigTopics(cfg.HomeAssistant.Prefix, deviceID)
	}
	var stale []string
	for _, t := range published {
		if !slices.Contains(want, t) {
			stale = append(stale, t)
		}
	}
	if len(want) == 0 && len(stale) == 0 {
		return
	}
	topics := hass.Topics{Status: prefix + "/" + transport.TopicStatus, SMSIn: prefix + "/" + transport.TopicSMSIn}
	ver, _ := buildVersion()
	t := time.NewTicker(haRecheck)
	defer t.Stop()
	var done bool // the configs went out on connection number lastLost
	var lastLost uint64
	var lastDev hass.Device
	for {
		changed := h.changed()
		if up, lost := r.Connection(); up {
			if len(stale) > 0 {
				stale = clearConfigs(ctx, r, stale, log)
				if err := writeHAMarker(marker, append(slices.Clone(want), stale...)); err != nil {
					log.Warn("cannot record the published discovery configs", "err", err)
				}
			}
			st := dev.Status()
			d := hass.Device{ID: deviceID, Manufacturer: st.Modem.Manufacturer, Model: st.Modem.Model, Version: ver}
			if len(want) > 0 && (!done || lost != lastLost || d != lastDev) {
				if err := publishConfigs(ctx, r, marker, append(slices.Clone(want), stale...), d, topics, cfg.HomeAssistant.Prefix); err != nil {
					log.Warn("discovery configs not published; trying again", "err", err)
				} else {
					log.Info("Home Assistant discovery configs published", "prefix", cfg.HomeAssistant.Prefix, "sensors", len(want))
					done, lastLost, lastDev = true, lost, d
				}
			}
			if len(want) == 0 && len(stale) == 0 {
				if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
					log.Warn("cannot remove the discovery record", "err", err)
				}
				log.Info("Home Assistant discovery configs removed")
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// publishConfigs records the topics first, so a crash in between still
// lets a later run remove what it may have published.
func publishConfigs(ctx context.Context, r *transport.Relay, marker string, record []string, d hass.Device, topics hass.Topics, prefix string) error {
	msgs, err := hass.Configs(prefix, d, topics)
	if err != nil {
		return err
	}
	if err := writeHAMarker(marker, record); err != nil {
		return fmt.Errorf("record discovery topics: %w", err)
	}
	for _, m := range msgs {
		if err := r.PublishRetained(ctx, m.Topic, m.Payload); err != nil {
			return err
		}
	}
	return nil
}

// clearConfigs publishes an empty retained message on each topic, which
// makes Home Assistant remove the sensor, and returns those not cleared.
func clearConfigs(ctx context.Context, r *transport.Relay, topics []string, log *slog.Logger) []string {
	var left []string
	for _, t := range topics {
		if err := r.PublishRetained(ctx, t, nil); err != nil {
			log.Warn("discovery config not removed; trying again", "topic", t, "err", err)
			left = append(left, t)
		}
	}
	return left
}

func readHAMarker(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec struct {
		Topics []string `json:"topics"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec.Topics, nil
}

// writeHAMarker replaces the record atomically.
func writeHAMarker(path string, topics []string) error {
	b, err := json.Marshal(struct {
		Topics []string `json:"topics"`
	}{topics})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
