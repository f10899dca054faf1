package superapi

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/supersim/v1"

	"github.com/simgate/simgate/modem/modemsim"
)

const testWait = 20 * time.Second

// startEmu starts a simulated modem and an emulator wired to it.
func startEmu(t *testing.T, o Options) (*Emulator, *modemsim.Sim) {
	t.Helper()
	return startEmuTB(t, o)
}

func startEmuTB(t testing.TB, o Options) (*Emulator, *modemsim.Sim) {
	t.Helper()
	sim, err := modemsim.Start(modemsim.Options{Link: filepath.Join(t.TempDir(), "modem"), BootDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("modemsim.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("modemsim Close: %v", err)
		}
	})
	o.Modem = sim
	if o.RetryInterval == 0 {
		o.RetryInterval = 20 * time.Millisecond
	}
	if o.WebhookBackoff == 0 {
		o.WebhookBackoff = 20 * time.Millisecond
	}
	if o.StatusDelay == 0 {
		o.StatusDelay = 20 * time.Millisecond
	}
	e, err := Start(o)
	if err != nil {
		t.Fatalf("superapi.Start: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	return e, sim
}

// emuClient is a twilio-go base client that sends the requests meant for
// supersim.twilio.com to the emulator.
type emuClient struct {
	*client.Client
	base string
}

func (c *emuClient) SendRequest(method, rawURL string, data url.Values, headers map[string]interface{}, body ...byte) (*http.Response, error) {
	rawURL = strings.Replace(rawURL, "https://supersim.twilio.com", c.base, 1)
	return c.Client.SendRequest(method, rawURL, data, headers, body...)
}

// twilioAPI is twilio-go's Super SIM v1 service pointed at e.
func twilioAPI(e *Emulator) *openapi.ApiService {
	c := &client.Client{Credentials: client.NewCredentials(e.AccountSID(), e.AuthToken())}
	c.SetAccountSid(e.AccountSID())
	return openapi.NewApiServiceWithClient(&emuClient{Client: c, base: e.URL()})
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// emptyFields names the fields of a twilio-go model left nil or zero,
// except those in allowed.
func emptyFields(v any, allowed ...string) []string {
	rv := reflect.Indirect(reflect.ValueOf(v))
	var out []string
	for i := range rv.NumField() {
		name := rv.Type().Field(i).Name
		if rv.Field(i).IsZero() && !contains(allowed, name) {
			out = append(out, name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hookRequest is one request a test webhook server received.
type hookRequest struct {
	Method string
	URL    string // the full URL the emulator called
	Header http.Header
	Body   []byte
	Form   url.Values
}

// hookServer is a test webhook receiver. Its first fail requests are
// answered 500; the rest 204.
type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	got  []hookRequest
	fail int
}

func newHookServer(t *testing.T, fail int) *hookServer {
	t.Helper()
	h := &hookServer{fail: fail}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("hook read: %v", err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Errorf("hook body %q: %v", body, err)
		}
		h.mu.Lock()
		h.got = append(h.got, hookRequest{Method: r.Method, URL: "http://" + r.Host + r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Form: form})
		failing := h.fail > 0
		if failing {
			h.fail--
		}
		h.mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got...)
}

// udpDevice is an os-mode device: a UDP socket on a free loopback port.
func udpDevice(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close device socket: %v", err)
		}
	})
	return c
}

// rawRequest sends a request with Basic auth of e unless auth is false.
func rawRequest(t *testing.T, e *Emulator, method, path, contentType, body string, auth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.SetBasicAuth(e.AccountSID(), e.AuthToken())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := resp.Body.Close(); err != nil {
			t.Errorf("close body: %v", err)
		}
	}()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
