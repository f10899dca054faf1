package reqjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeBase64(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"aGk=", []byte("hi"), true},
		{"aGk", []byte("hi"), true}, // padding left off
		{" aGk=\n", []byte("hi"), true},
		{"", []byte{}, true},
		{"a", nil, false},
		{"!!!!", nil, false},
	} {
		got, err := DecodeBase64(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("DecodeBase64(%q) err = %v, want ok %t", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && !bytes.Equal(got, tt.want) {
			t.Errorf("DecodeBase64(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"", true}, // whether an empty id is allowed is the caller's rule
		{"order-17", true},
		{strings.Repeat("é", MaxIDLength), true},
		{strings.Repeat("a", MaxIDLength+1), false},
		{"a\nb", false},
	} {
		if err := CheckID(tt.id); (err == nil) != tt.ok {
			t.Errorf("CheckID(%q) = %v, want ok %t", tt.id, err, tt.ok)
		}
	}
}

func TestIsNullAndNewID(t *testing.T) {
	if !IsNull(json.RawMessage(" null ")) || IsNull(json.RawMessage(`"null"`)) {
		t.Error("IsNull must take JSON null only")
	}
	a, b := NewID(), NewID()
	if a == b || !strings.HasPrefix(a, "req-") || len(a) != len("req-")+16 {
		t.Errorf("NewID() = %q, %q: want two different req-<16 hex>", a, b)
	}
}
