// Package at is simgate's AT command engine: one goroutine owns a serial
// port, writes one command at a time and sorts every byte the modem sends
// into the reply of the running command or an unsolicited result code (URC).
//
// The engine keeps the shape of github.com/warthog618/modem/at (one owner
// goroutine, callers wait for their reply) and replaces that package rather
// than wrapping it, because simgate needs what it cannot give:
//
//   - Lines are classified against the running command's information prefix
//     (+CMGR: for AT+CMGR) and a URC table, so a +CMTI or +CEREG arriving
//     between a command and its reply, or between reply lines, is delivered
//     as a URC and never ends up in the reply. warthog618's engine puts every
//     line it does not recognise as a registered indication into the reply.
//
//   - Every call takes a context.Context and has a per-command timeout
//     (AT+CMGS 120 s, AT+COPS= 180 s, AT+QIOPEN 150 s, ...).
//
//   - A command that times out leaves the engine unsynchronised: before the
//     next command it sends a probe (AT+CMEE?) and discards everything up to
//     the probe's own reply, so a late OK is never taken as the next
//     command's answer. The final results still owed by abandoned commands
//     are counted, so the probe's own is known even when it is an ERROR
//     without "+CMEE: <n>". warthog618's engine has no resynchronisation.
//
//   - Binary payloads announced by length (+QIRD, +USORF, +QIURC "recv"
//     direct push, +RECEIVE) are read byte-exact, even when they contain
//     CR, LF or NUL; a line scanner cannot do that.
//
//   - Prompts "> " and "@" arrive without a line end and are recognised
//     only while a command waits for one.
//
//   - URCs wait for their reader (Config.OnURC, or Engine.NextURC with
//     Config.PullURCs) in a queue bounded in number and in bytes
//     (MaxQueuedURCs, MaxQueuedURCBytes), so a module flooding the line
//     while the reader is busy cannot grow memory without limit.
//
// Two small packages of that module serve as they are: trace wraps the port
// when Config.Trace is set, so every read and write is one debug log line
// (bounded in length, PINs and passwords replaced by "***"), and info
// handles information-line prefixes.
//
// SplitFields is the one quote-aware splitter of a line's parameters
// (`1,"REC UNREAD",,24`), for the engine's framers and the modem package's
// parsers alike.
//
// The parser is a plain state machine (no goroutines, no I/O), so it is
// fuzzed directly: the same bytes split into different reads must give the
// same replies and URCs. It searches each byte for a line end once, so a
// long line arriving in small reads costs time linear in its length.
package at
