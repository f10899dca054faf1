package at

import "strings"

// SplitFields splits the parameters of an information line, the text after
// its prefix (`1,"REC UNREAD",,24` of `+CMGL: 1,"REC UNREAD",,24`), at
// the commas outside double quotes. Each field is trimmed of spaces and
// keeps its quotes, so a caller can tell a string ("5") from a number (5)
// and an empty field from a missing one. A quote left open runs to the end
// of s. An empty s is one empty field.
func SplitFields(s string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}
