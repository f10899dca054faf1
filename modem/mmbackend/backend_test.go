package mmbackend

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem"
	"github.com/simgate/simgate/modem/modemtest"
)

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2026, 12, 1, 18, 17, 59, 0, time.UTC)
	for _, s := range []string{"2026-12-01T18:17:59Z", "2026-12-01T18:17:59+00:00", "2026-12-01T20:17:59+02:00", "2026-12-01T20:17:59+02", "2026-12-01T16:17:59-0200"} {
		got, err := ParseTimestamp(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseTimestamp(""); err != nil || !got.IsZero() {
		t.Errorf("empty timestamp = %v, %v; want the zero time", got, err)
	}
	if _, err := ParseTimestamp("yesterday"); err == nil {
		t.Error("ParseTimestamp accepted \"yesterday\"")
	}
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-12-01T18:17:59Z", "2026-12-01T20:17:59+02", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp(s)
		if err == nil && got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) is not in UTC: %v", s, got)
		}
		if err != nil && !got.IsZero() {
			t.Errorf("ParseTimestamp(%q) failed but returned %v", s, got)
		}
	})
}

// readSMS must give the message the id the AT backend gives the same SMS:
// the id is derived from sender, timestamp and content only.
func TestReadSMSMatchesTheATBackend(t *testing.T) {
	sent := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	now := time.Now().UTC()
	text := "héllo 🚀"
	got := readSMS("/org/freedesktop/ModemManager1/SMS/3", map[string]dbus.Variant{
		"Number": dbus.MakeVariant("000"), "Text": dbus.MakeVariant(text), "Timestamp": dbus.MakeVariant("2026-12-01T20:00:00+02:00"),
		"Data": dbus.MakeVariant([]byte{}),
	}, now)
	want := gw.Inbound{Channel: gw.ChannelSMS, From: "000", Payload: []byte(text), Parts: 1, SentAt: sent, ReceivedAt: now}
	want.ID = gw.MessageID(want)
	if got.err != nil || got.m.ID != want.ID || string(got.m.Payload) != text || got.m.Binary || !got.m.SentAt.Equal(sent) {
		t.Errorf("readSMS = %+v (err %v), want %+v", got.m, got.err, want)
	}
	bin := readSMS("/x/SMS/4", map[string]dbus.Variant{"Number": dbus.MakeVariant("000"), "Data": dbus.MakeVariant([]byte{0, 0xff})}, now)
	if !bin.m.Binary || string(bin.m.Payload) != "\x00\xff" {
		t.Errorf("8-bit SMS read as %+v", bin.m)
	}
}

func TestPartsOf(t *testing.T) {
	for _, tt := range []struct {
		payload string
		binary  bool
		want    int
	}{
		{strings.Repeat("a", 160), false, 1},
		{strings.Repeat("a", 161), false, 2},
		{strings.Repeat("a", 307), false, 3},
		{strings.Repeat("€", 80), false, 1}, // 160 septets with escapes: one SMS
		{strings.Repeat("€", 81), false, 2},
		{strings.Repeat("東", 70), false, 1},
		{strings.Repeat("東", 71), false, 2},
		{strings.Repeat("\x00", 140), true, 1},
		{strings.Repeat("\x00", 141), true, 2},
	} {
		if got := partsOf([]byte(tt.payload), tt.binary); got != tt.want {
			t.Errorf("partsOf(%d bytes, binary %t) = %d, want %d", len(tt.payload), tt.binary, got, tt.want)
		}
	}
}

func TestMappings(t *testing.T) {
	if got := technologyName(1<<14 | 1<<5); got != "lte" {
		t.Errorf("LTE+UMTS = %q", got)
	}
	if got := technologyName(1 << 16); got != "lte-m" {
		t.Errorf("LTE Cat-M = %q", got)
	}
	if got := registrationName(5); got != "roaming" {
		t.Errorf("registration 5 = %q", got)
	}
	// 54 % is what ModemManager shows for +CSQ: 17, which is -79 dBm.
	if got := percentToDBm(54); got == nil || *got != -79 {
		t.Errorf("54%% = %v dBm, want -79", got)
	}
}

// A send error from ModemManager reads as the AT backend's: the +CMS code
// with its reason.
func TestMapError(t *testing.T) {
	err := mapError(dbus.Error{Name: "org.freedesktop.ModemManager1.Error.Message.NetworkTimeout", Body: []any{"timeout"}})
	var cms *modem.CMSError
	if !errors.As(err, &cms) || cms.Code != 332 || !strings.Contains(err.Error(), "+CMS ERROR: 332") {
		t.Errorf("mapError = %v, want +CMS ERROR: 332", err)
	}
	other := errors.New("boom")
	if err := mapError(other); !errors.Is(err, other) {
		t.Errorf("mapError lost the cause: %v", err)
	}
	if !gone(dbus.Error{Name: "org.freedesktop.DBus.Error.ServiceUnknown"}) || gone(other) {
		t.Error("gone misjudges ServiceUnknown or a plain error")
	}
}

// Sends are refused before ModemManager is asked when the payload cannot
// be one SMS or no modem is there, with the AT backend's errors.
func TestSendRefusals(t *testing.T) {
	b := New(Config{SMS: true}, modemtest.NewMemorySink())
	if _, err := b.SendSMS(context.Background(), "", make([]byte, 141), true); err == nil || !strings.Contains(err.Error(), "at most 140") {
		t.Errorf("oversized send: %v", err)
	}
	if _, err := b.SendSMS(context.Background(), "", []byte("hi"), false); !errors.Is(err, modem.ErrNotReady) {
		t.Errorf("send without a modem: %v, want ErrNotReady", err)
	}
	if err := b.SendUDP(context.Background(), []byte("x")); err == nil || !strings.Contains(err.Error(), "ip.mode os") {
		t.Errorf("SendUDP: %v", err)
	}
	off := New(Config{}, modemtest.NewMemorySink())
	if _, err := off.SendSMS(context.Background(), "", []byte("hi"), false); !errors.Is(err, modem.ErrSMSDisabled) {
		t.Errorf("send with SMS disabled: %v", err)
	}
}

// A bus that cannot be reached leaves the backend not ready and, after
// GoneLimit, unhealthy; Run keeps retrying until its context ends.
func TestNoBus(t *testing.T) {
	b := New(Config{GoneLimit: time.Millisecond, Connect: func() (*dbus.Conn, error) { return nil, errors.New("no bus here") }}, modemtest.NewMemorySink())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for b.Status().Recovery.LastError == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := b.Status(); st.Ready || !strings.Contains(st.Recovery.LastError, "no bus here") {
		t.Errorf("status %+v, want not ready with the reason", st)
	}
	if err := b.Healthy(); err == nil {
		t.Error("Healthy is nil with no bus past GoneLimit")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}
