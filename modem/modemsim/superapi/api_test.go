package superapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/supersim/v1"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/simgate/simgate/modem/modemsim"
)

// An SMS Command created with twilio-go decodes with every documented
// field set, reaches the modem's SIM as an SMS from 000, goes queued ->
// sent -> delivered with a signed callback for each change, and is found
// by fetch and by list with each filter.
func TestTwilioGoSmsCommands(t *testing.T) {
	t.Parallel()
	e, sim := startEmu(t, Options{})
	hook := newHookServer(t, 0)
	api := twilioAPI(e)
	created, err := api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).
		SetSim(e.SimSid()).SetPayload("reboot now {€}").SetCallbackUrl(hook.URL + "/status?x=1"))
	if err != nil {
		t.Fatalf("CreateSmsCommand: %v", err)
	}
	if empty := emptyFields(created); len(empty) > 0 {
		t.Errorf("created SmsCommand has empty fields %v: %+v", empty, created)
	}
	if !isSid(*created.Sid, "HC") || *created.Status != StatusQueued || *created.Direction != DirectionToSim ||
		*created.SimSid != e.SimSid() || *created.AccountSid != e.AccountSID() || *created.Payload != "reboot now {€}" {
		t.Errorf("created SmsCommand: %+v", created)
	}
	if !waitUntil(testWait, func() bool {
		c, err := api.FetchSmsCommand(*created.Sid)
		return err == nil && *c.Status == StatusDelivered
	}) {
		t.Fatalf("SMS Command never delivered: %+v", e.State().SmsCommands)
	}
	st := sim.State()
	if len(st.Stored) != 1 || st.Stored[0].From != "000" || st.Stored[0].Text != "reboot now {€}" {
		t.Errorf("SIM holds %+v, want one SMS from 000 with the payload", st.Stored)
	}
	if !waitUntil(testWait, func() bool { return len(hook.requests()) == 2 }) {
		t.Fatalf("status callbacks: %+v", e.State().Deliveries)
	}
	v := client.NewRequestValidator(e.AuthToken())
	for i, want := range []string{StatusSent, StatusDelivered} {
		r := hook.requests()[i]
		if r.Form.Get("Status") != want || r.Form.Get("CommandSid") != *created.Sid || r.Form.Get("SimSid") != e.SimSid() {
			t.Errorf("callback %d: %v, want status %s for %s", i, r.Form, want, *created.Sid)
		}
		if !v.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
			t.Errorf("callback %d: X-Twilio-Signature %q does not validate", i, r.Header.Get("X-Twilio-Signature"))
		}
	}

	fetched, err := api.FetchSmsCommand(*created.Sid)
	if err != nil {
		t.Fatal(err)
	}
	if empty := emptyFields(fetched); len(empty) > 0 {
		t.Errorf("fetched SmsCommand has empty fields %v", empty)
	}
	for _, p := range []*openapi.ListSmsCommandParams{
		(&openapi.ListSmsCommandParams{}).SetSim(e.SimSid()),
		(&openapi.ListSmsCommandParams{}).SetStatus(StatusDelivered),
		(&openapi.ListSmsCommandParams{}).SetDirection(DirectionToSim),
	} {
		got, err := api.ListSmsCommand(p)
		if err != nil {
			t.Fatalf("ListSmsCommand: %v", err)
		}
		if len(got) != 1 || *got[0].Sid != *created.Sid {
			t.Errorf("ListSmsCommand(%+v) = %+v", p, got)
		}
	}
	for _, p := range []*openapi.ListSmsCommandParams{
		(&openapi.ListSmsCommandParams{}).SetStatus(StatusFailed),
		(&openapi.ListSmsCommandParams{}).SetDirection(DirectionFromSim),
		(&openapi.ListSmsCommandParams{}).SetSim("no-such-sim"),
	} {
		if got, err := api.ListSmsCommand(p); err != nil || len(got) != 0 {
			t.Errorf("ListSmsCommand(%+v) = %+v, %v; want none", p, got, err)
		}
	}
}

