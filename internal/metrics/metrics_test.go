package metrics

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads text-format output as Prometheus does.
func parse(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, body)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the metric of family with exactly these labels.
func find(t *testing.T, fams map[string]*dto.MetricFamily, family string, labels map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[family]
	if !ok {
		t.Fatalf("no family %s", family)
	}
	for _, m := range f.GetMetric() {
		got := labelsOf(m)
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if got[k] != v {
				match = false
			}
		}
		if match {
			return m
		}
	}
	t.Fatalf("no %s%v in %v", family, labels, f.GetMetric())
	return nil
}

func TestRegistryTextFormat(t *testing.T) {
	r := NewRegistry()
	var n atomic.Uint64
	n.Store(7)
	r.CounterFunc("t_in_total", func() float64 { return float64(n.Load()) }, "channel", "sms")
	r.CounterFunc("t_in_total", func() float64 { return 3 }, "channel", "ip")
	r.GaugeFunc("t_depth", func() float64 { return 12 })
	r.GaugeFunc("t_signal_dbm", func() float64 { return math.NaN() })
	r.GaugeFunc("t_odd", func() float64 { return 1 }, "what", "a \"quoted\"\\ value\nwith a line break")
	r.Counter("t_calls_total", "code", "201").Add(2)
	h := r.Histogram("t_seconds", []float64{0.01, 0.1, 1}, "outbox", "inbound")
	for _, d := range []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 3 * time.Second} {
		ObserveDuration(h, d)
	}
	r.Histogram("t_seconds", []float64{0.01, 0.1, 1}, "outbox", "results")

	var b strings.Builder
	r.WritePrometheus(&b)
	fams := parse(t, b.String())

	if f := fams["t_in_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("t_in_total type %v, want counter", f.GetType())
	}
	if v := find(t, fams, "t_in_total", map[string]string{"channel": "sms"}).GetCounter().GetValue(); v != 7 {
		t.Errorf("t_in_total{channel=sms} = %v, want 7", v)
	}
	if v := find(t, fams, "t_in_total", map[string]string{"channel": "ip"}).GetCounter().GetValue(); v != 3 {
		t.Errorf("t_in_total{channel=ip} = %v, want 3", v)
	}
	if f := fams["t_depth"]; f.GetType() != dto.MetricType_GAUGE || f.GetMetric()[0].GetGauge().GetValue() != 12 {
		t.Errorf("t_depth = %v", f)
	}
	if v := fams["t_signal_dbm"].GetMetric()[0].GetGauge().GetValue(); !math.IsNaN(v) {
		t.Errorf("t_signal_dbm = %v, want NaN", v)
	}
	find(t, fams, "t_odd", map[string]string{"what": "a \"quoted\"\\ value\nwith a line break"})
	if f := fams["t_calls_total"]; f.GetType() != dto.MetricType_COUNTER || f.GetMetric()[0].GetCounter().GetValue() != 2 {
		t.Errorf("t_calls_total = %v", f)
	}
	if f := fams["t_seconds"]; f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) != 2 {
		t.Fatalf("t_seconds = %v, want two histograms", f)
	}
	hist := find(t, fams, "t_seconds", map[string]string{"outbox": "inbound"}).GetHistogram()
	if hist.GetSampleCount() != 4 || math.Abs(hist.GetSampleSum()-3.105) > 1e-9 {
		t.Errorf("histogram count %d sum %v, want 4 and 3.105", hist.GetSampleCount(), hist.GetSampleSum())
	}
	want := map[float64]uint64{0.01: 1, 0.1: 3, 1: 3}
	for _, bk := range hist.GetBucket() {
		if w, ok := want[bk.GetUpperBound()]; ok && bk.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v holds %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), w)
		}
	}
	if _, ok := fams["process_resident_memory_bytes"]; !ok {
		t.Errorf("no process metrics")
	}

	// Values read at scrape time follow the source.
	n.Add(5)
	b.Reset()
	r.WritePrometheus(&b)
	if v := find(t, parse(t, b.String()), "t_in_total", map[string]string{"channel": "sms"}).GetCounter().GetValue(); v != 12 {
		t.Errorf("after 5 more, t_in_total{channel=sms} = %v, want 12", v)
	}
}

