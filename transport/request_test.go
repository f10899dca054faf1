package transport

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

func fixedID() string { return "gen-1" }

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("a", 161)
	tests := []struct {
		name    string
		channel string
		body    string
		want    Request
		wantErr string // substring; empty means success
	}{
		{"text with id", "sms", `{"id":"r1","payload":"reboot"}`,
			Request{ID: "r1", Channel: "sms", To: "000", Payload: []byte("reboot")}, ""},
		{"generated id", "sms", `{"payload":"hi"}`,
			Request{ID: "gen-1", Channel: "sms", To: "000", Payload: []byte("hi")}, ""},
		{"empty id is missing", "sms", `{"id":"","payload":"hi"}`,
			Request{ID: "gen-1", Channel: "sms", To: "000", Payload: []byte("hi")}, ""},
		{"null id is missing", "sms", `{"id":null,"payload":"hi"}`,
			Request{ID: "gen-1", Channel: "sms", To: "000", Payload: []byte("hi")}, ""},
		{"explicit text", "sms", `{"id":"r","payload":"x","encoding":"text"}`,
			Request{ID: "r", Channel: "sms", To: "000", Payload: []byte("x")}, ""},
		{"base64 binary", "sms", `{"id":"r","payload":"AP8K","encoding":"base64"}`,
			Request{ID: "r", Channel: "sms", To: "000", Payload: []byte{0, 0xff, '\n'}, Binary: true}, ""},
		{"base64 without padding", "ip", `{"id":"r","payload":"AP8","encoding":"base64"}`,
			Request{ID: "r", Channel: "ip", Payload: []byte{0, 0xff}, Binary: true}, ""},
		{"to", "sms", `{"id":"r","payload":"x","to":"+447700900123"}`,
			Request{ID: "r", Channel: "sms", To: "+447700900123", Payload: []byte("x")}, ""},
		{"emoji ucs2", "sms", `{"id":"r","payload":"hi \ud83d\ude00"}`,
			Request{ID: "r", Channel: "sms", To: "000", Payload: []byte("hi 😀")}, ""},
		{"ip text", "ip", `{"id":"r","payload":"ping"}`,
			Request{ID: "r", Channel: "ip", Payload: []byte("ping")}, ""},
		{"160 gsm7 fits", "sms", `{"id":"r","payload":"` + long[:160] + `"}`,
			Request{ID: "r", Channel: "sms", To: "000", Payload: []byte(long[:160])}, ""},

		{"not json", "sms", `reboot`, Request{ID: "gen-1", Channel: "sms"}, "must be a JSON object"},
		{"truncated", "sms", `{"id":"r","payload":"x"`, Request{ID: "gen-1", Channel: "sms"}, "malformed JSON"},
		{"array", "sms", `["x"]`, Request{ID: "gen-1", Channel: "sms"}, "must be a JSON object"},
		{"empty", "sms", ``, Request{ID: "gen-1", Channel: "sms"}, "empty"},
		{"trailing data", "sms", `{"payload":"x"} {}`, Request{ID: "gen-1", Channel: "sms"}, "malformed JSON"},
		{"not utf8", "sms", "{\"payload\":\"\xff\"}", Request{ID: "gen-1", Channel: "sms"}, "not UTF-8"},
		{"id number", "sms", `{"id":7,"payload":"x"}`, Request{ID: "gen-1", Channel: "sms"}, "id must be a string"},
		{"id too long", "sms", `{"id":"` + strings.Repeat("i", 129) + `","payload":"x"}`, Request{ID: "gen-1", Channel: "sms"}, "longer than 128"},
		{"id control", "sms", `{"id":"a\nb","payload":"x"}`, Request{ID: "gen-1", Channel: "sms"}, "control"},
		{"missing payload", "sms", `{"id":"r"}`, Request{ID: "r", Channel: "sms"}, "payload is missing"},
		{"payload number", "sms", `{"id":"r","payload":5}`, Request{ID: "r", Channel: "sms"}, "payload must be a string"},
		{"unknown encoding", "sms", `{"id":"r","payload":"x","encoding":"hex"}`, Request{ID: "r", Channel: "sms"}, `unknown encoding "hex"`},
		{"bad base64", "ip", `{"id":"r","payload":"!!","encoding":"base64"}`, Request{ID: "r", Channel: "ip"}, "not valid base64"},
		{"unknown field", "sms", `{"id":"r","paylod":"x"}`, Request{ID: "r", Channel: "sms"}, `unknown field "paylod"`},
		{"to on ip", "ip", `{"id":"r","payload":"x","to":"000"}`, Request{ID: "r", Channel: "ip"}, "ip.cloud"},
		{"bad to", "sms", `{"id":"r","payload":"x","to":"12ab"}`, Request{ID: "r", Channel: "sms", Payload: []byte("x")}, "digits"},
		{"161 gsm7", "sms", `{"id":"r","payload":"` + long + `"}`, Request{ID: "r", Channel: "sms", To: "000", Payload: []byte(long)}, "at most 160"},
		{"71 ucs2", "sms", `{"id":"r","payload":"` + strings.Repeat("ж", 71) + `"}`, Request{ID: "r", Channel: "sms", To: "000", Payload: []byte(strings.Repeat("ж", 71))}, "at most 70"},
		{"141 binary", "sms", `{"id":"r","payload":"` + b64(141) + `","encoding":"base64"}`, Request{ID: "r", Channel: "sms", To: "000", Payload: make([]byte, 141), Binary: true}, "at most 140"},
		{"1301 udp", "ip", `{"id":"r","payload":"` + b64(1301) + `","encoding":"base64"}`, Request{ID: "r", Channel: "ip", Payload: make([]byte, 1301), Binary: true}, "at most 1300"},
		{"empty text payload", "sms", `{"id":"r","payload":""}`, Request{ID: "r", Channel: "sms", Payload: []byte{}}, "payload is empty"},
		{"empty base64 payload", "sms", `{"id":"r","payload":"","encoding":"base64"}`, Request{ID: "r", Channel: "sms", Payload: []byte{}, Binary: true}, "payload is empty"},
		{"empty ip payload", "ip", `{"id":"r","payload":""}`, Request{ID: "r", Channel: "ip", Payload: []byte{}}, "payload is empty"},
		{"oversize request", "ip", `{"payload":"` + strings.Repeat("x", MaxRequestBytes) + `"}`, Request{ID: "gen-1", Channel: "ip"}, "bytes, at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.channel, []byte(tt.body), fixedID)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func b64(n int) string {
	// n zero bytes in base64: every 3 bytes are "AAAA".
	s := strings.Repeat("AAAA", n/3)
	switch n % 3 {
	case 1:
		s += "AA=="
	case 2:
		s += "AAA="
	}
	return s
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":"r1","payload":"reboot"}`,
		`{"payload":"AP8K","encoding":"base64","to":"+4477"}`,
		`{"id":7}`, `[]`, `null`, `{"id":"x","payload":"\ud83d"}`, "", "{\"payload\":\"\xff\"}",
		`{"payload":"x","encoding":"hex"}`, `{"id":"` + strings.Repeat("é", 200) + `"}`,
	} {
		f.Add("sms", []byte(s))
		f.Add("ip", []byte(s))
	}
	f.Fuzz(func(t *testing.T, channel string, body []byte) {
		req, err := parseRequest(channel, body, fixedID)
		if req.ID == "" {
			t.Fatalf("no id (err %v)", err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if utf8.RuneCountInString(req.ID) > MaxIDLength {
			t.Fatalf("accepted id of %d characters", utf8.RuneCountInString(req.ID))
		}
		switch channel {
		case gw.ChannelSMS:
			if _, err := gw.CheckSMS(req.Payload, req.Binary); err != nil {
				t.Fatalf("accepted SMS that does not fit: %v", err)
			}
			if req.To == "" {
				t.Fatal("accepted SMS with no destination")
			}
		case gw.ChannelIP:
			if err := gw.CheckUDP(req.Payload); err != nil {
				t.Fatalf("accepted datagram that does not fit: %v", err)
			}
		default:
			t.Fatalf("accepted a request on channel %q", channel)
		}
	})
}
