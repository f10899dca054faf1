package main

// What the long-running verbs (run, cloud) share: loading the
// configuration, the signals that stop them, and their exit codes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/simgate/simgate/config"
)

// daemonStart is what a long-running verb (run, cloud) starts from.
type daemonStart struct {
	cfg  config.Config
	path string
	log  *slog.Logger
}

// loadDaemon parses the flags of a long-running verb, loads its
// configuration and makes its logger. The configuration's warnings go to
// the log, or to stderr before the error when the file cannot be used.
// ok false ends the run with code.
func loadDaemon(verb string, args []string, stderr io.Writer) (d daemonStart, code int, ok bool) {
	path, code, ok := parseConfigFlag(verb, "config file", args, stderr)
	if !ok {
		return daemonStart{}, code, false
	}
	cfg, warns, err := config.LoadWithWarnings(path)
	if err != nil {
		for _, w := range warns {
			fmt.Fprintf(stderr, "%s (warning)\n", w)
		}
		printConfigError(stderr, path, err)
		return daemonStart{}, exitConfig, false
	}
	log := newLogger(stderr, cfg.Log)
	for _, w := range warns {
		log.Warn("configuration: "+w.Msg, "key", w.Key, "at", w.Location())
	}
	return daemonStart{cfg: cfg, path: path, log: log}, 0, true
}

// runDaemon says that name starts with d's configuration, runs it until
// the first SIGINT or SIGTERM, and maps how it ended to an exit code.
func runDaemon(name string, d daemonStart, run func(ctx context.Context) error) int {
	v, c := buildVersion()
	d.log.Info(name+" starting", "version", v, "commit", c, "config", d.path)
	ctx, stop := signalContext(d.log)
	defer stop()
	return exitCode(d.log, run(ctx))
}

// signalContext is cancelled by the first SIGINT or SIGTERM, which starts a
// clean stop; a second one exits at once, for an operator who cannot wait
// for in-flight work (what is not acknowledged is still queued on disk).
func signalContext(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("stopping: finishing in-flight work (signal again to exit at once)", "signal", sig.String())
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Warn("exiting at once; undelivered messages stay queued", "signal", sig.String())
			os.Exit(exitError)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// exitCode logs how the gateway ended and maps it to run's exit code.
func exitCode(log *slog.Logger, err error) int {
	if err == nil {
		log.Info("simgate stopped")
		return exitOK
	}
	if errors.As(err, new(errConfig)) {
		log.Error("configuration cannot be used", "err", err)
		return exitConfig
	}
	log.Error("simgate failed", "err", err)
	return exitError
}
