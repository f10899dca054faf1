package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// simgate cloud refuses to start without the provider's credentials, and
// check-config reports cloud problems as FILE:LINE: key: problem; both exit
// 78.
func TestCloudVerbConfigErrors(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none.yaml")
	if err := os.WriteFile(none, []byte("store:\n  dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"cloud", "-config", none}, &out, &errb); code != exitConfig {
		t.Errorf("cloud without a cloud section: exit %d, want %d\n%s", code, exitConfig, errb.String())
	}
	if !strings.Contains(errb.String(), "cloud: the section with the provider's credentials is missing") {
		t.Errorf("stderr %q", errb.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("cloud:\n  provider: twilio\n  account_sid: AC0123456789abcdef0123456789abcdef\n  auth_token_file: /nonexistent/token\n  listen: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"cloud", "check-config"} {
		out.Reset()
		errb.Reset()
		if code := realMain([]string{verb, "-config", bad}, &out, &errb); code != exitConfig {
			t.Errorf("%s: exit %d, want %d", verb, code, exitConfig)
		}
		for _, want := range []string{bad + ":4: cloud.auth_token_file: cannot be read", bad + ":5: cloud.listen: must be HOST:PORT"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s: stderr lacks %q:\n%s", verb, want, errb.String())
			}
		}
	}
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  dir: "+dir+"\ncloud:\n  account_sid: AC0123456789abcdef0123456789abcdef\n  auth_token_file: "+empty+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := realMain([]string{"cloud", "-config", cfg}, &out, &errb); code != exitConfig {
		t.Errorf("empty token file: exit %d, want %d\n%s", code, exitConfig, errb.String())
	}
	if !strings.Contains(errb.String(), "is empty") {
		t.Errorf("empty token file: stderr %q", errb.String())
	}
}
