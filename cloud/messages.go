package cloud

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/simgate/simgate/internal/reqjson"
)

// Channels, as in the topics.
const (
	ChannelSMS = "sms"
	ChannelIP  = "ip"
)

// Limits of one command, as the Super SIM API states them.
const (
	MaxSMSPayload  = 160  // characters
	MaxIPPayload   = 1300 // bytes, after base64 decoding for binary
	MaxRequestSize = 8192 // bytes of JSON, before parsing
	MaxIDLength    = reqjson.MaxIDLength
)

// Result statuses published on .../to_sim/result.
const (
	StatusQueued    = "queued"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusReceived  = "received"
	StatusFailed    = "failed"
)

// Request is one to_sim request taken from the cloud broker: the body of a
// job in the durable queue.
type Request struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	// Sim is how the topic named the SIM: an ICCID, or a Sim SID.
	Sim     string `json:"sim"`
	Payload string `json:"payload"`
	// Binary: Payload is base64 (IP Commands only).
	Binary bool `json:"binary,omitempty"`
	Port   int  `json:"port,omitempty"`
	// ReceivedAt is when the bridge took the request.
	ReceivedAt time.Time `json:"received_at"`
	// AttemptedAt is set, and committed, before the first API call: a
	// request found with it after a restart may have been created already.
	AttemptedAt time.Time `json:"attempted_at,omitzero"`
}

