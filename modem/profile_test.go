package modem

import (
	"slices"
	"testing"

	"github.com/simgate/simgate/config"
)

// TestProfilesMatchConfig: the profiles config accepts for modem.profile
// are exactly the ones the session knows, besides "auto".
func TestProfilesMatchConfig(t *testing.T) {
	var known []string
	for name := range profiles {
		known = append(known, name)
	}
	slices.Sort(known)
	var accepted []string
	for _, p := range config.Profiles {
		if p != "auto" {
			accepted = append(accepted, p)
		}
	}
	slices.Sort(accepted)
	if !slices.Equal(known, accepted) {
		t.Errorf("config accepts modem.profile %v, the session knows %v", accepted, known)
	}
}
