package transport

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, b)
	}
	return m
}

func TestRenderInbound(t *testing.T) {
	sent := time.Date(2025, 3, 1, 11, 59, 58, 0, time.FixedZone("CET", 3600))
	recv := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		in    gw.Inbound
		topic string
		want  map[string]any
	}{
		{"sms text", gw.Inbound{ID: "sms-1", Channel: "sms", From: "000", Payload: []byte("hi 😀"), Parts: 2, SentAt: sent, ReceivedAt: recv},
			TopicSMSIn, map[string]any{"id": "sms-1", "channel": "sms", "from": "000", "payload": "hi 😀", "encoding": "text",
				"parts": 2.0, "sent_at": "2025-03-01T10:59:58Z", "received_at": "2025-03-01T12:00:00Z"}},
		{"sms binary partial", gw.Inbound{ID: "sms-2", Channel: "sms", From: "000", Payload: []byte{0, 1, 0xff}, Binary: true, Parts: 2, Partial: true, SentAt: sent, ReceivedAt: recv},
			TopicSMSIn, map[string]any{"id": "sms-2", "channel": "sms", "from": "000", "payload": "AAH/", "encoding": "base64",
				"parts": 2.0, "partial": true, "sent_at": "2025-03-01T10:59:58Z", "received_at": "2025-03-01T12:00:00Z"}},
		{"sms parts defaults to 1", gw.Inbound{ID: "sms-3", Channel: "sms", From: "000", Payload: []byte("x"), SentAt: sent, ReceivedAt: recv},
			TopicSMSIn, map[string]any{"id": "sms-3", "channel": "sms", "from": "000", "payload": "x", "encoding": "text",
				"parts": 1.0, "sent_at": "2025-03-01T10:59:58Z", "received_at": "2025-03-01T12:00:00Z"}},
		{"ip binary", gw.Inbound{ID: "ip-1", Channel: "ip", From: "100.64.0.1:6969", Port: 6969, Payload: []byte("\r\n\x00"), Binary: true, ReceivedAt: recv},
			TopicIPIn, map[string]any{"id": "ip-1", "channel": "ip", "from": "100.64.0.1:6969", "port": 6969.0, "payload": "DQoA", "encoding": "base64",
				"received_at": "2025-03-01T12:00:00Z"}},
		{"undecodable sms", gw.Inbound{ID: "sms-4", Channel: "sms", Payload: []byte{0, 0xc0, 0xff, 0xee}, Binary: true, Parts: 1, ReceivedAt: recv, Undecodable: "decode TPDU: underflow"},
			TopicSMSUndecodable, map[string]any{"id": "sms-4", "type": "sms_undecodable", "channel": "sms", "pdu": "AMD/7g==",
				"error": "decode TPDU: underflow", "received_at": "2025-03-01T12:00:00Z"}},
		{"invalid utf8 text goes out as base64", gw.Inbound{ID: "ip-2", Channel: "ip", From: "1.2.3.4:5", Port: 1, Payload: []byte{0xff, 'a'}, ReceivedAt: recv},
			TopicIPIn, map[string]any{"id": "ip-2", "channel": "ip", "from": "1.2.3.4:5", "port": 1.0, "payload": "/2E=", "encoding": "base64",
				"received_at": "2025-03-01T12:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := renderInbound(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, decodeMap(t, b)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
			if got := inboundTopic(tt.in); got != tt.topic {
				t.Errorf("topic %q, want %q", got, tt.topic)
			}
		})
	}
	if _, err := renderInbound(gw.Inbound{ID: "x", Channel: "fax"}); err == nil {
		t.Error("unknown channel rendered without error")
	}
}

