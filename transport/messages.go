package transport

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/simgate/simgate/internal/gw"
)

// Topics under the prefix, as docs/contract.md and the README's "MQTT
// topics" section list them.
const (
	TopicSMSIn = "sms/in"
	// TopicSMSUndecodable carries SMS that could not be decoded, with their
	// PDU, so that nothing deleted from the SIM is lost.
	TopicSMSUndecodable = "sms/undecodable"
	TopicIPIn           = "ip/in"
	TopicSMSOut         = "sms/out"
	TopicSMSOutResult   = "sms/out/result"
	TopicIPOut          = "ip/out"
	TopicIPOutResult    = "ip/out/result"
	TopicStatus         = "status"
	TopicEvents         = "events"
)

// OfflinePayload is the retained status when the gateway is gone: the will,
// and what a clean shutdown publishes itself.
const OfflinePayload = `{"online":false}`

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// inboundJSON is P/sms/in and P/ip/in. Fields that belong to one channel
// only are pointers so the other channel leaves them out.
type inboundJSON struct {
	ID         string `json:"id"`
	Channel    string `json:"channel"`
	From       string `json:"from"`
	Port       *int   `json:"port,omitempty"`
	Payload    string `json:"payload"`
	Encoding   string `json:"encoding"`
	Parts      *int   `json:"parts,omitempty"`
	Partial    bool   `json:"partial,omitempty"`
	SentAt     string `json:"sent_at,omitempty"`
	ReceivedAt string `json:"received_at"`
}

// inboundTopic is the topic suffix of m.
func inboundTopic(m gw.Inbound) string {
	switch {
	case m.Channel == gw.ChannelIP:
		return TopicIPIn
	case m.Undecodable != "":
		return TopicSMSUndecodable
	}
	return TopicSMSIn
}

// undecodableJSON is P/sms/undecodable: the SMS as the SIM held it.
type undecodableJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Channel    string `json:"channel"`
	PDU        string `json:"pdu"` // base64
	Error      string `json:"error"`
	ReceivedAt string `json:"received_at"`
}

// renderInbound is the JSON published for m. Text that is not valid UTF-8
// goes out as base64 rather than be mangled by JSON's replacement character:
// nothing is lost either way.
func renderInbound(m gw.Inbound) ([]byte, error) {
	if m.Undecodable != "" && m.Channel == gw.ChannelSMS {
		b, err := json.Marshal(undecodableJSON{
			ID:         m.ID,
			Type:       gw.EventUndecodable,
			Channel:    m.Channel,
			PDU:        base64.StdEncoding.EncodeToString(m.Payload),
			Error:      m.Undecodable,
			ReceivedAt: rfc3339(m.ReceivedAt),
		})
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", m.ID, err)
		}
		return b, nil
	}
	j := inboundJSON{
		ID:         m.ID,
		Channel:    m.Channel,
		From:       m.From,
		Payload:    string(m.Payload),
		Encoding:   EncodingText,
		ReceivedAt: rfc3339(m.ReceivedAt),
	}
	if m.Binary || !utf8.Valid(m.Payload) {
		j.Payload, j.Encoding = base64.StdEncoding.EncodeToString(m.Payload), EncodingBase64
	}
	switch m.Channel {
	case gw.ChannelSMS:
		parts := max(m.Parts, 1)
		j.Parts = &parts
		j.Partial = m.Partial
		if !m.SentAt.IsZero() {
			j.SentAt = rfc3339(m.SentAt)
		}
	case gw.ChannelIP:
		port := m.Port
		j.Port = &port
	default:
		return nil, fmt.Errorf("render %s: unknown channel %q", m.ID, m.Channel)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", m.ID, err)
	}
	return b, nil
}

type resultJSON struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Reference *int   `json:"reference,omitempty"`
	Error     string `json:"error,omitempty"`
}

// resultTopic is the topic suffix for the result of a request on channel.
func resultTopic(channel string) string {
	if channel == gw.ChannelIP {
		return TopicIPOutResult
	}
	return TopicSMSOutResult
}

