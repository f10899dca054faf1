package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/config"
)

// TestGatewayConfig checks that every configuration the bench writes is
// one simgate accepts, with the values meant.
func TestGatewayConfig(t *testing.T) {
	tests := []struct {
		name string
		in   gwConfig
	}{
		{"sms only", gwConfig{DeviceID: "sms1", Port: "/tmp/x/modem", Broker: "tcp://127.0.0.1:1884", StoreDir: "/tmp/x/store"}},
		{"os mode", gwConfig{DeviceID: "ipos2", Port: "/tmp/m", Broker: "tcp://127.0.0.1:1", StoreDir: "/tmp/s",
			IPMode: "os", IPPort: 40000, Bind: "127.0.0.1", Cloud: "127.0.0.1:40001", LogLevel: "info"}},
		{"modem mode", gwConfig{DeviceID: "ipmodem3", Port: "/tmp/m", Broker: "tcp://127.0.0.1:1", StoreDir: "/tmp/s", IPMode: "modem", IPPort: 6969}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "simgate.yaml")
			if err := os.WriteFile(p, []byte(tt.in.yaml()), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := config.Load(p)
			if err != nil {
				t.Fatalf("config.Load: %v\n%s", err, tt.in.yaml())
			}
			want := config.Default()
			want.DeviceID = tt.in.DeviceID
			want.Modem.Port, want.Modem.Profile = tt.in.Port, "quectel"
			want.MQTT.URL, want.MQTT.ClientID = tt.in.Broker, "simgate-"+tt.in.DeviceID
			want.Store.Dir = tt.in.StoreDir
			want.IP.Mode, want.IP.Port, want.IP.Bind = "off", 6969, tt.in.Bind
			if tt.in.IPMode != "" {
				want.IP.Mode = tt.in.IPMode
			}
			if tt.in.IPPort != 0 {
				want.IP.Port = tt.in.IPPort
			}
			if tt.in.Cloud != "" {
				want.IP.Cloud = tt.in.Cloud
			}
			want.Log.Level = "warn"
			if tt.in.LogLevel != "" {
				want.Log.Level = tt.in.LogLevel
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("loaded config (-want +got):\n%s", diff)
			}
		})
	}
}
