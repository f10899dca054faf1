package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu      sync.Mutex
	pubacks map[string]int
	calls   []string // "channel ok|failed"
	events  map[string]int
}

func (o *recorder) observer() Observer {
	return Observer{
		Puback: func(outbox string, d time.Duration) {
			o.mu.Lock()
			defer o.mu.Unlock()
			if d <= 0 {
				outbox += " (no duration)"
			}
			o.pubacks[outbox]++
		},
		DeviceCall: func(channel string, d time.Duration, err error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			res := "ok"
			if err != nil {
				res = "failed"
			}
			o.calls = append(o.calls, channel+" "+res)
		},
		Event: func(typ string) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.events[typ]++
		},
	}
}

func (o *recorder) snapshot() (map[string]int, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := map[string]int{}
	for k, v := range o.pubacks {
		p[k] = v
	}
	return p, append([]string(nil), o.calls...)
}

// The per-channel counters and the observer see exactly the traffic that
// went through: messages in by channel, requests by outcome, device calls
// by result, one PUBACK per message.
func TestRelayChannelStatsAndObserver(t *testing.T) {
	addr := freeAddr(t)
	obs := new(observer)
	embeddedBroker(t, addr, obs)
	q := openTestQueue(t, t.TempDir(), 1000)
	ctx := context.Background()
	for i := range 5 {
		if err := q.Put(ctx, sms(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := q.Put(ctx, udp(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	ages, err := q.Ages()
	if err != nil {
		t.Fatal(err)
	}
	if want := (QueueAges{Inbound: sms(0).ReceivedAt}); !ages.Inbound.Equal(want.Inbound) || !ages.OutboundSMS.IsZero() || !ages.OutboundIP.IsZero() {
		t.Errorf("Ages() = %+v, want inbound %v and no requests", ages, want.Inbound)
	}

	rec := &recorder{pubacks: map[string]int{}, events: map[string]int{}}
	cfg := testRelayConfig("tcp://" + addr)
	cfg.Observer = rec.observer()
	dev := newFakeDevice()
	r := newTestRelay(t, cfg, q, dev)
	runRelay(t, r)
	eventually(t, "8 messages in", func() bool { return len(obs.on(TopicSMSIn))+len(obs.on(TopicIPIn)) >= 8 })
	eventually(t, "counters", func() bool { return r.Channel(gw.ChannelSMS).In == 5 && r.Channel(gw.ChannelIP).In == 3 })

	pub := publisher(t, "tcp://"+addr)
	publish(t, pub, TopicSMSOut, `{"id":"a","payload":"one"}`)
	publish(t, pub, TopicSMSOut, `{"id":"a","payload":"one"}`) // duplicate
	publish(t, pub, TopicSMSOut, `{"id":"b","payload":"`+strings.Repeat("x", 161)+`"}`)
	publish(t, pub, TopicIPOut, `{"id":"c","payload":"AAE=","encoding":"base64"}`)
	obs.wait(t, TopicSMSOutResult, 2)
	obs.wait(t, TopicIPOutResult, 1)
	dev.mu.Lock()
	dev.err = errors.New("modem says no")
	dev.mu.Unlock()
	publish(t, pub, TopicIPOut, `{"id":"d","payload":"x"}`)
	obs.wait(t, TopicIPOutResult, 2)
	eventually(t, "results acknowledged", func() bool { return r.Stats().Results == 4 })

	gotSMS, gotIP := r.Channel(gw.ChannelSMS), r.Channel(gw.ChannelIP)
	if gotSMS.LastIn.IsZero() || !gotSMS.LastIn.Equal(sms(4).ReceivedAt) || gotSMS.LastOut.IsZero() || gotIP.LastOut.IsZero() {
		t.Errorf("last times: sms in %v (want %v) out %v, ip out %v", gotSMS.LastIn, sms(4).ReceivedAt, gotSMS.LastOut, gotIP.LastOut)
	}
	gotSMS.LastIn, gotSMS.LastOut, gotIP.LastIn, gotIP.LastOut = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if diff := cmp.Diff(ChannelStats{In: 5, Queued: 1, Duplicates: 1, Rejected: 1, Sent: 1}, gotSMS); diff != "" {
		t.Errorf("sms counters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ChannelStats{In: 3, Queued: 2, Sent: 1, Failed: 1}, gotIP); diff != "" {
		t.Errorf("ip counters (-want +got):\n%s", diff)
	}
	if r.Channel("fax") != (ChannelStats{}) {
		t.Errorf("an unknown channel has counters")
	}
	pubacks, calls := rec.snapshot()
	// Events are published too (request_duplicate, request_rejected), so
	// only inbound and results are counted exactly.
	if pubacks["inbound"] != 8 || pubacks["results"] != 4 {
		t.Errorf("PUBACKs observed %v, want 8 inbound and 4 results with durations", pubacks)
	}
	if diff := cmp.Diff([]string{"sms ok", "ip ok", "ip failed"}, sortedCalls(calls)); diff != "" {
		t.Errorf("device calls (-want +got):\n%s", diff)
	}
	rec.mu.Lock()
	events := rec.events
	rec.mu.Unlock()
	if diff := cmp.Diff(map[string]int{"request_duplicate": 1, "request_rejected": 1}, events); diff != "" {
		t.Errorf("events observed (-want +got):\n%s", diff)
	}
}

// sortedCalls orders the SMS call first: the two channels send
// concurrently, each in order.
func sortedCalls(c []string) []string {
	var sms, ip []string
	for _, s := range c {
		if strings.HasPrefix(s, "sms") {
			sms = append(sms, s)
		} else {
			ip = append(ip, s)
		}
	}
	return append(sms, ip...)
}

func TestQueueAgesOfRequests(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 100)
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	items := []*admit{
		{Req: Request{ID: "r1", Channel: gw.ChannelIP, Payload: []byte("x"), ReceivedAt: at}},
		{Req: Request{ID: "r2", Channel: gw.ChannelIP, Payload: []byte("y"), ReceivedAt: at.Add(time.Minute)}},
		{Req: Request{ID: "r3", Channel: gw.ChannelSMS, To: "000", Payload: []byte("z"), ReceivedAt: at.Add(2 * time.Minute)}},
	}
	if err := q.admit(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	a, err := q.Ages()
	if err != nil {
		t.Fatal(err)
	}
	if !a.Inbound.IsZero() || !a.OutboundIP.Equal(at) || !a.OutboundSMS.Equal(at.Add(2*time.Minute)) {
		t.Errorf("Ages() = %+v", a)
	}
}
