// Package config loads simgate's YAML configuration, applies SIMGATE_*
// environment overrides and validates the result, reporting every problem as
// "FILE:LINE: key: problem" so a user can fix them all in one pass.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where `simgate run` looks for its configuration.
const DefaultPath = "/etc/simgate/simgate.yaml"

// Config is the whole configuration. Field tags are the YAML keys that
// docs/contract.md lists and the README's "Configure" section explains;
// every key has the default that Default returns.
type Config struct {
	DeviceID string `yaml:"device_id"`
	Modem    Modem  `yaml:"modem"`
	SMS      SMS    `yaml:"sms"`
	IP       IP     `yaml:"ip"`
	MQTT     MQTT   `yaml:"mqtt"`
	Store    Store  `yaml:"store"`
	Log      Log    `yaml:"log"`
	// HTTP serves /metrics and /healthz; HomeAssistant publishes MQTT
	// discovery configs (see observe.go).
	HTTP          HTTP          `yaml:"http"`
	HomeAssistant HomeAssistant `yaml:"homeassistant"`
	Cloud         Cloud         `yaml:"cloud"`
}

// Modem is the serial port and module settings.
type Modem struct {
	Port    string   `yaml:"port"`
	Baud    int      `yaml:"baud"`
	Profile string   `yaml:"profile"`
	Init    []string `yaml:"init"`
	// Backend is who talks to the modem: "at" (simgate owns the AT port)
	// or "modemmanager" (ModemManager does, simgate talks to it over
	// D-Bus); see backend.go.
	Backend      string       `yaml:"backend"`
	ModemManager ModemManager `yaml:"modemmanager"`
}

// SMS is the SMS Commands settings.
type SMS struct {
	Enabled        bool     `yaml:"enabled"`
	AllowedSenders []string `yaml:"allowed_senders"`
	// DeliveryReports requests a status report for every SMS sent; each
	// becomes a second result ("delivered" or "failed").
	DeliveryReports bool `yaml:"delivery_reports"`
}

// IP is the IP Commands settings.
type IP struct {
	Mode           string   `yaml:"mode"`
	Port           int      `yaml:"port"`
	APN            string   `yaml:"apn"`
	Cloud          string   `yaml:"cloud"`
	Bind           string   `yaml:"bind"`
	AllowedSources []string `yaml:"allowed_sources"`
}

