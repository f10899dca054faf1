package modem

import (
	"sync"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// testHooks are what a test sets on one session: tick replaces the poll
// ticker (the test polls when it chooses), handled is told each URC the
// session has acted on, and cmdTimeout, when set, replaces every
// command's timeout.
type testHooks struct {
	tick       <-chan time.Time
	handled    func(at.URC)
	cmdTimeout time.Duration
}

// hooks maps each *Session a test hooked to its *testHooks; set before
// Run, read by the session's goroutine.
var hooks sync.Map

func init() {
	pollTicks = func(s *Session) <-chan time.Time { return hooksOf(s).tick }
	urcHandled = func(s *Session, u at.URC) {
		if h := hooksOf(s); h.handled != nil {
			h.handled(u)
		}
	}
	testTimeout = func(s *Session) time.Duration { return hooksOf(s).cmdTimeout }
}

func hooksOf(s *Session) *testHooks {
	if h, ok := hooks.Load(s); ok {
		return h.(*testHooks)
	}
	return &testHooks{}
}

// hook changes the hooks of s; call it before s runs.
func hook(s *Session, f func(*testHooks)) {
	h := &testHooks{}
	if old, ok := hooks.Load(s); ok {
		*h = *old.(*testHooks)
	}
	f(h)
	hooks.Store(s, h)
}

// takeWaitingBacklog empties the backlog of a session that has no engine.
func (s *Session) takeWaitingBacklog() []at.URC { return s.backlog.Drain() }
