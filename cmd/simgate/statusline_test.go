package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/systemd"
)

func TestStatusLine(t *testing.T) {
	dbm := func(v int) *int { return &v }
	tests := []struct {
		name      string
		st        gw.Status
		pending   int
		connected bool
		want      string
	}{
		{
			name: "healthy roaming",
			st: gw.Status{Ready: true, Network: gw.NetworkInfo{
				Registration: "roaming", Operator: "Vodafone", Technology: "LTE", SignalDBm: dbm(-79)}},
			pending: 3, connected: true,
			want: "registered (roaming) on Vodafone LTE, signal -79 dBm, broker connected, 3 queued",
		},
		{
			name:    "starting",
			st:      gw.Status{},
			pending: 0,
			want:    "modem not ready, registration unknown, signal unknown, broker disconnected, 0 queued",
		},
		{
			name: "recovering",
			st: gw.Status{Recovery: gw.Recovery{LastError: "open /dev/ttyUSB2: no such file or directory"},
				Network: gw.NetworkInfo{Registration: "searching", SignalDBm: dbm(-113)}},
			pending: 12, connected: true,
			want: "modem not ready (open /dev/ttyUSB2: no such file or directory), searching for a network, signal -113 dBm, broker connected, 12 queued",
		},
		{
			name: "technology without operator",
			st: gw.Status{Ready: true, Network: gw.NetworkInfo{
				Registration: "home", Technology: "LTE-M"}},
			want: "registered (home) on LTE-M, signal unknown, broker disconnected, 0 queued",
		},
		{
			name: "unknown registration word kept",
			st:   gw.Status{Ready: true, Network: gw.NetworkInfo{Registration: "emergency_only"}},
			want: "registration emergency_only, signal unknown, broker disconnected, 0 queued",
		},
		{
			name: "registration of control bytes only",
			st:   gw.Status{Ready: true, Network: gw.NetworkInfo{Registration: "\r\n"}},
			want: "registration unknown, signal unknown, broker disconnected, 0 queued",
		},
		{
			name: "operator name from the network is sanitised",
			st: gw.Status{Ready: true, Network: gw.NetworkInfo{
				Registration: "roaming", Operator: "Evil\nREADY=1\x00"}},
			want: "registered (roaming) on Evil READY=1, signal unknown, broker disconnected, 0 queued",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statusLine(tt.st, tt.pending, tt.connected)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("statusLine (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzStatusLine: whatever the network names its operator, technology or
// registration, the STATUS= line is one short line of valid UTF-8.
func FuzzStatusLine(f *testing.F) {
	for _, s := range []string{"", "Vodafone", "a\nREADY=1", "\xff\xfe", "📡\u2028\x00", strings.Repeat("é", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line := statusLine(gw.Status{Network: gw.NetworkInfo{Operator: s, Technology: s, Registration: s}}, 0, false)
		if strings.ContainsAny(line, "\n\r\x00") || len(line) > systemd.MaxStatusLen || !utf8.ValidString(line) {
			t.Errorf("statusLine with operator %q = %q", s, line)
		}
	})
}
