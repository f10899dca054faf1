package cloud

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/url"

	twilio "github.com/twilio/twilio-go/client"
)

// Signature headers of the providers' callbacks.
const (
	HeaderTwilioSignature = "X-Twilio-Signature"
	HeaderKoreSignature   = "Kore-Signature"
)

// ErrBadSignature is returned for a callback whose signature is missing or
// does not match.
var ErrBadSignature = errors.New("bad or missing signature")

// Verifier checks that a callback comes from the provider. url is the URL
// the provider called, as it knows it (cloud.public_url joined with the
// request's path and query); body is the raw request body.
type Verifier interface {
	Verify(method, url string, header map[string][]string, body []byte, query url.Values) error
}

// TwilioVerifier checks X-Twilio-Signature: a base64 HMAC-SHA1 keyed with
// the auth token over the full URL followed by the POST parameters sorted
// by name. The check is twilio-go's RequestValidator.
type TwilioVerifier struct{ v twilio.RequestValidator }

// NewTwilioVerifier returns a verifier for callbacks signed with token.
func NewTwilioVerifier(token string) *TwilioVerifier {
	return &TwilioVerifier{v: twilio.NewRequestValidator(token)}
}

// Verify implements Verifier.
func (t *TwilioVerifier) Verify(method, u string, header map[string][]string, body []byte, _ url.Values) error {
	sig := first(header, HeaderTwilioSignature)
	if sig == "" {
		return ErrBadSignature
	}
	if method == "POST" {
		if !t.v.ValidateBody(u, body, sig) {
			return ErrBadSignature
		}
		return nil
	}
	if !t.v.Validate(u, map[string]string{}, sig) {
		return ErrBadSignature
	}
	return nil
}

// KoreVerifier checks kore-signature as KORE's "Validate Webhook
// Signatures" page describes it: the lowercase hex SHA-256 digest (a plain
// digest, not an HMAC) of the webhook secret, the HTTP method, the callback
// URL without query and fragment, and the raw body, concatenated in that
// order. With no secret KORE sends an empty signature; a verifier without a
// secret accepts every callback (the bridge warns about it at start).
type KoreVerifier struct{ secret string }

// NewKoreVerifier returns a verifier for callbacks signed with secret.
func NewKoreVerifier(secret string) *KoreVerifier { return &KoreVerifier{secret: secret} }

// KoreSignature computes kore-signature for a callback.
func KoreSignature(secret, method, callbackURL string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(secret))
	h.Write([]byte(method))
	h.Write([]byte(stripQuery(callbackURL)))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func stripQuery(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.RawQuery, p.Fragment, p.RawFragment, p.ForceQuery = "", "", "", false
	return p.String()
}

// Verify implements Verifier.
func (k *KoreVerifier) Verify(method, u string, header map[string][]string, body []byte, _ url.Values) error {
	if k.secret == "" {
		return nil
	}
	sig := first(header, HeaderKoreSignature)
	if sig == "" {
		return ErrBadSignature
	}
	want := KoreSignature(k.secret, method, u, body)
	got := []byte(sig)
	// Hex digits compared case-insensitively, in constant time.
	for i, c := range got {
		if c >= 'A' && c <= 'F' {
			got[i] = c + ('a' - 'A')
		}
	}
	if subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
		return ErrBadSignature
	}
	return nil
}

func first(h map[string][]string, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
