package modemsim

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Options configures a simulator. Only Link is required.
type Options struct {
	// Link is where the pty slave is symlinked, e.g. /tmp/modem0. An existing
	// symlink there is replaced; any other file is an error.
	Link string
	// Profile selects the module: "quectel" (BG96), "simcom" (SIM7600),
	// "sim7080" (SIM7080G), "ublox" (SARA-R410M), "sara-r5" (SARA-R510M8S)
	// or "generic" (27.007/27.005 only, no sockets).
	// Default "quectel".
	Profile string
	// Control is the unix socket path of the control protocol; "" means none.
	Control string
	// Listen, when set, is a UNIX stream socket path where the AT port is
	// served besides the pty, for hosts that take a socket as a serial port
	// (ModemManager's Test.SetProfile). One connection at a time.
	Listen string
	// Baud, when > 0, paces bytes in both directions at 10 bits per byte
	// (8N1) at this rate, so that latency figures are those of a real UART.
	Baud int
	// EmptyRead is what AT+CMGR answers for an empty slot: "ok" (a bare OK,
	// as some modules do) or "error" (+CMS ERROR: 321). Default "error".
	EmptyRead string
	// Capacity is the number of SMS slots on the SIM ("SM"). Default 30.
	Capacity int
	// ICCID, IMSI and IMEI identify the SIM and the module. The defaults are
	// a Super SIM ICCID (8988307...), an IMSI and a Luhn-valid IMEI.
	ICCID, IMSI, IMEI string
	// BootDelay is the time from power-up or reset to the first boot URC; the
	// following boot URCs come BootDelay/4 (at least 1ms) apart, in order.
	// Default 50ms.
	BootDelay time.Duration
	// ResetDrop is how long the link is gone during AT+CFUN=1,1 (or =15) and
	// Reset, as a USB module re-enumerates. Default 200ms; a negative value
	// keeps the link up (a module on a UART).
	ResetDrop time.Duration
	// SendDelay is how long AT+CMGS and socket sends take before the final
	// result, like the network round trip of a real module. Default 0.
	SendDelay time.Duration
	// DeliveryGap, when > 0, makes the network deliver one SMS segment at
	// a time, DeliveryGap apart, as each is a network transaction of its
	// own; 0 delivers every segment of an injection at once. A host that
	// handles one +CMTI at a time (ModemManager) needs the gap a real
	// network leaves.
	DeliveryGap time.Duration
	// AckTimeout is how long the module waits for AT+CNMA after a +CMT when
	// AT+CSMS=1; on expiry it disables direct delivery (27.005 3.4.1) and the
	// network stores the message on the SIM instead. Default 15s.
	AckTimeout time.Duration
	// ReportDelay is the time from an SMS sent with a status report
	// requested (TP-SRR) to the report. Default 100ms.
	ReportDelay time.Duration
	// SIM7080NoServer makes the SIM7080 refuse AT+CASERVER, as firmware
	// without the UDP server does; AT+CAOPEN still works.
	SIM7080NoServer bool
	// ReceiveColon makes the SIM7600 push datagrams as "+RECEIVE: ..." as
	// some firmware does, instead of "+RECEIVE,...".
	ReceiveColon bool
	// Operator is the network name in +COPS. Default "Super Network".
	Operator string
	// SMSC is the service centre number put in front of stored PDUs.
	// Default "+447700900123".
	SMSC string
	// Seed seeds the random source used for faults; 0 picks one from the clock.
	Seed int64
	// Logger receives debug logs of every command and fault; nil discards.
	Logger *slog.Logger
}