// Lists page as twilio-go expects: with PageSize 2, ListSmsCommand follows
// meta.next_page_url through every page, newest first, each once.
func TestTwilioGoPaging(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{})
	api := twilioAPI(e)
	var sids []string
	for i := range 5 {
		c, err := api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(e.SimSid()).SetPayload(fmt.Sprintf("cmd %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		sids = append([]string{*c.Sid}, sids...)
	}
	got, err := api.ListSmsCommand((&openapi.ListSmsCommandParams{}).SetPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	var gotSids []string
	for _, c := range got {
		gotSids = append(gotSids, *c.Sid)
	}
	if diff := cmp.Diff(sids, gotSids); diff != "" {
		t.Errorf("paged list (-want +got):\n%s", diff)
	}
	page, err := api.PageSmsCommand((&openapi.ListSmsCommandParams{}).SetPageSize(2), "", "")
	if err != nil {
		t.Fatal(err)
	}
	m := page.Meta
	if m.Key != "sms_commands" || m.PageSize != 2 || m.Page != 0 || m.PreviousPageUrl != nil || m.NextPageUrl == nil ||
		!strings.HasPrefix(m.FirstPageUrl, e.URL()+"/v1/SmsCommands?") || !strings.HasPrefix(m.Url, e.URL()+"/v1/SmsCommands?") {
		t.Errorf("first page meta: %+v", m)
	}
}

// An IP Command to an os-mode device arrives at 127.0.0.1:DevicePort as
// the raw bytes; the device's answer to the emulator's socket becomes a
// from_sim IP Command posted, signed, to the Fleet's ip_commands_url.
func TestTwilioGoIpCommandsOS(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{DeviceMode: ModeOS})
	hook := newHookServer(t, 0)
	api := twilioAPI(e)
	dev := udpDevice(t)
	port := dev.LocalAddr().(*net.UDPAddr).Port
	if _, err := api.UpdateFleet(e.FleetSid(), (&openapi.UpdateFleetParams{}).SetIpCommandsUrl(hook.URL+"/ip").SetIpCommandsMethod("POST")); err != nil {
		t.Fatal(err)
	}
	payload := []byte{0, 1, 2, 0xff, '\r', '\n', 0x1a}
	statusHook := newHookServer(t, 0)
	created, err := api.CreateIpCommand((&openapi.CreateIpCommandParams{}).SetSim(e.SimSid()).
		SetPayload(base64.StdEncoding.EncodeToString(payload)).SetPayloadType("binary").SetDevicePort(port).
		SetCallbackUrl(statusHook.URL + "/ip-status"))
	if err != nil {
		t.Fatalf("CreateIpCommand: %v", err)
	}
	if empty := emptyFields(created, "DeviceIp"); len(empty) > 0 {
		t.Errorf("created IpCommand has empty fields %v: %+v", empty, created)
	}
	if *created.Status != StatusQueued || created.DevicePort != port || *created.PayloadType != "binary" || !isSid(*created.Sid, "HG") {
		t.Errorf("created: %+v", created)
	}
	buf := make([]byte, 2000)
	if err := dev.SetReadDeadline(time.Now().Add(testWait)); err != nil {
		t.Fatal(err)
	}
	n, src, err := dev.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("device read: %v", err)
	}
	if !bytes.Equal(buf[:n], payload) || src.String() != e.CloudUDP() {
		t.Errorf("device got %x from %s, want %x from %s", buf[:n], src, payload, e.CloudUDP())
	}
	if !waitUntil(testWait, func() bool {
		c, err := api.FetchIpCommand(*created.Sid)
		return err == nil && *c.Status == StatusSent && c.DeviceIp != nil
	}) {
		t.Fatalf("IP Command not sent: %+v", e.State().IpCommands)
	}
	fetched, err := api.FetchIpCommand(*created.Sid)
	if err != nil {
		t.Fatal(err)
	}
	if empty := emptyFields(fetched); len(empty) > 0 {
		t.Errorf("fetched IpCommand has empty fields %v", empty)
	}
	if !waitUntil(testWait, func() bool { return len(statusHook.requests()) == 1 }) {
		t.Fatalf("no status callback: %+v", e.State().Deliveries)
	}
	cb := statusHook.requests()[0]
	cbv := client.NewRequestValidator(e.AuthToken())
	if cb.Form.Get("Status") != StatusSent || cb.Form.Get("CommandSid") != *created.Sid || cb.Form.Get("DeviceIp") != "127.0.0.1" ||
		!cbv.ValidateBody(cb.URL, cb.Body, cb.Header.Get("X-Twilio-Signature")) {
		t.Errorf("IP Command status callback %v (signature %q)", cb.Form, cb.Header.Get("X-Twilio-Signature"))
	}

	reply := []byte("device says hi \x00\x01")
	if _, err := dev.WriteToUDP(reply, src); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool { return len(hook.requests()) == 1 }) {
		t.Fatalf("no ip_commands_url webhook: %+v", e.State().Deliveries)
	}
	r := hook.requests()[0]
	v := client.NewRequestValidator(e.AuthToken())
	if !v.ValidateBody(r.URL, r.Body, r.Header.Get("X-Twilio-Signature")) {
		t.Errorf("webhook signature %q does not validate", r.Header.Get("X-Twilio-Signature"))
	}
	if r.Form.Get("Direction") != DirectionFromSim || r.Form.Get("PayloadType") != "binary" ||
		r.Form.Get("Payload") != base64.StdEncoding.EncodeToString(reply) || r.Form.Get("Status") != StatusReceived ||
		r.Form.Get("DevicePort") != fmt.Sprint(port) || r.Form.Get("SimIccid") == "" {
		t.Errorf("webhook form: %v", r.Form)
	}
	from, err := api.ListIpCommand((&openapi.ListIpCommandParams{}).SetDirection(DirectionFromSim))
	if err != nil {
		t.Fatal(err)
	}
	if len(from) != 1 || *from[0].Sid != r.Form.Get("CommandSid") || *from[0].DeviceIp != "127.0.0.1" {
		t.Errorf("from_sim IP Commands: %+v", from)
	}
	if empty := emptyFields(&from[0]); len(empty) > 0 {
		t.Errorf("from_sim IpCommand has empty fields %v", empty)
	}
	ips, err := api.ListSimIpAddress(e.SimSid(), nil)
	if err != nil || len(ips) != 1 || *ips[0].IpAddress != "127.0.0.1" || *ips[0].IpAddressVersion != "IPv4" {
		t.Errorf("ListSimIpAddress: %+v, %v", ips, err)
	}
	iccid := e.State().Sims[0].Iccid
	all, err := api.ListIpCommand((&openapi.ListIpCommandParams{}).SetSimIccid(iccid))
	if err != nil || len(all) != 2 {
		t.Errorf("ListIpCommand by SimIccid: %d, %v; want 2", len(all), err)
	}

	// Usage counts what was carried: the command down, the reply up.
	recs, err := api.ListUsageRecord((&openapi.ListUsageRecordParams{}).SetGroup("sim"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || *recs[0].DataDownload != int64(len(payload)) || *recs[0].DataUpload != int64(len(reply)) ||
		*recs[0].DataTotal != int64(len(payload)+len(reply)) || *recs[0].SimSid != e.SimSid() {
		t.Errorf("usage records: %+v", recs)
	}
}

// ListSim by ICCID finds the modem's SIM with every documented field;
// a unique name set by UpdateSim addresses it too.
func TestTwilioGoSims(t *testing.T) {
	t.Parallel()
	e, sim := startEmu(t, Options{})
	api := twilioAPI(e)
	iccid := sim.Options().ICCID
	got, err := api.ListSim((&openapi.ListSimParams{}).SetIccid(iccid))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || *got[0].Iccid != iccid || *got[0].Status != SimActive || *got[0].Sid != e.SimSid() {
		t.Fatalf("ListSim by ICCID: %+v", got)
	}
	if empty := emptyFields(&got[0], "UniqueName"); len(empty) > 0 {
		t.Errorf("Sim has empty fields %v", empty)
	}
	if none, err := api.ListSim((&openapi.ListSimParams{}).SetIccid("8988307000000000000")); err != nil || len(none) != 0 {
		t.Errorf("ListSim by another ICCID: %+v, %v", none, err)
	}
	up, err := api.UpdateSim(e.SimSid(), (&openapi.UpdateSimParams{}).SetUniqueName("pump-7"))
	if err != nil {
		t.Fatal(err)
	}
	if *up.UniqueName != "pump-7" {
		t.Errorf("UpdateSim UniqueName: %+v", up)
	}
	byName, err := api.FetchSim("pump-7")
	if err != nil {
		t.Fatal(err)
	}
	if empty := emptyFields(byName); len(empty) > 0 || *byName.Sid != e.SimSid() {
		t.Errorf("FetchSim by unique name: empty %v, %+v", empty, byName)
	}
	if _, err := api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim("pump-7").SetPayload("by name")); err != nil {
		t.Errorf("SMS Command to a Sim by unique name: %v", err)
	}
	bps, err := api.ListBillingPeriod(e.SimSid(), nil)
	if err != nil || len(bps) != 1 || len(emptyFields(&bps[0])) > 0 || !isSid(*bps[0].Sid, "HB") || *bps[0].PeriodType != "active" {
		t.Errorf("ListBillingPeriod: %+v, %v", bps, err)
	}
	// No host has brought the data session up: no address.
	if ips, err := api.ListSimIpAddress(e.SimSid(), nil); err != nil || len(ips) != 0 {
		t.Errorf("ListSimIpAddress without a data session: %+v, %v", ips, err)
	}
}