// ParseTopic splits C/{sim}/{channel}/to_sim. ok is false for any other topic.
func ParseTopic(prefix, topic string) (sim, channel string, ok bool) {
	rest, found := strings.CutPrefix(topic, prefix+"/")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "to_sim" || parts[0] == "" {
		return "", "", false
	}
	if parts[1] != ChannelSMS && parts[1] != ChannelIP {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// ParseRequest decodes a to_sim payload. The Request it returns carries an
// id (the request's or a generated one) even when err is set, so the
// failure can be reported against it; err says what is wrong, for a person.
func ParseRequest(channel, sim string, body []byte, defaultPort int, genID func() string) (Request, error) {
	req := Request{Channel: channel, Sim: sim}
	if genID == nil {
		genID = reqjson.NewID
	}
	fail := func(format string, args ...any) (Request, error) {
		if req.ID == "" {
			req.ID = genID()
		}
		return req, fmt.Errorf(format, args...)
	}
	if len(body) > MaxRequestSize {
		return fail("request is %d bytes, more than %d", len(body), MaxRequestSize)
	}
	if !utf8.Valid(body) {
		return fail("request is not UTF-8 JSON")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return fail("request must be a JSON object")
	}
	allowed := map[string]bool{"id": true, "payload": true}
	if channel == ChannelIP {
		allowed["encoding"], allowed["port"] = true, true
	}
	var unknown []string
	for k := range fields {
		if !allowed[k] {
			unknown = append(unknown, k)
		}
	}
	if id, ok := fields["id"]; ok && !reqjson.IsNull(id) {
		var s string
		if json.Unmarshal(id, &s) != nil {
			return fail("id must be a string")
		}
		if err := checkID(s); err != nil {
			return fail("%v", err)
		}
		req.ID = s
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fail("unknown field %q", unknown[0])
	}
	raw, ok := fields["payload"]
	if !ok || reqjson.IsNull(raw) {
		return fail("payload is missing")
	}
	if json.Unmarshal(raw, &req.Payload) != nil {
		return fail("payload must be a string")
	}
	encoding := "text"
	if e, ok := fields["encoding"]; ok && !reqjson.IsNull(e) {
		if json.Unmarshal(e, &encoding) != nil || (encoding != "text" && encoding != "base64") {
			return fail(`encoding must be "text" or "base64"`)
		}
	}
	switch channel {
	case ChannelSMS:
		if req.Payload == "" {
			return fail("payload is empty")
		}
		if n := utf8.RuneCountInString(req.Payload); n > MaxSMSPayload {
			return fail("payload is %d characters; an SMS Command takes at most %d", n, MaxSMSPayload)
		}
	case ChannelIP:
		req.Port = defaultPort
		if p, ok := fields["port"]; ok && !reqjson.IsNull(p) {
			var n float64
			if json.Unmarshal(p, &n) != nil || n != float64(int(n)) || n < 1 || n > 65535 {
				return fail("port must be a whole number between 1 and 65535")
			}
			req.Port = int(n)
		}
		size := len(req.Payload)
		if encoding == "base64" {
			b, err := reqjson.DecodeBase64(req.Payload)
			if err != nil {
				return fail("payload is not base64: %v", err)
			}
			req.Binary, req.Payload, size = true, base64.StdEncoding.EncodeToString(b), len(b)
		}
		if size == 0 {
			return fail("payload is empty")
		}
		if size > MaxIPPayload {
			return fail("payload is %d bytes; an IP Command takes at most %d", size, MaxIPPayload)
		}
	default:
		return fail("unknown channel %q", channel)
	}
	if req.ID == "" {
		req.ID = genID()
	}
	return req, nil
}

// checkID is reqjson.CheckID, and an id given must not be empty.
func checkID(id string) error {
	if id == "" {
		return errors.New("id is empty")
	}
	return reqjson.CheckID(id)
}

// ResultJSON is the payload of C/{sim}/{channel}/to_sim/result.
type ResultJSON struct {
	ID        string `json:"id"`
	Sid       string `json:"sid,omitempty"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	Code      int    `json:"code,omitempty"`
	UpdatedAt string `json:"updated_at"`
}

// FromSimJSON is the payload of C/{sim}/{channel}/from_sim.
type FromSimJSON struct {
	ID         string `json:"id"`
	Sid        string `json:"sid"`
	Channel    string `json:"channel"`
	Sim        string `json:"sim"`
	Payload    string `json:"payload"`
	Encoding   string `json:"encoding"`
	ReceivedAt string `json:"received_at"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Callback is what a provider posted: a status callback of a command the
// bridge created, or a from_sim command from the Fleet's webhook.
type Callback struct {
	Sid         string
	SimSid      string
	SimIccid    string
	Status      string
	Payload     string
	PayloadType string // text | binary
	Direction   string
	DateCreated string
	// Unknown lists parameters the mapping does not know, for a debug log.
	Unknown []string
}

// callbackFields maps every parameter name seen in the providers' callbacks
// to a field of Callback: the resource's fields in PascalCase (form posts)
// and lower_snake_case (JSON), with the alternative names of the command's
// sid. Keep the mapping here, in one place.
var callbackFields = map[string]func(*Callback) *string{
	"Sid":           func(c *Callback) *string { return &c.Sid },
	"CommandSid":    func(c *Callback) *string { return &c.Sid },
	"SmsCommandSid": func(c *Callback) *string { return &c.Sid },
	"IpCommandSid":  func(c *Callback) *string { return &c.Sid },
	"SimSid":        func(c *Callback) *string { return &c.SimSid },
	"SimIccid":      func(c *Callback) *string { return &c.SimIccid },
	"Iccid":         func(c *Callback) *string { return &c.SimIccid },
	"Status":        func(c *Callback) *string { return &c.Status },
	"CommandStatus": func(c *Callback) *string { return &c.Status },
	"Payload":       func(c *Callback) *string { return &c.Payload },
	"PayloadType":   func(c *Callback) *string { return &c.PayloadType },
	"Direction":     func(c *Callback) *string { return &c.Direction },
	"DateCreated":   func(c *Callback) *string { return &c.DateCreated },
}

// snakeToPascal turns sim_sid into SimSid.
func snakeToPascal(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// ParseCallback reads a callback's parameters: a form body, a flat JSON
// object (by Content-Type), or for a GET the query. Parameters the bridge
// put in the URL itself (id, sim) are not part of it.
func ParseCallback(contentType string, body []byte, query url.Values) (Callback, error) {
	var c Callback
	set := func(name, val string) {
		f, ok := callbackFields[name]
		if !ok {
			f, ok = callbackFields[snakeToPascal(name)]
		}
		if !ok {
			c.Unknown = append(c.Unknown, name)
			return
		}
		if p := f(&c); *p == "" {
			*p = val
		}
	}
	ct := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch {
	case ct == "application/json":
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return c, fmt.Errorf("callback body is not a JSON object: %w", err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
				set(k, v)
			case float64:
				set(k, strconv.FormatFloat(v, 'f', -1, 64))
			case bool:
				set(k, strconv.FormatBool(v))
			case nil:
			default:
				c.Unknown = append(c.Unknown, k)
			}
		}
	case len(body) > 0:
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return c, fmt.Errorf("callback body is not a form: %w", err)
		}
		for k, v := range vals {
			if len(v) > 0 {
				set(k, v[0])
			}
		}
	default:
		for k, v := range query {
			if k == "id" || k == "sim" || len(v) == 0 {
				continue
			}
			set(k, v[0])
		}
	}
	sort.Strings(c.Unknown)
	return c, nil
}

// statusChain lists the statuses a command passes through before status,
// itself included, so results are published in order and once each even
// when a callback arrives before the API's answer was handled, or a
// callback is missed.
func statusChain(channel, status string) []string {
	final := finalStatus(channel)
	switch status {
	case StatusQueued:
		return []string{StatusQueued}
	case StatusSent:
		return []string{StatusQueued, StatusSent}
	case final:
		return []string{StatusQueued, StatusSent, final}
	case StatusFailed:
		return []string{StatusQueued, StatusFailed}
	}
	return nil
}

// afterQueued lists the statuses a command of channel may reach after
// queued: those a status callback reports.
func afterQueued(channel string) []string {
	return []string{StatusSent, finalStatus(channel), StatusFailed}
}

// finalStatus is the status of a command of channel that reached the
// other end: delivered for SMS, received for IP.
func finalStatus(channel string) string {
	if channel == ChannelIP {
		return StatusReceived
	}
	return StatusDelivered
}
