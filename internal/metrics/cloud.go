package metrics

import (
	"strconv"
	"time"
)

// Buckets of the latency histograms, in seconds: from a PUBACK on loopback
// (sub-millisecond) to an SMS on a poor network (up to two minutes).
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// The series of `simgate cloud`, declared here so both binaries name them
// the same way and the README lists them once.
const (
	// CloudAPICalls counts Super SIM API requests by resource (SmsCommands,
	// IpCommands, Sims, ...), method and HTTP status code ("error" when no
	// answer came).
	CloudAPICalls = "simgate_cloud_api_calls_total"
	// CloudAPISeconds is the latency of those requests by resource.
	CloudAPISeconds = "simgate_cloud_api_seconds"
	// CloudWebhooks counts webhooks and status callbacks received by kind
	// (sms, ip, status) and outcome (published, bad_signature, rejected,
	// error).
	CloudWebhooks = "simgate_cloud_webhooks_total"
)

// APICall records one Super SIM API request of the cloud bridge. code is the
// HTTP status, or 0 when no answer came (a network error or timeout).
func (r *Registry) APICall(resource, method string, code int, d time.Duration) {
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	r.Counter(CloudAPICalls, "resource", resource, "method", method, "code", c).Inc()
	ObserveDuration(r.Histogram(CloudAPISeconds, LatencyBuckets, "resource", resource), d)
}

// Webhook records one webhook or status callback the cloud bridge received.
func (r *Registry) Webhook(kind, outcome string) {
	r.Counter(CloudWebhooks, "kind", kind, "outcome", outcome).Inc()
}
