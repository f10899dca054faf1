package cloud

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/transport"
)

// Limits of the webhook server.
const (
	// MaxCallbackBody bounds a webhook or callback body; the largest real
	// one, an IP Command of 1300 bytes in base64 with its fields, is far
	// smaller.
	MaxCallbackBody = 64 << 10
	readTimeout     = 30 * time.Second
	writeTimeout    = 30 * time.Second
)

// listen opens the listener at once, so an address in use is an error at
// start, not later.
func (b *Bridge) listen() (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/webhooks/sms", func(w http.ResponseWriter, r *http.Request) { b.handle(w, r, ChannelSMS, false) })
	mux.HandleFunc("/webhooks/ip", func(w http.ResponseWriter, r *http.Request) { b.handle(w, r, ChannelIP, false) })
	mux.HandleFunc("/callbacks/sms", func(w http.ResponseWriter, r *http.Request) { b.handle(w, r, ChannelSMS, true) })
	mux.HandleFunc("/callbacks/ip", func(w http.ResponseWriter, r *http.Request) { b.handle(w, r, ChannelIP, true) })
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          nil,
	}
	if b.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCertFile, b.cfg.TLSKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("cloud tls_cert_file/tls_key_file: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("cloud listen %s: %w", b.cfg.Listen, err)
	}
	return srv, ln, nil
}

func (b *Bridge) serve(srv *http.Server, ln net.Listener) error {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// calledURL is the URL the provider called, as the provider knows it.
func (b *Bridge) calledURL(r *http.Request) string {
	if b.cfg.PublicURL != "" {
		return b.cfg.PublicURL + r.URL.RequestURI()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// handle serves a webhook (from_sim command) or a status callback. It
// answers 2xx only once what it carries is committed to the queue, so the
// provider retries anything not yet safe; a bad or missing signature gets
// 403 and nothing is published.
func (b *Bridge) handle(w http.ResponseWriter, r *http.Request, channel string, callback bool) {
	kind := channel
	if callback {
		kind = "status"
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCallbackBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	u := b.calledURL(r)
	if err := b.cfg.Verifier.Verify(r.Method, u, r.Header, body, r.URL.Query()); err != nil {
		b.log.Warn("callback refused: bad signature", "path", r.URL.Path, "remote", r.RemoteAddr)
		b.event(gw.EventBadSignature, fmt.Sprintf("%s %s from %s refused: %v", r.Method, r.URL.Path, r.RemoteAddr, err),
			map[string]any{"path": r.URL.Path, "remote": r.RemoteAddr})
		b.webhookMetric(kind, "bad_signature")
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	cb, err := ParseCallback(r.Header.Get("Content-Type"), body, r.URL.Query())
	if err != nil {
		b.event(gw.EventCallbackRejected, fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err), map[string]any{"path": r.URL.Path})
		b.webhookMetric(kind, "rejected")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(cb.Unknown) > 0 {
		b.log.Debug("callback parameters not used", "path", r.URL.Path, "names", cb.Unknown)
	}
	var pubs []transport.Publication
	if callback {
		pubs, err = b.callbackPubs(r.Context(), channel, cb, r.URL.Query().Get("id"), r.URL.Query().Get("sim"))
	} else {
		pubs, err = b.fromSimPubs(r.Context(), channel, cb)
	}
	var he *httpError
	switch {
	case errors.As(err, &he):
		if he.status < 500 {
			b.event(gw.EventCallbackRejected, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, he.msg), map[string]any{"path": r.URL.Path})
			b.webhookMetric(kind, "rejected")
		} else {
			b.webhookMetric(kind, "error")
		}
		http.Error(w, he.msg, he.status)
		return
	case err != nil:
		b.webhookMetric(kind, "error")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(pubs) > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		err := b.q.AddPublications(ctx, pubs)
		cancel()
		if err != nil {
			b.log.Error("callback not stored; the provider will retry", "err", err)
			b.webhookMetric(kind, "error")
			http.Error(w, "not stored, try again", http.StatusServiceUnavailable)
			return
		}
	}
	b.webhookMetric(kind, "published")
	w.WriteHeader(http.StatusOK)
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func (b *Bridge) callbackPubs(ctx context.Context, channel string, cb Callback, id, sim string) ([]transport.Publication, error) {
	if cb.Sid == "" || cb.Status == "" {
		return nil, &httpError{http.StatusBadRequest, "callback lacks the command's sid or status"}
	}
	if sim == "" {
		var err error
		if sim, err = b.simOf(ctx, cb); err != nil {
			return nil, err
		}
	}
	if statusChain(channel, cb.Status) == nil {
		b.log.Debug("callback status not published", "sid", cb.Sid, "status", cb.Status)
		return nil, nil
	}
	if id == "" {
		id = cb.Sid
	} else if cb.Status == StatusQueued {
		// The bridge that created the command publishes queued itself,
		// from the API's answer or, after a crash, from the command it
		// finds. Stored here, it would mark the command taken by a
		// request without saying which (see resultKey), and that bridge
		// would then create it again.
		b.log.Debug("queued callback of a request: its result comes from the API's answer", "sid", cb.Sid, "id", id)
		return nil, nil
	}
	topic := b.topic(sim + "/" + channel + "/to_sim/result")
	return b.statusResults(topic, channel, id, cb.Sid, cb.Status, time.Now()), nil
}

func (b *Bridge) simOf(ctx context.Context, cb Callback) (string, error) {
	if cb.SimIccid != "" {
		return cb.SimIccid, nil
	}
	if cb.SimSid == "" {
		return "", &httpError{http.StatusBadRequest, "callback names no SIM (SimSid or SimIccid)"}
	}
	sim, err := b.iccidOf(ctx, cb.SimSid)
	if err != nil {
		b.log.Warn("cannot find the SIM of a callback; the provider will retry", "sim_sid", cb.SimSid, "err", err)
		return "", &httpError{http.StatusServiceUnavailable, "SIM lookup failed, try again"}
	}
	return sim, nil
}

func (b *Bridge) fromSimPubs(ctx context.Context, channel string, cb Callback) ([]transport.Publication, error) {
	if cb.Sid == "" {
		return nil, &httpError{http.StatusBadRequest, "webhook lacks the command's sid"}
	}
	if cb.Direction != "" && cb.Direction != "from_sim" {
		return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("webhook direction is %q, not from_sim", cb.Direction)}
	}
	sim, err := b.simOf(ctx, cb)
	if err != nil {
		return nil, err
	}
	m := FromSimJSON{ID: cb.Sid, Sid: cb.Sid, Channel: channel, Sim: sim, Payload: cb.Payload, Encoding: "text", ReceivedAt: rfc3339(time.Now())}
	if channel == ChannelIP {
		m.Encoding = "base64"
		if cb.PayloadType == "text" {
			m.Payload = base64.StdEncoding.EncodeToString([]byte(cb.Payload))
		}
	}
	p, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode from_sim: %w", err)
	}
	return []transport.Publication{{Key: "m/" + cb.Sid, Topic: b.topic(sim + "/" + channel + "/from_sim"), Payload: p}}, nil
}
