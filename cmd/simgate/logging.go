package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/ratelimit"
)

// newLogger builds the root logger from the log section; components take
// children of it with their own "component" attribute.
//
// When stderr is the journal's stream (systemd sets JOURNAL_STREAM to its
// device and inode), each line starts with a syslog priority prefix such
// as "<4>", so `journalctl -p warning` finds warnings and errors, and the
// time is left to the journal, which stamps every line itself.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	journal := w == io.Writer(os.Stderr) && isJournalStream(os.Getenv("JOURNAL_STREAM"), os.Stderr)
	// Repeated lines (a refusal per request in a flood) are limited in one
	// place, with a count, so a flood cannot fill the journal.
	return slog.New(ratelimit.NewHandler(newHandler(w, c.Format, level, journal), ratelimit.DefaultBurst, ratelimit.DefaultPeriod))
}

// flushLog writes the counts of lines still held back by the root logger,
// before the process exits.
func flushLog(log *slog.Logger) {
	if f, ok := log.Handler().(interface{ Flush() }); ok {
		f.Flush()
	}
}

func newHandler(w io.Writer, format string, level slog.Level, journal bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if !journal {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	pw := &priorityWriter{w: w}
	var inner slog.Handler
	if format == "json" {
		inner = slog.NewJSONHandler(pw, opts)
	} else {
		inner = slog.NewTextHandler(pw, opts)
	}
	return &journalHandler{inner: inner, w: pw}
}

// isJournalStream reports whether f is the stream JOURNAL_STREAM names
// ("DEVICE:INODE"); a redirected stderr under systemd is not.
func isJournalStream(env string, f *os.File) bool {
	if env == "" {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// priorityWriter writes each record with the syslog priority of its level
// in front, as sd-daemon(3) describes for stream logging.
type priorityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// journalHandler sets the priority of each record before the inner handler
// writes it; records are written one at a time.
type journalHandler struct {
	inner slog.Handler
	w     *priorityWriter
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = syslogPrefix(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), w: h.w}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), w: h.w}
}

// syslogPrefix maps a level to the syslog priority the journal understands.
func syslogPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}
