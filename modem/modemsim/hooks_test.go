package modemsim

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An operation added with HandleOp is answered over the control socket
// with the JSON of what it returns; a built-in one cannot be replaced.
func TestHandleOp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Start(Options{Link: filepath.Join(dir, "modem"), Control: filepath.Join(dir, "ctl"), BootDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.HandleOp(OpState, func() (any, error) { return nil, nil }); err == nil {
		t.Error("HandleOp replaced the built-in state op")
	}
	if err := s.HandleOp("extra", func() (any, error) { return map[string]int{"n": 7}, nil }); err != nil {
		t.Fatal(err)
	}
	c := &Client{Socket: filepath.Join(dir, "ctl")}
	resp, err := c.Do(Request{Op: "extra"})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Data) != `{"n":7}` {
		t.Errorf("extra op data %s", resp.Data)
	}
	if _, err := c.Do(Request{Op: "missing"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Errorf("unknown op: %v", err)
	}
	if st, err := c.State(); err != nil || st.Profile != "quectel" {
		t.Errorf("state after HandleOp: %+v, %v", st, err)
	}
}
