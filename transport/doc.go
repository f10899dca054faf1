// Package transport moves commands between the modem session and MQTT with
// the delivery promise of the README: at least once, in arrival order,
// across broker outages, restarts, kill -9 and power loss.
//
// # Pieces
//
//   - Queue (OpenQueue) is the durable store, a bbolt file in store.dir. It
//     implements gw.Sink: every Put, PutSegment and Assemble returns only
//     after an fsync'd commit, and concurrent writes share one commit (group
//     commit), so a burst costs a few fsyncs. Messages are ordered by a
//     sequence number assigned at commit, never by wall time. Received
//     messages and segments are bounded by StoreConfig.MaxMessages and
//     requests, apart, by MaxRequests: new work beyond a bound is refused
//     with an error wrapping ErrQueueFull and a "queue_full" event. Ids of
//     delivered messages are remembered for DedupWindow (48 h, at most
//     DedupMax ids), so an SMS the network redelivers is not published
//     twice. At open queue.db is checked (bbolt's check, and its last
//     transaction against queue.txid); a damaged file is set aside, salvaged
//     and replaced ("store_corrupt"). A reserve file keeps removals possible
//     on a full disk ("store_full", ErrStoreFull).
//   - Relay (NewRelay, Run) connects to the broker with paho and relays:
//     queued messages to P/sms/in, P/sms/undecodable and P/ip/in, requests from P/sms/out and
//     P/ip/out to the Device, results to P/.../out/result, events to
//     P/events and the retained P/status (on connect, on StatusChanged, and
//     every StatusInterval), with the will {"online":false}.
//   - StartEmbedded runs a mochi MQTT broker in-process (mqtt.embedded).
//   - Jobs and publications (jobs.go) are the queue's general-purpose half,
//     for the cloud bridge (package cloud): AddJobs stores opaque jobs in
//     named lanes (independent FIFOs, one per SIM there), deduplicated by id
//     and counted against MaxMessages; FinishJob replaces a job by the MQTT
//     publications it produced in one commit; publications with a Key are
//     stored once within the dedup window. ClientOptions, NewResumeStore,
//     Backoff and WaitToken (client.go) are the relay's MQTT and retry
//     helpers, exported for the same bridge.
//
// # Wiring (cmd/simgate)
//
// Example (example_test.go) wires the three as cmd/simgate does, with a
// device standing in for the modem session: OpenQueue with store.dir and
// store.max_messages; StartEmbedded when mqtt.embedded is set; NewRelay
// with the broker settings, the topic prefix and the version, the queue,
// and the session as its Device (the session's gw.Sink is the queue);
// then Run until its context ends. The session's events go to
// Relay.Event and its status changes to Relay.StatusChanged; the
// watchdog's probe includes Relay.Healthy. The order of the stop matters:
// Run returns once in-flight work is flushed; the embedded broker stops
// after it, as the relay still publishes its offline status; the queue
// closes last, after the session and the relay.
//
// # Delivery
//
// Inbound: the session commits a message (Put) before it deletes the SMS
// from the SIM. The relay publishes the queue's head with QoS 1 and removes
// a message only after its PUBACK; a failed publish restarts from the first
// unacknowledged message. After a crash, whatever was not acknowledged is
// published again with the same id (and what was acknowledged but whose
// removal, committed in groups spaced out so as to leave the store's writer
// to new messages, was not yet committed), so a consumer may see a message
// twice (drop duplicates by id), never out of order and never not at all.
//
// Two paho behaviours are worked around (see relay.go): on reconnect paho
// completes the tokens of the messages it resends before any PUBACK, so a
// token completed across a reconnect is not trusted; and paho resends in
// map order, so the relay gives it a store that keeps publish order. Up to
// RelayConfig.PublishWindow messages (DefaultPublishWindow, 64) are in
// flight per outbox. A publish that was waiting for paho's writer when the
// connection died would go out first on the next connection, ahead of the
// resend of older ones; the relay hands paho one publish at a time and the
// next connection drops that one packet if it comes first (paho resends it
// in order), so a window keeps the order across reconnects too.
//
// Requests: paho runs with manual acknowledgement. A request is parsed,
// checked against the limits of one SMS or IP Command (gw.CheckSMS,
// gw.CheckUDP) and committed, together with the others that arrived
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
// An SMS result "sent" also records which request its message reference
// belongs to; the Queue is a gw.ReportSink, and a delivery report for
// that reference commits a second result ("delivered" or "failed") for the
// same id (reports.go).
//
// Readiness: the relay counts as connected (RelayStats.Connected) and
// publishes {"online":true} only once the broker has acknowledged the
// subscriptions of the current connection. On a session the broker does
// not hold yet, a request published earlier has no subscriber and is
// dropped by the broker, so announcing earlier would invite lost requests.
// A subscription that fails is retried while the connection lasts.
//
// Shutdown: when Run's context is cancelled, no new connection attempt
// starts, requests already received are queued and acknowledged, a device
// call in progress is given RelayConfig.ShutdownGrace, pending PUBACKs are
// awaited, the retained {"online":false} is published and the client
// disconnects. What is left stays queued for the next run. Every wait is
// bounded: loops that do not return by ShutdownGrace + 250 ms (a device
// call that ignores its context) are left behind, the offline status gets
// min(ShutdownGrace, 1 s), the disconnect 250 ms. Paho calls that can block
// behind paho's writer for its 30 s write timeout (Publish, a message's
// Ack) are made on their own goroutine, so a wedged or reconnecting
// connection cannot hold the stop. After the offline status the relay
// closes the connection (or the attempt under way, which paho cannot
// cancel) without DISCONNECT, so the broker publishes the will too, after
// everything the connection carried: an older status that paho resent
// after a reconnect cannot be the one left retained.
//
// # IP Commands over a socket of this host (ip.mode: os)
//
// UDP (NewUDP, Run) receives IP Commands when the host itself has the data
// session (PPP on a second tty, or QMI/ECM on wwan0) instead of the module.
// NewUDP binds the socket at once, so a port in use is an error at start;
// datagrams arriving before Run wait in the kernel. By default it binds all
// addresses, so the new link address after a reconnect keeps working. A read
// error other than stopping closes the socket and reopens it with backoff
// ("ip_socket_lost", then "ip_socket_reopened"); Run never exits for it.
//
// One goroutine reads; each datagram is checked (ip.allowed_sources, else
// "source_rejected"; at most 1300 bytes, else "ip_oversize" with the real
// size: the read buffer holds any datagram, so none is cut short) and
// becomes a gw.Inbound stamped with its arrival time, which gives its id.
// A second goroutine stores them in the order read: everything that queued
// up while the previous commit synced goes into the next one
// (Queue.PutBatch, up to 512 per commit), so a burst costs a few fsyncs and
// keeps its order. A sink without PutBatch gets one Put at a time. A full
// queue drops the datagram (the queue reports "queue_full"); another store
// failure is retried for about two seconds, then the datagrams are dropped
// with "ip_store_failed". Events of one type are reported at most once per
// 10 s with a count of the ones held back, so a flood of rejected datagrams
// is not a flood on P/events; each is counted in Stats and logged at debug.
// When Run's context is cancelled, what was read is stored before Run returns.
//
// Send (the Device's SendUDP in os mode) sends from the same socket,
// so the cloud sees the device port as source, as from a module's socket;
// payloads over 1300 bytes are refused. Data reports {"mode":"os"} with
// state "up" while the socket is open and the cloud is routable, and the
// local address the kernel would use to reach it (or the bound one).
//
// Limits: UDP has no acknowledgement, so "durably stored before anything
// else happens" starts when the datagram is read. Datagrams the kernel drops
// (socket buffer overflow in a burst longer than the pipeline of 4096 and
// the receive buffer, capped by net.core.rmem_max) or that arrive while the
// socket is being reopened are lost without a trace here; a sent datagram
// is "sent" once the kernel takes it. Bind to an address (ip.bind) only if
// it exists at start: NewUDP fails otherwise.
//
// # MQTT payloads
//
// As docs/contract.md and the README's "MQTT topics" section give them:
// P/status carries "data", "recovery" and "ready" from gw.Status and a
// "queue" object with "pending" (inbound + outbound requests + results not
// yet delivered) and its parts "inbound", "outbound", "results",
// "segments". Events carry their gw.Event fields at the top level;
// request events add "id" and "channel". Inbound text that is not valid
// UTF-8 is published as base64 rather than altered.
package transport
