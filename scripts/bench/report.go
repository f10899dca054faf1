package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// target is a goal a figure is reported against.
type target struct {
	text string
	ok   func(float64) bool
}

func atMost(v float64, text string) *target {
	return &target{text: text, ok: func(x float64) bool { return x <= v }}
}

func atLeast(v float64, text string) *target {
	return &target{text: text, ok: func(x float64) bool { return x >= v }}
}

// row is one line of the results table.
type row struct {
	Section string  `json:"section"`
	Metric  string  `json:"metric"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Target  string  `json:"target,omitempty"`
	// Verdict is "met" or "missed" against Target, "skipped" when the
	// figure could not be measured (Note says why), "" otherwise.
	Verdict string `json:"verdict,omitempty"`
	Note    string `json:"note,omitempty"`
}

// report is everything a bench run found; it is written as results.json.
type report struct {
	Started   time.Time          `json:"started"`
	Seconds   float64            `json:"seconds"`
	Command   string             `json:"command"`
	Commit    string             `json:"commit"`
	GoVersion string             `json:"go_version"`
	CPUs      int                `json:"cpus"`
	Short     bool               `json:"short"`
	Rows      []row              `json:"rows"`
	Latency   map[string]summary `json:"latency"`
	Notes     []string           `json:"notes,omitempty"`
}

func (r *report) add(section, metric string, v float64, unit string, t *target, note string) {
	rw := row{Section: section, Metric: metric, Value: v, Unit: unit, Note: note}
	if t != nil {
		rw.Target = t.text
		rw.Verdict = "missed"
		if t.ok(v) {
			rw.Verdict = "met"
		}
	}
	r.Rows = append(r.Rows, rw)
}

func (r *report) skip(section, metric, why string) {
	r.Rows = append(r.Rows, row{Section: section, Metric: metric, Verdict: "skipped", Note: why})
}

func (r *report) latency(section, name string, s summary, t *target, note string) {
	if r.Latency == nil {
		r.Latency = map[string]summary{}
	}
	r.Latency[name] = s
	n := fmt.Sprintf("n=%d, min %.2f, max %.2f ms", s.N, s.Min, s.Max)
	if note != "" {
		n += "; " + note
	}
	r.add(section, name+" p50", s.P50, "ms", t, n)
	r.add(section, name+" p95", s.P95, "ms", nil, "")
	r.add(section, name+" p99", s.P99, "ms", nil, "")
}

func formatValue(v float64, unit string) string {
	switch {
	case unit == "ms" && v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case unit == "ms":
		return fmt.Sprintf("%.1f ms", v)
	case unit == "x":
		return fmt.Sprintf("%.3gx", v)
	case unit == "" || unit == "count":
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	default:
		return fmt.Sprintf("%.3g %s", v, unit)
	}
}

// sectionOrder is the order of the table's sections.
var sectionOrder = []string{"SMS in", "SMS out", "SMS burst", "IP (ip.mode os)", "IP (ip.mode modem, 115200 baud)", "Footprint", "Cloud bridge", "Peer: gammu-smsd"}

// sortRows orders the rows by section, keeping the order within one.
func (r *report) sortRows() {
	pos := func(s string) int {
		if i := slices.Index(sectionOrder, s); i >= 0 {
			return i
		}
		return len(sectionOrder)
	}
	slices.SortStableFunc(r.Rows, func(a, b row) int { return pos(a.Section) - pos(b.Section) })
}

// markdown renders the table as GitHub markdown.
func (r *report) markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# simgate bench results\n\n")
	fmt.Fprintf(&b, "- started %s, took %.0f s; `%s`\n", r.Started.UTC().Format(time.RFC3339), r.Seconds, r.Command)
	fmt.Fprintf(&b, "- commit %s, %s, %d CPUs", r.Commit, r.GoVersion, r.CPUs)
	if r.Short {
		fmt.Fprintf(&b, ", -short (idle CPU over 10 s, not the reported 60 s)")
	}
	fmt.Fprintf(&b, "\n\n| section | metric | value | target | verdict | notes |\n|---|---|---|---|---|---|\n")
	for _, x := range r.Rows {
		val := formatValue(x.Value, x.Unit)
		if x.Verdict == "skipped" {
			val = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.Section, x.Metric, val, x.Target, x.Verdict,
			strings.ReplaceAll(x.Note, "|", "\\|"))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(&b, "\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// text renders the table for a terminal.
func (r *report) text(w io.Writer) error {
	var b strings.Builder
	width := [4]int{}
	cells := make([][4]string, len(r.Rows))
	for i, x := range r.Rows {
		val := formatValue(x.Value, x.Unit)
		if x.Verdict == "skipped" {
			val = "-"
		}
		cells[i] = [4]string{x.Section, x.Metric, val, strings.TrimSpace(x.Target + " " + x.Verdict)}
		for j, c := range cells[i] {
			width[j] = max(width[j], len([]rune(c)))
		}
	}
	for i, c := range cells {
		for j, s := range c {
			fmt.Fprintf(&b, "%s%s  ", s, strings.Repeat(" ", width[j]-len([]rune(s))))
		}
		fmt.Fprintf(&b, "%s\n", r.Rows[i].Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// write stores results.md and results.json in dir.
func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "results.md"))
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := r.markdown(f); err != nil {
		f.Close()
		return fmt.Errorf("write results.md: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write results.md: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results.json: %w", err)
	}
	return nil
}
