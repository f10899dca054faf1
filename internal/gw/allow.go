package gw

import "strings"

// SenderAllowed reports whether sms.allowed_senders lets from through:
// empty allowed accepts any sender, and a leading + is ignored on both
// sides. Every backend applies the same rule.
func SenderAllowed(allowed []string, from string) bool {
	if len(allowed) == 0 {
		return true
	}
	f := strings.TrimPrefix(from, "+")
	for _, a := range allowed {
		if strings.TrimPrefix(a, "+") == f {
			return true
		}
	}
	return false
}
