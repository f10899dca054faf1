package cloud

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/simgate/simgate/transport"
)

// sendStatus posts the command's signed status callback to its CallbackUrl,
// as the provider does once it has sent the command, and returns the
// bridge's answer (0 when none came). It may run outside the test's
// goroutine, so it reports with Error only.
func sendStatus(t *testing.T, api *fakeAPI, c created, status string) int {
	t.Helper()
	cb := c.Form.Get("CallbackUrl")
	if cb == "" {
		t.Error("command created without CallbackUrl")
		return 0
	}
	param := "SmsCommandSid"
	if strings.HasPrefix(c.Sid, "HG") {
		param = "IpCommandSid"
	}
	form := url.Values{param: {c.Sid}, "SimSid": {testSid}, "Status": {status}}
	req, err := http.NewRequest("POST", cb, strings.NewReader(form.Encode()))
	if err != nil {
		t.Error(err)
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(HeaderTwilioSignature, signTwilio(api.pass, cb, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("callback %s: %v", status, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// resultsOf is what the observer saw for one request id, either channel.
func resultsOf(o *observer, id string) []ResultJSON {
	var out []ResultJSON
	for _, r := range o.results("/to_sim/result") {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// The state a kill -9 leaves when the command's status callback outran the
// API's answer: the command exists, its callback is committed (with the
// results before its status), and the job is still queued with its attempt
// noted. After the restart the bridge must take that command, which its own
// callback names, not create a second one. A "queued" callback, which the
// providers do not send, must not leave that state either.
func TestBridgeCallbackBeforeFinishThenStopNotCreatedAgain(t *testing.T) {
	for _, tc := range []struct {
		channel, status string
		want            []string
	}{
		{ChannelSMS, StatusSent, []string{StatusQueued, StatusSent}},
		{ChannelSMS, StatusDelivered, []string{StatusQueued, StatusSent, StatusDelivered}},
		{ChannelSMS, StatusFailed, []string{StatusQueued, StatusFailed}},
		{ChannelSMS, StatusQueued, []string{StatusQueued}},
		{ChannelIP, StatusSent, []string{StatusQueued, StatusSent}},
		{ChannelIP, StatusReceived, []string{StatusQueued, StatusSent, StatusReceived}},
	} {
		t.Run(tc.channel+"/"+tc.status, func(t *testing.T) {
			br := startBroker(t)
			api := newFakeAPI(t)
			var callback atomic.Int32
			api.afterCreate = func(w http.ResponseWriter, r *http.Request, c created) bool {
				callback.Store(int32(sendStatus(t, api, c, tc.status)))
				// The answer never leaves: the bridge stops (after its
				// grace, which cancels the call) with the job queued.
				<-r.Context().Done()
				return false
			}
			obs := observe(t, br.url(), "supersim/#")
			dir := t.TempDir()
			grace := func(c *Config) { c.ShutdownGrace = 200 * time.Millisecond }
			tb := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1", grace)
			publish(t, br.url(), "supersim/"+testICCID+"/"+tc.channel+"/to_sim", `{"id":"k1","payload":"open valve 3"}`)
			if !waitFor(testWait, func() bool { return callback.Load() != 0 }) {
				t.Fatal("the command was not created")
			}
			if code := callback.Load(); code != http.StatusOK {
				t.Fatalf("status callback answered %d", code)
			}
			tb.stop(t)
			if n := jobsLeft(t, dir); n != 1 {
				t.Fatalf("%d jobs left after the stop, want the in-doubt one", n)
			}

			api.mu.Lock()
			api.afterCreate = nil
			api.mu.Unlock()
			tb = runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
			if !waitFor(testWait, func() bool { return tb.q.Stats().Jobs == 0 }) {
				t.Fatalf("the request is still queued; results %+v", resultsOf(obs, "k1"))
			}
			if !waitFor(testWait, func() bool { return len(resultsOf(obs, "k1")) >= len(tc.want) }) {
				t.Fatalf("results %+v", resultsOf(obs, "k1"))
			}
			sms, ip := api.created()
			cmds := append(sms, ip...)
			if len(cmds) != 1 {
				t.Fatalf("API holds %d commands for one request, want 1", len(cmds))
			}
			got := resultsOf(obs, "k1")
			if diff := cmp.Diff(tc.want, statuses(got)); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.Sid != cmds[0].Sid {
					t.Errorf("result %+v: want sid %s", r, cmds[0].Sid)
				}
			}
		})
	}
}

// The same race without a restart: the API creates the command and its
// callback arrives, but the answer is lost. The bridge looks before trying
// again, and the command its callback named is the one it takes.
func TestBridgeCallbackThenNoAnswerNotCreatedAgain(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	var first atomic.Bool
	api.afterCreate = func(w http.ResponseWriter, r *http.Request, c created) bool {
		if !first.CompareAndSwap(false, true) {
			return true
		}
		if code := sendStatus(t, api, c, StatusSent); code != http.StatusOK {
			t.Errorf("status callback answered %d", code)
		}
		// The connection drops before the answer.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		conn.Close()
		return false
	}
	obs := observe(t, br.url(), "supersim/#")
	runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), t.TempDir(), "bridge-1")
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"n1","payload":"close valve 3"}`, `{"id":"n2","payload":"next"}`)
	if !waitFor(testWait, func() bool { return len(resultsOf(obs, "n2")) >= 1 }) {
		t.Fatalf("results %+v", obs.results("/sms/to_sim/result"))
	}
	sms, _ := api.created()
	var payloads []string
	for _, c := range sms {
		payloads = append(payloads, c.Form.Get("Payload"))
	}
	if diff := cmp.Diff([]string{"close valve 3", "next"}, payloads); diff != "" {
		t.Fatalf("commands created (-want +got):\n%s", diff)
	}
	got := resultsOf(obs, "n1")
	if diff := cmp.Diff([]string{StatusQueued, StatusSent}, statuses(got)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.Sid != sms[0].Sid {
			t.Errorf("result %+v: want sid %s", r, sms[0].Sid)
		}
	}
}

// A command that a finished request created, and whose callbacks came,
// is not taken for a later in-doubt request with the same payload: the
// later one gets a command of its own.
func TestBridgeInDoubtRequestDoesNotTakeAnotherRequestsCommand(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	dir := t.TempDir()
	tb := runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
	publish(t, br.url(), "supersim/"+testICCID+"/sms/to_sim", `{"id":"a","payload":"reboot"}`)
	if !waitFor(testWait, func() bool { return len(resultsOf(obs, "a")) >= 1 }) {
		t.Fatal("no result for the first request")
	}
	sms, _ := api.created()
	for _, st := range []string{StatusSent, StatusDelivered} {
		if code := sendStatus(t, api, sms[0], st); code != http.StatusOK {
			t.Fatalf("callback %s answered %d", st, code)
		}
	}
	if !waitFor(testWait, func() bool { return len(resultsOf(obs, "a")) >= 3 }) {
		t.Fatalf("results %+v", resultsOf(obs, "a"))
	}
	tb.stop(t)
	// The second request died with its call under way, before the API
	// took it.
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := Request{ID: "b", Channel: ChannelSMS, Sim: testICCID, Payload: "reboot", ReceivedAt: time.Now().UTC(), AttemptedAt: time.Now().UTC()}
	body, _ := json.Marshal(r)
	if _, err := q.AddJobs(context.Background(), []transport.Job{{Lane: testICCID, ID: testICCID + "/sms/b", Body: body}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	runBridge(t, br.url(), twilioAPI(t, api), NewTwilioVerifier(api.pass), dir, "bridge-1")
	if !waitFor(testWait, func() bool { return len(resultsOf(obs, "b")) >= 1 }) {
		t.Fatalf("no result for the in-doubt request: %+v", obs.results("/sms/to_sim/result"))
	}
	sms, _ = api.created()
	if len(sms) != 2 {
		t.Fatalf("API holds %d commands, want 2", len(sms))
	}
	if got := resultsOf(obs, "b"); got[0].Sid != sms[1].Sid {
		t.Errorf("in-doubt request took %s, want its own new command %s", got[0].Sid, sms[1].Sid)
	}
}

// jobsLeft counts the jobs in the store at dir.
func jobsLeft(t *testing.T, dir string) int {
	t.Helper()
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	return q.Stats().Jobs
}
