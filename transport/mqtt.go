package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Defaults of MQTTConfig.
const (
	DefaultKeepAlive            = 30 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
)

// MQTTConfig is how the relay reaches its broker.
type MQTTConfig struct {
	// URL is tcp://, ssl://, ws:// or wss:// with host and port.
	URL      string
	ClientID string
	Username string
	// PasswordFile holds the password; a trailing line break is dropped.
	PasswordFile string
	// CAFile verifies the broker (system roots when empty); CertFile and
	// KeyFile are the client certificate for brokers that require one.
	CAFile, CertFile, KeyFile string
	// TopicPrefix is topic_prefix with {device_id} already filled in.
	TopicPrefix string

	KeepAlive      time.Duration
	ConnectTimeout time.Duration
	// MaxReconnectInterval caps the backoff between connection attempts.
	MaxReconnectInterval time.Duration
}

func (c *MQTTConfig) fill() error {
	if c.ClientID == "" {
		return errors.New("mqtt client id is empty")
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "+#") {
		return fmt.Errorf("mqtt topic prefix %q must be set and free of wildcards", c.TopicPrefix)
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxReconnectInterval <= 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	return nil
}

// topic joins the prefix and a suffix.
func (c *MQTTConfig) topic(suffix string) string { return c.TopicPrefix + "/" + suffix }

// shownURL is the broker URL as logs may show it.
func (c *MQTTConfig) shownURL() string { return redactURL(c.URL) }

// redactURL hides a URL's user name and password, which must never reach
// a log (the daemon's configuration refuses them; a library caller may not).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// brokerURL checks the URL and says whether it needs TLS. A user name or
// password in it is refused: they have fields of their own, and a URL is
// logged.
func brokerURL(raw string) (*url.URL, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error quotes the whole URL
		}
		return nil, false, fmt.Errorf("mqtt url %s: %w", redactURL(raw), err)
	}
	if u.User != nil {
		return nil, false, fmt.Errorf("mqtt url %s: a user name or password belongs in the username and password file settings, not in the url", redactURL(raw))
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("mqtt url %q: no host", raw)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ws":
		return u, false, nil
	case "ssl", "tls", "mqtts", "wss":
		return u, true, nil
	}
	return nil, false, fmt.Errorf("mqtt url %q: scheme must be tcp, ssl, ws or wss", raw)
}

// readPassword reads the password file; the line break editors add at the
// end is not part of the password.
func readPassword(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("mqtt password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// tlsConfig builds the client side of TLS. Any file that is named but cannot
// be used is an error: falling back to no client certificate or to other
// roots would fail later and less clearly, or not at all.
func tlsConfig(c MQTTConfig, host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt ca_file %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("mqtt cert_file and key_file must be given together")
	}
	return cfg, nil
}

// clientOptions turns the config into paho options. Handlers are set by the
// relay; this covers the connection itself.
func clientOptions(c MQTTConfig) (*paho.ClientOptions, error) {
	u, secure, err := brokerURL(c.URL)
	if err != nil {
		return nil, err
	}
	if !secure && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
		return nil, fmt.Errorf("mqtt ca_file, cert_file and key_file need an ssl:// or wss:// url, got %q", c.URL)
	}
	password, err := readPassword(c.PasswordFile)
	if err != nil {
		return nil, err
	}
	o := paho.NewClientOptions()
	o.AddBroker(c.URL)
	o.SetClientID(c.ClientID)
	o.SetUsername(c.Username)
	o.SetPassword(password)
	if secure {
		tc, err := tlsConfig(c, u.Hostname())
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	// A persistent session keeps QoS 1 subscriptions and unacknowledged
	// requests at the broker while the gateway is away.
	o.SetCleanSession(false)
	o.SetProtocolVersion(4)
	o.SetKeepAlive(c.KeepAlive)
	o.SetPingTimeout(10 * time.Second)
	o.SetConnectTimeout(c.ConnectTimeout)
	o.SetWriteTimeout(30 * time.Second)
	o.SetAutoReconnect(true)
	o.SetMaxReconnectInterval(c.MaxReconnectInterval)
	// The relay retries the first connection itself, so it can log why
	// each attempt failed.
	o.SetConnectRetry(false)
	// Requests are handed to the relay's own FIFO, so the handler returns at
	// once and arrival order is kept; they are acknowledged only once
	// committed to the queue.
	o.SetOrderMatters(true)
	o.SetAutoAckDisabled(true)
	o.SetWill(c.topic(TopicStatus), OfflinePayload, 1, true)
	// Whatever the broker sends is bounded before paho reads it.
	o.SetCustomOpenConnectionFn(openBounded)
	return o, nil
}
