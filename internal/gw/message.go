package gw

import (
	"context"
	"slices"
	"time"
)

// Channels of an Inbound message, as they appear in the MQTT "channel" field.
const (
	ChannelSMS = "sms"
	ChannelIP  = "ip"
)

// Inbound is one mobile-terminated command: an SMS Command (reassembled when
// it was concatenated) or an IP Command (one UDP datagram).
type Inbound struct {
	// ID is stable across redelivery: it is derived from the content and the
	// SMSC timestamp (SMS) or assigned once when the datagram is first stored
	// (IP), so a consumer can drop duplicates.
	ID      string `json:"id"`
	Channel string `json:"channel"`
	// From is the sender's number (SMS) or "IP:PORT" (IP).
	From string `json:"from"`
	// Port is the device port an IP Command arrived on; 0 for SMS.
	Port int `json:"port,omitempty"`
	// Payload is the UTF-8 text when Binary is false, raw bytes otherwise.
	Payload []byte `json:"payload"`
	Binary  bool   `json:"binary,omitempty"`
	// Parts is how many SMS segments were reassembled (1 for a single SMS).
	Parts int `json:"parts,omitempty"`
	// Partial is set when a concatenated SMS timed out before every segment
	// arrived; Payload then holds the segments that did arrive, in order.
	Partial bool `json:"partial,omitempty"`
	// SentAt is the service centre timestamp of an SMS (zero for IP).
	SentAt time.Time `json:"sent_at,omitzero"`
	// ReceivedAt is when the gateway first read the message from the modem
	// or socket. It is for people: ordering uses the queue's own sequence,
	// because a Pi can boot with its clock in 1970.
	ReceivedAt time.Time `json:"received_at"`
	// Occurrence tells apart SMS that are identical (same sender, service
	// centre second and content) but arrived as separate messages: the
	// first is 0, and the id of any later one includes its number. A cloud
	// that repeats a command within a second sends exactly that.
	Occurrence int `json:"occurrence,omitempty"`
	// Undecodable is set, to the reason, for an SMS that could not be
	// decoded; Payload then holds its PDU as read from the SIM (the SMSC
	// address included) and From and SentAt are empty.
	Undecodable string `json:"undecodable,omitempty"`
}

// SIMJournal is what a session must remember about the SIM's SMS store
// across a restart. It is committed with each SMS stored from the SIM, so
// it costs no sync of its own.
type SIMJournal struct {
	// Slots maps a SIM index to the id given to the SMS listed there, with
	// the hash of its PDU, until it is known deleted; only SMS listed beside
	// an identical one are named (any other gets the same id from its
	// content again). The same SMS read again from that index (the process
	// stopped before AT+CMGD) keeps its id: stored already, the sink drops
	// the copy; not stored yet, it is stored under the id the first listing
	// gave it.
	Slots map[int]SlotID `json:"slots,omitempty"`
	// Announced are SIM indexes whose +CMTI arrived but whose SMS is not
	// stored yet, in the order the module announced them, so a restart
	// keeps that order.
	Announced []int `json:"announced,omitempty"`
}

// SlotID is one entry of SIMJournal.Slots.
type SlotID struct {
	PDU        string `json:"pdu"` // pduHash of the PDU as read
	ID         string `json:"id"`
	Occurrence int    `json:"occurrence,omitempty"`
}

// Segment is one part of a concatenated SMS, held durably until the whole
// message has arrived so that a restart mid-message loses nothing.
type Segment struct {
	// Key identifies the message a segment belongs to: sender, concatenation
	// reference and segment count.
	Key   string `json:"key"`
	Seq   int    `json:"seq"`   // 1-based position in the message
	Total int    `json:"total"` // number of segments in the message
	// TPDU is the segment's SMS-DELIVER TPDU as read from the modem (no SMSC
	// address), so reassembly decodes from the original bytes.
	TPDU       []byte    `json:"tpdu"`
	ReceivedAt time.Time `json:"received_at"`
}

// SIMItem is one SMS of a SIM listing for Sink.PutSIM: a whole message, or
// a part of a concatenated one.
type SIMItem struct {
	Message *Inbound
	Part    *Segment
	// Held is set by PutSIM for a part stored: every segment held under
	// its key, including it, ordered by Seq.
	Held []Segment
}

