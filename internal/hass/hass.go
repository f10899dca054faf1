// Package hass builds Home Assistant MQTT discovery configs for the
// gateway's status sensors. It knows nothing of modems or brokers: it turns
// a device's identity and the topics that carry its state into retained
// messages for the discovery prefix.
//
// Each sensor is one config on
//
//	<prefix>/sensor/simgate_<device_id>/<sensor>/config
//
// (Home Assistant's <discovery_prefix>/<component>/<node_id>/<object_id>/config),
// reads its value from the retained status topic (or, for the last SMS, the
// SMS topic) with a value_template, and is available while the status topic
// says "online": true, which the broker's will turns false.
package hass

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Device identifies the gateway in Home Assistant's device registry.
type Device struct {
	ID           string // the gateway's device_id
	Manufacturer string // of the modem, when known
	Model        string
	Version      string // simgate's version
}

// Topics are where the state that the sensors show is published.
type Topics struct {
	Status string // retained P/status, also the availability topic
	SMSIn  string // P/sms/in
}

// Message is one retained discovery message; an empty Payload removes the
// config.
type Message struct {
	Topic   string
	Payload []byte
}

// Sensor names, the <object_id> of each config.
const (
	Signal       = "signal"
	Registration = "registration"
	Operator     = "operator"
	Technology   = "technology"
	QueueDepth   = "queue_depth"
	LastSMS      = "last_sms_received"
)

// sensor is one entry of the table Configs renders.
type sensor struct {
	object, name string
	topic        func(Topics) string
	template     string
	deviceClass  string
	stateClass   string
	unit         string
	icon         string
	category     string // entity_category
}

var sensors = []sensor{
	{object: Signal, name: "Signal", topic: statusTopic, template: "{{ value_json.network.signal_dbm }}",
		deviceClass: "signal_strength", stateClass: "measurement", unit: "dBm"},
	{object: Registration, name: "Registration", topic: statusTopic, template: "{{ value_json.network.registration }}",
		icon: "mdi:antenna"},
	{object: Operator, name: "Operator", topic: statusTopic, template: "{{ value_json.network.operator }}",
		icon: "mdi:radio-tower"},
	{object: Technology, name: "Technology", topic: statusTopic, template: "{{ value_json.network.technology }}",
		icon: "mdi:signal-4g", category: "diagnostic"},
	{object: QueueDepth, name: "Queue depth", topic: statusTopic, template: "{{ value_json.queue.pending }}",
		stateClass: "measurement", unit: "messages", icon: "mdi:tray-full"},
	{object: LastSMS, name: "Last SMS received", topic: func(t Topics) string { return t.SMSIn }, template: "{{ value_json.received_at }}",
		deviceClass: "timestamp", icon: "mdi:message-text"},
}

func statusTopic(t Topics) string { return t.Status }

// availabilityTemplate reads P/status, whose will is {"online":false}.
const availabilityTemplate = "{{ 'online' if value_json.online else 'offline' }}"

// NodeID is the <node_id> of the gateway's configs: "simgate_" and the
// device id with every character outside [a-zA-Z0-9_-] replaced by "_",
// the only characters Home Assistant allows there.
func NodeID(deviceID string) string {
	var b strings.Builder
	b.WriteString("simgate_")
	for _, r := range deviceID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ConfigTopics are the topics Configs publishes for deviceID under prefix,
// in the same order.
func ConfigTopics(prefix, deviceID string) []string {
	node := NodeID(deviceID)
	out := make([]string, len(sensors))
	for i, s := range sensors {
		out[i] = prefix + "/sensor/" + node + "/" + s.object + "/config"
	}
	return out
}

type availability struct {
	Topic         string `json:"topic"`
	ValueTemplate string `json:"value_template"`
}

type device struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

type origin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

type config struct {
	Name           string         `json:"name"`
	UniqueID       string         `json:"unique_id"`
	StateTopic     string         `json:"state_topic"`
	ValueTemplate  string         `json:"value_template"`
	Availability   []availability `json:"availability"`
	Device         device         `json:"device"`
	Origin         origin         `json:"origin"`
	DeviceClass    string         `json:"device_class,omitempty"`
	StateClass     string         `json:"state_class,omitempty"`
	Unit           string         `json:"unit_of_measurement,omitempty"`
	Icon           string         `json:"icon,omitempty"`
	EntityCategory string         `json:"entity_category,omitempty"`
}

// Configs returns the retained discovery configs of the gateway's sensors.
func Configs(prefix string, d Device, t Topics) ([]Message, error) {
	if prefix == "" || d.ID == "" || t.Status == "" || t.SMSIn == "" {
		return nil, fmt.Errorf("home assistant discovery: prefix, device id and topics are required (got %q, %q, %+v)", prefix, d.ID, t)
	}
	node := NodeID(d.ID)
	dev := device{
		Identifiers:  []string{node},
		Name:         "simgate " + d.ID,
		Manufacturer: d.Manufacturer,
		Model:        d.Model,
		SWVersion:    d.Version,
	}
	topics := ConfigTopics(prefix, d.ID)
	out := make([]Message, 0, len(sensors))
	for i, s := range sensors {
		c := config{
			Name:           s.name,
			UniqueID:       node + "_" + s.object,
			StateTopic:     s.topic(t),
			ValueTemplate:  s.template,
			Availability:   []availability{{Topic: t.Status, ValueTemplate: availabilityTemplate}},
			Device:         dev,
			Origin:         origin{Name: "simgate", SWVersion: d.Version},
			DeviceClass:    s.deviceClass,
			StateClass:     s.stateClass,
			Unit:           s.unit,
			Icon:           s.icon,
			EntityCategory: s.category,
		}
		b, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("home assistant discovery %s: %w", s.object, err)
		}
		out = append(out, Message{Topic: topics[i], Payload: b})
	}
	return out, nil
}
