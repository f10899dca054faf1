package superapi

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/modem/modemsim"
)

// Malformed requests each get the documented error (status, code, a
// message naming the problem, more_info) and change nothing: the state is
// the same after all of them, and nothing reached the modem.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	e, sim := startEmu(t, Options{})
	sid := e.SimSid()
	form := "application/x-www-form-urlencoded"
	enc := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, 1301))
	cases := []struct {
		name, method, path, ctype, body string
		noAuth                          bool
		status, code                    int
		mention                         string
	}{
		{"no auth", "GET", "/v1/Sims", "", "", true, 401, 20003, "Authenticate"},
		{"missing Sim", "POST", "/v1/SmsCommands", form, enc("Payload", "x"), false, 400, 20001, "Sim"},
		{"missing Payload", "POST", "/v1/SmsCommands", form, enc("Sim", sid), false, 400, 20001, "Payload"},
		{"SMS payload over 160", "POST", "/v1/SmsCommands", form, enc("Sim", sid, "Payload", strings.Repeat("a", 161)), false, 400, 20001, "Payload"},
		{"unknown Sim", "POST", "/v1/SmsCommands", form, enc("Sim", "HS00000000000000000000000000000000", "Payload", "x"), false, 400, 20001, "Sim"},
		{"bad CallbackUrl", "POST", "/v1/SmsCommands", form, enc("Sim", sid, "Payload", "x", "CallbackUrl", "ftp://x"), false, 400, 20001, "CallbackUrl"},
		{"bad CallbackMethod", "POST", "/v1/SmsCommands", form, enc("Sim", sid, "Payload", "x", "CallbackMethod", "PUT"), false, 400, 20001, "CallbackMethod"},
		{"DevicePort not a number", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", "x", "DevicePort", "six"), false, 400, 20001, "DevicePort"},
		{"DevicePort out of range", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", "x", "DevicePort", "70000"), false, 400, 20001, "DevicePort"},
		{"missing DevicePort", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", "x"), false, 400, 20001, "DevicePort"},
		{"IP payload over 1300", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", big, "PayloadType", "binary", "DevicePort", "6969"), false, 400, 20001, "Payload"},
		{"binary payload not base64", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", "!!", "PayloadType", "binary", "DevicePort", "6969"), false, 400, 20001, "Payload"},
		{"bad PayloadType", "POST", "/v1/IpCommands", form, enc("Sim", sid, "Payload", "x", "PayloadType", "hex", "DevicePort", "6969"), false, 400, 20001, "PayloadType"},
		{"JSON of the wrong type", "POST", "/v1/SmsCommands", "application/json", `{"Sim":["` + sid + `"],"Payload":"x"}`, false, 400, 20001, "Sim"},
		{"JSON not an object", "POST", "/v1/SmsCommands", "application/json", `"Sim"`, false, 400, 20001, "JSON"},
		{"unknown content type", "POST", "/v1/SmsCommands", "text/plain", "Sim=" + sid + "&Payload=x", false, 400, 20001, "content type"},
		{"unknown path", "GET", "/v1/Bogus", "", "", false, 404, 20404, "/v1/Bogus"},
		{"unknown SmsCommand", "GET", "/v1/SmsCommands/HC00000000000000000000000000000000", "", "", false, 404, 20404, "HC00000000000000000000000000000000"},
		{"method not allowed", "POST", "/v1/UsageRecords", form, "", false, 405, 20004, "POST"},
		{"bad PageToken", "GET", "/v1/SmsCommands?PageToken=PTnotatoken", "", "", false, 400, 20001, "PageToken"},
		{"PageSize over 1000", "GET", "/v1/Sims?PageSize=1001", "", "", false, 400, 20001, "PageSize"},
		{"bad Status filter", "GET", "/v1/SmsCommands?Status=lost", "", "", false, 400, 20001, "Status"},
		{"bad Sim status", "POST", "/v1/Sims/" + sid, form, enc("Status", "scheduled"), false, 400, 20001, "Status"},
		{"unknown target Fleet", "POST", "/v1/Sims/" + sid, form, enc("Fleet", "nowhere"), false, 400, 83006, "nowhere"},
		{"bad DataEnabled", "POST", "/v1/Fleets/" + e.FleetSid(), form, enc("DataEnabled", "maybe"), false, 400, 20001, "DataEnabled"},
		{"bad Granularity", "GET", "/v1/UsageRecords?Granularity=minute", "", "", false, 400, 20001, "Granularity"},
		{"body over 64 KiB", "POST", "/v1/SmsCommands", form, "Payload=" + strings.Repeat("a", 70000), false, 400, 20001, "body"},
	}
	if len(cases) < 20 {
		t.Fatalf("test bug: %d cases", len(cases))
	}
	time.Sleep(50 * time.Millisecond) // let the boot and pump settle before the snapshot
	before := e.State()
	modemBefore := len(sim.State().Stored)
	for _, c := range cases {
		status, body := rawRequest(t, e, c.method, c.path, c.ctype, c.body, !c.noAuth)
		var got APIError
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Errorf("%s: answer %s is not the error shape: %v", c.name, body, err)
			continue
		}
		if status != c.status || got.Status != c.status || got.Code != c.code || !strings.Contains(got.Message, c.mention) ||
			!strings.HasPrefix(got.MoreInfo, "https://www.twilio.com/docs/errors/") {
			t.Errorf("%s: %d %+v; want %d code %d naming %q", c.name, status, got, c.status, c.code, c.mention)
		}
	}
	time.Sleep(50 * time.Millisecond)
	after := e.State()
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("malformed requests changed the state (-before +after):\n%s", diff)
	}
	if n := len(sim.State().Stored); n != modemBefore {
		t.Errorf("SIM holds %d SMS after malformed requests, had %d", n, modemBefore)
	}
}

// DecodeParams takes form and JSON bodies alike and refuses what is
// neither, naming why.
func TestDecodeParams(t *testing.T) {
	cases := []struct {
		ctype, body string
		want        url.Values
		err         string
	}{
		{"application/x-www-form-urlencoded", "Sim=HS1&Payload=a%20b&Payload=second", url.Values{"Sim": {"HS1"}, "Payload": {"a b"}}, ""},
		{"", "A=1", url.Values{"A": {"1"}}, ""},
		{"application/json; charset=utf-8", `{"Sim":"HS1","DevicePort":6969,"DataEnabled":false}`, url.Values{"Sim": {"HS1"}, "DevicePort": {"6969"}, "DataEnabled": {"false"}}, ""},
		{"application/json", ``, url.Values{}, ""},
		{"application/json", `{"a":null}`, nil, "want a string"},
		{"application/json", `{"a":1}{}`, nil, "after the object"},
		{"application/x-www-form-urlencoded", "a=%zz", nil, "form body"},
		{"application/x-www-form-urlencoded", "a=%ff", nil, "UTF-8"},
		{"multipart/form-data", "", nil, "content type"},
		{"bad;;", "", nil, "content type"},
	}
	for _, c := range cases {
		got, err := DecodeParams(c.ctype, []byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("DecodeParams(%q, %q) error %v, want one naming %q", c.ctype, c.body, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("DecodeParams(%q, %q): %v", c.ctype, c.body, err)
			continue
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("DecodeParams(%q, %q) (-want +got):\n%s", c.ctype, c.body, diff)
		}
	}
}

// FuzzDecodeParams: no body and content type makes DecodeParams panic,
// and what it accepts holds only valid UTF-8, one value per name.
func FuzzDecodeParams(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", []byte("Sim=HS1&Payload=hi"))
	f.Add("application/json", []byte(`{"Sim":"HS1","DevicePort":6969,"x":true}`))
	f.Add("application/json", []byte(`{"a":{"b":1}}`))
	f.Add("text/plain", []byte("x"))
	f.Add("", []byte("a=%e2%82%ac&b"))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		v, err := DecodeParams(ctype, body)
		if err != nil {
			return
		}
		for k, vals := range v {
			if len(vals) != 1 {
				t.Fatalf("%q has %d values", k, len(vals))
			}
			if !json.Valid(mustJSON(t, k)) || !json.Valid(mustJSON(t, vals[0])) {
				t.Fatalf("%q=%q does not encode", k, vals[0])
			}
		}
	})
}

// FuzzPageToken: a token is accepted only if the API could have made it.
func FuzzPageToken(f *testing.F) {
	f.Add(pageToken(0))
	f.Add(pageToken(150))
	f.Add("PTbm90")
	f.Fuzz(func(t *testing.T, tok string) {
		off, ok := parsePageToken(tok)
		if ok && pageToken(off) != tok {
			t.Fatalf("accepted %q as offset %d, which makes %q", tok, off, pageToken(off))
		}
	})
}

func mustJSON(t *testing.T, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The segments of a concatenated SMS the device sends to 000 become one
// from_sim SmsCommand, whatever order they arrive in; an SMS to another
// number is not a command.
func TestFromSimConcatenated(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{})
	e.hooks.sms(modemsim.SentSMS{To: "000", Text: " world", Encoding: "ucs2", ConcatRef: 7, Seq: 2, Total: 2})
	e.hooks.sms(modemsim.SentSMS{To: "+447700900123", Text: "not a command", Encoding: "gsm7"})
	e.hooks.sms(modemsim.SentSMS{To: "000", Text: "hello 😀", Encoding: "ucs2", ConcatRef: 7, Seq: 1, Total: 2})
	e.hooks.sms(modemsim.SentSMS{To: "000", Data: []byte{0, 0xff}, Encoding: "8bit"})
	if !waitUntil(testWait, func() bool { return len(e.State().SmsCommands) == 2 }) {
		t.Fatalf("from_sim commands: %+v", e.State().SmsCommands)
	}
	var got []string
	for _, c := range e.State().SmsCommands {
		if c.Direction != DirectionFromSim || c.Status != StatusReceived {
			t.Errorf("command %+v", c)
		}
		got = append(got, c.Payload)
	}
	if diff := cmp.Diff([]string{"hello 😀 world", "AP8="}, got); diff != "" {
		t.Errorf("payloads (-want +got):\n%s", diff)
	}
}
