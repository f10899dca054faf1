// Package cli holds what simgate's and modemsim's command lines share:
// flag sets that report errors instead of exiting, so that every verb
// chooses its own exit status, and the statuses for a finished parse.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit statuses common to both programs.
const (
	ExitOK    = 0
	ExitUsage = 2 // a flag or argument the verb does not take
)

// NewFlags returns the flag set of "prog verb", writing its messages to
// stderr and returning errors rather than exiting.
func NewFlags(prog, verb string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// Parse parses args. When it returns ok false the run is over and code is
// its exit status: ExitOK after -h (the usage was printed), ExitUsage for
// a bad flag (the flag package said why). With noArgs, arguments left
// after the flags are refused too, by name.
func Parse(fs *flag.FlagSet, args []string, noArgs bool) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if noArgs && fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

// OtherVerb answers a verb the program does not have: help (and -h,
// -help, --help) prints the usage to stdout and succeeds; anything else
// is named as unknown on stderr, followed by the usage.
func OtherVerb(prog, verb string, usage func(io.Writer), stdout, stderr io.Writer) int {
	switch verb {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: unknown verb %q\n", prog, verb)
	usage(stderr)
	return ExitUsage
}
