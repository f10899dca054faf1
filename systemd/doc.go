// Package systemd holds the service units that the .deb installs
// (simgate.service, simgate-cloud.service) and the tests that keep them
// valid and hardened. The daemon's sd_notify glue is internal/systemd.
package systemd
