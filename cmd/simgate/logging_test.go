package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/ratelimit"
)

// Under journald every line carries its syslog priority and no time of
// its own, including lines from child loggers written concurrently.
func TestJournalHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(newHandler(&buf, "text", slog.LevelDebug, true))
	child := log.With("component", "modem")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				child.Error("e", "i", i)
			case 1:
				log.Warn("w", "i", i)
			case 2:
				child.Info("i", "i", i)
			default:
				log.Debug("d", "i", i)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("%d lines, want 50:\n%s", len(lines), buf.String())
	}
	want := map[string]string{"e": "<3>level=ERROR msg=e component=modem", "w": "<4>level=WARN msg=w", "i": "<6>level=INFO msg=i component=modem", "d": "<7>level=DEBUG msg=d"}
	for _, l := range lines {
		var msg string
		if _, err := fmt.Sscanf(l[strings.Index(l, "msg=")+4:], "%1s", &msg); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if !strings.HasPrefix(l, want[msg]) {
			t.Errorf("line %q, want prefix %q", l, want[msg])
		}
		if strings.Contains(l, "time=") {
			t.Errorf("line %q has a time of its own", l)
		}
	}
	// Outside the journal: plain text with times.
	buf.Reset()
	slog.New(newHandler(&buf, "text", slog.LevelInfo, false)).Warn("w")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Errorf("plain line %q", buf.String())
	}
}

func TestIsJournalStream(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"", false},
		{"garbage", false},
	} {
		if got := isJournalStream(tc.env, f); got != tc.want {
			t.Errorf("isJournalStream(%q) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// The daemon's logger limits repeated lines: a refusal logged per request
// in a flood shows the first lines of the period, then one line with the
// count, written at the latest when the daemon stops.
func TestLoggerLimitsRepeats(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, config.Log{Level: "info", Format: "text"})
	relay := log.With("component", "relay")
	for i := range 1000 {
		relay.With("id", fmt.Sprint("r", i)).Warn("request refused: queue full")
	}
	relay.Info("request sent", "id", "other")
	flushLog(log)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	refused := 0
	for _, l := range lines {
		if strings.Contains(l, "request refused: queue full") {
			refused++
		}
	}
	if want := ratelimit.DefaultBurst + 1; refused != want || len(lines) != want+1 {
		t.Fatalf("%d refusal lines of %d, want %d and one other:\n%s", refused, len(lines), want, buf.String())
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "id=r999") || !strings.Contains(last, fmt.Sprintf("suppressed=%d", 1000-ratelimit.DefaultBurst)) {
		t.Errorf("summary line %q: want the latest id and suppressed=%d", last, 1000-ratelimit.DefaultBurst)
	}
}
