package cli

import (
	"bytes"
	"fmt"
	"io"
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

func TestOtherVerb(t *testing.T) {
	usage := func(w io.Writer) { fmt.Fprint(w, "usage: prog run\n") }
	for _, tc := range []struct {
		verb             string
		wantCode         int
		wantOut, wantErr string
	}{
		{"help", ExitOK, "usage: prog run\n", ""},
		{"--help", ExitOK, "usage: prog run\n", ""},
		{"-h", ExitOK, "usage: prog run\n", ""},
		{"runn", ExitUsage, "", "prog: unknown verb \"runn\"\nusage: prog run\n"},
	} {
		var out, errOut bytes.Buffer
		if code := OtherVerb("prog", tc.verb, usage, &out, &errOut); code != tc.wantCode || out.String() != tc.wantOut || errOut.String() != tc.wantErr {
			t.Errorf("OtherVerb(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.verb, code, out.String(), errOut.String(), tc.wantCode, tc.wantOut, tc.wantErr)
		}
	}
}
