package gw

// Event types: the "type" field of the events published on P/events. Every
// event the gateway and the cloud bridge raise is declared here, once.
const (
	// The modem session (package modem) and the ModemManager backend.
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

	// The UDP receiver (ip.mode os).
	EventIPSocketLost     = "ip_socket_lost"     // reading the socket failed; it is being reopened
	EventIPSocketReopened = "ip_socket_reopened" // the socket is open again after a loss

	// The queue.
	EventQueueFull    = "queue_full"    // the queue holds store.max_messages or max_bytes: new messages in that direction are refused
	EventStoreFull    = "store_full"    // the disk under store.dir is full: messages stay on the SIM, requests fail
	EventStoreCorrupt = "store_corrupt" // the queue file was damaged: moved aside and salvaged, or a record set aside

	// The relay (and the cloud bridge's request path).
	EventRequestDropped   = "request_dropped"   // QoS 0 requests dropped: too many bytes wait for the store
	EventRequestRejected  = "request_rejected"  // a request was refused (malformed, too long, retained...): its result says why
	EventRequestDuplicate = "request_duplicate" // a request id already queued or handled recently: not sent again
	EventSubscribeRefused = "subscribe_refused" // the broker refused a subscription: requests on it will not arrive

	// The wiring.
	EventDeviceIDInvalid = "device_id_invalid" // a remembered device id cannot name MQTT topics; the ICCID is used

	// The cloud bridge.
	EventAPIRetry         = "api_retry"         // a Super SIM API call failed and is retried
	EventAPIError         = "api_error"         // the API refused a request: its result is failed
	EventBadSignature     = "bad_signature"     // a webhook or callback with a bad signature was refused (403)
	EventCallbackRejected = "callback_rejected" // a webhook or callback could not be read or named an unknown command
)