// MQTT is the broker connection.
type MQTT struct {
	URL          string `yaml:"url"`
	Embedded     bool   `yaml:"embedded"`
	ClientID     string `yaml:"client_id"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	TopicPrefix  string `yaml:"topic_prefix"`
}

// Store is the durable queue.
type Store struct {
	Dir         string `yaml:"dir"`
	MaxMessages int    `yaml:"max_messages"`
}

// Log is the logging setup.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the configuration used for every key a file leaves out.
func Default() Config {
	return Config{
		Modem: Modem{Port: "/dev/ttyUSB2", Baud: 115200, Profile: "auto", Init: []string{},
			Backend: BackendAT, ModemManager: ModemManager{Bus: "system"}},
		SMS: SMS{Enabled: true, AllowedSenders: []string{"000"}, DeliveryReports: true},
		IP: IP{
			Mode: "modem", Port: 6969, APN: "super", Cloud: "100.64.0.1:6969",
			AllowedSources: []string{},
		},
		MQTT: MQTT{
			URL:         "tcp://127.0.0.1:1883",
			TopicPrefix: "supersim/{device_id}",
		},
		Store: Store{Dir: "/var/lib/simgate", MaxMessages: 10000},
		Log:   Log{Level: "info", Format: "text"},

		HomeAssistant: HomeAssistant{Prefix: "homeassistant"},
		Cloud:         defaultCloud(),
	}
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	File string // file name, or "env SIMGATE_X" for an environment override
	Line int    // 0 when the problem has no line (a missing key, an override)
	Key  string // dotted key, e.g. "mqtt.url"
	Msg  string
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Key != "":
		return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Msg)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	case p.Key != "":
		return fmt.Sprintf("%s: %s: %s", p.File, p.Key, p.Msg)
	default:
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
}

// Location is where the problem is: "FILE:LINE", the file alone, or the
// environment variable.
func (p Problem) Location() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Problems is the error Load returns for an invalid configuration: every
// problem found, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the file at path, applies SIMGATE_* overrides from the process
// environment and validates the result. Any problem is returned as Problems;
// a file that cannot be read is returned as a wrapped os error.
func Load(path string) (Config, error) {
	cfg, _, err := LoadWithWarnings(path)
	return cfg, err
}

// LoadWithWarnings is Load that also returns warnings: things that do not
// stop the gateway but that its operator should fix, such as a password
// file other users can read. They are reported like problems.
func LoadWithWarnings(path string) (Config, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	return ParseWithWarnings(path, data, os.Environ())
}

// Parse is Load without the file system read: name is used in problem
// reports and env is a list of KEY=VALUE pairs.
func Parse(name string, data []byte, env []string) (Config, error) {
	cfg, _, err := ParseWithWarnings(name, data, env)
	return cfg, err
}

// ParseWithWarnings is Parse that also returns warnings (see
// LoadWithWarnings), in file order.
func ParseWithWarnings(name string, data []byte, env []string) (Config, Problems, error) {
	l := loader{file: name, lines: map[string]int{}}
	cfg := Default()
	if l.decodeFile(data, &cfg) {
		l.applyEnv(env, &cfg)
		l.validate(&cfg)
	}
	sortProblems(name, l.warnings)
	if len(l.problems) > 0 {
		sortProblems(name, l.problems)
		return cfg, l.warnings, l.problems
	}
	return cfg, l.warnings, nil
}

// sortProblems puts the file's own problems first, in line order, then
// those of environment overrides.
func sortProblems(name string, ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File == name
		}
		return a.Line < b.Line
	})
}

type loader struct {
	file     string
	lines    map[string]int    // dotted key -> line of its value in the file
	source   map[string]string // dotted key -> "env NAME" when overridden
	bad      map[string]bool   // keys whose value could not be decoded
	problems Problems
	warnings Problems
}

// addf records a problem found by validation. A key that already failed to
// decode holds its default, so a second complaint about it would mislead.
func (l *loader) addf(key string, format string, args ...any) {
	if l.bad[key] {
		return
	}
	file, line := l.file, l.lines[key]
	if src, ok := l.source[key]; ok {
		file, line = src, 0
	}
	l.problems = append(l.problems, Problem{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a warning about key, located like a problem.
func (l *loader) warnf(key string, format string, args ...any) {
	file, line := l.file, l.lines[key]
	if src, ok := l.source[key]; ok {
		file, line = src, 0
	}
	l.warnings = append(l.warnings, Problem{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// decodeFile reports whether the file was YAML at all; when it was not,
// nothing else about it is worth checking.
func (l *loader) decodeFile(data []byte, cfg *Config) bool {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return true // an empty file means every default
		}
		l.problems = append(l.problems, Problem{File: l.file, Line: yamlErrLine(err), Msg: "not valid YAML: " + yamlErrText(err)})
		return false
	}
	if len(doc.Content) == 0 {
		return true
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return true
	}
	l.decodeNode(root, "", reflect.ValueOf(cfg).Elem())
	return true
}

// decodeErr records a value that could not be decoded into its key.
func (l *loader) decodeErr(line int, key, msg string) {
	if l.bad == nil {
		l.bad = map[string]bool{}
	}
	l.bad[key] = true
	l.problems = append(l.problems, Problem{File: l.file, Line: line, Key: key, Msg: msg})
}

// decodeNode walks a mapping against a struct so unknown keys and type errors
// are reported with the line they are on.
func (l *loader) decodeNode(n *yaml.Node, prefix string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Kind() == reflect.Struct {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			l.decodeErr(n.Line, keyOrRoot(prefix), "must be a mapping of keys")
			return
		}
		fields := structFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := join(prefix, k.Value)
			l.lines[key] = val.Line
			if k.Value == "<<" {
				l.problems = append(l.problems, Problem{File: l.file, Line: k.Line, Key: keyOrRoot(prefix), Msg: "merge keys are not supported"})
				continue
			}
			idx, ok := fields[k.Value]
			if !ok {
				l.problems = append(l.problems, Problem{File: l.file, Line: k.Line, Key: key, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			if seen[k.Value] {
				l.problems = append(l.problems, Problem{File: l.file, Line: k.Line, Key: key, Msg: "key given twice"})
				continue
			}
			seen[k.Value] = true
			l.decodeNode(val, key, v.Field(idx))
		}
		return
	}
	if v.Kind() == reflect.Slice && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return
	}
	if v.Kind() != reflect.Slice && n.Kind != yaml.ScalarNode {
		l.decodeErr(n.Line, prefix, "must be a single value, not a list or mapping")
		return
	}
	if v.Kind() == reflect.Slice && n.Kind != yaml.SequenceNode {
		l.decodeErr(n.Line, prefix, "must be a list, e.g. [\"a\", \"b\"]")
		return
	}
	if v.Kind() == reflect.String && n.Kind == yaml.ScalarNode && n.Tag != "!!str" && n.Tag != "!!null" {
		// A port like 000 or an APN like 123 is text: keep exactly what was written.
		v.SetString(n.Value)
		return
	}
	if v.Kind() == reflect.Slice {
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				l.decodeErr(item.Line, prefix, "list items must be single values")
				return
			}
		}
		out := make([]string, len(n.Content))
		for i, item := range n.Content {
			out[i] = item.Value // numbers such as 000 stay text
		}
		v.Set(reflect.ValueOf(out))
		return
	}
	ptr := reflect.New(v.Type())
	if err := n.Decode(ptr.Interface()); err != nil {
		l.decodeErr(n.Line, prefix, fmt.Sprintf("must be %s, got %q", kindName(v.Kind()), n.Value))
		return
	}
	v.Set(ptr.Elem())
}

func keyOrRoot(k string) string {
	if k == "" {
		return "(top level)"
	}
	return k
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func structFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a whole number"
	default:
		return "text"
	}
}

// suggest names the closest known key for a misspelt one.
func suggest(k string, fields map[string]int) string {
	best, bestD := "", 3
	for f := range fields {
		if d := editDistance(k, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func yamlErrLine(err error) int {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return 0
	}
	var line int
	if _, scanErr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d:", &line); scanErr == nil {
		return line
	}
	return 0
}

func yamlErrText(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(s, ": "); strings.HasPrefix(s, "line ") && i > 0 {
		return s[i+2:]
	}
	return s
}