// Faults are misbehaviours of the line to the host, applied until changed.
type Faults struct {
	// Chunked splits every write to the host into random chunks of 1 to
	// ChunkMax bytes with delays of up to 2ms between them.
	Chunked bool `json:"chunked,omitempty"`
	// ChunkMax is the largest chunk Chunked writes; 0 means 8.
	ChunkMax int `json:"chunk_max,omitempty"`
	// ErrorOn lists commands the module answers with a plain ERROR instead
	// of running them, as the host writes them ("AT+CMEE?", "AT+CFUN=1,1";
	// the AT is optional, case does not matter). Each command of a line is
	// matched on its own: "AT+CMGF=0;+CMEE?" runs +CMGF=0, then fails.
	// Some modules refuse commands others take for granted.
	ErrorOn []string `json:"error_on,omitempty"`
	// URCNoise is the probability (0..1) of an unrelated URC (such as
	// +CEREG, +QIND: "csq" or +CIEV) between the lines of each reply.
	URCNoise float64 `json:"urc_noise,omitempty"`
	// SendError, when non-zero, makes AT+CMGS fail with +CMS ERROR: SendError
	// (e.g. 332 network timeout, 500 unknown error) without sending.
	SendError int `json:"send_error,omitempty"`
	// SocketSendFail makes socket sends report SEND FAIL / an error.
	SocketSendFail bool `json:"socket_send_fail,omitempty"`
	// ReportStatus is the TP-ST of the status reports the network sends
	// for SMS sent with TP-SRR: 0 (the default) delivered, e.g. 0x41
	// (incompatible destination) or 0x46 (validity period expired) failed.
	ReportStatus int `json:"report_status,omitempty"`
	// ReportLost makes the network never send a status report.
	ReportLost bool `json:"report_lost,omitempty"`
}

// chunk is the largest chunk the link writes at once; 0 when writes are
// not chunked.
func (f *Faults) chunk() int {
	switch {
	case !f.Chunked:
		return 0
	case f.ChunkMax > 0:
		return f.ChunkMax
	}
	return 8
}

// errorOn reports whether the fault ErrorOn names c.
func (f *Faults) errorOn(c *command) bool {
	for _, e := range f.ErrorOn {
		e = strings.TrimSpace(e)
		if len(e) >= 2 && strings.EqualFold(e[:2], "AT") {
			e = e[2:]
		}
		if strings.EqualFold(e, c.String()) {
			return true
		}
	}
	return false
}

// check reports what makes f unusable.
func (f *Faults) check() error {
	if f.URCNoise < 0 || f.URCNoise > 1 {
		return fmt.Errorf("urc_noise %v: want 0..1", f.URCNoise)
	}
	if f.ChunkMax < 0 || f.ChunkMax > 4096 {
		return fmt.Errorf("chunk_max %d: want 0..4096", f.ChunkMax)
	}
	for _, e := range f.ErrorOn {
		if b, ok := atBody(strings.TrimSpace(e)); ok && b == "" || strings.TrimSpace(e) == "" {
			return fmt.Errorf("error_on %q: want a command such as AT+CMEE?", e)
		}
	}
	return nil
}

// SMS is a mobile-terminated SMS to inject.
type SMS struct {
	// From is the sender; default "000", where Super SIM SMS Commands come from.
	From string `json:"from,omitempty"`
	// Text is the message for the gsm7 and ucs2 encodings (UTF-8).
	Text string `json:"text,omitempty"`
	// Data is the message for the 8bit encoding.
	Data []byte `json:"data,omitempty"`
	// Encoding is "gsm7", "ucs2" or "8bit". Default: 8bit when Data is set,
	// gsm7 when Text fits the GSM 7-bit alphabet and its extension table,
	// else ucs2.
	Encoding string `json:"encoding,omitempty"`
	// Parts, when > 1, splits the message into exactly that many concatenated
	// segments. When 0 or 1, a message too long for one SMS is split into as
	// few segments as it needs.
	Parts int `json:"parts,omitempty"`
	// Ref16 uses a 16-bit concatenation reference (IEI 8) instead of 8-bit.
	Ref16 bool `json:"ref16,omitempty"`
	// Order is the delivery order of the segments, 1-based, e.g. [3,1,2];
	// default in order. It must be a permutation of 1..segments.
	Order []int `json:"order,omitempty"`
	// SentAt is the service centre timestamp; default now. It is stored with
	// one-second and quarter-hour time zone resolution, as in the PDU.
	SentAt time.Time `json:"sent_at,omitzero"`
	// Copies, when > 1, delivers the message that many times at once:
	// identical SMS with the same timestamp, as a cloud that repeats a
	// command within a second sends. They are on the SIM together before
	// the host can list any of them.
	Copies int `json:"copies,omitempty"`
	// Silent stores the message without a +CMTI, as a module that lost
	// the indication does.
	Silent bool `json:"silent,omitempty"`
	// TPDU, when set, is stored as the message's SMS-DELIVER TPDU exactly
	// as given instead of one built from the fields above: for PDUs a host
	// cannot decode (a corrupt or unsupported message).
	TPDU []byte `json:"tpdu,omitempty"`
}

