package main

import (
	"fmt"
	"io"

	"github.com/simgate/simgate/config"
)

func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	path := fs.String("config", config.DefaultPath, "config file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return exitConfig
	}
	log := newLogger(stderr, cfg.Log)
	log.Error("simgate run: the gateway is not implemented yet in this build")
	return exitError
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(stderr, "simgate demo: not implemented yet in this build")
	return exitError
}
