package ratelimit

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// SuppressedKey is the attribute a summary line carries: how many lines
// like it were held back in the period; the summary shows the latest.
const SuppressedKey = "suppressed"

// Handler is a slog.Handler that limits repeated log lines. Lines are of
// one kind when they have the same level, message and "component"
// attribute; other attributes (an id, a count) may differ. Debug lines are
// never limited: whoever turned them on wants them all.
type Handler struct {
	inner     slog.Handler
	component string
	lim       *Limiter[heldRecord]
}

type heldRecord struct {
	h slog.Handler // the child handler that had the record, with its attributes
	r slog.Record
}

// NewHandler wraps inner, with burst lines of each kind per period; the
// summary of a period with held lines is written at its end.
func NewHandler(inner slog.Handler, burst int, period time.Duration) *Handler {
	h := &Handler{inner: inner}
	h.lim = New(burst, period, func(_ string, latest heldRecord, held int) {
		r := latest.r.Clone()
		r.AddAttrs(slog.Int(SuppressedKey, held), slog.Duration("period", period))
		// A summary that cannot be written has nowhere else to go.
		_ = latest.h.Handle(context.Background(), r)
	})
	return h
}

// Flush writes the summary of every kind with lines held back now, for a
// clean stop.
func (h *Handler) Flush() { h.lim.Flush() }

// Enabled reports whether the inner handler takes records of level l.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle writes r unless too many lines of its kind were written in the
// current period.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return h.inner.Handle(ctx, r)
	}
	key := strconv.Itoa(int(r.Level)) + "\x00" + h.component + "\x00" + r.Message
	if !h.lim.Allow(key, heldRecord{h: h.inner, r: r.Clone()}) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs returns a child sharing the limiter; a "component" attribute
// becomes part of the kind of its lines.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := &Handler{inner: h.inner.WithAttrs(as), component: h.component, lim: h.lim}
	for _, a := range as {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	return c
}

// WithGroup returns a child sharing the limiter.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), component: h.component, lim: h.lim}
}
