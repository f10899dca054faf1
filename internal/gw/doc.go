// Package gw is the gateway's own vocabulary, shared by the modem session,
// the ModemManager backend, the transport (queue, relay, UDP receiver), the
// cloud bridge and the wiring: the messages and their ids, the store
// interface they are written to, the status snapshot, the one list of
// event types, the limits of one SMS and one IP Command, and Super SIM's
// fixed numbers. It imports no other simgate package but the GSM table
// warm-up, so every package can use it without pulling in a driver.
package gw
