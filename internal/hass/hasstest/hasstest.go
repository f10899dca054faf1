// Package hasstest checks Home Assistant MQTT discovery messages against the
// documented schema of an MQTT sensor
// (https://www.home-assistant.io/integrations/sensor.mqtt/ and
// https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery), for
// tests of what simgate publishes.
package hasstest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// sensorKeys are the documented configuration variables of an MQTT sensor
// (full names; simgate does not use the abbreviations), with the JSON kind
// each must have: "string", "bool", "number", "list" or "map".
var sensorKeys = map[string]string{
	"availability": "list", "availability_mode": "string", "availability_template": "string",
	"availability_topic": "string", "default_entity_id": "string", "device": "map", "device_class": "string",
	"enabled_by_default": "bool", "encoding": "string", "entity_category": "string", "entity_picture": "string",
	"expire_after": "number", "force_update": "bool", "icon": "string", "json_attributes_template": "string",
	"json_attributes_topic": "string", "last_reset_value_template": "string", "name": "string", "object_id": "string",
	"options": "list", "origin": "map", "payload_available": "string", "payload_not_available": "string",
	"platform": "string", "qos": "number", "state_class": "string", "state_topic": "string",
	"suggested_display_precision": "number", "unique_id": "string", "unit_of_measurement": "string",
	"value_template": "string",
}

var deviceKeys = map[string]string{
	"configuration_url": "string", "connections": "list", "hw_version": "string", "identifiers": "list",
	"manufacturer": "string", "model": "string", "model_id": "string", "name": "string", "serial_number": "string",
	"suggested_area": "string", "sw_version": "string", "via_device": "string",
}

var availabilityKeys = map[string]string{
	"topic": "string", "payload_available": "string", "payload_not_available": "string", "value_template": "string",
}

var originKeys = map[string]string{"name": "string", "sw_version": "string", "support_url": "string"}

// unitsOf lists, for the sensor device classes simgate uses, the units Home
// Assistant accepts ("" for none).
var unitsOf = map[string][]string{
	"signal_strength": {"dB", "dBm"},
	"timestamp":       {""},
}

var stateClasses = []string{"measurement", "measurement_angle", "total", "total_increasing"}

// idChars is what <node_id> and <object_id> may hold.
var idChars = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func kind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func checkKeys(where string, m map[string]any, allowed map[string]string) []string {
	var out []string
	for k, v := range m {
		want, ok := allowed[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: %q is not a documented key", where, k))
		case kind(v) != want && !(k == "identifiers" && kind(v) == "string"):
			out = append(out, fmt.Sprintf("%s: %q must be a %s, got %s", where, k, want, kind(v)))
		}
	}
	return out
}

// Check returns what is wrong with one sensor discovery message on topic,
// or nothing. Templates are checked by Paths, not here.
func Check(prefix, topic string, payload []byte) []string {
	var out []string
	parts := strings.Split(strings.TrimPrefix(topic, prefix+"/"), "/")
	switch {
	case !strings.HasPrefix(topic, prefix+"/"):
		out = append(out, fmt.Sprintf("topic %s is not under the discovery prefix %s", topic, prefix))
	case len(parts) < 3 || len(parts) > 4 || parts[len(parts)-1] != "config" || parts[0] != "sensor":
		out = append(out, fmt.Sprintf("topic %s is not <prefix>/sensor/[<node_id>/]<object_id>/config", topic))
	default:
		for _, id := range parts[1 : len(parts)-1] {
			if !idChars.MatchString(id) {
				out = append(out, fmt.Sprintf("topic %s: id %q has characters outside [a-zA-Z0-9_-]", topic, id))
			}
		}
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return append(out, fmt.Sprintf("%s: payload is not a JSON object: %v", topic, err))
	}
	out = append(out, checkKeys(topic, m, sensorKeys)...)
	if s, _ := m["state_topic"].(string); s == "" {
		out = append(out, topic+": state_topic is required")
	}
	if s, _ := m["unique_id"].(string); s == "" {
		out = append(out, topic+": unique_id is required for a device and for editing the entity")
	}
	if s, _ := m["value_template"].(string); s != "" && !strings.Contains(s, "{{") {
		out = append(out, topic+": value_template is not a template")
	}
	_, avList := m["availability"]
	_, avTopic := m["availability_topic"]
	if avList && avTopic {
		out = append(out, topic+": availability and availability_topic must not be used together")
	}
	if av, ok := m["availability"].([]any); ok {
		if len(av) == 0 {
			out = append(out, topic+": availability is empty")
		}
		for i, a := range av {
			am, ok := a.(map[string]any)
			if !ok {
				out = append(out, fmt.Sprintf("%s: availability[%d] is not a mapping", topic, i))
				continue
			}
			out = append(out, checkKeys(fmt.Sprintf("%s availability[%d]", topic, i), am, availabilityKeys)...)
			if s, _ := am["topic"].(string); s == "" {
				out = append(out, fmt.Sprintf("%s: availability[%d].topic is required", topic, i))
			}
		}
	}
	if d, ok := m["device"].(map[string]any); ok {
		out = append(out, checkKeys(topic+" device", d, deviceKeys)...)
		_, ids := d["identifiers"]
		_, cns := d["connections"]
		if !ids && !cns {
			out = append(out, topic+": device needs identifiers or connections")
		}
	}
	if o, ok := m["origin"].(map[string]any); ok {
		out = append(out, checkKeys(topic+" origin", o, originKeys)...)
		if s, _ := o["name"].(string); s == "" {
			out = append(out, topic+": origin.name is required")
		}
	}
	if c, ok := m["entity_category"].(string); ok && c != "diagnostic" {
		out = append(out, fmt.Sprintf("%s: a sensor's entity_category can only be diagnostic, got %q", topic, c))
	}
	if c, ok := m["state_class"].(string); ok && !contains(stateClasses, c) {
		out = append(out, fmt.Sprintf("%s: unknown state_class %q", topic, c))
	}
	if dc, ok := m["device_class"].(string); ok {
		units, known := unitsOf[dc]
		unit, _ := m["unit_of_measurement"].(string)
		switch {
		case !known:
			out = append(out, fmt.Sprintf("%s: device_class %q is not one this check knows", topic, dc))
		case !contains(units, unit):
			out = append(out, fmt.Sprintf("%s: device_class %s takes units %q, got %q", topic, dc, units, unit))
		}
		if _, sc := m["state_class"]; dc == "timestamp" && sc {
			out = append(out, topic+": a timestamp sensor has no state_class")
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// valuePath matches the value_json paths simgate's templates read.
var valuePath = regexp.MustCompile(`value_json((?:\.[a-z_]+)+)`)

// Paths returns the value_json paths a template reads, e.g.
// "network.signal_dbm".
func Paths(template string) []string {
	var out []string
	for _, m := range valuePath.FindAllStringSubmatch(template, -1) {
		out = append(out, strings.TrimPrefix(m[1], "."))
	}
	return out
}

// Resolve reports whether path (dotted) names a value in the JSON object
// doc; a JSON null counts (the sensor then shows "unknown").
func Resolve(doc []byte, path string) (any, bool) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, false
	}
	for _, p := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}
