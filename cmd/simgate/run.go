package main

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

func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", config.DefaultPath, "config file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, warns, err := config.LoadWithWarnings(*path)
	if err != nil {
		for _, w := range warns {
			fmt.Fprintf(stderr, "%s (warning)\n", w)
		}
		printConfigError(stderr, *path, err)
		return exitConfig
	}
	log := newLogger(stderr, cfg.Log)
	defer flushLog(log)
	for _, w := range warns {
		log.Warn("configuration: "+w.Msg, "key", w.Key, "at", w.Location())
	}
	v, c := buildVersion()
	log.Info("simgate starting", "version", v, "commit", c, "config", *path)
	ctx, stop := signalContext(log)
	defer stop()
	return exitCode(log, runGateway(ctx, &cfg, log, gatewayOptions{}))
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
