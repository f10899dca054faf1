package gw

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCheckSMS(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		binary  bool
		want    SMSAlphabet
		wantErr string
	}{
		{"ascii", []byte("hello"), false, AlphabetGSM7, ""},
		{"160 septets", []byte(strings.Repeat("a", 160)), false, AlphabetGSM7, ""},
		{"161 septets", []byte(strings.Repeat("a", 161)), false, "", "161 GSM 7-bit"},
		{"extension table counts twice", []byte(strings.Repeat("€", 80)), false, AlphabetGSM7, ""},
		{"extension overflow", []byte(strings.Repeat("€", 80) + "a"), false, "", "161 GSM 7-bit"},
		{"emoji needs ucs2", []byte("hi 😀"), false, AlphabetUCS2, ""},
		{"70 ucs2 units", []byte(strings.Repeat("ж", 70)), false, AlphabetUCS2, ""},
		{"surrogate pairs count twice", []byte(strings.Repeat("😀", 35) + "ж"), false, "", "71 UTF-16"},
		{"invalid utf8", []byte{0xff, 0xfe}, false, "", "not valid UTF-8"},
		{"140 bytes binary", bytes.Repeat([]byte{0}, 140), true, Alphabet8Bit, ""},
		{"141 bytes binary", bytes.Repeat([]byte{0}, 141), true, "", "141 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckSMS(tt.payload, tt.binary)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("CheckSMS() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CheckSMS() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckUDP(t *testing.T) {
	if err := CheckUDP(make([]byte, 1300)); err != nil {
		t.Fatalf("1300 bytes: %v", err)
	}
	if err := CheckUDP(make([]byte, 1301)); err == nil {
		t.Fatal("1301 bytes accepted")
	}
}

func TestMessageID(t *testing.T) {
	sent := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	a := Inbound{Channel: ChannelSMS, From: "000", Payload: []byte("on"), SentAt: sent, ReceivedAt: sent.Add(time.Second)}
	b := a
	b.ReceivedAt = sent.Add(24 * time.Hour) // redelivered a day later
	if MessageID(a) != MessageID(b) {
		t.Errorf("redelivered SMS got a new id: %s vs %s", MessageID(a), MessageID(b))
	}
	c := a
	c.Payload = []byte("off")
	if MessageID(a) == MessageID(c) {
		t.Error("different payloads share an id")
	}
	d := a
	d.SentAt = sent.Add(time.Second)
	if MessageID(a) == MessageID(d) {
		t.Error("different service centre timestamps share an id")
	}
	ip1 := Inbound{Channel: ChannelIP, From: "100.64.0.1:6969", Port: 6969, Payload: []byte{1}, ReceivedAt: sent}
	ip2 := ip1
	ip2.ReceivedAt = sent.Add(time.Nanosecond)
	if MessageID(ip1) == MessageID(ip2) {
		t.Error("two datagrams arriving at different times share an id")
	}
	if !strings.HasPrefix(MessageID(ip1), "ip-") || !strings.HasPrefix(MessageID(a), "sms-") {
		t.Errorf("ids lack channel prefix: %s %s", MessageID(ip1), MessageID(a))
	}
}

func TestIsText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"hello", true},
		{"line 1\r\nline 2\ttab", true},
		{"emoji 😀 and €", true},
		{"\x00\x01\x02", false},
		{"bell\a", false},
		{"\xff\xfe", false},
		{"cut \xe2\x82", false},
		{"del \x7f", false},
		{"c1 \u0085", false},
	} {
		if got := IsText([]byte(tc.in)); got != tc.want {
			t.Errorf("IsText(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
