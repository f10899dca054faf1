package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
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
	if c.DeviceID != "" {
		if err := CheckDeviceID(c.DeviceID); err != nil {
			l.addf("device_id", "%v", err)
		}
	}

	if c.Modem.Backend != BackendModemManager && strings.TrimSpace(c.Modem.Port) == "" {
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
	l.validateBackend(c)
	l.validateCloud(&c.Cloud)
}

// MaxDeviceID bounds a device id; it is part of every topic and of the
// default MQTT client id.
const MaxDeviceID = 128

// CheckDeviceID reports why id cannot name a device: it becomes a level of
// every MQTT topic, so it must be one level without wildcards. The same
// rule applies to device_id and to the id remembered in store.dir.
func CheckDeviceID(id string) error {
	switch {
	case id == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(id, "/+#\x00"):
		return errors.New("must not contain '/', '+', '#' or NUL: it becomes part of MQTT topics")
	case !utf8.ValidString(id):
		return errors.New("must be UTF-8 text")
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	case utf8.RuneCountInString(id) > MaxDeviceID:
		return fmt.Errorf("must be at most %d characters", MaxDeviceID)
	}
	return nil
}

func (l *loader) validateMQTT(m *MQTT) {
	u, err := url.Parse(m.URL)
	switch {
	case err != nil:
		l.addf("mqtt.url", "not a URL: %v", redactErr(err))
	case u.User != nil:
		// The file is world-readable by design and the url is logged;
		// the password has a file of its own.
		l.addf("mqtt.url", "must not hold a user name or password (%s): set mqtt.username and mqtt.password_file instead", RedactURL(m.URL))
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
		err := readable(f.path)
		if err != nil {
			l.addf(f.key, "%v", err)
		}
		if err == nil && (f.key == "mqtt.password_file" || f.key == "mqtt.key_file") {
			l.checkSecretMode(f.key, f.path)
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

// ServiceGroup is the group the package runs simgate as; the install guide
// makes secret files 0640 root:simgate, so that group may read them.
const ServiceGroup = "simgate"

// checkSecretMode refuses a secret file any user may rewrite (whoever
// replaces the key or password controls what the gateway trusts) and warns
// about one other users may read. Group read is fine for the group the
// gateway runs as.
func (l *loader) checkSecretMode(key, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return // readable already reported it
	}
	perm := st.Mode().Perm()
	switch {
	case perm&0o002 != 0:
		l.addf(key, "%s is writable by every user (mode %#o): anyone could replace it; chmod 0640 %s, owned by root:%s", path, perm, path, ServiceGroup)
	case perm&0o004 != 0:
		l.warnf(key, "%s is readable by every user (mode %#o): chmod 0640 %s, owned by root:%s", path, perm, path, ServiceGroup)
	case perm&0o040 != 0 && !ownGroup(st):
		l.warnf(key, "%s is readable by its group (mode %#o), which is not %s nor the group simgate runs as: chmod 0600 %s, or chgrp %s", path, perm, ServiceGroup, path, ServiceGroup)
	}
}

// ownGroup reports whether the file's group is the service group or one
// this process is in, the groups meant to read a 0640 secret.
func ownGroup(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true // no owner to judge by: say nothing rather than guess
	}
	gid := int(sys.Gid)
	if gid == os.Getgid() || gid == os.Getegid() {
		return true
	}
	if groups, err := os.Getgroups(); err == nil {
		for _, g := range groups {
			if g == gid {
				return true
			}
		}
	}
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	return err == nil && g.Name == ServiceGroup
}

// RedactURL returns raw with any user name and password replaced by
// "REDACTED", for logs and messages; raw need not parse as a URL. The
// user-info is what lies between the first "//" (or the start, when there
// is none) and the last '@' before the path.
func RedactURL(raw string) string {
	prefix, rest := "", raw
	if i := strings.Index(raw, "//"); i >= 0 {
		prefix, rest = raw[:i+2], raw[i+2:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	return prefix + "REDACTED@" + rest[at+1:]
}

// redactErr rewrites a url.Parse error, which quotes the whole URL.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %q: %w", ue.Op, RedactURL(ue.URL), ue.Err)
	}
	return err
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
