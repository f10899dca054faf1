package modem

import (
	"context"

	"github.com/simgate/simgate/modem/at"
)

// commander runs one AT command on the current engine (Session.do today:
// per-command timeouts, OpError wrapping).
type commander interface {
	do(ctx context.Context, op string, c at.Cmd) (at.Reply, error)
}

// eventer raises one gateway event (Session.event today).
type eventer interface {
	event(typ, msg string, fields map[string]any)
}
