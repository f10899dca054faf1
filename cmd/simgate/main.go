// Command simgate is the Super SIM gateway daemon: it relays SMS Commands and
// IP Commands between a cellular modem and an MQTT broker.
//
// Usage:
//
//	simgate run [-config FILE]
//	simgate cloud [-config FILE]
//	simgate demo
//	simgate status [-config FILE] [-json]
//	simgate check-config [-config FILE]
//	simgate version
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/cli"
)

// Exit codes of simgate run (sysexits.h where one fits).
const (
	exitOK     = cli.ExitOK
	exitError  = 1
	exitUsage  = cli.ExitUsage
	exitConfig = 78 // EX_CONFIG: systemd's RestartPreventExitStatus=78 stops a restart loop on bad config
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "run":
		return cmdRun(rest, stderr)
	case "cloud":
		return cmdCloud(rest, stderr)
	case "demo":
		return cmdDemo(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	default:
		return cli.OtherVerb("simgate", verb, usage, stdout, stderr)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  simgate run [-config FILE]           run the gateway (default config /etc/simgate/simgate.yaml)
  simgate cloud [-config FILE]         run the cloud bridge: cloud MQTT broker <-> Super SIM API and its webhooks
  simgate demo                         run a complete gateway against a simulated modem and an embedded broker
  simgate status [-config FILE] [-json] the running daemon's status; exit 0 healthy, 1 unhealthy, 3 not running
  simgate check-config [-config FILE]  validate a config file: "ok", or FILE:LINE: key: problem (exit 78)
  simgate version                      print version, commit, Go version and platform
`)
}

// newFlags returns a flag set that reports errors instead of exiting, so
// every verb controls its own exit code.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("simgate", name, stderr)
}

// parseConfigFlag parses the flags of a verb whose only flag is -config,
// described as what, and returns the file's path; ok false ends the run
// with code.
func parseConfigFlag(verb, what string, args []string, stderr io.Writer) (path string, code int, ok bool) {
	fs := newFlags(verb, stderr)
	p := fs.String("config", config.DefaultPath, what)
	code, ok = parseFlags(fs, args)
	return *p, code, ok
}

// parseFlags parses args, which take no arguments after the flags, and
// returns the exit code to use when it failed.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) { return cli.Parse(fs, args, true) }
