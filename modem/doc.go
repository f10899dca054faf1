// Package modem drives a cellular module over AT commands: it owns the serial
// port, initialises the module, receives SMS Commands and IP Commands and hands
// them durably to a Sink, sends device-originated commands, keeps a Status
// snapshot and repairs the link when the module goes silent.
//
// The relay in package transport only sees the types in this package (Inbound,
// Sink, Device, Status, Event); it never speaks AT.
package modem
