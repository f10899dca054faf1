package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Cloud is the cloud bridge's section, read by `simgate cloud` only. See
// the README, "Running the cloud bridge".
type Cloud struct {
	Provider         string   `yaml:"provider"`
	APIURL           string   `yaml:"api_url"`
	AccountSID       string   `yaml:"account_sid"`
	AuthTokenFile    string   `yaml:"auth_token_file"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	TokenURL         string   `yaml:"token_url"`
	SigningSecret    string   `yaml:"signing_secret_file"`
	Listen           string   `yaml:"listen"`
	TLSCertFile      string   `yaml:"tls_cert_file"`
	TLSKeyFile       string   `yaml:"tls_key_file"`
	PublicURL        string   `yaml:"public_url"`
	TopicPrefix      string   `yaml:"topic_prefix"`
	DevicePort       int      `yaml:"device_port"`
	Sims             []string `yaml:"sims"`
}

// Providers accepted by cloud.provider.
var Providers = []string{"twilio", "kore"}

// Default endpoints of the providers, used when cloud.api_url or
// cloud.token_url is empty.
const (
	TwilioAPIURL = "https://supersim.twilio.com"
	KoreAPIURL   = "https://supersim.api.korewireless.com"
	KoreTokenURL = "https://api.korewireless.com/api-services/v1/auth/token"
)

func defaultCloud() Cloud {
	return Cloud{
		Provider:    "twilio",
		Listen:      "127.0.0.1:8080",
		TopicPrefix: "supersim",
		DevicePort:  6969,
		Sims:        []string{},
	}
}

// usesCloud reports whether the configuration sets a cloud.* key to
// something other than its default: only then are the keys `simgate cloud`
// needs required, so a device's configuration (or one that spells out the
// defaults) needs none of them.
func usesCloud(c *Cloud) bool {
	return !reflect.DeepEqual(*c, defaultCloud()) && !(len(c.Sims) == 0 && reflect.DeepEqual(withSims(*c, []string{}), defaultCloud()))
}

func withSims(c Cloud, s []string) Cloud {
	c.Sims = s
	return c
}

// validateCloud checks the cloud section. Shapes are always checked; the
// credentials a bridge cannot start without only when the section is there,
// so a device's configuration needs none of it.
func (l *loader) validateCloud(c *Cloud) {
	l.oneOf("cloud.provider", c.Provider, Providers)
	for _, u := range []struct{ key, val string }{
		{"cloud.api_url", c.APIURL},
		{"cloud.token_url", c.TokenURL},
	} {
		if u.val != "" {
			if err := checkHTTPURL(u.val); err != nil {
				l.addf(u.key, "%v", err)
			}
		}
	}
	if c.PublicURL != "" {
		if err := checkHTTPURL(c.PublicURL); err != nil {
			l.addf("cloud.public_url", "%v", err)
		} else if u, _ := url.Parse(c.PublicURL); u.RawQuery != "" || u.Fragment != "" {
			l.addf("cloud.public_url", "must be a base URL without query or fragment, got %q", c.PublicURL)
		}
	}
	if err := checkHostPort(c.Listen); err != nil {
		if h, p, e := net.SplitHostPort(c.Listen); e == nil && h == "" && p != "" {
			// ":8080" listens on every address, as net/http allows.
			if n, e := strconv.Atoi(p); e != nil || n < 1 || n > 65535 {
				l.addf("cloud.listen", "%v", err)
			}
		} else {
			l.addf("cloud.listen", "%v", err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		l.addf("cloud.tls_cert_file", "tls_cert_file and tls_key_file must be given together")
	}
	for _, f := range []struct{ key, path string }{
		{"cloud.auth_token_file", c.AuthTokenFile},
		{"cloud.client_secret_file", c.ClientSecretFile},
		{"cloud.signing_secret_file", c.SigningSecret},
		{"cloud.tls_cert_file", c.TLSCertFile},
		{"cloud.tls_key_file", c.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			l.addf(f.key, "%v", err)
			continue
		}
		if f.key != "cloud.tls_cert_file" {
			l.checkSecretMode(f.key, f.path) // as the mqtt secrets
		}
	}
	p := c.TopicPrefix
	switch {
	case strings.TrimSpace(p) == "":
		l.addf("cloud.topic_prefix", "must not be empty")
	case strings.ContainsAny(p, "+#{}\x00"):
		l.addf("cloud.topic_prefix", "must not contain MQTT wildcards '+', '#' or placeholders")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.HasPrefix(p, "$"):
		l.addf("cloud.topic_prefix", "must not start or end with '/' nor start with '$'")
	}
	if c.DevicePort < 1 || c.DevicePort > 65535 {
		l.addf("cloud.device_port", "must be between 1 and 65535, got %d", c.DevicePort)
	}
	for i, s := range c.Sims {
		if !ValidICCID(s) && !validSimSID(s) {
			l.addf("cloud.sims", "item %d (%q) is neither an ICCID (19-20 digits) nor a Sim SID (HS + 32 hex digits)", i+1, s)
		}
	}
	if !usesCloud(c) {
		return
	}
	switch c.Provider {
	case "twilio":
		if c.AccountSID == "" {
			l.addf("cloud.account_sid", "must be set for provider twilio: an Account SID (AC...) or an API Key SID (SK...)")
		} else if !validTwilioSID(c.AccountSID) {
			l.addf("cloud.account_sid", "must be an Account SID (AC + 32 hex digits) or an API Key SID (SK...), got %q", c.AccountSID)
		}
		if c.AuthTokenFile == "" {
			l.addf("cloud.auth_token_file", "must name the file holding the auth token (or API key secret) for provider twilio")
		}
	case "kore":
		if c.ClientID == "" {
			l.addf("cloud.client_id", "must be set for provider kore: the OAuth2 client id of a KORE API client")
		}
		if c.ClientSecretFile == "" {
			l.addf("cloud.client_secret_file", "must name the file holding the OAuth2 client secret for provider kore")
		}
	}
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http:// or https:// URL, got %q", s)
	case u.Hostname() == "":
		return fmt.Errorf("must name a host, got %q", s)
	}
	return nil
}

// ValidICCID reports whether s looks like an ICCID: 19 or 20 digits.
func ValidICCID(s string) bool {
	if len(s) < 19 || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func validSimSID(s string) bool { return len(s) == 34 && strings.HasPrefix(s, "HS") && isHex(s[2:]) }

func validTwilioSID(s string) bool {
	return len(s) == 34 && (strings.HasPrefix(s, "AC") || strings.HasPrefix(s, "SK")) && isHex(s[2:])
}

func isHex(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// ReadSecret reads a secret file named by a cloud.*_file key, without the
// trailing line break editors add. An empty file is an error: an empty
// secret would fail later, at the provider, and less clearly.
func ReadSecret(key, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("read %s: %s is empty", key, path)
	}
	return s, nil
}

// HasCredentials reports whether a validated configuration has a cloud section
// with a provider's credentials, which `simgate cloud` needs.
func (c *Cloud) HasCredentials() bool {
	switch c.Provider {
	case "twilio":
		return c.AccountSID != "" && c.AuthTokenFile != ""
	case "kore":
		return c.ClientID != "" && c.ClientSecretFile != ""
	}
	return false
}

// API returns cloud.api_url or the provider's default.
func (c *Cloud) API() string {
	if c.APIURL != "" {
		return strings.TrimRight(c.APIURL, "/")
	}
	if c.Provider == "kore" {
		return KoreAPIURL
	}
	return TwilioAPIURL
}

// Token returns cloud.token_url or KORE's default.
func (c *Cloud) Token() string {
	if c.TokenURL != "" {
		return c.TokenURL
	}
	return KoreTokenURL
}
