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
// AT+CNMI=2,1,0,0,0, AT+CEREG=2, then modem.init) and serves it. The AT
// engine is package at.
//
// # Self-repair
//
// When the modem stops answering or the port fails, the session climbs a
// ladder, each step only when the one before did not make the modem
// healthy again (a poll that passes ends the recovery, "recovery_done"):
//
//  1. probe: a command timed out, or the line was silent for
//     Config.IdleProbe and an AT got no answer; AT with
//     Config.ProbeTimeout. An answer means only one command was lost, and
//     serving resumes.
//  2. re-init: the standard initialisation again, on the same port.
//  3. reset: AT+CFUN=1,1 (SARA-R4: AT+CFUN=15), written even though the
//     module does not answer, then initialisation; a USB module's port
//     vanishes meanwhile and waiting for it is part of this step.
//  4. reopen: close the port and reopen it by name with jittered backoff
//     until the device node is back. A read error or EOF on the port
//     starts here.
//  5. failed: Healthy reports an error so that the service manager
//     restarts simgate; the session keeps reopening meanwhile.
//
// Each step emits an Event (recovery_probe, recovery_reinit,
// recovery_reset, recovery_reopen, recovery_failed), is logged and counted
// in Status.Recovery; steps are separated by jittered, doubling delays
// (Config.RetryMin to RetryMax). A module that reset by itself (RDY, or
// echo back on) is initialised again without climbing; a boot announced
// while a command waits fails that command at once. Timers use only the
// monotonic clock: a Pi may boot with its wall clock in 1970.
//
// Healthy's rule is documented on Session.Healthy.
//
// # IP Commands (ip.mode "modem")
//
// With Config.IPMode "modem" the session brings up the module's data
// session (APN Config.APN) and opens a UDP socket listening on
// Config.IPPort: Quectel AT+QICSGP/AT+QIACT and a "UDP SERVICE" socket in
// buffer mode (+QIURC "recv", then AT+QIRD until "+QIRD: 0") or direct
// push (Config.IPDirectPush); SIM7600 AT+NETOPEN, AT+CIPOPEN and +RECEIVE
// pushes (AT+CIPSRIP=1 names each sender); SIM7080 AT+CNACT, an
// AT+CASERVER UDP server (AT+CAOPEN to Config.Cloud on firmware without
// it), +CADATAIND and AT+CARECV until "+CARECV: 0"; SARA-R4 AT+CGDCONT,
// AT+CGACT, AT+USOCR, +UUSORF and AT+USORF, and SARA-R5 the same sockets
// over its PSD profile (AT+UPSD, AT+UPSDA=0,3). Every datagram is read by its announced
// length, so any byte value survives. A datagram from outside
// Config.AllowedSources is dropped with a "source_rejected" event; the
// others become Inbound messages handed to Sink.Put before anything else
// happens to them. While the Sink refuses, pushed datagrams are kept in
// memory and retried in order, and buffered ones are left in the module.
// A socket the network closes, a data session it ends and a module reset
// each make the session re-open with backoff and an event (data_down,
// data_up). The generic profile has no sockets: Status.Data.State is
// "unsupported" and SMS keep working.
//
// Session.SendUDP sends one datagram to Config.Cloud with the exact byte
// count (AT+QISEND, AT+CIPSEND, AT+CASEND or AT+USOST after its prompt).
// More than 1300 bytes is refused before the modem sees it; u-blox sends at most
// 1024 bytes per datagram, so larger payloads are refused there too. While
// the data session is down the error says "data session down: <why>".
//
// # Receiving SMS
//
// New SMS are stored on the SIM and announced with +CMTI. The session does
// not read the announced index alone: it drains the SIM (AT+CMGL=4), so an
// SMS the module stored without announcing it (while it hung, or with the
// +CMTI lost) cannot be overtaken by a later one. Each SMS is decoded,
// handed to the Sink and deleted (AT+CMGD) only after the Sink returned
// nil. A Sink error leaves the SMS on the SIM; later SMS wait behind it and
// the next poll retries, in order. The SIM is also drained after every
// (re)initialisation and recovery, after a late SMS DONE, and whenever
// AT+CPMS? shows more stored than expected; an SMS that a drain finds while
// the module is serving and that no +CMTI announced, even late, is a missed
// notification ("sms_missed_notification"), and AT+CNMI is sent again. A
// drain hands messages over in the order they arrived: the +CMTI order
// (URCs are pulled from the engine, so every +CMTI that came before the
// list's answer is counted), and for SMS stored unannounced the service
// centre timestamp, then SIM index; never SIM index order alone, which
// reuses freed slots. SMS from senders outside Config.AllowedSenders are
// reported and deleted, so they cannot fill the SIM; an SMS that does not
// decode is stored with its PDU (Inbound.Undecodable), then deleted.
//
// What one listing of the SIM holds is stored with one Sink.PutSIM, a
// single commit however many SMS it holds, and only then deleted from the
// SIM one by one. The commit carries the SIM journal (SIMJournal): the
// ids the last listing gave identical SMS and the +CMTI order of what is
// not stored yet. An SMS read again after a restart (stored, not yet
// deleted) keeps its id; identical SMS on the SIM together, or stored within a
// minute of each other, get ids of their own (Inbound.Occurrence); one
// alone and later keeps the id its content gives, so the network's late
// copy is dropped by the Sink as a duplicate.
//
// Parts of a concatenated SMS are stored the same way; when all are held, Sink.Assemble stores the
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
// (network timeout)"). With Config.DeliveryReports each SMS asks for a
// status report (TP-SRR); the reports, +CDS or stored and announced with
// +CDSI, go to a Sink that is a ReportSink, named by the message reference
// SendSMS returned (report.go).
package modem
