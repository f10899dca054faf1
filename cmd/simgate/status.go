package main

// simgate status: the running daemon's status in words, or as the JSON
// object with -json. Exit 0 healthy, 1 unhealthy, 3 not running.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/simgate/simgate/config"
	"github.com/simgate/simgate/internal/systemd"
	"github.com/simgate/simgate/transport"
)

// exitNotRunning is status's exit code when no daemon answers (LSB's "program
// is not running" for status actions).
const exitNotRunning = 3

// maxStatusBytes bounds what status reads from the socket or the broker.
const maxStatusBytes = 1 << 20

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	path := fs.String("config", config.DefaultPath, "config file of the daemon to ask")
	asJSON := fs.Bool("json", false, "print the status object as JSON instead of words")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the daemon or the broker")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigError(stderr, *path, err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	raw, source, err := readStatus(ctx, &cfg)
	if err != nil {
		fmt.Fprintf(stderr, "simgate status: simgate is not running: %v\n", err)
		if *asJSON {
			fmt.Fprintln(stdout, `{"online":false}`)
		}
		return exitNotRunning
	}
	obj, err := parseStatus(raw)
	if err != nil {
		fmt.Fprintf(stderr, "simgate status: unreadable status from %s: %v\n", source, err)
		return exitError
	}
	ok, _ := verdict(obj)
	if *asJSON {
		fmt.Fprintln(stdout, strings.TrimSpace(string(raw)))
	} else {
		fmt.Fprint(stdout, summarize(obj, source))
	}
	switch {
	case !obj.Online:
		return exitNotRunning
	case !ok:
		return exitError
	}
	return exitOK
}

// readStatus asks the daemon's status socket, and when that cannot be
// reached (not running, another host, no permission), reads the retained
// P/status from the broker.
func readStatus(ctx context.Context, cfg *config.Config) (raw []byte, source string, err error) {
	sock := statusSocketPath(cfg)
	raw, serr := readStatusSocket(ctx, sock)
	if serr == nil {
		return raw, "the status socket " + sock, nil
	}
	id := cfg.DeviceID
	if id == "" {
		id = readDeviceID(cfg.Store.Dir)
		if id != "" && config.CheckDeviceID(id) != nil {
			id = "" // a damaged file must not add topic levels or wildcards
		}
	}
	if id == "" {
		id = "+" // the ICCID names the topics and none is remembered here
	}
	mc := transport.MQTTConfig{
		URL:          cfg.MQTT.URL,
		ClientID:     "simgate-status",
		Username:     cfg.MQTT.Username,
		PasswordFile: cfg.MQTT.PasswordFile,
		CAFile:       cfg.MQTT.CAFile,
		CertFile:     cfg.MQTT.CertFile,
		KeyFile:      cfg.MQTT.KeyFile,
	}
	raw, on, merr := transport.ReadRetained(ctx, mc, cfg.Prefix(id)+"/"+transport.TopicStatus)
	if merr != nil {
		return nil, "", fmt.Errorf("no answer on the status socket (%w), and no retained status from the broker (%w)", serr, merr)
	}
	if len(raw) > maxStatusBytes {
		return nil, "", fmt.Errorf("the retained status on %s is %d bytes, more than %d", on, len(raw), maxStatusBytes)
	}
	return raw, fmt.Sprintf("the retained %s on %s (the status socket: %v)", on, config.RedactURL(cfg.MQTT.URL), serr), nil
}

func readStatusSocket(ctx context.Context, path string) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetReadDeadline(dl); err != nil {
			return nil, fmt.Errorf("status socket: %w", err)
		}
	}
	b, err := io.ReadAll(io.LimitReader(c, maxStatusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read status socket: %w", err)
	}
	if len(b) > maxStatusBytes {
		return nil, fmt.Errorf("status socket: answer over %d bytes", maxStatusBytes)
	}
	return b, nil
}