// ErrStoreFull is returned by InjectSMS when the SIM has no room for a
// segment. Like a real SIM the module says nothing to the host; the network
// keeps the segment and delivers it again once a slot is freed.
var ErrStoreFull = errors.New("store full")

// ErrNoSocket is returned by InjectUDP when no socket is open on the port.
var ErrNoSocket = errors.New("no socket open on port")

// State is a snapshot of the simulator, for tests and the state verb.
type State struct {
	Profile string `json:"profile"`
	Link    string `json:"link"`
	// Plugged is false while the link is gone (Unplug, reset).
	Plugged bool `json:"plugged"`
	// Booted is true once the module answers commands; SMSReady once it has
	// reported SMS DONE (or its profile's equivalent).
	Booted   bool `json:"booted"`
	SMSReady bool `json:"sms_ready"`
	// BootDone is true once the last boot URC has been sent: nothing more
	// of the boot will arrive.
	BootDone bool `json:"boot_done"`
	Hung     bool `json:"hung"`

	Echo bool  `json:"echo"`
	CMEE int   `json:"cmee"`
	CMGF int   `json:"cmgf"`
	CSMS int   `json:"csms"`
	CNMI []int `json:"cnmi"`
	CFUN int   `json:"cfun"`
	// Registration is the <stat> the module reports (1 home, 5 roaming...).
	Registration int `json:"registration"`
	// DataUp tells whether the data session used by sockets is active.
	DataUp bool   `json:"data_up"`
	IP     string `json:"ip,omitempty"`

	Capacity int         `json:"capacity"`
	Stored   []StoredSMS `json:"stored"`
	// NetworkQueue is how many segments the network still holds for the
	// module (refused when the store was full, or sent while it was off).
	NetworkQueue int       `json:"network_queue"`
	SentSMS      []SentSMS `json:"sent_sms"`
	SentUDP      []SentUDP `json:"sent_udp"`
	// Reports are the status reports the network sent, oldest first.
	Reports []SentReport `json:"reports,omitempty"`
	// RadioMode is the SIM7080's AT+CNMP and AT+CMNB setting (0 while
	// unset); 38 and 1 are LTE Cat-M only.
	RadioMode [2]int   `json:"radio_mode,omitempty"`
	Sockets   []Socket `json:"sockets"`
	// Counters count commands and events; see Counter* for the names.
	Counters map[string]int `json:"counters"`
}

// StoredSMS is one SMS segment on the SIM.
type StoredSMS struct {
	Index  int    `json:"index"`
	Status string `json:"status"` // "REC UNREAD", "REC READ", ...
	From   string `json:"from"`
	// PDU is the hex PDU as AT+CMGR shows it: SMSC address, then the TPDU.
	PDU string `json:"pdu"`
	// Text is the decoded segment (8-bit data is shown as hex).
	Text     string `json:"text"`
	Encoding string `json:"encoding"`
	// ConcatRef, Seq and Total describe a concatenated segment; Total is 0
	// for a single SMS.
	ConcatRef int `json:"concat_ref,omitempty"`
	Seq       int `json:"seq,omitempty"`
	Total     int `json:"total,omitempty"`
}

// SentSMS is one SMS-SUBMIT the host sent with AT+CMGS, decoded.
type SentSMS struct {
	To       string `json:"to"`
	Text     string `json:"text,omitempty"` // gsm7 and ucs2, UTF-8
	Data     []byte `json:"data,omitempty"` // 8bit
	Encoding string `json:"encoding"`       // gsm7, ucs2, 8bit
	// Reference is the message reference the module answered in +CMGS.
	Reference int `json:"reference"`
	// PDU is the submitted TPDU in hex, without the SMSC address.
	PDU  string `json:"pdu"`
	SMSC string `json:"smsc,omitempty"`
	// ConcatRef, Seq and Total describe a concatenated segment.
	ConcatRef int `json:"concat_ref,omitempty"`
	Seq       int `json:"seq,omitempty"`
	Total     int `json:"total,omitempty"`
}

// SentUDP is one datagram the host sent through a module socket.
type SentUDP struct {
	Socket int    `json:"socket"`
	Port   int    `json:"port"` // local port of the socket
	To     string `json:"to"`   // "ip:port"
	Data   []byte `json:"data"`
}

