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
package modemsim
