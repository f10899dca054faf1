package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	msd := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, reversed: summarize must sort
	}
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"none", nil, summary{}},
		{"one", msd(7), summary{N: 1, Min: 7, P50: 7, P95: 7, P99: 7, Max: 7, Mean: 7}},
		{"two", msd(1, 3), summary{N: 2, Min: 1, P50: 1, P95: 3, P99: 3, Max: 3, Mean: 2}},
		{"hundred", msd(hundred...), summary{N: 100, Min: 1, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}},
		{"sub-millisecond", []time.Duration{1500 * time.Microsecond, 250 * time.Microsecond},
			summary{N: 2, Min: 0.25, P50: 0.25, P95: 1.5, P99: 1.5, Max: 1.5, Mean: 0.875}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(tt.in)); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{100, time.Second, 100},
		{5, 500 * time.Millisecond, 10},
		{5, 0, 0},
		{5, -time.Second, 0},
	}
	for _, tt := range tests {
		if got := rate(tt.n, tt.d); got != tt.want {
			t.Errorf("rate(%d, %s) = %v, want %v", tt.n, tt.d, got, tt.want)
		}
	}
}
