// Package transport moves commands between the modem session and MQTT with
// the delivery promise of CONTRACT.md: at least once, in arrival order,
// across broker outages, restarts, kill -9 and power loss.
//
// # Pieces
//
//   - Queue (OpenQueue) is the durable store, a bbolt file in store.dir. It
//     implements modem.Sink: every Put, PutSegment and Assemble returns only
//     after an fsync'd commit, and concurrent writes share one commit (group
//     commit), so a burst costs a few fsyncs. Messages are ordered by a
//     sequence number assigned at commit, never by wall time. The queue is
//     bounded by StoreConfig.MaxMessages: a new message, segment or request
//     beyond it is refused with an error wrapping ErrQueueFull and a
//     "queue_full" event. Ids of delivered messages are remembered for
//     DedupWindow (48 h, at most DedupMax ids), so an SMS the network
//     redelivers is not published twice.
//   - Relay (NewRelay, Run) connects to the broker with paho and relays:
//     queued messages to P/sms/in and P/ip/in, requests from P/sms/out and
//     P/ip/out to the modem.Device, results to P/.../out/result, events to
//     P/events and the retained P/status (on connect, on StatusChanged, and
//     every StatusInterval), with the will {"online":false}.
//   - StartEmbedded runs a mochi MQTT broker in-process (mqtt.embedded).
//
// # Wiring (cmd/simgate)
//
//	q, err := transport.OpenQueue(transport.StoreConfig{Dir: cfg.Store.Dir, MaxMessages: cfg.Store.MaxMessages}, log)
//	defer q.Close()                        // after the session and the relay have stopped
//	if cfg.MQTT.Embedded {
//		stop, err := transport.StartEmbedded(ctx, cfg.MQTT.URL, log)
//		defer stop()                       // after the relay: it still publishes offline status
//	}
//	session := ...                         // modem session, with q as its modem.Sink
//	relay, err := transport.NewRelay(transport.RelayConfig{
//		MQTT: transport.MQTTConfig{
//			URL: cfg.MQTT.URL, ClientID: cfg.ClientID(id), Username: cfg.MQTT.Username,
//			PasswordFile: cfg.MQTT.PasswordFile, CAFile: cfg.MQTT.CAFile,
//			CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
//			TopicPrefix: cfg.Prefix(id),
//		},
//		Version: version,
//	}, q, session, log)
//	// session events -> relay.Event(ev); status changes -> relay.StatusChanged()
//	err = relay.Run(ctx)                   // returns after ctx is cancelled and in-flight work is flushed
//	// watchdog: relay.Healthy() == nil
//
// # Delivery
//
// Inbound: the session commits a message (Put) before it deletes the SMS
// from the SIM. The relay publishes the queue's head with QoS 1 and removes
// a message only after its PUBACK; a failed publish restarts from the first
// unacknowledged message. After a crash, whatever was not acknowledged is
// published again with the same id, so a consumer may see a message twice
// (drop duplicates by id), never out of order and never not at all.
//
// Two paho behaviours are worked around (see relay.go): on reconnect paho
// completes the tokens of the messages it resends before any PUBACK, so a
// token completed across a reconnect is not trusted; and paho resends in
// map order, so the relay gives it a store that keeps publish order. One
// message is in flight per outbox by default (RelayConfig.PublishWindow),
// because a publish that was waiting when the connection died goes out
// first on the next one; a larger window is faster on a distant broker but
// may reorder part of a window when the connection drops.
//
// Requests: paho runs with manual acknowledgement. A request is parsed,
// checked against the limits of one SMS or IP Command (modem.CheckSMS,
// modem.CheckUDP) and committed, together with the others that arrived
// meanwhile, before it is acknowledged to the broker; a malformed one
// commits a "failed" result with the reason instead, and an event. Each
// channel's requests go to the device one at a time, in arrival order. When
// the device call returns, its result replaces the request in one commit,
// and the result is removed after its PUBACK. A crash during the device
// call sends the request again after restart (at least once); a crash after
// it only publishes the result again. A request whose id is still queued or
// was handled within the dedup window is acknowledged and dropped with a
// "request_duplicate" event: the broker redelivers unacknowledged requests
// after a reconnect, and a request should not be sent twice because of it.
// Requests without an id get a generated one, so those cannot be recognised.
//
// Shutdown: when Run's context is cancelled, requests already received are
// queued and acknowledged, a device call in progress is given
// RelayConfig.ShutdownGrace, pending PUBACKs are awaited, the retained
// {"online":false} is published and the client disconnects. What is left
// stays queued for the next run.
//
// # MQTT payloads
//
// As in CONTRACT.md, with these additions: P/status carries "data",
// "recovery" and "ready" from modem.Status and a "queue" object with
// "pending" (inbound + outbound requests + results not yet delivered) and its
// parts "inbound", "outbound", "results", "segments". Events carry their
// modem.Event fields at the top level; request events add "id" and
// "channel". Inbound text that is not valid UTF-8 is published as base64
// rather than altered.
package transport