// UpdateFleet sets the webhook URLs and methods; the Fleet decodes with
// every documented field set.
func TestTwilioGoFleets(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{})
	api := twilioAPI(e)
	f, err := api.UpdateFleet(e.FleetSid(), (&openapi.UpdateFleetParams{}).
		SetSmsCommandsUrl("https://example.com/sms").SetSmsCommandsMethod("GET").
		SetIpCommandsUrl("https://example.com/ip").SetIpCommandsMethod("POST").SetUniqueName("field-units"))
	if err != nil {
		t.Fatal(err)
	}
	if empty := emptyFields(f); len(empty) > 0 {
		t.Errorf("Fleet has empty fields %v: %+v", empty, f)
	}
	if *f.SmsCommandsUrl != "https://example.com/sms" || *f.SmsCommandsMethod != "GET" || *f.IpCommandsUrl != "https://example.com/ip" ||
		*f.UniqueName != "field-units" || !*f.DataEnabled || !*f.SmsCommandsEnabled || !isSid(*f.NetworkAccessProfileSid, "HA") {
		t.Errorf("updated Fleet: %+v", f)
	}
	fetched, err := api.FetchFleet("field-units")
	if err != nil || *fetched.Sid != e.FleetSid() {
		t.Errorf("FetchFleet by unique name: %+v, %v", fetched, err)
	}
	created, err := api.CreateFleet((&openapi.CreateFleetParams{}).SetNetworkAccessProfile("default").SetUniqueName("second").SetDataEnabled(false))
	if err != nil {
		t.Fatal(err)
	}
	if *created.DataEnabled || !isSid(*created.Sid, "HF") || *created.DataMetering != "payg" || created.DataLimit != 1000 {
		t.Errorf("created Fleet: %+v", created)
	}
	fleets, err := api.ListFleet(nil)
	if err != nil || len(fleets) != 2 {
		t.Errorf("ListFleet: %d, %v", len(fleets), err)
	}
	naps, err := api.ListNetworkAccessProfile(nil)
	if err != nil || len(naps) != 1 || len(emptyFields(&naps[0])) > 0 {
		t.Errorf("ListNetworkAccessProfile: %+v, %v", naps, err)
	}
	nets, err := api.ListNetwork(nil)
	if err != nil || len(nets) != 1 || len(emptyFields(&nets[0])) > 0 {
		t.Errorf("ListNetwork: %+v, %v", nets, err)
	}

	// Data off: the service refuses IP Commands; SMS Commands off: SMS.
	for _, c := range []struct{ param, kind string }{{"DataEnabled", "ip"}, {"SmsCommandsEnabled", "sms"}} {
		code, body := rawRequest(t, e, "POST", "/v1/Fleets/"+e.FleetSid(), "application/x-www-form-urlencoded", c.param+"=false", true)
		if code != http.StatusOK {
			t.Fatalf("disable %s: %d %s", c.param, code, body)
		}
		var err error
		if c.kind == "ip" {
			_, err = api.CreateIpCommand((&openapi.CreateIpCommandParams{}).SetSim(e.SimSid()).SetPayload("x").SetDevicePort(6969))
		} else {
			_, err = api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(e.SimSid()).SetPayload("x"))
		}
		var re *client.TwilioRestError
		if !errors.As(err, &re) || re.Status != 400 || re.Code != CodeInvalidParameter {
			t.Errorf("%s command with %s off: %v, want a 400 refusal", c.kind, c.param, err)
		}
	}
}

