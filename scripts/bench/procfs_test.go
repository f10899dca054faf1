package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const statusSample = `Name:	simgate
Umask:	0022
State:	S (sleeping)
VmPeak:	 1241904 kB
VmHWM:	   14532 kB
VmRSS:	   10348 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memory
		wantErr string
	}{
		{"sample", statusSample, memory{RSS: 10348 * 1024, HWM: 14532 * 1024}, ""},
		{"no memory lines", "Name:\tkworker\nState:\tI (idle)\n", memory{}, "no VmRSS"},
		{"only RSS", "VmRSS:\t10 kB\n", memory{}, "no VmRSS"},
		{"bad unit", "VmRSS:\t10 MB\nVmHWM:\t10 kB\n", memory{}, `want "<n> kB"`},
		{"bad number", "VmRSS:\tx kB\nVmHWM:\t10 kB\n", memory{}, "bad size"},
		{"negative", "VmRSS:\t-1 kB\nVmHWM:\t10 kB\n", memory{}, "bad size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStatus error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(memory{})); diff != "" {
				t.Errorf("parseStatus (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "4242 (simgate) S 1 4242 4242 0 -1 4194560 1000 0 0 0 12 30 0 0 20 0 9 0 100 1000 2000", 420 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0", 30 * time.Millisecond, false},
		{"no name", "4242 simgate S 1", 0, true},
		{"short", "4242 (simgate) S 1 2 3", 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 2", 0, true},
		{"negative", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 2", 0, true},
		{"huge", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 9223372036854775807 2", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStat = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestReadSelf checks the readers against this process's own /proc files.
func TestReadSelf(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("memory = %+v, want 0 < RSS <= HWM", m)
	}
	// Burn CPU until this process has run for 50ms more, so the count
	// moves past one tick. On a loaded machine that takes longer than 50ms
	// of wall time; the limit only keeps a broken reader from hanging.
	before, err := readSchedCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	limit := time.Now().Add(30 * time.Second)
	x := 0
	run := before
	for run-before < 50*time.Millisecond && time.Now().Before(limit) {
		for range 1 << 16 {
			x++
		}
		if run, err = readSchedCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if run-before < 50*time.Millisecond {
		t.Fatalf("run time moved by %s in 30s of busy loop (%d iterations), want 50ms", run-before, x)
	}
	c, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c <= 0 {
		t.Errorf("CPU time = %s after running for %s, want > 0", c, run)
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"123456789 2000 35\n", 123456789, false},
		{"0 0 0", 0, false},
		{"1 2", 0, true},
		{"x 2 3", 0, true},
		{"-1 2 3", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSchedstat(%q) = %s, %v; want %s, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseSchedstat(f *testing.F) {
	f.Add([]byte("123456789 2000 35\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseSchedstat(b); err == nil && d < 0 {
			t.Errorf("parseSchedstat(%q) = %s: negative", b, d)
		}
	})
}

const netUDPSample = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  139: 0100007F:1B39 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 0
  500: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12346 2 0000000000000000 0
`

func TestParseNetUDP(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []int
		wantErr bool
	}{
		{"sample", netUDPSample, []int{6969, 68}, false},
		{"header only", "   sl  local_address rem_address\n", nil, false},
		{"empty", "", nil, false},
		{"no port", "h\n 1: 0100007F 0\n", nil, true},
		{"bad port", "h\n 1: 0100007F:ZZZZ 0\n", nil, true},
		{"port too big", "h\n 1: 0100007F:1FFFF 0\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetUDP([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseNetUDP error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseNetUDP (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusSample))
	f.Add([]byte("VmRSS:\t1 kB\nVmHWM:\t2 kB\n"))
	f.Add([]byte("VmRSS: 99999999999999999999 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseStatus(b)
		if err == nil && (m.RSS < 0 || m.HWM < 0) {
			t.Errorf("parseStatus(%q) = %+v: negative size accepted", b, m)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (simgate) S 1 4242 4242 0 -1 4194560 1000 0 0 0 12 30 0 0 20 0 9 0"))
	f.Add([]byte("1 ()) R 1 1 1 0 -1 0 0 0 0 0 1 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseStat(b)
		if err == nil && d < 0 {
			t.Errorf("parseStat(%q) = %s: negative CPU time accepted", b, d)
		}
	})
}

func FuzzParseNetUDP(f *testing.F) {
	f.Add([]byte(netUDPSample))
	f.Add([]byte("h\n 1: 0100007F:FFFF 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ports, err := parseNetUDP(b)
		if err != nil {
			return
		}
		for _, p := range ports {
			if p < 0 || p > 65535 {
				t.Errorf("parseNetUDP(%q) returned port %d", b, p)
			}
		}
	})
}
