// Package modem drives a cellular module over AT commands: it owns the serial
// port, initialises the module, receives SMS Commands and IP Commands and hands
// them durably to a Sink, sends device-originated commands, keeps a Status
// snapshot and repairs the link when the module goes silent.
//
// The relay in package transport only sees the types in this package (Inbound,
// Sink, Device, Status, Event); it never speaks AT.
//
// # Sessions
//
// A Session (NewSession, then Run) owns one modem. Run opens the port by
// name (so a /dev/serial/by-id link that vanishes on USB re-enumeration is
// found again), waits for the module to answer and the SIM to be ready,
// initialises it (ATE0, AT+CMEE=1, AT+CMGF=0, AT+CPMS="SM","SM","SM",
// AT+CNMI=2,1,0,0,0, AT+CEREG=2, then modem.init) and serves it. When the
// port fails, the module stops answering (three timeouts in a row) or
// resets (RDY, or echo back on), the attempt ends and Run opens the port
// again after a jittered, doubling delay. The AT engine is package at.
//
// # Receiving SMS
//
// New SMS are stored on the SIM and announced with +CMTI; the session reads
// each one (AT+CMGR), decodes it, hands it to the Sink and deletes it
// (AT+CMGD) only after the Sink returned nil. A Sink error leaves the SMS on
// the SIM; later SMS wait behind it and the next poll retries, in order.
// The SIM is drained (AT+CMGL=4) after every (re)initialisation, after a
// late SMS DONE, and whenever AT+CPMS? shows more stored than expected. A
// drain hands messages over in the order they were sent (service centre
// timestamp, then SIM index), not in SIM index order, which reuses freed
// slots. SMS from senders outside Config.AllowedSenders and SMS that do not
// decode are reported as events and deleted, so they cannot fill the SIM.
//
// Parts of a concatenated SMS are stored with Sink.PutSegment and deleted
// from the SIM one by one; when all are held, Sink.Assemble stores the
// message. Parts still missing after Config.ReassemblyTimeout (default 24 h,
// as long as the Super SIM cloud retries) are delivered as a Partial
// message. Held parts survive restarts (Sink.Segments).
//
// # Sending
//
// Session.SendSMS sends one SMS in PDU mode: GSM 7-bit when the text fits
// the default alphabet and its extension table, else UCS-2, or 8-bit data.
// Errors are *OpError values whose message starts with the operation and
// carries the modem's reason ("send SMS to 000 (+CMGS): +CMS ERROR: 332
// (network timeout)").
package modem