// Socket is an open module socket.
type Socket struct {
	ID    int    `json:"id"`
	Port  int    `json:"port"`
	Proto string `json:"proto"` // "UDP"
	// Mode is "buffer" (host reads on demand) or "push" (data in the URC).
	Mode string `json:"mode"`
	// Pending is how many received datagrams wait to be read.
	Pending int `json:"pending"`
	// Closed is set when the network closed the socket and the host has
	// not closed it yet.
	Closed bool `json:"closed,omitempty"`
}

// Names of State.Counters.
const (
	CounterCommands    = "commands"     // AT commands executed
	CounterCMTI        = "cmti"         // +CMTI indications sent
	CounterCMT         = "cmt"          // +CMT deliveries sent
	CounterCNMA        = "cnma"         // +CNMA acknowledgements received
	CounterCMGR        = "cmgr"         // AT+CMGR executed
	CounterCMGL        = "cmgl"         // AT+CMGL executed
	CounterCMGD        = "cmgd"         // AT+CMGD executed
	CounterCMGS        = "cmgs"         // SMS submitted successfully
	CounterUDPIn       = "udp_in"       // datagrams injected
	CounterUDPOut      = "udp_out"      // datagrams sent by the host
	CounterResets      = "resets"       // resets (CFUN=1,1, CFUN=15, Reset)
	CounterUnplugs     = "unplugs"      // Unplug calls
	CounterRefusedFull = "refused_full" // segments refused because the store was full
	CounterBoots       = "boots"        // power-ups
	CounterErrors      = "errors"       // commands answered with an error
	CounterHangs       = "hangs"        // Hang calls
	CounterDiscarded   = "discarded"    // host bytes dropped while booting, hung or unplugged
	CounterNoise       = "noise"        // noise URCs injected
	CounterAckTimeouts = "ack_timeouts" // +CMT not acknowledged in time
)

const (
	defaultProfile    = "quectel"
	defaultCapacity   = 30
	defaultBootDelay  = 50 * time.Millisecond
	defaultResetDrop  = 200 * time.Millisecond
	defaultAckTimeout = 15 * time.Second
	defaultOperator   = "Super Network"
	defaultSMSC       = "+447700900123"
	// defaultICCID is a Super SIM ICCID (issuer 8988307) with its Luhn digit.
	defaultICCID = "89883070000012345672"
	defaultIMSI  = "732123200004178"
)

func (o *Options) applyDefaults() error {
	o.Profile = cmp.Or(o.Profile, defaultProfile)
	if _, ok := profiles[o.Profile]; !ok {
		return fmt.Errorf("unknown profile %q (want quectel, simcom, sim7080, ublox, sara-r5 or generic)", o.Profile)
	}
	switch o.EmptyRead {
	case "":
		o.EmptyRead = "error"
	case "ok", "error":
	default:
		return fmt.Errorf("empty-read %q: want ok or error", o.EmptyRead)
	}
	o.Capacity = cmp.Or(o.Capacity, defaultCapacity)
	if o.Capacity < 1 || o.Capacity > 255 {
		return fmt.Errorf("capacity %d: want 1..255", o.Capacity)
	}
	if o.Baud < 0 {
		return fmt.Errorf("baud %d is negative", o.Baud)
	}
	o.ICCID = cmp.Or(o.ICCID, defaultICCID)
	o.IMSI = cmp.Or(o.IMSI, defaultIMSI)
	o.IMEI = cmp.Or(o.IMEI, profiles[o.Profile].imei)
	if o.BootDelay <= 0 {
		o.BootDelay = defaultBootDelay
	}
	o.ResetDrop = cmp.Or(o.ResetDrop, defaultResetDrop)
	if o.ReportDelay <= 0 {
		o.ReportDelay = defaultReportDelay
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = defaultAckTimeout
	}
	o.Operator = cmp.Or(o.Operator, defaultOperator)
	o.SMSC = cmp.Or(o.SMSC, defaultSMSC)
	if d := strings.TrimPrefix(o.SMSC, "+"); d == "" || len(d) > 20 || strings.Trim(d, "0123456789") != "" {
		return fmt.Errorf("smsc %q: want digits, optionally after +", o.SMSC)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
