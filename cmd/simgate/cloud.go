package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/simgate/simgate/cloud"
	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/metrics"
	"github.com/simgate/simgate/systemd"
	"github.com/simgate/simgate/transport"
)

// cmdCloud runs the cloud bridge: the cloud broker on one side, the Super
// SIM API and its webhooks on the other (README, "Running the cloud bridge").
func cmdCloud(args []string, stderr io.Writer) int {
	fs := newFlags("cloud", stderr)
	path := fs.String("config", config.DefaultPath, "config file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return exitConfig
	}
	if !cfg.Cloud.HasCredentials() {
		fmt.Fprintf(stderr, "%s: cloud: the section with the provider's credentials is missing (see README, \"Running the cloud bridge\")\n", *path)
		return exitConfig
	}
	log := newLogger(stderr, cfg.Log)
	v, c := buildVersion()
	log.Info("simgate cloud starting", "version", v, "commit", c, "config", *path)
	ctx, stop := signalContext(log)
	defer stop()
	return exitCode(log, runCloud(ctx, &cfg, log))
}

// cloudParts builds the API client and the callback verifier from the
// secrets files; an unreadable file is a configuration error.
func cloudParts(c *config.Cloud, reg *metrics.Registry) (*cloud.API, cloud.Verifier, error) {
	ac := cloud.APIConfig{BaseURL: c.API(), OnCall: reg.APICall}
	var verifier cloud.Verifier
	switch c.Provider {
	case "kore":
		secret, err := config.ReadSecret("cloud.client_secret_file", c.ClientSecretFile)
		if err != nil {
			return nil, nil, errConfig{err}
		}
		ac.ClientID, ac.ClientSecret, ac.TokenURL = c.ClientID, secret, c.Token()
		signing := ""
		if c.SigningSecret != "" {
			if signing, err = config.ReadSecret("cloud.signing_secret_file", c.SigningSecret); err != nil {
				return nil, nil, errConfig{err}
			}
		}
		verifier = cloud.NewKoreVerifier(signing)
	default:
		token, err := config.ReadSecret("cloud.auth_token_file", c.AuthTokenFile)
		if err != nil {
			return nil, nil, errConfig{err}
		}
		ac.Username, ac.Password = c.AccountSID, token
		verifier = cloud.NewTwilioVerifier(token)
	}
	api, err := cloud.NewAPI(ac)
	if err != nil {
		return nil, nil, errConfig{err}
	}
	return api, verifier, nil
}

func runCloud(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	c := &cfg.Cloud
	reg := metrics.NewRegistry()
	api, verifier, err := cloudParts(c, reg)
	if err != nil {
		return err
	}
	if c.Provider == "kore" && c.SigningSecret == "" {
		log.Warn("cloud.signing_secret_file is empty: KORE callbacks are accepted unsigned; create a webhook secret in KORE's developer portal")
	}
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: cfg.Store.Dir, MaxMessages: cfg.Store.MaxMessages}, log.With("component", "queue"))
	if err != nil {
		return err
	}
	defer func() {
		if err := q.Close(); err != nil {
			log.Error("closing the queue", "err", err)
		}
	}()
	clientID := cfg.MQTT.ClientID
	if clientID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "host"
		}
		clientID = "simgate-cloud-" + host
	}
	v, _ := buildVersion()
	b, err := cloud.New(cloud.Config{
		MQTT: transport.MQTTConfig{
			URL: cfg.MQTT.URL, ClientID: clientID, Username: cfg.MQTT.Username,
			PasswordFile: cfg.MQTT.PasswordFile, CAFile: cfg.MQTT.CAFile,
			CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile,
			TopicPrefix: c.TopicPrefix,
		},
		Provider: c.Provider, API: api, Verifier: verifier,
		Listen: c.Listen, TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile, PublicURL: c.PublicURL,
		DevicePort: c.DevicePort, Sims: c.Sims, StoreDir: cfg.Store.Dir, Version: v, Metrics: reg,
	}, q, log)
	if err != nil {
		return errConfig{err}
	}
	// http.listen serves /metrics and /healthz, as for the device daemon.
	if cfg.HTTP.Listen != "" {
		srv, err := metrics.Listen(cfg.HTTP.Listen, metrics.Handler(reg, b.Healthy), log.With("component", "http"))
		if err != nil {
			return err
		}
		srvCtx, stopSrv := context.WithCancel(ctx)
		srvDone := make(chan error, 1)
		go func() { srvDone <- srv.Serve(srvCtx) }()
		defer func() {
			stopSrv()
			if err := <-srvDone; err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("metrics server", "err", err)
			}
		}()
	}
	n := systemd.New(log.With("component", "systemd"))
	if n.Enabled() {
		if err := n.Ready(); err != nil {
			log.Warn("sd_notify READY", "err", err)
		}
	}
	err = b.Run(ctx)
	if n.Enabled() {
		if serr := n.Stopping(); serr != nil {
			log.Warn("sd_notify STOPPING", "err", serr)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
