package modem

import (
	"context"
	"log/slog"
	"sync"
)

// Event types a Session reports.
const (
	EventSenderRejected    = "sms_sender_rejected"     // an SMS from a sender not in sms.allowed_senders was deleted
	EventUndecodable       = "sms_undecodable"         // an SMS could not be decoded; it was stored with its PDU (Fields["id"], Fields["pdu"])
	EventStoreFailed       = "sms_store_failed"        // the Sink refused an SMS; it stays on the SIM and is retried
	EventPartial           = "sms_partial"             // a concatenated SMS timed out and was delivered incomplete
	EventReportLost        = "sms_report_lost"         // a delivery report could not be stored; the SMS's result stays "sent"
	EventStorageNearlyFull = "sms_storage_nearly_full" // the SIM's SMS store is 80% full
	EventStorageFull       = "sms_storage_full"        // the SIM's SMS store is full: new SMS are refused by the network
	EventModemConnected    = "modem_connected"         // the port was opened and the modem initialised
	EventModemLost         = "modem_lost"              // the session with the modem ended; it will be reopened
	EventModemRestarted    = "modem_restarted"         // the modem reset itself; it is initialised again
	EventInitFailed        = "modem_init_failed"       // a modem.init command failed (the session goes on)

	EventMissedNotification = "sms_missed_notification" // SMS were found on the SIM that no +CMTI announced; AT+CNMI is sent again
	EventRegistrationLost   = "registration_lost"       // the module lost its network registration (the session goes on)
	EventRegistrationBack   = "registration_restored"   // the module is registered again

	EventRecoveryProbe  = "recovery_probe"  // the modem went silent; probing it with AT
	EventRecoveryReinit = "recovery_reinit" // initialising the modem again
	EventRecoveryReset  = "recovery_reset"  // resetting the module (AT+CFUN=1,1, u-blox AT+CFUN=15)
	EventRecoveryReopen = "recovery_reopen" // closing and reopening the port
	EventRecoveryFailed = "recovery_failed" // every step failed: Healthy reports an error until the modem is back
	EventRecoveryDone   = "recovery_done"   // a poll passed after a recovery step: healthy again

	EventDataUp          = "data_up"          // the data session and UDP socket are open (ip.mode modem)
	EventDataDown        = "data_down"        // the data session or socket was lost; it is re-opened with backoff
	EventDataOpenFailed  = "data_open_failed" // opening the data session or socket failed; retried with backoff
	EventDataUnsupported = "data_unsupported" // ip.mode modem with a module profile that has no sockets
	EventSourceRejected  = "source_rejected"  // a datagram from a source outside ip.allowed_sources was dropped
	EventIPStoreFailed   = "ip_store_failed"  // the Sink refused a datagram; it is kept in memory and retried
	EventIPDropped       = "ip_dropped"       // a held datagram was dropped: too many waited for a refusing Sink
	EventIPOversize      = "ip_oversize"      // a datagram over MaxUDPPayload bytes was dropped, never stored
)

// maxQueuedEvents bounds events waiting for a slow OnEvent.
const maxQueuedEvents = 1000

// notifier delivers events and status snapshots from a goroutine of its
// own, so a slow callback never stalls the modem.
type notifier struct {
	onEvent  func(Event)
	onStatus func(Status)
	log      *slog.Logger

	mu      sync.Mutex
	events  []Event
	status  *Status
	dropped int
	wake    chan struct{}
}

func newNotifier(onEvent func(Event), onStatus func(Status), log *slog.Logger) *notifier {
	return &notifier{onEvent: onEvent, onStatus: onStatus, log: log, wake: make(chan struct{}, 1)}
}

func (n *notifier) event(e Event) {
	n.mu.Lock()
	n.events = append(n.events, e)
	if over := len(n.events) - maxQueuedEvents; over > 0 {
		n.dropped += over
		n.events = append([]Event(nil), n.events[over:]...)
	}
	n.mu.Unlock()
	n.poke()
}

// statusChanged replaces any snapshot not yet delivered: only the latest
// matters.
func (n *notifier) statusChanged(s Status) {
	n.mu.Lock()
	n.status = &s
	n.mu.Unlock()
	n.poke()
}

func (n *notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx ends, then delivers what is left.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			n.flush()
			return
		case <-n.wake:
			n.flush()
		}
	}
}

func (n *notifier) flush() {
	for {
		n.mu.Lock()
		events, st, dropped := n.events, n.status, n.dropped
		n.events, n.status, n.dropped = nil, nil, 0
		n.mu.Unlock()
		if dropped > 0 {
			n.log.Warn("event queue full, dropped the oldest events", "dropped", dropped)
		}
		if len(events) == 0 && st == nil {
			return
		}
		for _, e := range events {
			if n.onEvent != nil {
				n.onEvent(e)
			}
		}
		if st != nil && n.onStatus != nil {
			n.onStatus(*st)
		}
	}
}
