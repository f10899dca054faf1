package systemd

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

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
		if len(got) > MaxStatusLen {
			t.Errorf("length %d > %d", len(got), MaxStatusLen)
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
	})
}
