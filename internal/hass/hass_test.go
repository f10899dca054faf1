package hass

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/hass/hasstest"
)

// A retained P/status and a P/sms/in message as the README documents them.
const (
	statusDoc = `{"online":true,"version":"v1","modem":{"manufacturer":"Quectel","model":"BG96","revision":"r","imei":"1"},` +
		`"sim":{"iccid":"89883070000012345672","imsi":"2"},"network":{"registration":"roaming","operator":"Super Network","technology":"lte","signal_dbm":-79},` +
		`"data":{"mode":"off"},"recovery":{"probes":0,"reinits":0,"resets":0,"reopens":0},"ready":true,"queue":{"pending":3,"inbound":3,"outbound":0,"results":0,"segments":0},"updated_at":"2026-12-01T17:00:00Z"}`
	smsDoc = `{"id":"sms-1","channel":"sms","from":"000","payload":"x","encoding":"text","parts":1,"sent_at":"2026-12-01T16:59:58Z","received_at":"2026-12-01T17:00:00Z"}`
)

func TestConfigsFollowTheDiscoverySchema(t *testing.T) {
	topics := Topics{Status: "supersim/pump.7/status", SMSIn: "supersim/pump.7/sms/in"}
	msgs, err := Configs("homeassistant", Device{ID: "pump.7", Manufacturer: "Quectel", Model: "BG96", Version: "v1.2.3"}, topics)
	if err != nil {
		t.Fatal(err)
	}
	var gotTopics []string
	for _, m := range msgs {
		gotTopics = append(gotTopics, m.Topic)
		if problems := hasstest.Check("homeassistant", m.Topic, m.Payload); len(problems) > 0 {
			t.Errorf("%s:\n  %s", m.Payload, strings.Join(problems, "\n  "))
		}
		var c map[string]any
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			t.Fatal(err)
		}
		doc := statusDoc
		if c["state_topic"] == topics.SMSIn {
			doc = smsDoc
		}
		for _, p := range hasstest.Paths(c["value_template"].(string)) {
			if _, ok := hasstest.Resolve([]byte(doc), p); !ok {
				t.Errorf("%s: value_template reads %s, which the state topic's JSON does not have", m.Topic, p)
			}
		}
		av := c["availability"].([]any)[0].(map[string]any)
		if av["topic"] != topics.Status {
			t.Errorf("%s: availability topic %v, want the status topic (its will says offline)", m.Topic, av["topic"])
		}
		for _, p := range hasstest.Paths(av["value_template"].(string)) {
			for _, doc := range []string{statusDoc, `{"online":false}`} {
				if _, ok := hasstest.Resolve([]byte(doc), p); !ok {
					t.Errorf("availability template reads %s, missing from %s", p, doc)
				}
			}
		}
		dev := c["device"].(map[string]any)
		if diff := cmp.Diff(map[string]any{"identifiers": []any{"simgate_pump_7"}, "name": "simgate pump.7", "manufacturer": "Quectel", "model": "BG96", "sw_version": "v1.2.3"}, dev); diff != "" {
			t.Errorf("%s device (-want +got):\n%s", m.Topic, diff)
		}
	}
	want := []string{
		"homeassistant/sensor/simgate_pump_7/signal/config",
		"homeassistant/sensor/simgate_pump_7/registration/config",
		"homeassistant/sensor/simgate_pump_7/operator/config",
		"homeassistant/sensor/simgate_pump_7/technology/config",
		"homeassistant/sensor/simgate_pump_7/queue_depth/config",
		"homeassistant/sensor/simgate_pump_7/last_sms_received/config",
	}
	if diff := cmp.Diff(want, gotTopics); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, ConfigTopics("homeassistant", "pump.7")); diff != "" {
		t.Errorf("ConfigTopics (-want +got):\n%s", diff)
	}
	var signal map[string]any
	if err := json.Unmarshal(msgs[0].Payload, &signal); err != nil {
		t.Fatal(err)
	}
	if signal["unique_id"] != "simgate_pump_7_signal" || signal["device_class"] != "signal_strength" || signal["unit_of_measurement"] != "dBm" {
		t.Errorf("signal sensor: %s", msgs[0].Payload)
	}
}

// The checker itself must catch what Home Assistant would reject.
func TestSchemaCheckCatchesMistakes(t *testing.T) {
	for name, c := range map[string]struct{ topic, payload string }{
		"no state topic":      {"ha/sensor/n/o/config", `{"unique_id":"u","name":"x"}`},
		"unknown key":         {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","stat_topic":"s"}`},
		"bad id":              {"ha/sensor/n.1/o/config", `{"unique_id":"u","state_topic":"s"}`},
		"device without ids":  {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","device":{"name":"d"}}`},
		"availability topic":  {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","availability":[{"value_template":"{{x}}"}]}`},
		"wrong unit":          {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","device_class":"signal_strength","unit_of_measurement":"%"}`},
		"both availabilities": {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","availability_topic":"a","availability":[{"topic":"a"}]}`},
		"not a sensor":        {"ha/switch/n/o/config", `{"unique_id":"u","state_topic":"s"}`},
		"number as string":    {"ha/sensor/n/o/config", `{"unique_id":"u","state_topic":"s","qos":"1"}`},
	} {
		if len(hasstest.Check("ha", c.topic, []byte(c.payload))) == 0 {
			t.Errorf("%s: %s %s passed the check", name, c.topic, c.payload)
		}
	}
}

func TestConfigsNeedIdentity(t *testing.T) {
	if _, err := Configs("homeassistant", Device{}, Topics{Status: "s", SMSIn: "i"}); err == nil {
		t.Error("Configs without a device id succeeded")
	}
}