// Setting the Sim inactive is answered 202 and done later: the modem
// loses its registration (+CEREG: 0), commands are refused, the callback
// says inactive; active brings the registration back.
func TestSimStatusDeregisters(t *testing.T) {
	t.Parallel()
	e, sim := startEmu(t, Options{})
	hook := newHookServer(t, 0)
	api := twilioAPI(e)
	if !waitUntil(testWait, func() bool { return sim.State().Registration == 5 }) {
		t.Fatal("modem never registered")
	}
	resp, err := api.UpdateSimWithMetadata(e.SimSid(), (&openapi.UpdateSimParams{}).SetStatus(SimInactive).SetCallbackUrl(hook.URL+"/sim"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatusCode() != http.StatusAccepted {
		t.Errorf("status change answered %d, want 202", resp.GetStatusCode())
	}
	if !waitUntil(testWait, func() bool { return sim.State().Registration == 0 && len(hook.requests()) == 1 }) {
		t.Fatalf("registration %d, callbacks %d", sim.State().Registration, len(hook.requests()))
	}
	if f := hook.requests()[0].Form; f.Get("Status") != SimInactive || f.Get("SimSid") != e.SimSid() {
		t.Errorf("sim callback: %v", f)
	}
	_, err = api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(e.SimSid()).SetPayload("x"))
	var re *client.TwilioRestError
	if !errors.As(err, &re) || re.Status != 400 || !strings.Contains(re.Message, "inactive") {
		t.Errorf("SMS Command to an inactive Sim: %v", err)
	}
	if _, err := api.UpdateSim(e.SimSid(), (&openapi.UpdateSimParams{}).SetStatus(SimActive)); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool { return sim.State().Registration == 5 }) {
		t.Fatal("registration not back after active")
	}
	s, err := api.FetchSim(e.SimSid())
	if err != nil || *s.Status != SimActive {
		t.Errorf("Sim after activation: %+v, %v", s, err)
	}
}