func renderResult(r Result) ([]byte, error) {
	j := resultJSON{ID: r.ID, Status: r.Status, Error: r.Error}
	if r.Channel == gw.ChannelSMS && (r.Status == StatusSent || r.Report) {
		j.Reference = r.Reference
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("render result %s: %w", r.ID, err)
	}
	return b, nil
}

// renderEvent is P/events: type, message and time, plus the event's fields
// at the top level. A field cannot replace the three fixed ones, and a value
// JSON cannot hold is written as text instead of losing the event.
func renderEvent(ev gw.Event) []byte {
	out := make(map[string]any, len(ev.Fields)+3)
	for k, v := range ev.Fields {
		if _, err := json.Marshal(v); err != nil {
			v = fmt.Sprint(v)
		}
		out[k] = v
	}
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	out["type"], out["message"], out["time"] = ev.Type, ev.Message, rfc3339(t)
	b, err := json.Marshal(out)
	if err != nil {
		// Every value was checked above; this is only reachable through a
		// value whose MarshalJSON is not deterministic.
		b, _ = json.Marshal(map[string]string{"type": ev.Type, "message": ev.Message, "time": rfc3339(t)})
	}
	return b
}

// QueueJSON is the "queue" object of P/status.
type QueueJSON struct {
	Pending  int `json:"pending"`
	Inbound  int `json:"inbound"`
	Outbound int `json:"outbound"`
	Results  int `json:"results"`
	Segments int `json:"segments"`
}

type statusJSON struct {
	Online   bool           `json:"online"`
	Version  string         `json:"version"`
	Modem    gw.ModemInfo   `json:"modem"`
	SIM      gw.SIMInfo     `json:"sim"`
	Network  gw.NetworkInfo `json:"network"`
	Data     gw.DataInfo    `json:"data"`
	Recovery gw.Recovery    `json:"recovery"`
	Ready    bool           `json:"ready"`
	// StoreFull and StoreCorrupt appear only when set, so a status from
	// before they existed reads the same.
	StoreFull    bool      `json:"store_full,omitempty"`
	StoreCorrupt bool      `json:"store_corrupt,omitempty"`
	CorruptFile  string    `json:"store_corrupt_file,omitempty"`
	Queue        QueueJSON `json:"queue"`
	UpdatedAt    string    `json:"updated_at,omitempty"`
}

func queueJSON(s QueueStats) QueueJSON {
	return QueueJSON{
		Pending:  s.Pending(),
		Inbound:  s.Inbound,
		Outbound: s.OutboundSMS + s.OutboundIP,
		Results:  s.Results,
		Segments: s.Segments,
	}
}

// renderStatus is the retained P/status. The second result is the same
// snapshot without the queue and the time, to tell a real change from the
// counters moving.
func renderStatus(version string, st gw.Status, qs QueueStats, now time.Time) (full, key []byte, err error) {
	j := statusJSON{
		Online:   true,
		Version:  version,
		Modem:    st.Modem,
		SIM:      st.SIM,
		Network:  st.Network,
		Data:     st.Data,
		Recovery: st.Recovery,
		Ready:    st.Ready,
		// In the change key: a full or damaged store is news.
		StoreFull:    qs.StoreFull,
		StoreCorrupt: qs.StoreCorrupt,
		CorruptFile:  qs.CorruptFile,
	}
	key, err = json.Marshal(j)
	if err != nil {
		return nil, nil, fmt.Errorf("render status: %w", err)
	}
	j.Queue = queueJSON(qs)
	j.UpdatedAt = rfc3339(now)
	full, err = json.Marshal(j)
	if err != nil {
		return nil, nil, fmt.Errorf("render status: %w", err)
	}
	return full, key, nil
}

// heldEvents is the summary of a period in which held events of latest's
// type were held back: the latest of them, saying how many there were.
func heldEvents(latest gw.Event, held int, period time.Duration) gw.Event {
	fields := make(map[string]any, len(latest.Fields)+1)
	for k, v := range latest.Fields {
		fields[k] = v
	}
	fields["suppressed"] = held
	latest.Fields = fields
	latest.Message = fmt.Sprintf("%s [%d %s events held back in the last %s; this is the latest]", latest.Message, held, latest.Type, period)
	return latest
}
