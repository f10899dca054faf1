package mmbackend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem"
)

// inSMS is one received SMS as ModemManager holds it.
type inSMS struct {
	path dbus.ObjectPath
	m    gw.Inbound
	err  error // the timestamp did not parse
}

// receive lists the modem's SMS and hands every complete received one to
// the sink, oldest first (by service centre timestamp, then by object
// path, which ModemManager numbers in arrival order), deleting each only
// once the sink has it. A refusal stops the pass, so nothing overtakes the
// refused SMS; the next sweep retries it.
func (b *Backend) receive(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	var list []dbus.ObjectPath
	err := conn.Object(mmService, path).CallWithContext(cctx, ifMessaging+".List", 0).Store(&list)
	cancel()
	if err != nil {
		b.log.Warn("could not list the modem's SMS", "err", err)
		return
	}
	var in []inSMS
	now := time.Now().UTC()
	for _, p := range list {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		props, err := getAll(cctx, conn, p, ifSms)
		cancel()
		if err != nil {
			b.log.Debug("SMS not readable (deleted meanwhile?)", "path", p, "err", err)
			continue
		}
		// Outgoing SMS (ours while they are sent) and status reports are
		// not SMS Commands; an SMS still receiving parts waits.
		if u32(props, "PduType") != pduDeliver || u32(props, "State") != smsReceived {
			continue
		}
		in = append(in, readSMS(p, props, now))
	}
	slices.SortStableFunc(in, func(x, y inSMS) int {
		if c := x.m.SentAt.Compare(y.m.SentAt); c != 0 {
			return c
		}
		return cmp.Compare(pathNumber(x.path), pathNumber(y.path))
	})
	listed := map[dbus.ObjectPath]bool{}
	for _, p := range list {
		listed[p] = true
	}
	for p := range b.handed {
		if !listed[p] {
			delete(b.handed, p) // deleted, or ModemManager restarted without it
		}
	}
	for _, s := range in {
		if b.handed[s.path] == s.m.ID {
			continue // handed off already, waiting to be deleted
		}
		b.lastArrival = time.Now()
		if err := b.handle(ctx, s); err != nil {
			break
		}
		b.handed[s.path] = s.m.ID
	}
	b.deleteHanded(ctx, conn, path)
}

// deleteHanded deletes the SMS handed off once no new one has arrived for
// DeleteQuiet (see DefaultDeleteQuiet).
func (b *Backend) deleteHanded(ctx context.Context, conn *dbus.Conn, modemPath dbus.ObjectPath) {
	if len(b.handed) == 0 || time.Since(b.lastArrival) < b.cfg.DeleteQuiet {
		return
	}
	paths := make([]dbus.ObjectPath, 0, len(b.handed))
	for p := range b.handed {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(x, y dbus.ObjectPath) int { return cmp.Compare(pathNumber(x), pathNumber(y)) })
	for _, p := range paths {
		err := b.delete(ctx, conn, modemPath, p)
		if err == nil || dbusName(err) == "org.freedesktop.DBus.Error.UnknownObject" {
			delete(b.handed, p)
		}
	}
}

// readSMS builds the inbound message from an Sms object's properties:
// Data (8-bit, sent as bytes) or else Text, which ModemManager has decoded
// from GSM 7-bit or UCS-2 and joined across the parts of a concatenated SMS.
func readSMS(p dbus.ObjectPath, props map[string]dbus.Variant, now time.Time) inSMS {
	m := gw.Inbound{Channel: gw.ChannelSMS, From: str(props, "Number"), ReceivedAt: now}
	if data := bytesOf(props, "Data"); len(data) > 0 {
		m.Payload, m.Binary = data, true
	} else {
		m.Payload = []byte(str(props, "Text"))
	}
	m.Parts = partsOf(m.Payload, m.Binary)
	sent, err := ParseTimestamp(str(props, "Timestamp"))
	m.SentAt = sent
	m.ID = gw.MessageID(m)
	return inSMS{path: p, m: m, err: err}
}

// handle gives one SMS to the sink; a rejected one is only reported. Either
// is deleted from the modem afterwards (deleteHanded).
func (b *Backend) handle(ctx context.Context, s inSMS) error {
	m := s.m
	if s.err != nil {
		// The content is intact; only the date is unknown. Delivered, with
		// the zero time, rather than lost.
		b.log.Warn("SMS timestamp unreadable; delivered without it", "path", s.path, "err", s.err)
	}
	if !gw.SenderAllowed(b.cfg.AllowedSenders, m.From) {
		msg := fmt.Sprintf("SMS from %s rejected: sender not in sms.allowed_senders", m.From)
		b.log.Warn(msg)
		b.event(gw.EventSenderRejected, msg, map[string]any{"from": m.From, "path": string(s.path)})
		return nil
	}
	if err := b.sink.Put(ctx, m); err != nil {
		if !b.storeFailing {
			b.storeFailing = true
			msg := fmt.Sprintf("could not store the SMS %s; it stays in ModemManager and is retried: %v", s.path, err)
			b.log.Warn(msg)
			b.event(gw.EventStoreFailed, msg, map[string]any{"path": string(s.path)})
		}
		return fmt.Errorf("store SMS %s: %w", s.path, err)
	}
	b.storeFailing = false
	b.log.Info("SMS received", "id", m.ID, "from", m.From, "parts", m.Parts, "path", s.path)
	return nil
}

