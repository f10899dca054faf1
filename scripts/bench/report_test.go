package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReportVerdicts(t *testing.T) {
	var r report
	r.add("Footprint", "binary", 9.3, "MB", atMost(15, "≤ 15 MB"), "")
	r.add("Footprint", "RSS", 25, "MB", atMost(20, "≤ 20 MB"), "")
	r.add("IP (ip.mode os)", "throughput", 1999, "msg/s", atLeast(2000, "≥ 2,000 msg/s"), "")
	r.add("SMS out", "rate", 80, "msg/s", nil, "")
	r.skip("IP (ip.mode os)", "latency", "not in this build")
	r.latency("SMS in", "simgate unpaced", summary{N: 3, Min: 1, P50: 2, P95: 3, P99: 3, Max: 3}, atMost(20, "p50 ≤ 20 ms"), "")
	r.sortRows()
	var got [][2]string
	for _, x := range r.Rows {
		got = append(got, [2]string{x.Section + ": " + x.Metric, x.Verdict})
	}
	want := [][2]string{
		{"SMS in: simgate unpaced p50", "met"},
		{"SMS in: simgate unpaced p95", ""},
		{"SMS in: simgate unpaced p99", ""},
		{"SMS out: rate", ""},
		{"IP (ip.mode os): throughput", "missed"},
		{"IP (ip.mode os): latency", "skipped"},
		{"Footprint: binary", "met"},
		{"Footprint: RSS", "missed"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestReportWrite(t *testing.T) {
	r := report{Command: "make bench", Commit: "abc", GoVersion: "go1.26", CPUs: 2}
	r.add("SMS out", "rate | pipe", 82.4, "msg/s", nil, "a | b")
	r.skip("IP (ip.mode os)", "latency", "not in this build")
	dir := t.TempDir()
	if err := r.write(dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| SMS out | rate | pipe | 82.4 msg/s |  |  | a \\| b |",
		"| IP (ip.mode os) | latency | — |  | skipped | not in this build |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r.Rows, back.Rows); diff != "" {
		t.Errorf("results.json rows (-want +got):\n%s", diff)
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    float64
		unit string
		want string
	}{
		{1.2345, "ms", "1.23 ms"},
		{18.89, "ms", "18.9 ms"},
		{3483.2, "msg/s", "3483 msg/s"},
		{82.41, "msg/s", "82.4 msg/s"},
		{0.00121, "x", "0.00121x"},
		{9.32, "MB", "9.32 MB"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.v, tt.unit); got != tt.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}