// parseStatus reads the status socket's object or a retained P/status.
// Either must be a JSON object with "online".
func parseStatus(raw []byte) (statusObject, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return statusObject{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := probe["online"]; !ok {
		return statusObject{}, errors.New(`no "online" field`)
	}
	var obj statusObject
	if err := json.Unmarshal(raw, &obj); err != nil {
		return statusObject{}, fmt.Errorf("unexpected field value: %w", err)
	}
	return obj, nil
}

func registered(reg string) bool { return reg == "home" || reg == "roaming" }

// verdict is healthy or not, and why. The daemon's own probe decides when
// it answered; a retained P/status has no verdict, so there the modem must
// be ready and registered.
func verdict(o statusObject) (bool, string) {
	switch {
	case !o.Online:
		return false, "not running"
	case o.Healthy != nil:
		return *o.Healthy, o.Reason
	case !o.Ready:
		return false, "modem not ready"
	case !registered(o.Network.Registration):
		return false, "not registered on a network (" + o.Network.Registration + ")"
	}
	return true, ""
}

// clean makes a value that came from the modem, the network or the broker
// safe to print: no control characters reach the terminal.
func clean(s string) string { return systemd.SanitizeStatus(s) }

// summarize is the human summary of o, read from source.
func summarize(o statusObject, source string) string {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-9s %s\n", label, fmt.Sprintf(format, args...))
	}
	if !o.Online {
		fmt.Fprintf(&b, "simgate is not running (its retained status says offline)\n")
		line("from", "%s", clean(source))
		return b.String()
	}
	ok, reason := verdict(o)
	state := "healthy"
	if !ok {
		state = "UNHEALTHY: " + clean(reason)
	}
	head := "simgate " + clean(o.Version) + " is running"
	if o.PID > 0 {
		head += fmt.Sprintf(" (pid %d, since %s)", o.PID, clean(o.StartedAt))
	}
	fmt.Fprintf(&b, "%s: %s\n", head, state)
	if o.DeviceID != "" {
		line("device", "%s", clean(o.DeviceID))
	}
	ready := "ready"
	if !o.Ready {
		ready = "not ready"
		if o.Recovery.LastError != "" {
			ready += " (" + clean(o.Recovery.LastError) + ")"
		}
	}
	modemName := strings.TrimSpace(clean(o.Modem.Manufacturer) + " " + clean(o.Modem.Model))
	if modemName == "" {
		modemName = "unknown modem"
	}
	if o.Modem.Revision != "" {
		modemName += " (" + clean(o.Modem.Revision) + ")"
	}
	if o.Modem.IMEI != "" {
		modemName += ", IMEI " + clean(o.Modem.IMEI)
	}
	line("modem", "%s, %s", modemName, ready)
	if o.SIM.ICCID != "" || o.SIM.IMSI != "" {
		line("SIM", "ICCID %s, IMSI %s", clean(o.SIM.ICCID), clean(o.SIM.IMSI))
	}
	reg, known := registrationText[o.Network.Registration]
	if !known {
		reg = "registration " + clean(o.Network.Registration)
	}
	if op := strings.TrimSpace(clean(o.Network.Operator) + " " + clean(o.Network.Technology)); op != "" {
		reg += " on " + op
	}
	if o.Network.SignalDBm != nil {
		reg += fmt.Sprintf(", signal %d dBm", *o.Network.SignalDBm)
	} else {
		reg += ", signal unknown"
	}
	line("network", "%s", reg)
	if o.Data.Mode != "" {
		d := clean(o.Data.Mode)
		if o.Data.State != "" {
			d += ": " + clean(o.Data.State)
		}
		if o.Data.IP != "" {
			d += " " + clean(o.Data.IP)
		}
		line("data", "%s", d)
	}
	if o.Broker != nil {
		conn := "disconnected"
		if o.Broker.Connected {
			conn = "connected"
		}
		line("broker", "%s (%s)", conn, clean(o.Broker.URL))
	}
	q := fmt.Sprintf("%d pending (%d messages, %d requests, %d results; %d SMS parts waiting for the rest)",
		o.Queue.Pending, o.Queue.Inbound, o.Queue.Outbound, o.Queue.Results, o.Queue.Segments)
	if o.SMSStore != nil {
		q += fmt.Sprintf("; SIM holds %d of %d SMS", o.SMSStore.Used, o.SMSStore.Total)
	}
	line("queue", "%s", q)
	r := o.Recovery
	rec := fmt.Sprintf("%d probes, %d re-inits, %d resets, %d reopens", r.Probes, r.Reinits, r.Resets, r.Reopens)
	if r.LastError != "" {
		rec += "; last error: " + clean(r.LastError)
	}
	line("recovery", "%s", rec)
	for _, ch := range []struct{ key, label string }{{"sms", "SMS"}, {"ip", "IP"}} {
		m, ok := o.Messages[ch.key]
		if !ok {
			continue
		}
		s := fmt.Sprintf("%d in", m.In)
		if m.LastIn != "" {
			s += " (last " + clean(m.LastIn) + ")"
		}
		s += fmt.Sprintf(", %d sent", m.Sent)
		if m.LastOut != "" {
			s += " (last " + clean(m.LastOut) + ")"
		}
		s += fmt.Sprintf(", %d failed, %d rejected, %d duplicates", m.Failed, m.Rejected, m.Duplicates)
		if m.Full > 0 {
			s += fmt.Sprintf(", %d refused (queue full)", m.Full)
		}
		line(ch.label, "%s", s)
	}
	if o.UpdatedAt != "" {
		line("as of", "%s", clean(o.UpdatedAt))
	}
	line("from", "%s", clean(source))
	return b.String()
}
