package systemd

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
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
			got := StatusLine(tt.st, tt.pending, tt.connected)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("StatusLine (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSanitizeStatus(t *testing.T) {
	long := strings.Repeat("x", 199) + "é" // é is 2 bytes: 201 in all
	tests := []struct {
		in, want string
	}{
		{in: "plain text", want: "plain text"},
		{in: "a\nb", want: "a b"},
		{in: "a\r\n\r\nb\t\tc", want: "a b c"},
		{in: "  leading and trailing  \n", want: "leading and trailing"},
		{in: "nul\x00byte", want: "nul byte"},
		{in: "bad \xff\xfe utf8", want: "bad utf8"},
		{in: "emoji 📡 ok", want: "emoji 📡 ok"},
		{in: "line\u2028separator", want: "line separator"},
		{in: strings.Repeat("y", 300), want: strings.Repeat("y", 200)},
		{in: long, want: strings.Repeat("x", 199)},
		{in: strings.Repeat("z", 200) + " tail", want: strings.Repeat("z", 200)},
		{in: "", want: ""},
		{in: "\n\n", want: ""},
	}
	for _, tt := range tests {
		if got := SanitizeStatus(tt.in); got != tt.want {
			t.Errorf("SanitizeStatus(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSanitizeStatus: whatever the modem or network puts in a status, the
// line sent to systemd is one short line of valid UTF-8.
func FuzzSanitizeStatus(f *testing.F) {
	for _, s := range []string{"", "Vodafone", "a\nREADY=1", "\xff\xfe", "📡\u2028\x00", strings.Repeat("é", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeStatus(s)
		if len(got) > maxStatusLen {
			t.Errorf("length %d > %d", len(got), maxStatusLen)
		}
		if !utf8.ValidString(got) {
			t.Errorf("invalid UTF-8: %q", got)
		}
		if strings.TrimSpace(got) != got || strings.Contains(got, "  ") {
			t.Errorf("untidy spacing: %q", got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || (unicode.IsSpace(r) && r != ' ') {
				t.Errorf("control or line-breaking character %U in %q", r, got)
			}
		}
		if again := SanitizeStatus(got); again != got {
			t.Errorf("not idempotent: %q -> %q", got, again)
		}
		line := StatusLine(gw.Status{Network: gw.NetworkInfo{Operator: s, Technology: s, Registration: s}}, 0, false)
		if strings.ContainsAny(line, "\n\r\x00") || len(line) > maxStatusLen || !utf8.ValidString(line) {
			t.Errorf("StatusLine with operator %q = %q", s, line)
		}
	})
}
