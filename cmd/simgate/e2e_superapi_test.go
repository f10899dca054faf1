package main

// Hardware-in-loop tests of the whole command path: the emulated Super SIM
// API (driven with twilio-go), the simulated modem it is wired to, and the
// real daemon relaying to a real broker; device-originated commands come
// back as signed webhooks to a test server.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/supersim/v1"

	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemsim/superapi"
)

// hookRequest is one webhook the test server received.
type hookRequest struct {
	method, url, signature string
	body                   []byte
	form                   url.Values
}

// webhookServer records every request and answers 204.
type webhookServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []hookRequest
}

func newWebhookServer(t *testing.T) *webhookServer {
	t.Helper()
	s := &webhookServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("webhook body: %v", err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		s.mu.Lock()
		s.got = append(s.got, hookRequest{r.Method, "http://" + r.Host + r.URL.RequestURI(), r.Header.Get("X-Twilio-Signature"), body, form})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *webhookServer) requests() []hookRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hookRequest(nil), s.got...)
}

// apiBaseClient is a twilio-go base client that sends what is meant for
// supersim.twilio.com to the emulator.
type apiBaseClient struct {
	*client.Client
	base string
}

func (c *apiBaseClient) SendRequest(method, rawURL string, data url.Values, headers map[string]interface{}, body ...byte) (*http.Response, error) {
	return c.Client.SendRequest(method, strings.Replace(rawURL, "https://supersim.twilio.com", c.base, 1), data, headers, body...)
}

// apiRig is a rig with the emulated API wired to its modem, the Fleet's
// webhooks pointed at a test server, and twilio-go pointed at the API.
type apiRig struct {
	*rig
	emu  *superapi.Emulator
	api  *openapi.ApiService
	hook *webhookServer
}