// Sink is where a session hands received commands. Every method returns only
// once its effect is durable (survives power loss); only then does the session
// delete the SMS from the modem or acknowledge the datagram.
type Sink interface {
	// Put stores one complete message. Putting an ID that is already stored,
	// or was delivered recently, succeeds without storing it twice.
	Put(ctx context.Context, m Inbound) error
	// PutSegment stores s and returns every segment held under s.Key,
	// including s, ordered by Seq. A segment already held is not duplicated.
	PutSegment(ctx context.Context, s Segment) ([]Segment, error)
	// Assemble atomically stores m and removes the segments held under key.
	Assemble(ctx context.Context, m Inbound, key string) error
	// Segments returns every segment held, ordered by Key then Seq, so a
	// session can time out incomplete messages after a restart.
	Segments(ctx context.Context) ([]Segment, error)

	// PutSIM stores what one listing of the SIM holds, in order, with j as
	// the SIM journal, in one commit: a burst of SMS costs one fsync, and
	// the session deletes none of them from the SIM before it returns. It
	// stores a prefix of items and returns its length; short of
	// len(items), err says why items[n] was refused (a full queue), and j
	// is not committed: the prefix's journal differs. A commit that fails
	// stores nothing. Each part's Held is set as PutSegment would return
	// it once that part is stored.
	PutSIM(ctx context.Context, items []SIMItem, j SIMJournal) (int, error)
	// SaveJournal commits j alone.
	SaveJournal(ctx context.Context, j SIMJournal) error
	// Journal returns the SIM journal last committed; empty when none was.
	Journal(ctx context.Context) (SIMJournal, error)
	// Known reports whether a message with this id is stored, or was
	// delivered recently enough that Put would drop it as a duplicate.
	Known(ctx context.Context, id string) (bool, error)
}

// Event is something a user should hear about that is not a message:
// rejected input and recovery steps. It is published on P/events.
type Event struct {
	Type    string         `json:"type"`
	Message string         `json:"message"`
	Time    time.Time      `json:"time"`
	Fields  map[string]any `json:"-"`
}

// Status is a snapshot of the modem, SIM and network, published retained on
// P/status.
type Status struct {
	Modem    ModemInfo   `json:"modem"`
	SIM      SIMInfo     `json:"sim"`
	Network  NetworkInfo `json:"network"`
	Data     DataInfo    `json:"data"`
	Recovery Recovery    `json:"recovery"`
	// SMSStore is the SIM's SMS store use as last read (AT+CPMS).
	SMSStore StoreUse `json:"sms_store"`
	// Ready is true once the modem is initialised and SMS storage is usable.
	Ready bool `json:"-"`
}

// ModemInfo identifies the module.
type ModemInfo struct {
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	Revision     string `json:"revision"`
	IMEI         string `json:"imei"`
	Profile      string `json:"profile,omitempty"`
}

// SIMInfo identifies the SIM. The ICCID, not the IMSI, identifies a Super
// SIM: the multi-IMSI applet changes the IMSI.
type SIMInfo struct {
	ICCID string `json:"iccid"`
	IMSI  string `json:"imsi"`
}

// NetworkInfo is the registration state. Registration is one of
// "not_registered", "home", "searching", "denied", "unknown", "roaming";
// home and roaming both count as registered.
type NetworkInfo struct {
	Registration string `json:"registration"`
	Operator     string `json:"operator"`
	Technology   string `json:"technology"`
	// SignalDBm is nil when the modem reports the signal as unknown.
	SignalDBm *int `json:"signal_dbm"`
}

// DataInfo is the state of the data session used for IP Commands.
type DataInfo struct {
	Mode  string `json:"mode"`            // modem | os | off
	State string `json:"state,omitempty"` // up | down | opening
	IP    string `json:"ip,omitempty"`
}

// StoreUse is how many SMS the SIM's store holds and can hold; Total is 0
// until the store has been read.
type StoreUse struct {
	Used  int `json:"used"`
	Total int `json:"total"`
}

// Recovery counts self-repair steps since start.
type Recovery struct {
	Probes    int    `json:"probes"`
	Reinits   int    `json:"reinits"`
	Resets    int    `json:"resets"`
	Reopens   int    `json:"reopens"`
	LastError string `json:"last_error,omitempty"`
}

// Clone returns a deep copy of j, for a holder that must not share its maps.
func (j SIMJournal) Clone() SIMJournal {
	out := SIMJournal{Announced: slices.Clone(j.Announced)}
	if len(j.Slots) > 0 {
		out.Slots = make(map[int]SlotID, len(j.Slots))
		for k, v := range j.Slots {
			out.Slots[k] = v
		}
	}
	return out
}