// A command to a SIM that is not registered stays queued and is delivered
// when it registers; one that waits longer than CommandTTL fails, with a
// callback.
func TestQueuedUntilRegisteredOrExpired(t *testing.T) {
	t.Parallel()
	ready := func(sim *modemsim.Sim) {
		if !waitUntil(testWait, func() bool { return sim.State().SMSReady }) {
			t.Fatal("modem never booted")
		}
		sim.SetRegistration(0)
	}
	e, sim := startEmu(t, Options{})
	api := twilioAPI(e)
	ready(sim)
	a, err := api.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(e.SimSid()).SetPayload("waits"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // many retry intervals
	if c, err := api.FetchSmsCommand(*a.Sid); err != nil || *c.Status != StatusQueued {
		t.Fatalf("while unregistered: %+v, %v; want queued", c, err)
	}
	if n := len(sim.State().Stored); n != 0 {
		t.Fatalf("SIM holds %d SMS while unregistered", n)
	}
	sim.SetRegistration(1)
	if !waitUntil(testWait, func() bool {
		c, err := api.FetchSmsCommand(*a.Sid)
		return err == nil && *c.Status == StatusDelivered
	}) {
		t.Fatal("not delivered after registration")
	}
	if st := sim.State(); len(st.Stored) != 1 || st.Stored[0].Text != "waits" {
		t.Errorf("SIM holds %+v", st.Stored)
	}

	// A second network whose commands live 300ms.
	e2, sim2 := startEmu(t, Options{CommandTTL: 300 * time.Millisecond})
	api2 := twilioAPI(e2)
	hook := newHookServer(t, 0)
	ready(sim2)
	b, err := api2.CreateSmsCommand((&openapi.CreateSmsCommandParams{}).SetSim(e2.SimSid()).SetPayload("expires").SetCallbackUrl(hook.URL))
	if err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool {
		c, err := api2.FetchSmsCommand(*b.Sid)
		return err == nil && *c.Status == StatusFailed
	}) {
		t.Fatal("queued command did not fail after its lifetime")
	}
	// The callback follows the status change.
	waitUntil(testWait, func() bool { return len(hook.requests()) >= 1 })
	if r := hook.requests(); len(r) != 1 || r[0].Form.Get("Status") != StatusFailed {
		t.Errorf("callbacks: %+v", r)
	}
	sim2.SetRegistration(1)
	time.Sleep(100 * time.Millisecond) // retry intervals in which nothing may happen
	if n := len(sim2.State().Stored); n != 0 {
		t.Errorf("a failed command reached the SIM: %d SMS", n)
	}
}