// newAPIRig starts the rig with ip.mode ipMode ("off", "modem" or "os") on
// the simulated module profile ("" is Quectel). In os mode the daemon's UDP
// socket is on a free port and its ip.cloud is the emulator's UDP socket.
func newAPIRig(t *testing.T, ipMode, profile string) *apiRig {
	t.Helper()
	r := newRig(t, rigOptions{IPMode: ipMode, Stopped: true, Sim: modemsim.Options{Profile: profile}})
	o := superapi.Options{Modem: r.sim, Logger: r.sim.Options().Logger}
	if ipMode == "os" {
		o.DeviceMode = superapi.ModeOS
	}
	emu, err := superapi.Start(o)
	if err != nil {
		t.Fatalf("superapi.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := emu.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	if ipMode == "os" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		r.conf.IPPort = c.LocalAddr().(*net.UDPAddr).Port
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		r.conf.IPCloud = emu.CloudUDP()
		if err := os.WriteFile(r.gw.config, []byte(r.conf.yaml()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tc := &client.Client{Credentials: client.NewCredentials(emu.AccountSID(), emu.AuthToken())}
	tc.SetAccountSid(emu.AccountSID())
	a := &apiRig{rig: r, emu: emu, api: openapi.NewApiServiceWithClient(&apiBaseClient{Client: tc, base: emu.URL()}), hook: newWebhookServer(t)}
	if _, err := a.api.UpdateFleet(emu.FleetSid(), (&openapi.UpdateFleetParams{}).
		SetSmsCommandsUrl(a.hook.URL+"/sms").SetIpCommandsUrl(a.hook.URL+"/ip")); err != nil {
		t.Fatalf("UpdateFleet: %v", err)
	}
	r.start()
	r.waitReady()
	return a
}

// webhook waits for the n-th webhook to path and checks its signature
// with twilio-go's RequestValidator.
func (a *apiRig) webhook(path string, n int) hookRequest {
	a.t.Helper()
	var got []hookRequest
	if !waitUntil(e2eWait, func() bool {
		got = nil
		for _, r := range a.hook.requests() {
			if strings.HasPrefix(r.url, a.hook.URL+path) {
				got = append(got, r)
			}
		}
		return len(got) >= n
	}) {
		a.t.Fatalf("%d webhooks to %s, want %d; deliveries %+v", len(got), path, n, a.emu.State().Deliveries)
	}
	r := got[n-1]
	v := client.NewRequestValidator(a.emu.AuthToken())
	if !v.ValidateBody(r.url, r.body, r.signature) {
		a.t.Errorf("webhook to %s: X-Twilio-Signature %q does not validate", r.url, r.signature)
	}
	return r
}

// An SMS Command created with twilio-go reaches the device's P/sms/in from
// 000 and ends delivered; a P/sms/out request from the device comes back
// as a signed from_sim SmsCommand webhook and resource.
func TestE2ESuperAPISMS(t *testing.T) {
	t.Parallel()
	a := newAPIRig(t, "off", "")
	payload := "pump on {€} at 06:00"
	c, err := a.api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(a.emu.SimSid()).SetPayload(payload))
	if err != nil {
		t.Fatalf("CreateSmsCommand: %v", err)
	}
	if !waitUntil(e2eWait, func() bool { return len(a.obs.smsIn()) >= 1 }) {
		t.Fatalf("nothing on P/sms/in; %s", a.simSummary())
	}
	in := a.obs.smsIn()
	if len(in) != 1 || in[0].From != "000" || in[0].Payload != payload || in[0].Encoding != "text" {
		t.Errorf("P/sms/in: %+v, want one from 000 with %q", in, payload)
	}
	if !waitUntil(e2eWait, func() bool {
		got, err := a.api.FetchSmsCommand(*c.Sid)
		return err == nil && *got.Status == superapi.StatusDelivered
	}) {
		t.Errorf("SMS Command not delivered: %+v", a.emu.State().SmsCommands)
	}

	publish(t, a.url, a.prefix+"/sms/out", []byte(`{"id":"up-1","payload":"pump is on 😀"}`))
	r := a.webhook("/sms", 1)
	if r.method != "POST" || r.form.Get("Direction") != "from_sim" || r.form.Get("Payload") != "pump is on 😀" ||
		r.form.Get("Status") != "received" || r.form.Get("SimSid") != a.emu.SimSid() {
		t.Errorf("from_sim webhook: %s %v", r.method, r.form)
	}
	from, err := a.api.ListSmsCommand((&openapi.ListSmsCommandParams{}).SetDirection("from_sim"))
	if err != nil {
		t.Fatal(err)
	}
	if len(from) != 1 || *from[0].Sid != r.form.Get("CommandSid") || *from[0].Payload != "pump is on 😀" {
		t.Errorf("from_sim SmsCommands: %+v", from)
	}
}

// IP Commands both ways, with the device in ip.mode modem (the module's
// socket, commands from 100.64.0.1; on each module with sockets) and os (a
// host UDP socket, commands from the emulator's socket, which is the
// device's ip.cloud).
func TestE2ESuperAPIIP(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ mode, profile string }{{"modem", "quectel"}, {"modem", "simcom"}, {"modem", "ublox"}, {"os", "quectel"}} {
		mode := c.mode
		t.Run(mode+"-"+c.profile, func(t *testing.T) {
			t.Parallel()
			a := newAPIRig(t, mode, c.profile)
			port := 6969
			from := superapi.CommandsAddress
			if mode == "os" {
				port, from = a.conf.IPPort, a.emu.CloudUDP()
			} else if !waitUntil(e2eWait, func() bool {
				for _, s := range a.sim.State().Sockets {
					if s.Port == 6969 && !s.Closed {
						return true
					}
				}
				return false
			}) {
				t.Fatalf("the daemon opened no socket on 6969; %s", a.simSummary())
			}
			data := []byte{0x00, 0x01, 0xfe, 0xff, '\r', '\n', 'o', 'k'}
			c, err := a.api.CreateIpCommand((&openapi.CreateIpCommandParams{}).SetSim(a.emu.SimSid()).
				SetPayload(base64.StdEncoding.EncodeToString(data)).SetPayloadType("binary").SetDevicePort(port))
			if err != nil {
				t.Fatalf("CreateIpCommand: %v", err)
			}
			if !waitUntil(e2eWait, func() bool { return len(a.obs.ipIn()) >= 1 }) {
				t.Fatalf("nothing on P/ip/in; commands %+v; %s", a.emu.State().IpCommands, a.simSummary())
			}
			in := a.obs.ipIn()
			if len(in) != 1 || in[0].From != from || in[0].Port != port || in[0].Encoding != "base64" ||
				in[0].Payload != base64.StdEncoding.EncodeToString(data) {
				t.Errorf("P/ip/in: %+v, want one from %s on port %d with %x", in, from, port, data)
			}
			got, err := a.api.FetchIpCommand(*c.Sid)
			if err != nil || *got.Status != superapi.StatusSent || got.DeviceIp == nil {
				t.Errorf("IP Command after delivery: %+v, %v", got, err)
			}

			up := []byte("reading 21.5 \x00\xff")
			publish(t, a.url, a.prefix+"/ip/out", []byte(fmt.Sprintf(`{"id":"ip-up","payload":%q,"encoding":"base64"}`, base64.StdEncoding.EncodeToString(up))))
			r := a.webhook("/ip", 1)
			if r.form.Get("Direction") != "from_sim" || r.form.Get("PayloadType") != "binary" ||
				r.form.Get("Payload") != base64.StdEncoding.EncodeToString(up) || r.form.Get("SimIccid") != a.sim.Options().ICCID {
				t.Errorf("from_sim IP webhook: %v", r.form)
			}
			fromSim, err := a.api.ListIpCommand((&openapi.ListIpCommandParams{}).SetDirection("from_sim"))
			if err != nil || len(fromSim) != 1 || *fromSim[0].Status != "received" {
				t.Errorf("from_sim IpCommands: %+v, %v", fromSim, err)
			}
		})
	}
}

// Setting the Sim inactive through the API takes the device off the
// network as a real SIM would: the daemon reports not_registered on
// P/status and commands are refused; set active, the daemon reports
// roaming again and an SMS Command arrives.
func TestE2ESuperAPISimInactive(t *testing.T) {
	t.Parallel()
	a := newAPIRig(t, "off", "")
	seen := len(a.obs.statuses())
	status := func(reg string) bool {
		return waitUntil(e2eWait, func() bool {
			st := a.obs.statuses()
			for _, s := range st[min(seen, len(st)):] {
				if s.Network.Registration == reg {
					return true
				}
			}
			return false
		})
	}
	if _, err := a.api.UpdateSim(a.emu.SimSid(), (&openapi.UpdateSimParams{}).SetStatus("inactive")); err != nil {
		t.Fatal(err)
	}
	if !status("not_registered") {
		t.Fatalf("no not_registered on P/status after the Sim went inactive; %s", a.simSummary())
	}
	_, err := a.api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(a.emu.SimSid()).SetPayload("refused"))
	var re *client.TwilioRestError
	if !errors.As(err, &re) || re.Status != 400 {
		t.Errorf("SMS Command to an inactive Sim: %v, want a 400 refusal", err)
	}
	seen = len(a.obs.statuses())
	if _, err := a.api.UpdateSim(a.emu.SimSid(), (&openapi.UpdateSimParams{}).SetStatus("active")); err != nil {
		t.Fatal(err)
	}
	if !status("roaming") {
		t.Fatalf("no roaming on P/status after the Sim went active; %s", a.simSummary())
	}
	if _, err := a.api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(a.emu.SimSid()).SetPayload("back")); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(e2eWait, func() bool { return len(a.obs.smsIn()) >= 1 }) {
		t.Fatalf("nothing on P/sms/in after activation; %s", a.simSummary())
	}
	if in := a.obs.smsIn(); len(in) != 1 || in[0].Payload != "back" {
		t.Errorf("P/sms/in: %+v", in)
	}
}
