package systemd

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The cloud bridge's unit is hardened like the device's: every sandbox
// setting of simgate.service is in simgate-cloud.service with the same
// value, except what only the modem needs.
func TestCloudUnitHardenedLikeDeviceUnit(t *testing.T) {
	dev := unitSettings(t, "simgate.service")
	cl := unitSettings(t, "simgate-cloud.service")
	deviceOnly := map[string]bool{
		"Service.DevicePolicy": true, "Service.DeviceAllow": true, "Service.SupplementaryGroups": true,
		"Service.WatchdogSec": true, "Service.TimeoutStartSec": true, "Service.ExecStart": true,
		"Service.StateDirectory": true, "Unit.Description": true, "Unit.After": true,
	}
	for k, v := range dev {
		if deviceOnly[k] || !strings.HasPrefix(k, "Service.") {
			continue
		}
		if diff := cmp.Diff(v, cl[k]); diff != "" {
			t.Errorf("%s (-simgate.service +simgate-cloud.service):\n%s", k, diff)
		}
	}
	for k, want := range map[string]string{
		"Service.ExecStart":      "/usr/bin/simgate cloud -config /etc/simgate/cloud.yaml",
		"Service.StateDirectory": "simgate-cloud",
		"Service.PrivateDevices": "yes",
	} {
		if got := cl[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %v, want %q", k, got, want)
		}
	}
}
