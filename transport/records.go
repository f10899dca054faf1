package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/simgate/simgate/internal/gw"
)

// Stored records are JSON: readable with bbolt's own tools when a person has
// to look inside a store, and tolerant of fields added later.

func checkInbound(m gw.Inbound) error {
	switch {
	case m.ID == "":
		return errors.New("message has no id")
	case m.Channel != gw.ChannelSMS && m.Channel != gw.ChannelIP:
		return fmt.Errorf("message %s has unknown channel %q", m.ID, m.Channel)
	}
	return nil
}

func encodeInbound(m gw.Inbound) ([]byte, error) { return encodeRecord("message", m, checkInbound) }

func decodeInbound(b []byte) (gw.Inbound, error) { return decodeRecord("message", b, checkInbound) }

func checkSegment(s gw.Segment) error {
	switch {
	case s.Key == "":
		return errors.New("segment has no key")
	case s.Total < 1 || s.Total > 255:
		return fmt.Errorf("segment total %d out of range 1..255", s.Total)
	case s.Seq < 1 || s.Seq > s.Total:
		return fmt.Errorf("segment %d out of range 1..%d", s.Seq, s.Total)
	}
	return nil
}

func encodeSegment(s gw.Segment) ([]byte, error) { return encodeRecord("segment", s, checkSegment) }

func decodeSegment(b []byte) (gw.Segment, error) { return decodeRecord("segment", b, checkSegment) }

// encodeRecord checks v before it is stored, so a record that could not be
// read back is never written.
func encodeRecord[T any](what string, v T, check func(T) error) ([]byte, error) {
	if err := check(v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return b, nil
}

// decodeRecord reads a stored record and checks it as encodeRecord did: a
// record damaged on disk is an error, never a zero value.
func decodeRecord[T any](what string, b []byte, check func(T) error) (T, error) {
	var v, zero T
	if err := json.Unmarshal(b, &v); err != nil {
		return zero, fmt.Errorf("decode stored %s: %w", what, err)
	}
	if err := check(v); err != nil {
		return zero, fmt.Errorf("decode stored %s: %w", what, err)
	}
	return v, nil
}

// Request is one device-originated command accepted from P/sms/out or
// P/ip/out, validated and waiting for the modem.
type Request struct {
	ID      string `json:"id"`
	Channel string `json:"channel"` // gw.ChannelSMS or gw.ChannelIP
	// To is the SMS destination; "000" reaches the Super SIM cloud.
	To      string `json:"to,omitempty"`
	Payload []byte `json:"payload"`
	Binary  bool   `json:"binary,omitempty"`
	// ReceivedAt is when the request was taken from the broker, for logs.
	ReceivedAt time.Time `json:"received_at"`
}

func decodeRequest(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("decode stored request: %w", err)
	}
	if r.ID == "" {
		return Request{}, errors.New("decode stored request: no id")
	}
	if _, err := outIndex(r.Channel); err != nil {
		return Request{}, fmt.Errorf("decode stored request %s: %w", r.ID, err)
	}
	return r, nil
}

// Result statuses, as published in the "status" field.
const (
	StatusSent   = "sent"
	StatusFailed = "failed"
	// StatusDelivered is the second result of an SMS whose delivery
	// report said the recipient has it.
	StatusDelivered = "delivered"
)

// Result is the outcome of a Request, published on P/<channel>/out/result.
type Result struct {
	ID        string `json:"id"`
	Channel   string `json:"channel"`
	Status    string `json:"status"`
	Reference *int   `json:"reference,omitempty"` // SMS message reference when sent
	Error     string `json:"error,omitempty"`
	// Report marks the second result of an SMS, from its delivery report.
	Report bool `json:"report,omitempty"`
}

func decodeResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("decode stored result: %w", err)
	}
	if _, err := outIndex(r.Channel); err != nil {
		return Result{}, fmt.Errorf("decode stored result %s: %w", r.ID, err)
	}
	if r.Status != StatusSent && r.Status != StatusFailed && r.Status != StatusDelivered {
		return Result{}, fmt.Errorf("decode stored result %s: unknown status %q", r.ID, r.Status)
	}
	return r, nil
}
