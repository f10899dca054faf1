package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Values accepted by the enumerated keys.
var (
	Profiles = []string{"auto", "generic", "quectel", "sim7080", "simcom", "ublox"}
	IPModes  = []string{"modem", "os", "off"}
	Levels   = []string{"debug", "info", "warn", "error"}
	Formats  = []string{"text", "json"}
	Schemes  = []string{"tcp", "ssl", "ws", "wss"}
)

func (l *loader) validate(c *Config) {
	if strings.ContainsAny(c.DeviceID, "/+#\x00") {
		l.addf("device_id", "must not contain '/', '+', '#' or NUL: it becomes part of MQTT topics")
	}

	if strings.TrimSpace(c.Modem.Port) == "" {
		l.addf("modem.port", "must name the modem's AT serial port, e.g. /dev/serial/by-id/usb-Quectel_...-if02-port0")
	}
	if c.Modem.Baud <= 0 || c.Modem.Baud > 4000000 {
		l.addf("modem.baud", "must be between 1 and 4000000, got %d", c.Modem.Baud)
	}
	l.oneOf("modem.profile", c.Modem.Profile, Profiles)
	for i, cmd := range c.Modem.Init {
		switch {
		case !strings.HasPrefix(strings.ToUpper(cmd), "AT"):
			l.addf("modem.init", "item %d (%q) must be an AT command starting with AT", i+1, cmd)
		case strings.ContainsAny(cmd, "\r\n\x1a\x1b"):
			l.addf("modem.init", "item %d must be one command without line breaks or control characters", i+1)
		}
	}

	for i, s := range c.SMS.AllowedSenders {
		if !validSender(s) {
			l.addf("sms.allowed_senders", "item %d (%q) is not a phone number or short code", i+1, s)
		}
	}

	l.validateDeliveryReports(&c.SMS)

	l.oneOf("ip.mode", c.IP.Mode, IPModes)
	if c.IP.Port < 1 || c.IP.Port > 65535 {
		l.addf("ip.port", "must be between 1 and 65535, got %d", c.IP.Port)
	}
	if c.IP.Mode == "modem" && strings.TrimSpace(c.IP.APN) == "" {
		l.addf("ip.apn", "must be set when ip.mode is modem (Super SIM uses \"super\")")
	}
	if c.IP.Mode != "off" {
		if err := checkHostPort(c.IP.Cloud); err != nil {
			l.addf("ip.cloud", "%v", err)
		}
	}
	if c.IP.Bind != "" {
		if _, err := netip.ParseAddr(c.IP.Bind); err != nil {
			l.addf("ip.bind", "must be an IP address (or empty for all addresses), got %q", c.IP.Bind)
		}
	}
	for i, s := range c.IP.AllowedSources {
		if _, err := ParsePrefix(s); err != nil {
			l.addf("ip.allowed_sources", "item %d: %v", i+1, err)
		}
	}

	l.validateMQTT(&c.MQTT)

	if strings.TrimSpace(c.Store.Dir) == "" {
		l.addf("store.dir", "must name a directory for the durable queue")
	}
	if c.Store.MaxMessages < 1 {
		l.addf("store.max_messages", "must be at least 1, got %d", c.Store.MaxMessages)
	}

	l.oneOf("log.level", c.Log.Level, Levels)
	l.oneOf("log.format", c.Log.Format, Formats)

	l.validateObserve(c)
}

func (l *loader) validateMQTT(m *MQTT) {
	u, err := url.Parse(m.URL)
	switch {
	case err != nil:
		l.addf("mqtt.url", "not a URL: %v", err)
	case !contains(Schemes, u.Scheme):
		l.addf("mqtt.url", "scheme must be one of tcp://, ssl://, ws://, wss://, got %q", m.URL)
	case u.Hostname() == "":
		l.addf("mqtt.url", "must name a host, e.g. tcp://127.0.0.1:1883")
	case u.Port() != "":
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			l.addf("mqtt.url", "port must be between 1 and 65535, got %q", u.Port())
		}
	}
	tls := err == nil && (u.Scheme == "ssl" || u.Scheme == "wss")
	if m.Embedded && err == nil && tls {
		l.addf("mqtt.embedded", "the embedded broker listens on tcp:// or ws:// only")
	}
	if strings.ContainsAny(m.ClientID, "/+#") {
		l.addf("mqtt.client_id", "must not contain '/', '+' or '#'")
	}
	if m.PasswordFile != "" && m.Username == "" {
		l.addf("mqtt.password_file", "is set but mqtt.username is empty")
	}
	for _, f := range []struct{ key, path string }{
		{"mqtt.password_file", m.PasswordFile},
		{"mqtt.ca_file", m.CAFile},
		{"mqtt.cert_file", m.CertFile},
		{"mqtt.key_file", m.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			l.addf(f.key, "%v", err)
		}
		if f.key != "mqtt.password_file" && err == nil && !tls {
			l.addf(f.key, "is only used with an ssl:// or wss:// url")
		}
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		l.addf("mqtt.cert_file", "cert_file and key_file must be given together")
	}
	p := m.TopicPrefix
	switch {
	case strings.TrimSpace(p) == "":
		l.addf("mqtt.topic_prefix", "must not be empty")
	case strings.ContainsAny(p, "+#\x00"):
		l.addf("mqtt.topic_prefix", "must not contain MQTT wildcards '+' or '#'")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		l.addf("mqtt.topic_prefix", "must not start or end with '/'")
	case strings.Contains(strings.ReplaceAll(p, "{device_id}", ""), "{"):
		l.addf("mqtt.topic_prefix", "the only placeholder is {device_id}")
	}
}

func (l *loader) oneOf(key, val string, allowed []string) {
	if !contains(allowed, val) {
		l.addf(key, "must be one of %s, got %q", strings.Join(allowed, ", "), val)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func validSender(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i, r := range s {
		if !(r >= '0' && r <= '9' || r == '+' && i == 0) {
			return false
		}
	}
	return s != "+"
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT, e.g. 100.64.0.1:6969: %v", err)
	}
	if host == "" {
		return fmt.Errorf("must name a host, got %q", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port must be between 1 and 65535, got %q", port)
	}
	return nil
}

// ParsePrefix parses an allowed_sources entry: a CIDR, or a single address
// meaning just that host.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 100.64.0.0/10", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 100.64.0.0/10", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot be read: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
}

// Prefix returns topic_prefix with {device_id} filled in.
func (c *Config) Prefix(deviceID string) string {
	return strings.ReplaceAll(c.MQTT.TopicPrefix, "{device_id}", deviceID)
}

// ClientID returns mqtt.client_id, or simgate-<device_id> when it is empty.
func (c *Config) ClientID(deviceID string) string {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID
	}
	return "simgate-" + deviceID
}

// Password reads mqtt.password_file, without its trailing line break.
func (c *Config) Password() (string, error) {
	if c.MQTT.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.MQTT.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read mqtt.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// AllowedSources parses ip.allowed_sources; call it on a validated Config.
func (c *Config) AllowedSources() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c.IP.AllowedSources))
	for _, s := range c.IP.AllowedSources {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
