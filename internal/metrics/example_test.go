package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/metrics"
)

// A program registers its series, updates the counters it owns, and lets
// gauges be read when scraped; Handler serves them with its health probe.
func Example() {
	reg := metrics.NewRegistry()
	reg.Counter("simgate_messages_in_total", "channel", "sms").Inc()
	queued := 3
	reg.GaugeFunc("simgate_queue_depth", func() float64 { return float64(queued) })
	h := metrics.Handler(reg, func() error { return errors.New("modem not ready") })

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "simgate_") {
			fmt.Println(line)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// simgate_messages_in_total{channel="sms"} 1
	// simgate_queue_depth 3
	// 503 unhealthy: modem not ready
}

// The cloud bridge records its API calls and webhooks, and serves them on
// http.listen next to its own health probe.
func Example_cloudBridge() {
	reg := metrics.NewRegistry()
	reg.APICall("SmsCommands", "POST", 201, 180*time.Millisecond)
	reg.Webhook("sms", "published")
	var queued int
	reg.GaugeFunc("simgate_cloud_queue_depth", func() float64 { return float64(queued) })

	healthy := func() error { return nil } // e.g. the API answered recently
	srv, err := metrics.Listen("127.0.0.1:0", metrics.Handler(reg, healthy), slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "simgate_cloud_") && !strings.Contains(line, "_bucket") {
			fmt.Println(line)
		}
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Println(err)
	}
	// Output:
	// simgate_cloud_api_calls_total{resource="SmsCommands",method="POST",code="201"} 1
	// simgate_cloud_api_seconds_sum{resource="SmsCommands"} 0.18
	// simgate_cloud_api_seconds_count{resource="SmsCommands"} 1
	// simgate_cloud_webhooks_total{kind="sms",outcome="published"} 1
	// simgate_cloud_queue_depth 0
}
