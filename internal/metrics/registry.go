package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

func init() {
	// TYPE lines let a scraper tell counters from gauges and read
	// histograms as histograms; the library leaves them out by default.
	vm.ExposeMetadata(true)
}

// Registry holds the series one process serves. Every method is safe for
// concurrent use.
type Registry struct {
	set *vm.Set

	mu    sync.Mutex
	owner map[string]string // family -> "set" or "func:<type>", so a family is written by one side only
	funcs map[string]*funcFamily
}

// funcFamily is a counter or gauge family whose values are read when
// scraped.
type funcFamily struct {
	typ    string // counter | gauge
	series map[string]func() float64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{set: vm.NewSet(), owner: map[string]string{}, funcs: map[string]*funcFamily{}}
	r.set.RegisterMetricsWriter(r.writeFuncs)
	return r
}

// Name is the series name of family with labels given as name, value
// pairs: Name("x_total", "channel", "sms") is `x_total{channel="sms"}`.
// Label values are escaped as the text format requires. An odd number of
// label arguments is a programming error and panics.
func Name(family string, labels ...string) string {
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("metrics: %s: labels must be name, value pairs, got %q", family, labels))
	}
	if len(labels) == 0 {
		return family
	}
	var b strings.Builder
	b.WriteString(family)
	b.WriteByte('{')
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }

// claim records who writes family; a family written both by the library
// and by a scrape-time function, or as two types, would be read as two
// metrics with one name, so it is a programming error and panics.
func (r *Registry) claim(family, who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.owner[family]; ok && prev != who {
		panic(fmt.Sprintf("metrics: %s registered as %s and as %s", family, prev, who))
	}
	r.owner[family] = who
}

// Counter returns the counter of family with these labels, creating it at
// zero the first time.
func (r *Registry) Counter(family string, labels ...string) *vm.Counter {
	r.claim(family, "counter")
	return r.set.GetOrCreateCounter(Name(family, labels...))
}

// Histogram returns the histogram of family with these labels, with the
// given bucket upper bounds (in ascending order), creating it the first
// time. The Prometheus form is written: _bucket{le=...}, _sum, _count.
func (r *Registry) Histogram(family string, buckets []float64, labels ...string) *vm.PrometheusHistogram {
	r.claim(family, "histogram")
	return r.set.GetOrCreatePrometheusHistogramExt(Name(family, labels...), buckets)
}

// ObserveDuration adds d, in seconds, to h.
func ObserveDuration(h *vm.PrometheusHistogram, d time.Duration) { h.Update(d.Seconds()) }

// CounterFunc registers a counter series whose value f returns when
// scraped, for a count the program already keeps. f must be safe for
// concurrent calls and never decrease.
func (r *Registry) CounterFunc(family string, f func() float64, labels ...string) {
	r.addFunc(family, "counter", f, labels)
}

// GaugeFunc registers a gauge series whose value f returns when scraped.
// f must be safe for concurrent calls; NaN is written as NaN, which
// Prometheus reads as "no value now".
func (r *Registry) GaugeFunc(family string, f func() float64, labels ...string) {
	r.addFunc(family, "gauge", f, labels)
}

func (r *Registry) addFunc(family, typ string, f func() float64, labels []string) {
	name := Name(family, labels...)
	r.claim(family, "func:"+typ)
	r.mu.Lock()
	defer r.mu.Unlock()
	fam := r.funcs[family]
	if fam == nil {
		fam = &funcFamily{typ: typ, series: map[string]func() float64{}}
		r.funcs[family] = fam
	}
	if _, dup := fam.series[name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", name))
	}
	fam.series[name] = f
}

// writeFuncs writes the scrape-time families, each with one TYPE line and
// its series in name order, so the output is stable.
func (r *Registry) writeFuncs(w io.Writer) {
	r.mu.Lock()
	families := make([]string, 0, len(r.funcs))
	for f := range r.funcs {
		families = append(families, f)
	}
	sort.Strings(families)
	type series struct {
		name string
		f    func() float64
	}
	type fam struct {
		name, typ string
		series    []series
	}
	out := make([]fam, 0, len(families))
	for _, name := range families {
		ff := r.funcs[name]
		e := fam{name: name, typ: ff.typ}
		for s, f := range ff.series {
			e.series = append(e.series, series{s, f})
		}
		sort.Slice(e.series, func(i, j int) bool { return e.series[i].name < e.series[j].name })
		out = append(out, e)
	}
	r.mu.Unlock()

	// The functions run without the lock: they may take locks of their own.
	var b strings.Builder
	for _, f := range out {
		fmt.Fprintf(&b, "# HELP %s\n# TYPE %s %s\n", f.name, f.name, f.typ)
		for _, s := range f.series {
			b.WriteString(s.name)
			b.WriteByte(' ')
			b.WriteString(formatValue(s.f()))
			b.WriteByte('\n')
		}
	}
	io.WriteString(w, b.String()) // a failed write is a scraper that went away: nothing to do
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// WritePrometheus writes every series of r, then the process's own
// (process_*: CPU, resident memory, open files; go_*: heap, goroutines), in
// the Prometheus text format.
func (r *Registry) WritePrometheus(w io.Writer) {
	r.set.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
}
