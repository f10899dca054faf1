package superapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Delivery is one webhook or status callback and its attempts.
type Delivery struct {
	ID string `json:"id"`
	// Kind is sms_from_sim, ip_from_sim, sms_status, ip_status or sim_status.
	Kind   string `json:"kind"`
	URL    string `json:"url"`
	Method string `json:"method"`
	// Sid is the resource the delivery is about.
	Sid    string            `json:"sid"`
	Params map[string]string `json:"params"`
	// State is pending, delivered or failed (attempts used up).
	State    string    `json:"state"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one try of a Delivery: the receiver's status code, or the
// error when there was no answer.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// webhooks sends deliveries: one FIFO per destination URL, so that a
// receiver sees its callbacks in the order they happened even across
// retries, and one failing receiver does not hold up another.
type webhooks struct {
	e      *Emulator
	mu     sync.Mutex
	all    []*Delivery
	queues map[string]chan *Delivery
	wg     sync.WaitGroup
	n      int
	closed bool
}

func newWebhooks(e *Emulator) *webhooks {
	return &webhooks{e: e, queues: map[string]chan *Delivery{}}
}

// queueDepth bounds the deliveries waiting for one URL; beyond it a new
// one is recorded as failed at once rather than blocking the network.
const queueDepth = 4096

func (w *webhooks) send(kind, rawURL, method, sid string, params map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	d := &Delivery{
		ID: fmt.Sprintf("WH%06d", w.n), Kind: kind, URL: rawURL, Method: method, Sid: sid,
		Params: params, State: DeliveryPending, Attempts: []Attempt{},
	}
	w.all = append(w.all, d)
	if w.closed {
		d.State = DeliveryFailed
		return
	}
	q, ok := w.queues[rawURL]
	if !ok {
		q = make(chan *Delivery, queueDepth)
		w.queues[rawURL] = q
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.worker(q)
		}()
	}
	select {
	case q <- d:
	default:
		d.State = DeliveryFailed
		d.Attempts = append(d.Attempts, Attempt{At: time.Now().UTC(), Error: "too many deliveries waiting for this URL"})
	}
}

func (w *webhooks) worker(q chan *Delivery) {
	for {
		select {
		case <-w.e.done:
			return
		case d := <-q:
			w.deliver(d)
		}
	}
}

// deliver tries d until the receiver answers 2xx or the attempts are used
// up, waiting WebhookBackoff, doubled each time up to 30s, in between.
func (w *webhooks) deliver(d *Delivery) {
	o := w.e.opts
	wait := o.WebhookBackoff
	for i := 0; i < o.WebhookAttempts; i++ {
		if i > 0 {
			select {
			case <-w.e.done:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 30*time.Second)
		}
		code, err := w.attempt(d)
		a := Attempt{At: time.Now().UTC(), StatusCode: code}
		if err != nil {
			a.Error = err.Error()
		}
		w.mu.Lock()
		d.Attempts = append(d.Attempts, a)
		done := err == nil && code >= 200 && code < 300
		if done {
			d.State = DeliveryDelivered
		} else if i == o.WebhookAttempts-1 {
			d.State = DeliveryFailed
		}
		w.mu.Unlock()
		w.e.log.Info("webhook", "id", d.ID, "kind", d.Kind, "url", d.URL, "status", code, "err", err, "attempt", i+1)
		if done {
			return
		}
	}
}

// attempt makes one request; the receiver's body is read and ignored.
func (w *webhooks) attempt(d *Delivery) (int, error) {
	o := w.e.opts
	form := url.Values{}
	for k, v := range d.Params {
		form.Set(k, v)
	}
	body := form.Encode()
	target := d.URL
	var req *http.Request
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), o.WebhookTimeout)
	defer cancel()
	if d.Method == http.MethodGet {
		u, perr := url.Parse(d.URL)
		if perr != nil {
			return 0, fmt.Errorf("callback URL: %w", perr)
		}
		q := u.Query()
		for k, v := range form {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		target = u.String()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		body = ""
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "simgate-superapi-emulator")
	// The same token on every attempt lets a receiver drop a redelivery.
	req.Header.Set("I-Twilio-Idempotency-Token", d.ID)
	switch o.Signing {
	case SigningKore:
		sig := ""
		if o.SigningSecret != "" {
			sig = SignKore(o.SigningSecret, req.Method, d.URL, []byte(body))
		}
		req.Header.Set("kore-signature", sig)
	default:
		params := map[string]string{}
		if req.Method == http.MethodPost {
			params = d.Params
		}
		req.Header.Set("X-Twilio-Signature", SignTwilio(o.AuthToken, target, params))
	}
	resp, err := w.e.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", req.Method, d.URL, err)
	}
	_, cerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if err := resp.Body.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		w.e.log.Debug("webhook answer body", "id", d.ID, "err", cerr)
	}
	return resp.StatusCode, nil
}

func (w *webhooks) snapshot() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Delivery, 0, len(w.all))
	for _, d := range w.all {
		c := *d
		c.Attempts = append([]Attempt{}, d.Attempts...)
		c.Params = map[string]string{}
		for k, v := range d.Params {
			c.Params[k] = v
		}
		out = append(out, c)
	}
	return out
}

func (w *webhooks) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.all {
		if d.State == DeliveryPending {
			d.State = DeliveryFailed
		}
	}
}

// SignTwilio is the X-Twilio-Signature of a request to fullURL: the base64
// HMAC-SHA1, keyed with the auth token, of the URL followed by each POST
// parameter's name and value, sorted by name (none for GET, whose
// parameters are in the URL).
func SignTwilio(authToken, fullURL string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignKore is the kore-signature of a request: the hex SHA-256 of the
// secret, the HTTP method, the callback URL without its query and fragment,
// and the raw body, concatenated in that order (KORE's "Validate Webhook
// Signatures").
func SignKore(secret, method, callbackURL string, body []byte) string {
	u := callbackURL
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	h := sha256.New()
	h.Write([]byte(secret + method + u))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}
