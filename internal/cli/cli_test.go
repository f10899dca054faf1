package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		noArgs   bool
		wantCode int
		wantOK   bool
		wantOut  string // in what the flag set wrote
	}{
		{name: "flags only", args: []string{"-config", "x.yaml"}, noArgs: true, wantOK: true},
		{name: "help", args: []string{"-h"}, wantCode: ExitOK, wantOut: "Usage of simgate run"},
		{name: "unknown flag", args: []string{"-nope"}, wantCode: ExitUsage, wantOut: "flag provided but not defined: -nope"},
		{name: "argument refused", args: []string{"-config", "x.yaml", "extra"}, noArgs: true, wantCode: ExitUsage, wantOut: `simgate run: unexpected argument "extra"`},
		{name: "argument allowed", args: []string{"-config", "x.yaml", "extra"}, wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			fs := NewFlags("simgate", "run", &out)
			path := fs.String("config", "", "config file")
			code, ok := Parse(fs, tc.args, tc.noArgs)
			if code != tc.wantCode || ok != tc.wantOK {
				t.Errorf("Parse = %d, %v; want %d, %v", code, ok, tc.wantCode, tc.wantOK)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
			if tc.wantOK && *path != "x.yaml" {
				t.Errorf("-config = %q, want x.yaml", *path)
			}
		})
	}
}
