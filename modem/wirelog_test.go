package modem

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/simgate/simgate/modem/at/attest"
)

// lockedBuffer is a log destination shared by the session's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// At log.level debug the session's log shows the bytes on the AT port,
// each way; above it, none.
func TestSessionLogsWireAtDebug(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelDebug, true}, {slog.LevelInfo, false}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			logs := &lockedBuffer{}
			cfg := defaultConfig()
			cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: tc.level}))
			port := attest.New(t, initSteps(list())...)
			newRig(t, cfg, nil, port)
			port.Wait(wait)
			// Both were logged before the session could write AT+CMEE=1.
			for _, line := range []string{
				`msg=wire component=modem port=/dev/fake dir=write len=5 bytes="ATE0\r"`,
				`msg=wire component=modem port=/dev/fake dir=read len=11 bytes="ATE0\r\r\nOK\r\n"`,
			} {
				if got := strings.Contains(logs.String(), line); got != tc.want {
					t.Errorf("log has %q: %v, want %v\n%s", line, got, tc.want, logs.String())
				}
			}
		})
	}
}
