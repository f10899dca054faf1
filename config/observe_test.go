package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestObserveKeys(t *testing.T) {
	doc := "http:\n  listen: 127.0.0.1:9369\nhomeassistant:\n  discovery: true\n  prefix: ha/test\n"
	got, err := Parse("o.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.HTTP.Listen = "127.0.0.1:9369"
	want.HomeAssistant = HomeAssistant{Discovery: true, Prefix: "ha/test"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}

	got, err = Parse("e.yaml", nil, []string{"SIMGATE_HTTP_LISTEN=:9369", "SIMGATE_HOMEASSISTANT_DISCOVERY=true"})
	if err != nil {
		t.Fatal(err)
	}
	if got.HTTP.Listen != ":9369" || !got.HomeAssistant.Discovery || got.HomeAssistant.Prefix != "homeassistant" {
		t.Errorf("overrides gave http %+v, homeassistant %+v", got.HTTP, got.HomeAssistant)
	}
}

func TestObserveProblems(t *testing.T) {
	tests := []struct {
		doc  string
		want string
	}{
		{"http:\n  listen: 9369\n", `o.yaml:2: http.listen: must be HOST:PORT, e.g. 127.0.0.1:9369, got "9369"`},
		{"http:\n  listen: 127.0.0.1:0\n", `o.yaml:2: http.listen: port must be between 1 and 65535, got "0"`},
		{"http:\n  listen: 127.0.0.1:http\n", `o.yaml:2: http.listen: port must be between 1 and 65535, got "http"`},
		{"http:\n  listn: :1\n", `o.yaml:2: http.listn: unknown key (did you mean "listen"?)`},
		{"homeassistant:\n  prefix: \"\"\n", `o.yaml:2: homeassistant.prefix: must not be empty (Home Assistant's default is "homeassistant")`},
		{"homeassistant:\n  prefix: ha/#\n", `o.yaml:2: homeassistant.prefix: must not contain MQTT wildcards '+' or '#'`},
		{"homeassistant:\n  prefix: ha/\n", `o.yaml:2: homeassistant.prefix: must not start or end with '/'`},
		{"homeassistant:\n  discovery: yes please\n", `o.yaml:2: homeassistant.discovery: must be true or false, got "yes please"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Parse("o.yaml", []byte(tt.doc), nil)
			checkProblems(t, err, []string{tt.want})
		})
	}
}
