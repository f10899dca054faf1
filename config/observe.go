package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// HTTP is the operator's HTTP endpoint: GET /metrics in the Prometheus text
// format and GET /healthz. Empty Listen serves nothing.
type HTTP struct {
	Listen string `yaml:"listen"`
}

// HomeAssistant is the Home Assistant MQTT discovery setup: with Discovery
// on, simgate publishes retained sensor configs under Prefix; turned off, it
// removes the ones it published.
type HomeAssistant struct {
	Discovery bool   `yaml:"discovery"`
	Prefix    string `yaml:"prefix"`
}

// validateObserve checks the http and homeassistant keys.
func (l *loader) validateObserve(c *Config) {
	if c.HTTP.Listen != "" {
		if err := checkListen(c.HTTP.Listen); err != nil {
			l.addf("http.listen", "%v", err)
		}
	}
	p := c.HomeAssistant.Prefix
	switch {
	case strings.TrimSpace(p) == "":
		l.addf("homeassistant.prefix", "must not be empty (Home Assistant's default is \"homeassistant\")")
	case strings.ContainsAny(p, "+#\x00"):
		l.addf("homeassistant.prefix", "must not contain MQTT wildcards '+' or '#'")
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		l.addf("homeassistant.prefix", "must not start or end with '/'")
	}
}

// checkListen accepts HOST:PORT or :PORT with a port from 1 to 65535; HOST
// is an IP address or a name such as localhost.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT, e.g. 127.0.0.1:9369, got %q", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not an address or host name", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port must be between 1 and 65535, got %q", port)
	}
	return nil
}
