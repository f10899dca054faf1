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
	"github.com/simgate/simgate/internal/lifecycle"
	"github.com/simgate/simgate/internal/metrics"
	"github.com/simgate/simgate/internal/systemd"
	"github.com/simgate/simgate/transport"
)

// cmdCloud runs the cloud bridge: the cloud broker on one side, the Super
// SIM API and its webhooks on the other (README, "Running the cloud bridge").
func cmdCloud(args []string, stderr io.Writer) int {
	d, code, ok := loadDaemon("cloud", args, stderr)
	if !ok {
		return code
	}
	defer flushLog(d.log)
	if !d.cfg.Cloud.HasCredentials() {
		fmt.Fprintf(stderr, "%s: cloud: the section with the provider's credentials is missing (see README, \"Running the cloud bridge\")\n", d.path)
		return exitConfig
	}
	return runDaemon("simgate cloud", d, func(ctx context.Context) error {
		return runCloud(ctx, &d.cfg, d.log)
	})
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

// runCloud runs the cloud bridge until ctx is cancelled, its parts started
// in the order below and stopped in the reverse one.
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
	var (
		q        *transport.Queue
		b        *cloud.Bridge
		srvRun   *lifecycle.Task
		n        = systemd.New(log.With("component", "systemd"))
		bridgeGo *lifecycle.Task
	)
	var parts lifecycle.List
	parts.Log = log
	parts.Add(lifecycle.Part{
		// The queue first and closed last: the bridge stores in it.
		Name: "queue",
		Start: func(context.Context) (err error) {
			q, err = transport.OpenQueue(transport.StoreConfig{Dir: cfg.Store.Dir, MaxMessages: cfg.Store.MaxMessages}, log.With("component", "queue"))
			return err
		},
		Stop:    func(context.Context) error { return q.Close() },
		LogOnly: true,
	}, lifecycle.Part{
		Name: "bridge",
		Start: func(context.Context) (err error) {
			b, err = newBridge(cfg, api, verifier, reg, q, log)
			return err
		},
	}, lifecycle.Part{
		// http.listen serves /metrics and /healthz, as for the device
		// daemon, until ctx is cancelled.
		Name: "http",
		Start: func(ctx context.Context) error {
			if cfg.HTTP.Listen == "" {
				return nil
			}
			srv, err := metrics.Listen(cfg.HTTP.Listen, metrics.Handler(reg, b.Healthy), log.With("component", "http"))
			if err != nil {
				return err
			}
			srvRun = lifecycle.Go(ctx, func(ctx context.Context) error {
				if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				return nil
			})
			return nil
		},
		Stop: func(ctx context.Context) error {
			if srvRun == nil {
				return nil
			}
			return srvRun.Stop(ctx)
		},
		LogOnly: true,
	}, lifecycle.Part{
		// READY=1 once the bridge is built; STOPPING=1 once it is done.
		Name: "systemd",
		Start: func(context.Context) error {
			if n.Enabled() {
				if err := n.Ready(); err != nil {
					log.Warn("sd_notify READY", "err", err)
				}
			}
			return nil
		},
		Stop: func(context.Context) error {
			if n.Enabled() {
				if err := n.Stopping(); err != nil {
					log.Warn("sd_notify STOPPING", "err", err)
				}
			}
			return nil
		},
	}, lifecycle.Part{
		// The bridge runs on ctx and stops first, when ctx ends and its
		// in-flight work is done.
		Name: "bridge run",
		Start: func(ctx context.Context) error {
			bridgeGo = lifecycle.Go(ctx, b.Run)
			return nil
		},
		Stop: func(ctx context.Context) error { return bridgeGo.Stop(ctx) },
	})
	if err := parts.Start(ctx); err != nil {
		return err
	}
	<-bridgeGo.Done()
	err = bridgeGo.Take()
	if serr := parts.Stop(); err == nil {
		err = serr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// newBridge builds the bridge of the configuration.
func newBridge(cfg *config.Config, api *cloud.API, verifier cloud.Verifier, reg *metrics.Registry, q *transport.Queue, log *slog.Logger) (*cloud.Bridge, error) {
	c := &cfg.Cloud
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
		return nil, errConfig{err}
	}
	return b, nil
}