// A webhook the receiver refuses is retried until it answers 2xx; every
// attempt is in the state with its status code, also through the modem's
// control socket.
func TestWebhookRetried(t *testing.T) {
	t.Parallel()
	sock := t.TempDir() + "/ctl"
	sim, err := modemsim.Start(modemsim.Options{Link: t.TempDir() + "/modem", Control: sock, BootDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	e, err := Start(Options{Modem: sim, DeviceMode: ModeOS, WebhookBackoff: 10 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	hook := newHookServer(t, 2)
	code, body := rawRequest(t, e, "POST", "/v1/Fleets/"+e.FleetSid(), "application/x-www-form-urlencoded", "IpCommandsUrl="+url.QueryEscape(hook.URL+"/ip"), true)
	if code != 200 {
		t.Fatalf("update fleet: %d %s", code, body)
	}
	dev := udpDevice(t)
	cloud, err := net.ResolveUDPAddr("udp", e.CloudUDP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteToUDP([]byte("hello"), cloud); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool {
		d := e.State().Deliveries
		return len(d) == 1 && d[0].State == DeliveryDelivered
	}) {
		t.Fatalf("deliveries: %+v", e.State().Deliveries)
	}
	resp, err := (&modemsim.Client{Socket: sock}).Do(modemsim.Request{Op: StateOp})
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(resp.Data, &st); err != nil {
		t.Fatalf("api-state data %s: %v", resp.Data, err)
	}
	var codes []int
	for _, a := range st.Deliveries[0].Attempts {
		codes = append(codes, a.StatusCode)
	}
	if diff := cmp.Diff([]int{500, 500, 204}, codes); diff != "" || st.Deliveries[0].Kind != "ip_from_sim" {
		t.Errorf("attempts over the control socket (-want +got):\n%s\n%+v", diff, st.Deliveries[0])
	}
	if n := len(hook.requests()); n != 3 {
		t.Errorf("receiver saw %d requests, want 3", n)
	}
	// Every attempt carries the same idempotency token.
	tok := hook.requests()[0].Header.Get("I-Twilio-Idempotency-Token")
	for _, r := range hook.requests() {
		if r.Header.Get("I-Twilio-Idempotency-Token") != tok || tok == "" {
			t.Errorf("idempotency tokens differ: %q vs %q", r.Header.Get("I-Twilio-Idempotency-Token"), tok)
		}
	}
}

// With KORE signing, webhooks carry kore-signature, the hex SHA-256 of
// secret + method + URL without query + body; the OAuth2 token endpoint
// issues Bearer tokens the API accepts.
func TestKoreSigningAndOAuth(t *testing.T) {
	t.Parallel()
	// KORE's published example.
	if got := SignKore("12345", "POST", "https://testendpoint.com?foo1=bar1#cbs=kore", []byte("field1=value1&field2=value2")); got != "f562d3959f68b5a30fc7a63f8bbf40987f633575f4231ffceb4f76dd154ea3ce" {
		t.Errorf("SignKore of KORE's example = %s", got)
	}
	e, _ := startEmu(t, Options{DeviceMode: ModeOS, Signing: SigningKore, SigningSecret: "s3cret", ClientID: "kore-client", ClientSecret: "kore-secret"})
	hook := newHookServer(t, 0)

	token := func(form string, basic bool) (int, map[string]any) {
		req, err := http.NewRequest("POST", e.URL()+"/api-services/v1/auth/token", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth("kore-client", "kore-secret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := resp.Body.Close(); err != nil {
				t.Error(err)
			}
		}()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	if code, m := token("grant_type=client_credentials&client_id=kore-client&client_secret=wrong", false); code != 401 || m["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", code, m)
	}
	if code, m := token("grant_type=password", true); code != 400 || m["error"] != "unsupported_grant_type" {
		t.Errorf("wrong grant: %d %v", code, m)
	}
	code, m := token("grant_type=client_credentials", true)
	tok, _ := m["access_token"].(string)
	if code != 200 || tok == "" || m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) {
		t.Fatalf("token: %d %v", code, m)
	}
	bearer := func(tok, body string) int {
		req, err := http.NewRequest("POST", e.URL()+"/v1/Fleets/"+e.FleetSid(), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Error(err)
		}
		return resp.StatusCode
	}
	if c := bearer("not-a-token", "SmsCommandsMethod=GET"); c != 401 {
		t.Errorf("unknown bearer token: %d", c)
	}
	hookURL := hook.URL + "/ip?tenant=7"
	if c := bearer(tok, "IpCommandsUrl="+url.QueryEscape(hookURL)); c != 200 {
		t.Fatalf("update with bearer token: %d", c)
	}
	dev := udpDevice(t)
	cloud, err := net.ResolveUDPAddr("udp", e.CloudUDP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteToUDP([]byte{1, 2, 3}, cloud); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool { return len(hook.requests()) == 1 }) {
		t.Fatalf("no webhook: %+v", e.State().Deliveries)
	}
	r := hook.requests()[0]
	want := SignKore("s3cret", "POST", hook.URL+"/ip", r.Body)
	if got := r.Header.Get("kore-signature"); got != want || r.Header.Get("X-Twilio-Signature") != "" {
		t.Errorf("kore-signature %q, want %q (X-Twilio-Signature %q)", got, want, r.Header.Get("X-Twilio-Signature"))
	}
	if r.URL != hookURL {
		t.Errorf("webhook called %s, want %s", r.URL, hookURL)
	}
}

// GET webhooks carry the parameters in the query and are signed over the
// full URL with no body parameters, as twilio-go's Validate checks them.
func TestWebhookGET(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{DeviceMode: ModeOS})
	hook := newHookServer(t, 0)
	code, body := rawRequest(t, e, "POST", "/v1/Fleets/"+e.FleetSid(), "application/x-www-form-urlencoded",
		"IpCommandsMethod=GET&IpCommandsUrl="+url.QueryEscape(hook.URL+"/ip?a=b"), true)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	dev := udpDevice(t)
	cloud, err := net.ResolveUDPAddr("udp", e.CloudUDP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteToUDP([]byte("get me"), cloud); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(testWait, func() bool { return len(hook.requests()) == 1 }) {
		t.Fatalf("no webhook: %+v", e.State().Deliveries)
	}
	r := hook.requests()[0]
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || u.Query().Get("a") != "b" || u.Query().Get("Payload") != base64.StdEncoding.EncodeToString([]byte("get me")) {
		t.Errorf("GET webhook %s %s", r.Method, r.URL)
	}
	v := client.NewRequestValidator(e.AuthToken())
	if !v.Validate(r.URL, map[string]string{}, r.Header.Get("X-Twilio-Signature")) {
		t.Errorf("GET signature does not validate")
	}
}

// UsageRecords sum what was carried, per hour, day or in all, grouped and
// filtered as asked; a period with no traffic has none.
func TestUsageRecords(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{DeviceMode: ModeOS})
	api := twilioAPI(e)
	dev := udpDevice(t)
	cloud, err := net.ResolveUDPAddr("udp", e.CloudUDP())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, 20, 30} {
		if _, err := dev.WriteToUDP(make([]byte, n), cloud); err != nil {
			t.Fatal(err)
		}
	}
	port := dev.LocalAddr().(*net.UDPAddr).Port
	c, err := api.CreateIpCommand((&openapi.CreateIpCommandParams{}).SetSim(e.SimSid()).SetPayload("12345").SetDevicePort(port))
	if err != nil {
		t.Fatal(err)
	}
	// The device's datagrams and the command are taken by different
	// goroutines: their order in the list is not known.
	if !waitUntil(testWait, func() bool {
		st := e.State()
		sent := false
		for _, ic := range st.IpCommands {
			sent = sent || (ic.Sid == *c.Sid && ic.Status == StatusSent)
		}
		return len(st.IpCommands) == 4 && sent
	}) {
		t.Fatalf("IP Commands: %+v", e.State().IpCommands)
	}
	check := func(p *openapi.ListUsageRecordParams, up, down int64) []openapi.SupersimV1UsageRecord {
		t.Helper()
		recs, err := api.ListUsageRecord(p)
		if err != nil {
			t.Fatal(err)
		}
		var gotUp, gotDown int64
		for _, r := range recs {
			gotUp += *r.DataUpload
			gotDown += *r.DataDownload
			if *r.DataTotal != *r.DataUpload+*r.DataDownload || r.Period == nil || *r.AccountSid != e.AccountSID() {
				t.Errorf("record %+v", r)
			}
		}
		if gotUp != up || gotDown != down {
			t.Errorf("ListUsageRecord(%+v): upload %d download %d, want %d and %d", p, gotUp, gotDown, up, down)
		}
		return recs
	}
	all := check(&openapi.ListUsageRecordParams{}, 60, 5)
	if len(all) != 1 || all[0].SimSid != nil {
		t.Errorf("ungrouped records: %+v", all)
	}
	check((&openapi.ListUsageRecordParams{}).SetGranularity("hour"), 60, 5)
	day := check((&openapi.ListUsageRecordParams{}).SetGranularity("day").SetGroup("fleet"), 60, 5)
	if len(day) != 1 || *day[0].FleetSid != e.FleetSid() {
		t.Errorf("by day and fleet: %+v", day)
	}
	check((&openapi.ListUsageRecordParams{}).SetSim(e.SimSid()).SetGroup("isoCountry"), 60, 5)
	check((&openapi.ListUsageRecordParams{}).SetStartTime(time.Now().Add(time.Hour)), 0, 0)
	check((&openapi.ListUsageRecordParams{}).SetFleet("no-such-fleet"), 0, 0)
}

// Injected errors answer the next requests with the status, the error
// shape and Retry-After, and change nothing; then the API answers again.
func TestInjectErrors(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{})
	if err := e.InjectErrors(418, 1, 0); err == nil {
		t.Error("InjectErrors took 418")
	}
	if err := e.InjectErrors(http.StatusTooManyRequests, 2, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	body := "Sim=" + e.SimSid() + "&Payload=x"
	for i := range 2 {
		req, err := http.NewRequest("POST", e.URL()+"/v1/SmsCommands", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(e.AccountSID(), e.AuthToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got APIError
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 429 || got.Code != 20429 || got.Status != 429 || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("request %d: %d %+v Retry-After %q", i, resp.StatusCode, got, resp.Header.Get("Retry-After"))
		}
	}
	if n := len(e.State().SmsCommands); n != 0 {
		t.Errorf("%d commands after refused requests", n)
	}
	if code, b := rawRequest(t, e, "POST", "/v1/SmsCommands", "application/x-www-form-urlencoded", body, true); code != 201 {
		t.Errorf("after the injected errors: %d %s", code, b)
	}
}

// golang.org/x/oauth2's client-credentials flow gets a token from the
// KORE token endpoint, and its client calls the API with it.
func TestOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	e, _ := startEmu(t, Options{ClientID: "kore-client", ClientSecret: "kore-secret"})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: "kore-client", ClientSecret: "kore-secret",
			TokenURL: e.URL() + "/api-services/v1/auth/token", AuthStyle: style}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("token (style %d): %v", style, err)
		}
		if tok.AccessToken == "" || tok.Expiry.IsZero() {
			t.Errorf("token %+v", tok)
		}
		resp, err := cc.Client(context.Background()).Get(e.URL() + "/v1/Sims")
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Errorf("GET /v1/Sims with the token: %d", resp.StatusCode)
		}
	}
	bad := clientcredentials.Config{ClientID: "kore-client", ClientSecret: "wrong", TokenURL: e.URL() + "/oauth/token"}
	if _, err := bad.Token(context.Background()); err == nil {
		t.Error("a wrong client secret got a token")
	}
}