func TestRenderResult(t *testing.T) {
	ref := 0
	tests := []struct {
		name string
		in   Result
		want string
	}{
		{"sms sent", Result{ID: "a", Channel: "sms", Status: StatusSent, Reference: &ref}, `{"id":"a","status":"sent","reference":0}`},
		{"sms failed", Result{ID: "a", Channel: "sms", Status: StatusFailed, Error: "queue full"}, `{"id":"a","status":"failed","error":"queue full"}`},
		{"ip sent has no reference", Result{ID: "b", Channel: "ip", Status: StatusSent, Reference: &ref}, `{"id":"b","status":"sent"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := renderResult(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(b)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderEvent(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := gw.Event{Type: "request_rejected", Message: "bad", Time: at, Fields: map[string]any{
		"id": "r1", "type": "overridden?", "ch": make(chan int), "n": 3,
	}}
	want := map[string]any{"type": "request_rejected", "message": "bad", "time": "2025-03-01T12:00:00Z", "id": "r1", "n": 3.0}
	got := decodeMap(t, renderEvent(ev))
	ch, ok := got["ch"].(string)
	if !ok || ch == "" {
		t.Errorf("unmarshalable field = %v, want it as text", got["ch"])
	}
	delete(got, "ch")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestRenderStatus(t *testing.T) {
	dbm := -71
	st := gw.Status{
		Modem:   gw.ModemInfo{Manufacturer: "Quectel", Model: "BG96", Revision: "R1", IMEI: "860000000000001"},
		SIM:     gw.SIMInfo{ICCID: "89883070000000000001", IMSI: "732000000000001"},
		Network: gw.NetworkInfo{Registration: "roaming", Operator: "Op", Technology: "lte", SignalDBm: &dbm},
		Ready:   true,
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	full, key, err := renderStatus("1.2.3", st, QueueStats{Inbound: 2, OutboundSMS: 1, Results: 1, Segments: 4}, at)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"online": true, "version": "1.2.3", "ready": true,
		"modem":      map[string]any{"manufacturer": "Quectel", "model": "BG96", "revision": "R1", "imei": "860000000000001"},
		"sim":        map[string]any{"iccid": "89883070000000000001", "imsi": "732000000000001"},
		"network":    map[string]any{"registration": "roaming", "operator": "Op", "technology": "lte", "signal_dbm": -71.0},
		"data":       map[string]any{"mode": ""},
		"recovery":   map[string]any{"probes": 0.0, "reinits": 0.0, "resets": 0.0, "reopens": 0.0},
		"queue":      map[string]any{"pending": 4.0, "inbound": 2.0, "outbound": 1.0, "results": 1.0, "segments": 4.0},
		"updated_at": "2025-03-01T12:00:00Z",
	}
	if diff := cmp.Diff(want, decodeMap(t, full)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
	_, key2, err := renderStatus("1.2.3", st, QueueStats{Inbound: 9}, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != string(key2) {
		t.Errorf("change key moved with the queue or the clock:\n%s\n%s", key, key2)
	}
	st.Network.Registration = "searching"
	_, key3, err := renderStatus("1.2.3", st, QueueStats{}, at)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) == string(key3) {
		t.Error("change key did not move with the registration")
	}
}

// FuzzDecodeStored feeds arbitrary bytes to the decoders of stored records:
// a damaged store must produce errors, never a panic or a record that fails
// to render.
func FuzzDecodeStored(f *testing.F) {
	good, err := encodeInbound(sms(1))
	if err != nil {
		f.Fatal(err)
	}
	seg, err := encodeSegment(gw.Segment{Key: "000/1/2", Seq: 1, Total: 2, TPDU: []byte{1, 2}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{good, seg,
		[]byte(`{"id":"a","channel":"sms","to":"000","payload":"eA=="}`),
		[]byte(`{"id":"a","channel":"ip","status":"sent","reference":3}`),
		[]byte(`{"id":"","channel":"sms"}`), []byte(`{"channel":"ip","payload":"!!"}`),
		[]byte("{"), nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeInbound(b); err == nil {
			if _, err := renderInbound(m); err != nil {
				t.Fatalf("decoded message does not render: %v", err)
			}
		}
		if s, err := decodeSegment(b); err == nil && checkSegment(s) != nil {
			t.Fatal("decoded segment fails its own check")
		}
		if r, err := decodeRequest(b); err == nil && (r.ID == "" || (r.Channel != gw.ChannelSMS && r.Channel != gw.ChannelIP)) {
			t.Fatalf("decoded request without id or channel: %+v", r)
		}
		if r, err := decodeResult(b); err == nil {
			if _, err := renderResult(r); err != nil {
				t.Fatalf("decoded result does not render: %v", err)
			}
		}
	})
}
