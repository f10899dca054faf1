// Package reqjson holds what the JSON requests that the gateway
// (P/sms/out, P/ip/out) and the cloud bridge (C/{sim}/.../to_sim) take from
// MQTT have in common: request ids, null fields and base64 payloads. Each
// side keeps its own fields, limits and error sentences.
package reqjson

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength bounds a request id, in characters: it is echoed in results
// and logs.
const MaxIDLength = 128

// NewID generates a random request id, for a request that came without one
// and can never be delivered twice.
func NewID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; should it, an id that is
		// merely unusual is better than none.
		return "req-" + strings.ReplaceAll(fmt.Sprint(err), " ", "-")
	}
	return "req-" + hex.EncodeToString(b[:])
}

// CheckID reports why a request's own id cannot be used: too long, or with
// control characters that would garble a log line or a topic's payload.
func CheckID(id string) error {
	if utf8.RuneCountInString(id) > MaxIDLength {
		return fmt.Errorf("id is longer than %d characters", MaxIDLength)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return errors.New("id contains control characters")
		}
	}
	return nil
}

// IsNull reports whether a field is JSON null, which requests treat as
// absent.
func IsNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// DecodeBase64 accepts standard base64 with or without padding, the forms
// tools commonly produce.
func DecodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return b, nil
}