func TestRegistryMisuse(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"two types":  func(r *Registry) { r.Counter("x_total"); r.GaugeFunc("x_total", func() float64 { return 0 }) },
		"func twice": func(r *Registry) { r.GaugeFunc("y", nil); r.GaugeFunc("y", nil) },
		//lint:ignore SA5012 an odd label list is the misuse under test
		"odd labels":   func(r *Registry) { r.Counter("z_total", "channel") },
		"counter vs h": func(r *Registry) { r.Counter("h"); r.Histogram("h", LatencyBuckets) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}

func TestCloudSeries(t *testing.T) {
	r := NewRegistry()
	r.APICall("SmsCommands", "POST", 201, 80*time.Millisecond)
	r.APICall("SmsCommands", "POST", 201, 120*time.Millisecond)
	r.APICall("SmsCommands", "POST", 0, time.Second)
	r.Webhook("sms", "published")
	r.Webhook("ip", "bad_signature")
	var b strings.Builder
	r.WritePrometheus(&b)
	fams := parse(t, b.String())
	if v := find(t, fams, CloudAPICalls, map[string]string{"resource": "SmsCommands", "method": "POST", "code": "201"}).GetCounter().GetValue(); v != 2 {
		t.Errorf("201 calls = %v, want 2", v)
	}
	if v := find(t, fams, CloudAPICalls, map[string]string{"resource": "SmsCommands", "method": "POST", "code": "error"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("failed calls = %v, want 1", v)
	}
	if c := find(t, fams, CloudAPISeconds, map[string]string{"resource": "SmsCommands"}).GetHistogram().GetSampleCount(); c != 3 {
		t.Errorf("latency samples = %d, want 3", c)
	}
	if v := find(t, fams, CloudWebhooks, map[string]string{"kind": "ip", "outcome": "bad_signature"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("bad signatures = %v, want 1", v)
	}
}

func TestHandler(t *testing.T) {
	r := NewRegistry()
	r.Counter("h_total").Inc()
	var health atomic.Pointer[error]
	h := Handler(r, func() error {
		if e := health.Load(); e != nil {
			return *e
		}
		return nil
	})
	get := func(method, path string) (int, string, http.Header) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String(), rec.Header()
	}
	if code, body, hdr := get("GET", "/metrics"); code != 200 || !strings.Contains(body, "h_total 1\n") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics: %d %q %v", code, body, hdr)
	}
	if code, body, _ := get("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz healthy: %d %q", code, body)
	}
	bad := errors.New("modem: the modem has not answered for over 90s")
	health.Store(&bad)
	if code, body, _ := get("GET", "/healthz"); code != 503 || body != "unhealthy: modem: the modem has not answered for over 90s\n" {
		t.Errorf("GET /healthz unhealthy: %d %q", code, body)
	}
	if code, _, _ := get("HEAD", "/healthz"); code != 503 {
		t.Errorf("HEAD /healthz unhealthy: %d", code)
	}
	if code, _, _ := get("POST", "/metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", code)
	}
	if code, _, _ := get("GET", "/"); code != 404 {
		t.Errorf("GET /: %d", code)
	}
}

func TestServerServesAndStops(t *testing.T) {
	r := NewRegistry()
	r.Counter("s_total").Add(3)
	srv, err := Listen("127.0.0.1:0", Handler(r, func() error { return nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(srv.Addr().String(), http.NotFoundHandler(), nil); err == nil {
		t.Errorf("a second Listen on %s succeeded", srv.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(body), "s_total 3\n") {
		t.Errorf("scrape: %v %q", err, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr().String() + "/metrics"); err == nil {
		t.Errorf("still serving after stop")
	}
}