// In modem mode an IP Command waits for the module's data session: with
// no host to bring it up, it stays queued and nothing is injected.
func TestIPCommandWaitsForDataSession(t *testing.T) {
	t.Parallel()
	e, sim := startEmu(t, Options{})
	api := twilioAPI(e)
	if !waitUntil(testWait, func() bool { st := sim.State(); return st.SMSReady && st.Registration == 5 }) {
		t.Fatal("modem never registered")
	}
	c, err := api.CreateIpCommand((&openapi.CreateIpCommandParams{}).SetSim(e.SimSid()).SetPayload("hello").SetDevicePort(6969))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // many retry intervals
	got, err := api.FetchIpCommand(*c.Sid)
	if err != nil || *got.Status != StatusQueued || got.DeviceIp != nil {
		t.Errorf("without a data session: %+v, %v; want queued with no device_ip", got, err)
	}
	if n := sim.State().Counters[modemsim.CounterUDPIn]; n != 0 {
		t.Errorf("%d datagrams injected without a data session", n)
	}
}

// An API Key SID and its secret authenticate like the account's own
// credentials; a wrong secret or an unknown key does not.
func TestAPIKeyAuth(t *testing.T) {
	t.Parallel()
	const key, secret = "SK0123456789abcdef0123456789abcdef", "keysecret"
	e, _ := startEmu(t, Options{APIKeys: map[string]string{key: secret}})
	for _, c := range []struct {
		user, pass string
		want       int
	}{
		{key, secret, 200}, {key, "wrong", 401}, {"SKffffffffffffffffffffffffffffffff", secret, 401}, {e.AccountSID(), e.AuthToken(), 200},
	} {
		req, err := http.NewRequest("GET", e.URL()+"/v1/Fleets", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(c.user, c.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s:%s: %d, want %d", c.user, c.pass, resp.StatusCode, c.want)
		}
	}
	if _, err := Start(Options{Modem: e.modem, APIKeys: map[string]string{"AK1": "x"}}); err == nil {
		t.Error("Start took an API key SID without the SK prefix")
	}
}