// delete removes an SMS handed off (or rejected) from the modem, so the
// SIM does not fill: ModemManager never deletes one by itself. A failure
// is logged and retried by the next sweep: the SMS is stored already.
func (b *Backend) delete(ctx context.Context, conn *dbus.Conn, modemPath, smsPath dbus.ObjectPath) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := conn.Object(mmService, modemPath).CallWithContext(cctx, ifMessaging+".Delete", 0, smsPath).Err
	if err != nil {
		b.log.Warn("could not delete the SMS from the modem; retried at the next sweep", "path", smsPath, "err", err)
		return fmt.Errorf("delete SMS %s: %w", smsPath, err)
	}
	return nil
}

// pathNumber is the trailing number of /org/freedesktop/ModemManager1/SMS/N.
func pathNumber(p dbus.ObjectPath) int {
	s := string(p)
	n, err := strconv.Atoi(s[strings.LastIndexByte(s, '/')+1:])
	if err != nil {
		return -1
	}
	return n
}

// partsOf is how many SMS segments carried payload: ModemManager joins
// the parts and does not say how many there were, so they are counted as
// the sender had to split them (153 GSM 7-bit septets, 67 UCS-2 units or
// 134 bytes per part of a concatenated SMS).
func partsOf(payload []byte, binary bool) int {
	split := func(n, single, part int) int {
		if n <= single {
			return 1
		}
		return (n + part - 1) / part
	}
	if binary {
		return split(len(payload), gw.MaxSMSBytes, 134)
	}
	if septets, err := gw.EncodeGSM7(payload); err == nil {
		return split(len(septets), gw.MaxSMSSeptets, 153)
	}
	if !utf8.Valid(payload) {
		return 1
	}
	return split(len(utf16.Encode([]rune(string(payload)))), gw.MaxSMSUCS2, 67)
}

// ParseTimestamp reads an Sms Timestamp: ISO 8601 as ModemManager writes
// it ("2026-12-01T18:17:59Z", "2026-12-01T18:17:59+02:00", or with a
// "+02" hour-only offset). An empty string is the zero time.
func ParseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05-07", "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not ISO 8601", s)
}

// SendSMS sends one SMS through ModemManager (Messaging.Create, Sms.Send)
// and returns the message reference. The payload limits, the default
// recipient and the errors are those of the AT backend; ModemManager picks
// GSM 7-bit or UCS-2 for text as the AT backend does.
func (b *Backend) SendSMS(ctx context.Context, to string, payload []byte, binary bool) (int, error) {
	if to == "" {
		to = gw.SMSRecipient
	}
	op := "send SMS to " + to
	if !b.cfg.SMS {
		return 0, &modem.OpError{Op: op, Err: modem.ErrSMSDisabled}
	}
	alpha, err := gw.CheckSMS(payload, binary)
	if err != nil {
		return 0, &modem.OpError{Op: op, Err: err}
	}
	conn, path := b.current()
	if conn == nil || path == "" {
		return 0, &modem.OpError{Op: op, Err: modem.ErrNotReady}
	}
	props := map[string]dbus.Variant{"number": dbus.MakeVariant(to)}
	if binary {
		props["data"] = dbus.MakeVariant(payload)
	} else {
		props["text"] = dbus.MakeVariant(string(payload))
	}
	var smsPath dbus.ObjectPath
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = conn.Object(mmService, path).CallWithContext(cctx, ifMessaging+".Create", 0, props).Store(&smsPath)
	cancel()
	if err != nil {
		if gone(err) {
			// Nothing was created: the modem is being re-found.
			return 0, &modem.OpError{Op: op + " (Create)", Err: fmt.Errorf("%w: %w", modem.ErrNotReady, err)}
		}
		return 0, &modem.OpError{Op: op + " (Create)", Err: mapError(err)}
	}
	// The created SMS is ModemManager's object only (not on the SIM);
	// removed whatever happens, so they do not pile up.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		defer cancel()
		if err := conn.Object(mmService, path).CallWithContext(dctx, ifMessaging+".Delete", 0, smsPath).Err; err != nil && !gone(err) {
			b.log.Debug("could not remove the sent SMS object", "path", smsPath, "err", err)
		}
	}()
	if err := conn.Object(mmService, smsPath).CallWithContext(ctx, ifSms+".Send", 0).Err; err != nil {
		return 0, &modem.OpError{Op: op + " (Send)", Err: mapError(err)}
	}
	var v dbus.Variant
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	err = conn.Object(mmService, smsPath).CallWithContext(cctx, ifProps+".Get", 0, ifSms, "MessageReference").Store(&v)
	cancel()
	if err != nil {
		return 0, &modem.OpError{Op: op, Err: fmt.Errorf("sent, but the message reference is not readable: %w", mapError(err))}
	}
	ref, ok := v.Value().(uint32)
	if !ok {
		return 0, &modem.OpError{Op: op, Err: fmt.Errorf("sent, but the message reference is %s, not a number", v.Signature())}
	}
	b.log.Info("SMS sent", "to", to, "alphabet", alpha, "reference", ref)
	return int(ref), nil
}

// errNoModemIP is SendUDP's answer: the module's own socket needs the AT
// port, which ModemManager holds.
var errNoModemIP = errors.New("the ModemManager backend sends IP Commands from this host (ip.mode os), not through the modem")

// SendUDP refuses: with this backend IP Commands go through a UDP socket
// of this host (ip.mode os), which the gateway serves itself.
func (b *Backend) SendUDP(ctx context.Context, payload []byte) error {
	if err := gw.CheckUDP(payload); err != nil {
		return &modem.OpError{Op: "send IP Command", Err: err}
	}
	return &modem.OpError{Op: "send IP Command", Err: errNoModemIP}
}
