package main

import (
	"bytes"
	"regexp"
	"testing"
)

func TestFindMarker(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"SMS Command bm-sms-12 set led on", "bm-sms-12"},
		{`{"id":"bm-smsout-0","status":"sent"}`, "bm-smsout-0"},
		{`{"payload":"{\"ref\":\"bm-iplatos-199\"}"}`, "bm-iplatos-199"},
		{"bm-warm-0", "bm-warm-0"},
		{"no marker here", ""},
		{"bm- bm-x bm-x- bm-X-1", ""},
		{"bm-bm-x-1", "bm-x-1"},
		{"bm-a-1234567890123", "bm-a-123456789"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := findMarker([]byte(tt.in)); got != tt.want {
			t.Errorf("findMarker(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	for _, tag := range []string{"sms", "burst0", "iptpos"} {
		for _, seq := range []int{0, 7, 199, 4999} {
			mk := marker(tag, seq)
			if got := findMarker([]byte(smsText(mk))); got != mk {
				t.Errorf("findMarker(smsText(%q)) = %q", mk, got)
			}
			if got := findMarker(ipPayload(mk)); got != mk {
				t.Errorf("findMarker(ipPayload(%q)) = %q", mk, got)
			}
		}
	}
}

var markerRE = regexp.MustCompile(`^bm-[a-z0-9]+-[0-9]{1,9}$`)

func FuzzFindMarker(f *testing.F) {
	f.Add([]byte("SMS Command bm-sms-12 set led on"))
	f.Add([]byte("bm-bm-bm-1"))
	f.Add([]byte("bm-"))
	f.Fuzz(func(t *testing.T, b []byte) {
		mk := findMarker(b)
		if mk == "" {
			return
		}
		if !markerRE.MatchString(mk) || !bytes.Contains(b, []byte(mk)) {
			t.Errorf("findMarker(%q) = %q: not a marker found in the input", b, mk)
		}
	})
}

func TestNotifyReady(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"READY=1", true},
		{"STATUS=starting\nREADY=1\n", true},
		{"STATUS=READY=1", false},
		{"READY=0", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := notifyReady([]byte(tt.in)); got != tt.want {
			t.Errorf("notifyReady(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzNotifyReady(f *testing.F) {
	f.Add([]byte("READY=1\nSTATUS=ok"))
	f.Add([]byte("WATCHDOG=1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if notifyReady(b) && !bytes.Contains(b, []byte("READY=1")) {
			t.Errorf("notifyReady(%q) = true without READY=1", b)
		}
	})
}
