package transport

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/internal/reqjson"
)

// Limits of a request taken from MQTT.
const (
	// MaxRequestBytes bounds a request before it is parsed. The largest
	// valid one, 1300 bytes in base64 or 70 UCS-2 characters written as JSON
	// escapes, is well under it.
	MaxRequestBytes = 8192
	// MaxIDLength bounds a request id, which is echoed in topics' payloads
	// and logs.
	MaxIDLength = reqjson.MaxIDLength
	// DefaultSMSTo is where SMS Commands go: the Super SIM cloud.
	DefaultSMSTo = "000"
)

// Encodings of a payload in MQTT JSON.
const (
	EncodingText   = "text"
	EncodingBase64 = "base64"
)

// derivedID is the id of a request without one, taken from the message as
// the broker delivered it, so a redelivered copy gets the same id and is
// dropped as a duplicate instead of being sent twice.
//
// A QoS 1 message that was committed but whose PUBACK never reached the
// broker (the daemon killed in between) is delivered again on the next
// connection with its original packet identifier (MQTT 3.1.1, 4.4): the
// packet id and the payload together name it. The broker hands out packet
// ids in turn, so two different requests share both only when the same
// payload comes back on the same packet id after 65,535 others; the
// request_duplicate event names it then. A QoS 0 message is never
// redelivered and gets a random id. A retained message is named by its
// payload alone: it is refused, and the same standing order keeps one name
// however often it is handed over.
func derivedID(channel string, m paho.Message) string {
	if m.Qos() == 0 && !m.Retained() {
		return reqjson.NewID()
	}
	h := sha256.New()
	h.Write([]byte(channel))
	h.Write([]byte{0})
	if m.Retained() {
		h.Write([]byte("retained"))
	} else {
		var mid [2]byte
		binary.BigEndian.PutUint16(mid[:], m.MessageID())
		h.Write(mid[:])
	}
	h.Write([]byte{0})
	h.Write(m.Payload())
	return "req-" + hex.EncodeToString(h.Sum(nil)[:10])
}

// errRetained refuses a retained request. A retained message is a standing
// order: the broker hands it over again on every subscription, so sending
// it would repeat the command on every restart.
func errRetained(topic string) error {
	return fmt.Errorf("retained requests are refused: the broker hands a retained message over again on every connection; publish without the retain flag (clear this one with: mosquitto_pub -r -n -t %s)", topic)
}

// parseDelivered is parseRequest for a message as the broker delivered it:
// an id-less request is named by derivedID, and a retained one is refused.
func parseDelivered(channel string, m paho.Message) (Request, error) {
	req, err := parseRequest(channel, m.Payload(), func() string { return derivedID(channel, m) })
	if m.Retained() {
		return req, errRetained(m.Topic())
	}
	return req, err
}

// requestFields are the fields each channel accepts.
var requestFields = map[string][]string{
	gw.ChannelSMS: {"id", "payload", "encoding", "to"},
	gw.ChannelIP:  {"id", "payload", "encoding"},
}

// parseRequest decodes one P/sms/out or P/ip/out payload. The returned
// Request always carries an id, the request's own or a generated one when it
// has none or it cannot be read, so a failure can be reported against it.
// The error says, for a person, what is wrong.
func parseRequest(channel string, body []byte, genID func() string) (Request, error) {
	req := Request{Channel: channel}
	fail := func(format string, args ...any) (Request, error) {
		if req.ID == "" {
			req.ID = genID()
		}
		return req, fmt.Errorf(format, args...)
	}
	allowed, ok := requestFields[channel]
	if !ok {
		return fail("unknown channel %q", channel)
	}
	if len(body) > MaxRequestBytes {
		// A longer MQTT packet reaches the parser cut to one byte over
		// the limit (boundedConn): its true size is not known here.
		size := fmt.Sprint(len(body))
		if len(body) == MaxRequestBytes+1 {
			size = fmt.Sprintf("more than %d", MaxRequestBytes)
		}
		return fail("request is %s bytes, at most %d", size, MaxRequestBytes)
	}
	if !utf8.Valid(body) {
		return fail("request is not UTF-8 JSON")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return fail("request is empty: want a JSON object with a payload")
	}
	if trimmed[0] != '{' {
		return fail("request must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return fail("malformed JSON: %s", jsonReason(err))
	}
	if raw, ok := fields["id"]; ok && !reqjson.IsNull(raw) {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return fail("id must be a string")
		}
		if err := reqjson.CheckID(id); err != nil {
			return fail("%w", err)
		}
		req.ID = id
	}
	if req.ID == "" {
		req.ID = genID()
	}
	var unknown []string
	for k := range fields {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		if channel == gw.ChannelIP && contains(unknown, "to") {
			return fail(`"to" is not accepted on ip/out: datagrams go to the configured ip.cloud address`)
		}
		return fail("unknown field %q (accepted: %s)", unknown[0], strings.Join(allowed, ", "))
	}
	payload, err := stringField(fields, "payload")
	switch {
	case err != nil:
		return fail("%w", err)
	case payload == nil:
		return fail("payload is missing")
	}
	encoding, err := stringField(fields, "encoding")
	if err != nil {
		return fail("%w", err)
	}
	switch {
	case encoding == nil || *encoding == "" || *encoding == EncodingText:
		req.Payload = []byte(*payload)
	case *encoding == EncodingBase64:
		b, err := reqjson.DecodeBase64(*payload)
		if err != nil {
			return fail("payload is not valid base64: %w", err)
		}
		req.Payload, req.Binary = b, true
	default:
		return fail("unknown encoding %q: use %q or %q", *encoding, EncodingText, EncodingBase64)
	}
	if len(req.Payload) == 0 {
		// A modem sends an empty SMS without complaint, and the cloud
		// would receive a command that says nothing.
		return fail("payload is empty: an SMS or IP Command carries at least one character or byte")
	}
	switch channel {
	case gw.ChannelSMS:
		to, err := stringField(fields, "to")
		if err != nil {
			return fail("%w", err)
		}
		if to != nil && *to != "" {
			if err := checkNumber(*to); err != nil {
				return fail("%w", err)
			}
			req.To = *to
		} else {
			req.To = DefaultSMSTo
		}
		if _, err := gw.CheckSMS(req.Payload, req.Binary); err != nil {
			return fail("too long for one SMS: %w", err)
		}
	case gw.ChannelIP:
		if err := gw.CheckUDP(req.Payload); err != nil {
			return fail("too long for one IP Command: %w", err)
		}
	}
	return req, nil
}

// stringField reads an optional string field; nil means absent or null.
func stringField(fields map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := fields[name]
	if !ok || reqjson.IsNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s must be a string", name)
	}
	return &s, nil
}

// checkNumber accepts what a modem takes as a destination: digits, with an
// optional leading '+' for international format.
func checkNumber(to string) error {
	digits := strings.TrimPrefix(to, "+")
	if len(digits) == 0 || len(digits) > 20 {
		return fmt.Errorf("to %q must be 1 to 20 digits, optionally after '+'", to)
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return fmt.Errorf("to %q must be 1 to 20 digits, optionally after '+'", to)
		}
	}
	return nil
}

// jsonReason turns a decoding error into a sentence without Go type names.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return "request must be a JSON object"
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
