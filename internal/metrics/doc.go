// Package metrics serves what an operator looks at over HTTP: GET /metrics
// in the Prometheus text exposition format and GET /healthz (200, or 503
// with the reason).
//
// It knows nothing of modems, brokers or the Super SIM API. A program makes
// a Registry, registers its series (counters and histograms it updates,
// counters and gauges read at scrape time from counters it already keeps),
// and serves Handler on a Server:
//
//	reg := metrics.NewRegistry()
//	reg.Counter("simgate_cloud_webhooks_total", "kind", "sms", "outcome", "published").Inc()
//	reg.GaugeFunc("simgate_queue_depth", func() float64 { return float64(q.Len()) })
//	srv, err := metrics.Listen("127.0.0.1:9369", metrics.Handler(reg, healthy), log)
//	...
//	err = srv.Serve(ctx) // until ctx ends
//
// The series are written by github.com/VictoriaMetrics/metrics, chosen over
// the Prometheus client library because it adds about 64 KiB to the
// stripped armv6 binary where the Prometheus client adds about 2 MiB (see
// the README's "Metrics and health").
package metrics
