package transport

import (
	"context"
	"strconv"
	"testing"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

// sendSMSRequest queues an SMS request and completes it as sent with ref.
func sendSMSRequest(t *testing.T, q *Queue, id string, ref int) {
	t.Helper()
	ctx := context.Background()
	if err := q.admit(ctx, []*admit{{Req: Request{ID: id, Channel: gw.ChannelSMS, To: "000", Payload: []byte(id)}}}); err != nil {
		t.Fatal(err)
	}
	sr, ok, err := q.headRequest(outSMS)
	if err != nil || !ok {
		t.Fatalf("headRequest = %v, %v", ok, err)
	}
	if err := q.complete(ctx, outSMS, sr, Result{ID: id, Channel: gw.ChannelSMS, Status: StatusSent, Reference: &ref}); err != nil {
		t.Fatal(err)
	}
}

func results(t *testing.T, q *Queue) []Result {
	t.Helper()
	rs, err := q.headResults(100)
	if err != nil {
		t.Fatal(err)
	}
	var out []Result
	for _, r := range rs {
		if r.err != nil {
			t.Fatal(r.err)
		}
		out = append(out, r.res)
	}
	return out
}

// A delivery report becomes a second result for the request whose SMS had
// its reference, across a restart; a reference reused by a newer SMS names
// the newer request; a report nobody waits for adds nothing.
func TestQueueDeliveryReports(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(StoreConfig{Dir: dir, MaxMessages: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sendSMSRequest(t, q, "ok", 7)
	sendSMSRequest(t, q, "old", 9)
	sendSMSRequest(t, q, "new", 9) // the module's reference counter went round
	sendSMSRequest(t, q, "bad", 10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTestQueue(t, dir, 10)
	ctx := context.Background()
	for _, rep := range []gw.DeliveryReport{
		{Reference: 7, Delivered: true},
		{Reference: 9, Delivered: true},
		{Reference: 10, Status: 0x46, Error: "TP-ST 0x46: validity period expired"},
		{Reference: 7, Delivered: true}, // a repeated report: already reported
		{Reference: 200, Delivered: true},
	} {
		if err := q.PutReport(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n int) *int { return &n }
	want := []Result{
		{ID: "ok", Channel: gw.ChannelSMS, Status: StatusSent, Reference: p(7)},
		{ID: "old", Channel: gw.ChannelSMS, Status: StatusSent, Reference: p(9)},
		{ID: "new", Channel: gw.ChannelSMS, Status: StatusSent, Reference: p(9)},
		{ID: "bad", Channel: gw.ChannelSMS, Status: StatusSent, Reference: p(10)},
		{ID: "ok", Channel: gw.ChannelSMS, Status: StatusDelivered, Reference: p(7), Report: true},
		{ID: "new", Channel: gw.ChannelSMS, Status: StatusDelivered, Reference: p(9), Report: true},
		{ID: "bad", Channel: gw.ChannelSMS, Status: StatusFailed, Reference: p(10), Error: "TP-ST 0x46: validity period expired", Report: true},
	}
	if diff := cmp.Diff(want, results(t, q)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	for _, r := range want[4:] {
		b, err := renderResult(r)
		if err != nil {
			t.Fatal(err)
		}
		wantJSON := `{"id":"` + r.ID + `","status":"` + r.Status + `","reference":` + strconv.Itoa(*r.Reference)
		if r.Error != "" {
			wantJSON += `,"error":"` + r.Error + `"`
		}
		if string(b) != wantJSON+"}" {
			t.Errorf("rendered %s, want %s}", b, wantJSON)
		}
	}
}
