package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/simgate/simgate/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	path, code, ok := parseConfigFlag("check-config", "config file to check", args, stderr)
	if !ok {
		return code
	}
	_, warns, err := config.LoadWithWarnings(path)
	for _, w := range warns {
		fmt.Fprintf(stderr, "%s (warning)\n", w)
	}
	if err != nil {
		printConfigError(stderr, path, err)
		return exitConfig
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

// printConfigError writes one FILE:LINE: key: problem line per problem, or
// the read error for a file that cannot be opened.
func printConfigError(w io.Writer, path string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}
