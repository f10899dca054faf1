// Package systemd tells the service manager how simgate is doing: readiness,
// a one-line status for `systemctl status`, watchdog keep-alives and
// shutdown. It speaks the sd_notify protocol and is a silent no-op when the
// daemon is not started by systemd (NOTIFY_SOCKET unset), so `simgate run`
// behaves the same in a terminal, a container or a test.
//
// # Readiness
//
// The unit is Type=notify. simgate sends READY=1 once the modem session is
// initialised (gw.Status.Ready: SMS storage usable) and the durable queue
// is open and accepting — it does not wait for the MQTT broker. The queue is
// what the delivery promise rests on: once it accepts, every SMS and IP
// Command is stored and delivered when the broker comes back. Waiting for the
// broker would turn an expected condition (broker or network down at boot)
// into a start timeout, and the restart loop that follows would stop the
// gateway from draining SMS off the SIM, whose store fills and then refuses
// new messages silently. Broker connectivity is reported in STATUS= instead.
//
// # Watchdog
//
// [Notifier.Watchdog] sends WATCHDOG=1 only while a health probe passes;
// simgate's probe joins the modem session's Healthy (the goroutine that owns
// the serial port answered AT recently) and the relay's Healthy (the relay
// loop is moving). A process that is alive but wedged therefore stops
// petting the watchdog and systemd restarts it (WatchdogSec= in the unit).
//
// The unit allows 3 minutes without a keep-alive. A probe should fail only
// when restarting the process would help: not while a slow but legitimate AT
// command runs (AT+CMGS may take 120 s) and not while the modem package is
// making progress with its own recovery (re-init, reset, reopen after USB
// re-enumeration), which a process restart would only interrupt.
//
// The package knows nothing of the gateway: the daemon (cmd/simgate)
// formats its own STATUS= line and supplies its own health probe. Example
// shows the wiring.
package systemd
