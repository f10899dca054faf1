package main

import (
	"context"
	"io"
)

// cmdRun runs the gateway (README, "Running under systemd").
func cmdRun(args []string, stderr io.Writer) int {
	d, code, ok := loadDaemon("run", args, stderr)
	if !ok {
		return code
	}
	defer flushLog(d.log)
	return runDaemon("simgate", d, func(ctx context.Context) error {
		return runGateway(ctx, &d.cfg, d.log, gatewayOptions{})
	})
}
