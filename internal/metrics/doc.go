// Package metrics serves what an operator looks at over HTTP: GET /metrics
// in the Prometheus text exposition format and GET /healthz (200, or 503
// with the reason).
//
// It knows nothing of modems, brokers or the Super SIM API. A program makes
// a Registry, registers its series (counters and histograms it updates,
// counters and gauges read at scrape time from counters it already keeps),
// and serves Handler on a Server (Listen, then Serve until its context
// ends). Example shows a registry and its handler; Example_cloudBridge the
// cloud bridge's series served on a real listener (example_test.go).
//
// The series are written by github.com/VictoriaMetrics/metrics, chosen over
// the Prometheus client library because it adds about 64 KiB to the
// stripped armv6 binary where the Prometheus client adds about 2 MiB (see
// the README's "Metrics and health").
package metrics
