package superapi

import (
	"crypto/subtle"
	"io"
	"net/http"
	"net/url"
	"time"
)

// The OAuth2 client-credentials token endpoint KORE's API uses, served at
// KORE's path and at a short one. A token it issues is accepted as a
// Bearer credential until it expires.
const (
	tokenPathKore  = "/api-services/v1/auth/token"
	tokenPathOAuth = "/oauth/token"
)

// oauthError is an error answer of RFC 6749 section 5.2.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{"invalid_request", "the token endpoint takes POST"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "unreadable or oversized body"})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "the body is not form-encoded: " + err.Error()})
		return
	}
	if g := form.Get("grant_type"); g != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "grant_type must be client_credentials"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	okID := subtle.ConstantTimeCompare([]byte(id), []byte(e.opts.ClientID))
	okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(e.opts.ClientSecret))
	if okID&okSecret != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client", "unknown client or wrong secret"})
		return
	}
	tok := randomHex(24)
	e.mu.Lock()
	t := time.Now()
	for k, exp := range e.tokens {
		if t.After(exp) {
			delete(e.tokens, k)
		}
	}
	e.tokens[tok] = t.Add(e.opts.TokenTTL)
	e.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(e.opts.TokenTTL / time.Second),
	})
}
