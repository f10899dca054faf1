package cloud

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// The examples of KORE's "Validate Webhook Signatures" page.
func TestKoreSignatureDocumentedExamples(t *testing.T) {
	for _, tt := range []struct{ secret, want string }{
		{"12345", "f562d3959f68b5a30fc7a63f8bbf40987f633575f4231ffceb4f76dd154ea3ce"},
		{"secret12345", "4fdba0cb1394cc8d17b8dabb04634aa9a951021a7b161f9c7a2186cd490b18b2"},
	} {
		if got := KoreSignature(tt.secret, "POST", "https://testendpoint.com", []byte("field1=value1&field2=value2")); got != tt.want {
			t.Errorf("secret %q: %s, want %s", tt.secret, got, tt.want)
		}
	}
	// Query and fragment are not signed.
	a := KoreSignature("s", "POST", "https://e.com/cb?id=1&sim=2#cbs=kore", []byte("x"))
	if b := KoreSignature("s", "POST", "https://e.com/cb", []byte("x")); a != b {
		t.Error("query or fragment changed the signature")
	}
}

func TestKoreVerifier(t *testing.T) {
	v := NewKoreVerifier("sekrit")
	u := "https://bridge.example/callbacks/sms?id=r1&sim=898"
	body := []byte("Sid=HC1&Status=sent")
	good := KoreSignature("sekrit", "POST", u, body)
	for name, tt := range map[string]struct {
		sig  string
		body []byte
		ok   bool
	}{
		"good":       {good, body, true},
		"upper hex":  {strings.ToUpper(good), body, true},
		"missing":    {"", body, false},
		"other body": {good, []byte("Sid=HC1&Status=delivered"), false},
		"garbage":    {"zz", body, false},
	} {
		h := http.Header{}
		if tt.sig != "" {
			h.Set("kore-signature", tt.sig)
		}
		err := v.Verify("POST", u, h, tt.body, nil)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tt.ok)
		}
	}
	if err := NewKoreVerifier("").Verify("POST", u, http.Header{"Kore-Signature": {""}}, body, nil); err != nil {
		t.Errorf("no secret configured: %v, want accepted", err)
	}
}

func TestTwilioVerifier(t *testing.T) {
	v := NewTwilioVerifier("authtoken")
	u := "https://bridge.example/webhooks/ip"
	form := url.Values{"Sid": {"HG1"}, "Payload": {"aGk="}, "SimSid": {"HS1"}}
	h := http.Header{}
	h.Set(HeaderTwilioSignature, signTwilio("authtoken", u, form))
	if err := v.Verify("POST", u, h, []byte(form.Encode()), nil); err != nil {
		t.Errorf("genuine: %v", err)
	}
	form.Set("Payload", "ZXZpbA==")
	if err := v.Verify("POST", u, h, []byte(form.Encode()), nil); err == nil {
		t.Error("altered body accepted")
	}
	if err := v.Verify("POST", u, http.Header{}, []byte(form.Encode()), nil); err == nil {
		t.Error("missing signature accepted")
	}
	// GET: the parameters are in the signed URL.
	gu := u + "?Sid=HG1&Status=sent"
	h.Set(HeaderTwilioSignature, signTwilio("authtoken", gu, nil))
	if err := v.Verify("GET", gu, h, nil, nil); err != nil {
		t.Errorf("genuine GET: %v", err)
	}
}

