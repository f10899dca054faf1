package at

import (
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

func TestSplitFields(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{``, []string{""}},
		{`5`, []string{"5"}},
		{` 1,"REC UNREAD",,24`, []string{"1", `"REC UNREAD"`, "", "24"}},
		{`"SM",5`, []string{`"SM"`, "5"}},
		{`a, "b,c" ,d`, []string{"a", `"b,c"`, "d"}},
		{`0,"1.2.3.4",6969`, []string{"0", `"1.2.3.4"`, "6969"}},
		{`,`, []string{"", ""}},
		{` , ,`, []string{"", "", ""}},
		{`"open,ended`, []string{`"open,ended`}},
		{`"a""b",c`, []string{`"a""b"`, "c"}},
		{`"",""`, []string{`""`, `""`}},
		{`2,5,"1A2B","01A2D001",7`, []string{"2", "5", `"1A2B"`, `"01A2D001"`, "7"}},
		{"\t1\t,\t2 ", []string{"1", "2"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, SplitFields(tt.in)); diff != "" {
			t.Errorf("SplitFields(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// FuzzSplitFields checks SplitFields against the rules it documents, each
// computed here another way: one field more than there are commas outside
// quotes, every field trimmed, and nothing but spaces around fields lost.
func FuzzSplitFields(f *testing.F) {
	for _, s := range []string{``, `1,"REC UNREAD",,24`, `a, "b,c" ,d`, `"open,`, "\x00,\xff\"", " \u00a0,\u2028"} {
		f.Add(s)
	}
	noSpace := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SplitFields(s)
		commas, quotes := 0, 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '"':
				quotes++
			case ',':
				if quotes%2 == 0 {
					commas++
				}
			}
		}
		if len(got) != commas+1 {
			t.Fatalf("SplitFields(%q) = %q: %d fields, want %d", s, got, len(got), commas+1)
		}
		for _, x := range got {
			if x != strings.TrimSpace(x) {
				t.Fatalf("SplitFields(%q): field %q not trimmed", s, x)
			}
		}
		if j := strings.Join(got, ","); noSpace(j) != noSpace(s) {
			t.Fatalf("SplitFields(%q) = %q: joined %q differs in more than spaces", s, got, j)
		}
	})
}
