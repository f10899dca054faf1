package modemsim

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"defaults", Options{}, ""},
		{"unknown profile", Options{Profile: "nokia"}, "unknown profile"},
		{"empty read", Options{EmptyRead: "maybe"}, "empty-read"},
		{"capacity", Options{Capacity: 256}, "capacity"},
		{"negative capacity", Options{Capacity: -1}, "capacity"},
		{"baud", Options{Baud: -1}, "baud"},
		{"smsc letters", Options{SMSC: "+44abc"}, "smsc"},
		{"smsc national", Options{SMSC: "0123"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.applyDefaults()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDefaultIdentities checks the default ICCID and IMEIs carry a valid
// Luhn check digit and the ICCID a Super SIM issuer prefix, as hosts that
// validate them expect.
func TestDefaultIdentities(t *testing.T) {
	ids := []string{defaultICCID}
	for _, p := range profiles {
		ids = append(ids, p.imei)
	}
	for _, id := range ids {
		if !luhn(id) {
			t.Errorf("%s fails the Luhn check", id)
		}
	}
	if !strings.HasPrefix(defaultICCID, "8988307") {
		t.Errorf("ICCID %s is not a Super SIM's", defaultICCID)
	}
}

func luhn(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestTrimRecords(t *testing.T) {
	recs := make([]int, maxRecords+5)
	for i := range recs {
		recs[i] = i
	}
	got := trim(recs)
	if len(got) != maxRecords || got[0] != 5 || got[len(got)-1] != maxRecords+4 {
		t.Errorf("trim kept %d, first %d, last %d", len(got), got[0], got[len(got)-1])
	}
	if diff := cmp.Diff([]int{1, 2}, trim([]int{1, 2})); diff != "" {
		t.Errorf("short slice changed (-want +got):\n%s", diff)
	}
}

func TestFaultsCheck(t *testing.T) {
	tests := []struct {
		name  string
		f     Faults
		want  string
		chunk int
	}{
		{"none", Faults{}, "", 0},
		{"chunked", Faults{Chunked: true}, "", 8},
		{"chunk max", Faults{Chunked: true, ChunkMax: 3}, "", 3},
		{"chunk max alone", Faults{ChunkMax: 3}, "", 0},
		{"negative chunk max", Faults{Chunked: true, ChunkMax: -1}, "chunk_max", 0},
		{"noise", Faults{URCNoise: 1.5}, "urc_noise", 0},
		{"error on", Faults{ErrorOn: []string{"AT+CMEE?"}}, "", 0},
		{"error on empty", Faults{ErrorOn: []string{" "}}, "error_on", 0},
		{"error on bare AT", Faults{ErrorOn: []string{"AT"}}, "error_on", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.check()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if err == nil && tt.f.chunk() != tt.chunk {
				t.Errorf("chunk %d, want %d", tt.f.chunk(), tt.chunk)
			}
		})
	}
}