func TestParseRequest(t *testing.T) {
	gen := func() string { return "gen" }
	tests := []struct {
		name, channel, body string
		want                Request
		err                 string
	}{
		{"sms", "sms", `{"id":"a","payload":"hi"}`, Request{ID: "a", Channel: "sms", Sim: "S", Payload: "hi"}, ""},
		{"sms no id", "sms", `{"payload":"hi"}`, Request{ID: "gen", Channel: "sms", Sim: "S", Payload: "hi"}, ""},
		{"sms 160", "sms", `{"payload":"` + strings.Repeat("é", 160) + `"}`, Request{ID: "gen", Channel: "sms", Sim: "S", Payload: strings.Repeat("é", 160)}, ""},
		{"sms 161", "sms", `{"id":"x","payload":"` + strings.Repeat("a", 161) + `"}`, Request{ID: "x", Channel: "sms", Sim: "S", Payload: strings.Repeat("a", 161)}, "161 characters"},
		{"sms encoding", "sms", `{"id":"x","payload":"a","encoding":"text"}`, Request{ID: "x", Channel: "sms", Sim: "S"}, `unknown field "encoding"`},
		{"ip text", "ip", `{"payload":"on"}`, Request{ID: "gen", Channel: "ip", Sim: "S", Payload: "on", Port: 6969}, ""},
		{"ip base64 port", "ip", `{"payload":"AAE","encoding":"base64","port":4000}`, Request{ID: "gen", Channel: "ip", Sim: "S", Payload: "AAE=", Binary: true, Port: 4000}, ""},
		{"ip 1301", "ip", `{"payload":"` + strings.Repeat("a", 1301) + `"}`, Request{ID: "gen", Channel: "ip", Sim: "S", Payload: strings.Repeat("a", 1301), Port: 6969}, "1301 bytes"},
		{"ip bad port", "ip", `{"payload":"a","port":70000}`, Request{ID: "gen", Channel: "ip", Sim: "S", Payload: "a", Port: 6969}, "port must be"},
		{"ip bad base64", "ip", `{"payload":"!!","encoding":"base64"}`, Request{ID: "gen", Channel: "ip", Sim: "S", Payload: "!!", Port: 6969}, "not base64"},
		{"not json", "sms", `hello`, Request{ID: "gen", Channel: "sms", Sim: "S"}, "JSON object"},
		{"array", "sms", `[1]`, Request{ID: "gen", Channel: "sms", Sim: "S"}, "JSON object"},
		{"no payload", "sms", `{"id":"a"}`, Request{ID: "a", Channel: "sms", Sim: "S"}, "payload is missing"},
		{"id control", "sms", `{"id":"a\u0001","payload":"x"}`, Request{ID: "gen", Channel: "sms", Sim: "S"}, "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.channel, "S", []byte(tt.body), 6969, gen)
			if tt.err == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	for topic, want := range map[string][2]string{
		"supersim/898/sms/to_sim":  {"898", "sms"},
		"supersim/898/ip/to_sim":   {"898", "ip"},
		"supersim/898/ip/from_sim": {},
		"supersim//sms/to_sim":     {},
		"other/898/sms/to_sim":     {},
		"supersim/a/b/sms/to_sim":  {},
	} {
		sim, ch, ok := ParseTopic("supersim", topic)
		if ok != (want[0] != "") || sim != want[0] || ch != want[1] {
			t.Errorf("%s: %q %q %v", topic, sim, ch, ok)
		}
	}
}

func TestParseCallback(t *testing.T) {
	form := url.Values{"CommandSid": {"HC1"}, "SimSid": {"HS1"}, "Status": {"sent"}, "AccountSid": {"AC1"}}
	c, err := ParseCallback("application/x-www-form-urlencoded", []byte(form.Encode()), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Callback{Sid: "HC1", SimSid: "HS1", Status: "sent", Unknown: []string{"AccountSid"}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	c, err = ParseCallback("application/json; charset=utf-8", []byte(`{"sid":"HG1","sim_iccid":"898","payload_type":"binary","payload":"AA==","device_port":6969}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want = Callback{Sid: "HG1", SimIccid: "898", PayloadType: "binary", Payload: "AA==", Unknown: []string{"device_port"}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("json (-want +got):\n%s", diff)
	}
	c, err = ParseCallback("", nil, url.Values{"id": {"r1"}, "sim": {"898"}, "Sid": {"HC2"}, "Status": {"delivered"}})
	if err != nil || c.Sid != "HC2" || c.Status != "delivered" || len(c.Unknown) != 0 {
		t.Errorf("GET: %+v %v", c, err)
	}
	if _, err := ParseCallback("application/json", []byte(`[`), nil); err == nil {
		t.Error("bad JSON accepted")
	}
}

func TestStatusChain(t *testing.T) {
	for _, tt := range []struct {
		ch, st string
		want   []string
	}{
		{"sms", "delivered", []string{"queued", "sent", "delivered"}},
		{"ip", "received", []string{"queued", "sent", "received"}},
		{"ip", "delivered", nil},
		{"sms", "failed", []string{"queued", "failed"}},
		{"sms", "weird", nil},
	} {
		if diff := cmp.Diff(tt.want, statusChain(tt.ch, tt.st)); diff != "" {
			t.Errorf("%s %s: %s", tt.ch, tt.st, diff)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"id":"a","payload":"hi"}`, `{"payload":"AAE","encoding":"base64","port":4000}`, `{"payload":null}`, `[]`, `{"id":1}`} {
		f.Add("sms", []byte(s))
		f.Add("ip", []byte(s))
	}
	f.Fuzz(func(t *testing.T, channel string, body []byte) {
		req, err := ParseRequest(channel, "S", body, 6969, nil)
		if req.ID == "" {
			t.Fatal("no id")
		}
		if err != nil {
			return
		}
		switch req.Channel {
		case ChannelSMS:
			if n := utf8.RuneCountInString(req.Payload); n == 0 || n > MaxSMSPayload {
				t.Fatalf("accepted SMS of %d characters", n)
			}
		case ChannelIP:
			if req.Port < 1 || req.Port > 65535 {
				t.Fatalf("accepted port %d", req.Port)
			}
		default:
			t.Fatalf("accepted channel %q", req.Channel)
		}
	})
}

func FuzzParseCallback(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("Sid=HC1&Status=sent&Payload=%00"))
	f.Add("application/json", []byte(`{"sid":"HG1","payload":"AA==","x":[1],"n":1.5}`))
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		c, err := ParseCallback(ct, body, url.Values{"Sid": {"q"}})
		if err != nil {
			return
		}
		for _, u := range c.Unknown {
			if _, known := callbackFields[u]; known {
				t.Fatalf("known field %q reported unknown", u)
			}
		}
	})
}

func FuzzKoreVerify(f *testing.F) {
	f.Add("POST", "https://e.com/cb?x=1", []byte("a=b"), "00")
	f.Fuzz(func(t *testing.T, method, u string, body []byte, sig string) {
		v := NewKoreVerifier("s")
		h := http.Header{"Kore-Signature": {sig}}
		if v.Verify(method, u, h, body, nil) == nil && sig != KoreSignature("s", method, u, body) && strings.ToLower(sig) != KoreSignature("s", method, u, body) {
			t.Fatalf("accepted a wrong signature %q", sig)
		}
	})
}
