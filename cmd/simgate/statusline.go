package main

import (
	"fmt"
	"strings"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/systemd"
)

// registrationText turns gw.NetworkInfo.Registration into words for a
// person reading `systemctl status`. Super SIMs register as roaming on
// partner networks, so "roaming" is the normal, healthy state.
var registrationText = map[string]string{
	"home":           "registered (home)",
	"roaming":        "registered (roaming)",
	"searching":      "searching for a network",
	"denied":         "registration denied",
	"not_registered": "not registered",
	"unknown":        "registration unknown",
	"":               "registration unknown",
}

// statusLine formats the one-line status that simgate sends as STATUS=:
// modem readiness, registration, operator and technology, signal, broker
// connection and queue depth, e.g.
//
//	registered (roaming) on Vodafone LTE, signal -79 dBm, broker connected, 3 queued
//
// pending is the number of messages waiting in the durable queue.
func statusLine(st gw.Status, pending int, brokerConnected bool) string {
	var parts []string
	if !st.Ready {
		s := "modem not ready"
		if e := systemd.SanitizeStatus(st.Recovery.LastError); e != "" {
			s += " (" + e + ")"
		}
		parts = append(parts, s)
	}
	r := systemd.SanitizeStatus(st.Network.Registration)
	reg, ok := registrationText[r]
	if !ok {
		reg = "registration " + r
	}
	// Each field is cleaned on its own so that stray bytes at its end do not
	// leave a gap before the next separator.
	op := systemd.SanitizeStatus(systemd.SanitizeStatus(st.Network.Operator) + " " + systemd.SanitizeStatus(st.Network.Technology))
	if op != "" {
		reg += " on " + op
	}
	parts = append(parts, reg)
	if st.Network.SignalDBm != nil {
		parts = append(parts, fmt.Sprintf("signal %d dBm", *st.Network.SignalDBm))
	} else {
		parts = append(parts, "signal unknown")
	}
	if brokerConnected {
		parts = append(parts, "broker connected")
	} else {
		parts = append(parts, "broker disconnected")
	}
	parts = append(parts, fmt.Sprintf("%d queued", pending))
	return systemd.SanitizeStatus(strings.Join(parts, ", "))
}
