package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAPIErrorShape(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    string
		body      string
		want      APIError
		retryable bool
	}{
		{"400 with code", 400, "", `{"code":83001,"message":"bad payload","more_info":"https://x","status":400}`,
			APIError{Status: 400, Code: 83001, Message: "bad payload", MoreInfo: "https://x"}, false},
		{"401", 401, "", `{"code":20003,"message":"Authenticate","status":401}`,
			APIError{Status: 401, Code: 20003, Message: "Authenticate"}, false},
		{"429 seconds", 429, "7", `{"code":20429,"message":"Too Many Requests","status":429}`,
			APIError{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: 7 * time.Second}, true},
		{"503 no body", 503, "", ``, APIError{Status: 503, Message: "Service Unavailable"}, true},
		{"502 html", 502, "junk", `<html>`, APIError{Status: 502, Message: "Bad Gateway"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			a, err := NewAPI(APIConfig{BaseURL: srv.URL, Username: "AC1", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.CreateSMS(context.Background(), "HS1", "x", "")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if diff := cmp.Diff(tt.want, *ae); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if ae.Retryable() != tt.retryable {
				t.Errorf("Retryable = %v", ae.Retryable())
			}
		})
	}
}

func TestAPIUnreachableIsRetryable(t *testing.T) {
	a, err := NewAPI(APIConfig{BaseURL: "http://" + freeAddr(t), Username: "AC1", Password: "p", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.CreateIP(context.Background(), "HS1", "x", false, 6969, "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 0 || !ae.Retryable() {
		t.Fatalf("error %v: want a retryable *APIError without status", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "3": 3 * time.Second, "-1": 0, "soon": 0, "99999": time.Hour,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// The request twilio-go builds reaches the configured base URL with Basic
// auth and the documented form fields.
func TestAPITwilioRequestShape(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		r.ParseForm()
		got = append(got, fmt.Sprintf("%s %s %s:%s %s %s", r.Method, r.URL.Path, u, p, r.Header.Get("Content-Type"), r.Form.Encode()))
		w.WriteHeader(201)
		fmt.Fprint(w, `{"sid":"HG1","sim_sid":"HS1","status":"queued","payload":"aGk=","date_created":"2026-01-01T00:00:00Z"}`)
	}))
	defer srv.Close()
	a, err := NewAPI(APIConfig{BaseURL: srv.URL + "/", Username: "SK1", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.CreateIP(context.Background(), "HS1", "aGk=", true, 4000, "https://b.example/callbacks/ip?id=1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Sid != "HG1" || c.Status != "queued" {
		t.Errorf("command %+v", c)
	}
	want := []string{"POST /v1/IpCommands SK1:secret application/x-www-form-urlencoded " +
		"CallbackMethod=POST&CallbackUrl=https%3A%2F%2Fb.example%2Fcallbacks%2Fip%3Fid%3D1&DevicePort=4000&Payload=aGk%3D&PayloadType=binary&Sim=HS1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// KORE: the token is fetched with client credentials, reused while valid and
// fetched again once it expires; calls carry it as a Bearer token.
func TestAPIKoreTokenCachingAndRefresh(t *testing.T) {
	var mu sync.Mutex
	tokens, calls := 0, 0
	var bearers []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/token":
			id, secret, ok := r.BasicAuth()
			r.ParseForm()
			if !ok {
				id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
			}
			if id != "cid" || secret != "csecret" || r.Form.Get("grant_type") != "client_credentials" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(401)
				fmt.Fprint(w, `{"error":"invalid_client"}`)
				return
			}
			tokens++
			w.Header().Set("Content-Type", "application/json")
			// The oauth2 package renews a token 10 s before it expires:
			// this one is good for about 3 s.
			json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok%d", tokens), "token_type": "Bearer", "expires_in": 13})
		default:
			calls++
			bearers = append(bearers, r.Header.Get("Authorization"))
			w.WriteHeader(201)
			fmt.Fprint(w, `{"sid":"HC1","status":"queued"}`)
		}
	}))
	defer srv.Close()
	a, err := NewAPI(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "csecret", TokenURL: srv.URL + "/token"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.CreateSMS(context.Background(), "HS1", "x", ""); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	if tokens != 1 {
		t.Errorf("%d token fetches for 3 calls, want 1 (cached)", tokens)
	}
	mu.Unlock()
	// Once the cached token is due for renewal the next call fetches one.
	time.Sleep(3500 * time.Millisecond)
	if _, err := a.CreateSMS(context.Background(), "HS1", "x", ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if tokens != 2 {
		t.Errorf("%d token fetches after expiry, want 2", tokens)
	}
	want := []string{"Bearer tok1", "Bearer tok1", "Bearer tok1", "Bearer tok2"}
	if diff := cmp.Diff(want, bearers); diff != "" {
		t.Errorf("Authorization (-want +got):\n%s", diff)
	}

	bad, err := NewAPI(APIConfig{BaseURL: srv.URL, ClientID: "cid", ClientSecret: "wrong", TokenURL: srv.URL + "/token"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	_, err = bad.CreateSMS(context.Background(), "HS1", "x", "")
	mu.Lock()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Retryable() || !strings.Contains(ae.Message, "invalid_client") {
		t.Errorf("refused credentials: %v, want a final 401", err)
	}
}
