// Package modemsim is a simulated cellular module on a pseudo-terminal. It
// answers AT commands like a Quectel BG96, a SIMCom SIM7600, a u-blox
// SARA-R410M or a plain 27.007/27.005 modem, stores mobile-terminated SMS
// on a simulated SIM as real SMS-DELIVER PDUs, runs module UDP sockets and
// injects the faults real modules show in the field: USB re-enumeration,
// hangs, garbage, split writes, unsolicited result codes between reply
// lines, boot storms and the slowness of a 115200 baud line.
//
// Tests start it in-process with Start and drive it with the methods of Sim;
// the modemsim binary runs the same simulator and exposes those operations on
// a unix control socket (see Client). The host side only ever sees a serial
// port: the pty slave, symlinked at Options.Link, which can be closed and
// reopened like a real tty and which vanishes and returns on Unplug.
//
// Every byte from the host goes through Sim.feed: the command line parser in
// input.go, the command table in commands.go and the handlers for the basic
// 27.007 commands (basic.go), SMS (sms.go, pdu.go) and sockets (socket.go).
// Every byte to the host goes through the writer of the current link
// (link.go), which applies pacing and chunking.
//
// # Behaviour a host must cope with
//
// These follow the modules and FACTS.md; where modules differ the choice is
// stated.
//
//   - Echo is on at power-up and after every reset or ATZ; it repeats the
//     command line as received, CR included. Replies are "\r\n<line>\r\n"
//     blocks and a final "\r\nOK\r\n" (ATV0: numeric codes).
//   - Until the first boot URC (RDY) input is dropped. Between RDY and SMS
//     DONE, SMS commands answer +CMS ERROR: 500 (Quectel, SIMCom) or
//     +CME ERROR: 14 (u-blox, generic); SIM commands answer +CME ERROR: 14
//     until +CPIN: READY. u-blox and generic modules boot silently.
//   - +CME ERROR and +CMS ERROR follow AT+CMEE (0: plain ERROR, 1: numeric,
//     2: text). Unknown commands are +CME ERROR: 100 with CMEE > 0.
//   - SMS storage is "SM" only. Indexes start at 0 on Quectel and SIMCom, at
//     1 on u-blox and generic. The power-up +CNMI is 2,1,0,0,0 on Quectel and
//     SIMCom, 1,0,0,0,0 on u-blox and 0,0,0,0,0 on generic (no indications).
//   - AT+CMGS answers "\r\n> " with no line end; what follows (echoed when
//     echo is on) ends with Ctrl-Z, or ESC to cancel (OK, nothing sent). The
//     result needs a registration (+CMS ERROR: 331) and takes SendDelay.
//   - With +CNMI mt=2 and AT+CSMS=1 each +CMT must be acknowledged with
//     AT+CNMA within AckTimeout; until then the next one waits. Without
//     it the module sets mt and ds to 0 (27.005) and the network stores the
//     message on the SIM instead.
//   - The network holds SMS while the module is off, booting, unplugged or
//     unregistered, and segments a full SIM refused; it delivers them when
//     the module registers or a slot is freed (AT+CMGD), as an SMSC retries.
//   - Sockets need a data session: AT+QIACT (Quectel), AT+NETOPEN (SIMCom)
//     or the default bearer SARA-R4 brings up when it registers. Quectel
//     echoes the data of AT+QISEND when echo is on and AT+QISDE=1 (its
//     default); the other modules echo socket data when echo is on. Send
//     prompts: Quectel "\r\n> ", SIMCom "\r\n>", u-blox "\r\n@".
//   - Quectel buffer mode raises +QIURC: "recv" once and again only after
//     AT+QIRD has returned "+QIRD: 0"; each AT+QIRD returns one datagram.
//     SIM7600 pushes "RECV FROM:<ip>:<port>" (AT+CIPSRIP=1, the default)
//     and "+RECEIVE,<id>,<len>" then the bytes, with no line end after them.
//     u-blox raises +UUSORF per datagram; AT+USORF returns one datagram (or
//     the first <max> bytes, the rest stays) inside quotes, framed by length.
//   - AT+CFUN=1,1 (and AT+CFUN=15 on u-blox, AT+CRESET on SIMCom) answer OK,
//     wait until the host has read it, then the link drops for ResetDrop
//     and the module boots again.
//
// # Control protocol
//
// The control socket takes one JSON Request per connection, terminated by a
// newline, and answers one JSON Response. Client implements it; the
// modemsim binary's client verbs use Client. Sim.HandleOp adds operations
// of components built around the simulator, such as "api-state" of the
// Super SIM API emulator (package superapi).
//
// # The network beyond the module
//
// Sim.SetHooks tells a simulated network what the host sent: each SMS
// submitted and each datagram sent through a module socket. The emulated
// Super SIM API uses them, with InjectSMS, InjectUDP and SetRegistration,
// to carry commands between its REST API and the module.
package modemsim
