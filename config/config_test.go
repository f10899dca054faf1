package config

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultsWhenEmpty(t *testing.T) {
	for _, doc := range []string{"", "\n# only a comment\n", "---\n", "~\n"} {
		got, err := Parse("empty.yaml", []byte(doc), nil)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", doc, err)
		}
		if diff := cmp.Diff(Default(), got); diff != "" {
			t.Errorf("Parse(%q) mismatch (-want +got):\n%s", doc, diff)
		}
	}
}

// The contract's documented YAML block must load to exactly the defaults.
func TestContractExampleIsDefault(t *testing.T) {
	doc := `
device_id: ""
modem:
  port: /dev/ttyUSB2
  baud: 115200
  profile: auto
  init: []
sms:
  enabled: true
  allowed_senders: ["000"]
ip:
  mode: modem
  port: 6969
  apn: super
  cloud: "100.64.0.1:6969"
  bind: ""
  allowed_sources: []
mqtt:
  url: tcp://127.0.0.1:1883
  embedded: false
  client_id: ""
  username: ""
  password_file: ""
  ca_file: ""
  cert_file: ""
  key_file: ""
  topic_prefix: "supersim/{device_id}"
store:
  dir: /var/lib/simgate
  max_messages: 10000
log:
  level: info
  format: text
`
	got, err := Parse("contract.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestPackagedDefaultConfig(t *testing.T) {
	path := filepath.Join("..", "packaging", "simgate.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no packaged config yet: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("packaged config does not validate:\n%v", err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("packaged config differs from the defaults (-want +got):\n%s", diff)
	}
}

func TestValues(t *testing.T) {
	doc := `
device_id: pump-7
modem:
  port: /dev/serial/by-id/usb-Quectel_EG25-if02-port0
  baud: 9600
  profile: quectel
  init: ['AT+QCFG="nwscanmode",0,1']
sms:
  allowed_senders: []
ip:
  mode: os
  port: 7000
  allowed_sources: [100.64.0.0/10, 10.0.0.1]
mqtt:
  url: ssl://broker.example.com:8883
  topic_prefix: fleet/{device_id}
store:
  max_messages: 5
log: {level: debug, format: json}
`
	got, err := Parse("v.yaml", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DeviceID = "pump-7"
	want.Modem = Modem{Port: "/dev/serial/by-id/usb-Quectel_EG25-if02-port0", Baud: 9600, Profile: "quectel", Init: []string{`AT+QCFG="nwscanmode",0,1`},
		Backend: BackendAT, ModemManager: ModemManager{Bus: "system"}}
	want.SMS.AllowedSenders = []string{}
	want.IP.Mode, want.IP.Port = "os", 7000
	want.IP.AllowedSources = []string{"100.64.0.0/10", "10.0.0.1"}
	want.MQTT.URL, want.MQTT.TopicPrefix = "ssl://broker.example.com:8883", "fleet/{device_id}"
	want.Store.MaxMessages = 5
	want.Log = Log{Level: "debug", Format: "json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if p := got.Prefix("pump-7"); p != "fleet/pump-7" {
		t.Errorf("Prefix = %q", p)
	}
	if id := got.ClientID("pump-7"); id != "simgate-pump-7" {
		t.Errorf("ClientID = %q", id)
	}
	if n := len(got.AllowedSources()); n != 2 {
		t.Errorf("AllowedSources() has %d entries, want 2", n)
	}
}

func TestNumbersStayText(t *testing.T) {
	got, err := Parse("n.yaml", []byte("sms:\n  allowed_senders: [000, +4412345]\nip:\n  apn: 123\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"000", "+4412345"}, got.SMS.AllowedSenders); diff != "" {
		t.Errorf("allowed_senders (-want +got):\n%s", diff)
	}
	if got.IP.APN != "123" {
		t.Errorf("apn = %q, want 123", got.IP.APN)
	}
}

func TestProblems(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown key and bad port", "modem:\n  port: /dev/ttyUSB2\n  speed: 9600\nip:\n  port: 70000\n",
			[]string{"t.yaml:3: modem.speed: unknown key", "t.yaml:5: ip.port: must be between 1 and 65535, got 70000"}},
		{"misspelt key suggests", "mqtt:\n  topic_prefx: a\n", []string{`t.yaml:2: mqtt.topic_prefx: unknown key (did you mean "topic_prefix"?)`}},
		{"unknown top level", "modme: {}\n", []string{`t.yaml:1: modme: unknown key (did you mean "modem"?)`}},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", []string{"t.yaml:3: log.level: key given twice"}},
		{"bad yaml", "modem:\n  port: [\n", []string{"t.yaml:2: not valid YAML"}},
		{"type error int", "modem:\n  baud: fast\n", []string{`t.yaml:2: modem.baud: must be a whole number, got "fast"`}},
		{"type error bool", "sms:\n  enabled: maybe\n", []string{`t.yaml:2: sms.enabled: must be true or false, got "maybe"`}},
		{"list expected", "sms:\n  allowed_senders: \"000\"\n", []string{"t.yaml:2: sms.allowed_senders: must be a list"}},
		{"scalar expected", "modem:\n  port: [a]\n", []string{"t.yaml:2: modem.port: must be a single value"}},
		{"mapping expected", "modem: /dev/ttyUSB2\n", []string{"t.yaml:1: modem: must be a mapping"}},
		{"top level not mapping", "- a\n", []string{"t.yaml:1: (top level): must be a mapping"}},
		{"empty port", "modem:\n  port: \"\"\n", []string{"t.yaml:2: modem.port: must name the modem's AT serial port"}},
		{"baud zero", "modem:\n  baud: 0\n", []string{"t.yaml:2: modem.baud: must be between 1 and 4000000, got 0"}},
		{"profile", "modem:\n  profile: huawei\n", []string{`t.yaml:2: modem.profile: must be one of auto, generic, quectel, sim7080, simcom, ublox, got "huawei"`}},
		{"init not AT", "modem:\n  init: [\"QCFG\"]\n", []string{`t.yaml:2: modem.init: item 1 ("QCFG") must be an AT command`}},
		{"init newline", "modem:\n  init: [\"AT\\r\\nATZ\"]\n", []string{"t.yaml:2: modem.init: item 1 must be one command"}},
		{"sender", "sms:\n  allowed_senders: [\"000\", \"bob\"]\n", []string{`t.yaml:2: sms.allowed_senders: item 2 ("bob") is not a phone number`}},
		{"ip mode", "ip:\n  mode: ppp\n", []string{`t.yaml:2: ip.mode: must be one of modem, os, off, got "ppp"`}},
		{"ip port zero", "ip:\n  port: 0\n", []string{"t.yaml:2: ip.port: must be between 1 and 65535, got 0"}},
		{"apn empty in modem mode", "ip:\n  apn: \"\"\n", []string{"t.yaml:2: ip.apn: must be set when ip.mode is modem"}},
		{"apn empty ok in os mode", "ip:\n  mode: os\n  apn: \"\"\n", nil},
		{"cloud no port", "ip:\n  cloud: 100.64.0.1\n", []string{"t.yaml:2: ip.cloud: must be HOST:PORT"}},
		{"cloud bad port", "ip:\n  cloud: 100.64.0.1:0\n", []string{`t.yaml:2: ip.cloud: port must be between 1 and 65535, got "0"`}},
		{"cloud ignored when off", "ip:\n  mode: off\n  cloud: nonsense\n", nil},
		{"bind", "ip:\n  bind: eth0\n", []string{`t.yaml:2: ip.bind: must be an IP address (or empty for all addresses), got "eth0"`}},
		{"cidr", "ip:\n  allowed_sources: [100.64.0.0/33, 10.0.0.1, fe80::/10, nope]\n",
			[]string{`t.yaml:2: ip.allowed_sources: item 1: "100.64.0.0/33" is not a CIDR`, `t.yaml:2: ip.allowed_sources: item 4: "nope" is not a CIDR`}},
		{"url scheme", "mqtt:\n  url: http://x:1883\n", []string{`t.yaml:2: mqtt.url: scheme must be one of tcp://, ssl://, ws://, wss://, got "http://x:1883"`}},
		{"url no host", "mqtt:\n  url: tcp://:1883\n", []string{"t.yaml:2: mqtt.url: must name a host"}},
		{"url bad port", "mqtt:\n  url: tcp://h:99999\n", []string{`t.yaml:2: mqtt.url: port must be between 1 and 65535, got "99999"`}},
		{"url garbage", "mqtt:\n  url: \"tcp://h:%zz\"\n", []string{"t.yaml:2: mqtt.url: not a URL"}},
		{"embedded tls", "mqtt:\n  url: ssl://127.0.0.1:8883\n  embedded: true\n", []string{"t.yaml:3: mqtt.embedded: the embedded broker listens on tcp:// or ws:// only"}},
		{"client id", "mqtt:\n  client_id: a/b\n", []string{"t.yaml:2: mqtt.client_id: must not contain"}},
		{"password without user", "mqtt:\n  password_file: " + secret + "\n", []string{"t.yaml:2: mqtt.password_file: is set but mqtt.username is empty"}},
		{"password unreadable", "mqtt:\n  username: u\n  password_file: /nonexistent/pw\n", []string{"t.yaml:3: mqtt.password_file: cannot be read"}},
		{"password dir", "mqtt:\n  username: u\n  password_file: " + dir + "\n", []string{"t.yaml:3: mqtt.password_file: " + dir + " is a directory"}},
		{"ca unreadable", "mqtt:\n  url: ssl://h:8883\n  ca_file: /nonexistent/ca.pem\n", []string{"t.yaml:3: mqtt.ca_file: cannot be read"}},
		{"ca without tls", "mqtt:\n  ca_file: " + secret + "\n", []string{"t.yaml:2: mqtt.ca_file: is only used with an ssl:// or wss:// url"}},
		{"cert without key", "mqtt:\n  url: ssl://h:8883\n  cert_file: " + secret + "\n", []string{"t.yaml:3: mqtt.cert_file: cert_file and key_file must be given together"}},
		{"prefix wildcard", "mqtt:\n  topic_prefix: a/+/b\n", []string{"t.yaml:2: mqtt.topic_prefix: must not contain MQTT wildcards"}},
		{"prefix slash", "mqtt:\n  topic_prefix: /a\n", []string{"t.yaml:2: mqtt.topic_prefix: must not start or end with '/'"}},
		{"prefix placeholder", "mqtt:\n  topic_prefix: a/{iccid}\n", []string{"t.yaml:2: mqtt.topic_prefix: the only placeholder is {device_id}"}},
		{"prefix empty", "mqtt:\n  topic_prefix: \"\"\n", []string{"t.yaml:2: mqtt.topic_prefix: must not be empty"}},
		{"device id", "device_id: a/b\n", []string{"t.yaml:1: device_id: must not contain"}},
		{"device id control", "device_id: \"a\\tb\"\n", []string{"t.yaml:1: device_id: must not contain control characters"}},
		{"device id long", "device_id: " + strings.Repeat("d", 129) + "\n", []string{"t.yaml:1: device_id: must be at most 128 characters"}},
		{"store dir", "store:\n  dir: \"\"\n", []string{"t.yaml:2: store.dir: must name a directory"}},
		{"max messages", "store:\n  max_messages: 0\n", []string{"t.yaml:2: store.max_messages: must be at least 1, got 0"}},
		{"log level", "log:\n  level: trace\n", []string{`t.yaml:2: log.level: must be one of debug, info, warn, error, got "trace"`}},
		{"log format", "log:\n  format: xml\n", []string{`t.yaml:2: log.format: must be one of text, json, got "xml"`}},
		{"merge key", "base: &b {level: info}\n", []string{"t.yaml:1: base: unknown key"}},
		{"good tls", "mqtt:\n  url: ssl://h:8883\n  username: u\n  password_file: " + secret + "\n  ca_file: " + secret + "\n  cert_file: " + secret + "\n  key_file: " + secret + "\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.doc), nil)
			checkProblems(t, err, tt.want)
		})
	}
}

func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected problems:\n%v", err)
		}
		return
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error = %v (%T), want Problems", err, err)
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d = %q, want prefix %q", i, ps[i].String(), w)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"PATH=/bin",
		"SIMGATE_MQTT_URL=tcp://10.0.0.2:1884",
		"SIMGATE_MODEM_PORT=/dev/ttyACM0",
		"SIMGATE_MODEM_BAUD=9600",
		"SIMGATE_SMS_ENABLED=false",
		"SIMGATE_SMS_ALLOWED_SENDERS=000, +15551234",
		`SIMGATE_MODEM_INIT=["AT+CNMI=2,1,0,0,0","ATS0=0"]`,
		"SIMGATE_IP_ALLOWED_SOURCES=",
		"SIMGATE_DEVICE_ID=dev1",
	}
	got, err := Parse("e.yaml", []byte("mqtt:\n  url: tcp://127.0.0.1:1883\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.MQTT.URL = "tcp://10.0.0.2:1884"
	want.Modem.Port, want.Modem.Baud = "/dev/ttyACM0", 9600
	want.Modem.Init = []string{"AT+CNMI=2,1,0,0,0", "ATS0=0"}
	want.SMS = SMS{Enabled: false, AllowedSenders: []string{"000", "+15551234"}, DeliveryReports: true}
	want.DeviceID = "dev1"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestEnvProblems(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"SIMGATE_MODEM_BAUD=fast", `env SIMGATE_MODEM_BAUD: modem.baud: must be a whole number, got "fast"`},
		{"SIMGATE_SMS_ENABLED=perhaps", `env SIMGATE_SMS_ENABLED: sms.enabled: must be true or false, got "perhaps"`},
		{"SIMGATE_MQTT_HOST=x", "env SIMGATE_MQTT_HOST: unknown override"},
		{"SIMGATE_IP_PORT=0", "env SIMGATE_IP_PORT: ip.port: must be between 1 and 65535, got 0"},
		{"SIMGATE_MODEM_INIT=[unclosed", "env SIMGATE_MODEM_INIT: modem.init: must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Parse("e.yaml", nil, []string{tt.env})
			checkProblems(t, err, []string{tt.want})
		})
	}
}

func TestEveryKeyHasAnOverride(t *testing.T) {
	keys := envKeys()
	for _, k := range []string{"SIMGATE_DEVICE_ID", "SIMGATE_MODEM_PORT", "SIMGATE_MQTT_URL", "SIMGATE_MQTT_PASSWORD_FILE",
		"SIMGATE_IP_ALLOWED_SOURCES", "SIMGATE_STORE_MAX_MESSAGES", "SIMGATE_LOG_FORMAT"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no override %s", k)
		}
	}
	if len(keys) != 48 {
		t.Errorf("got %d override variables, want 48 (one per key)", len(keys))
	}
}

func TestPassword(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.MQTT.PasswordFile = pw
	got, err := c.Password()
	if err != nil || got != "s3cret" {
		t.Fatalf("Password() = %q, %v", got, err)
	}
	c.MQTT.PasswordFile = pw + ".missing"
	if _, err := c.Password(); err == nil {
		t.Fatal("Password() of a missing file succeeded")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load() error = %v, want not exist", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("modem:\n  port: /dev/ttyUSB2\n  speed: 9600\nip:\n  port: 70000\n"))
	f.Add([]byte("mqtt: {url: 'tcp://h:1', topic_prefix: a/{device_id}}\nlog: [1]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("sms:\n  allowed_senders: [000, {a: b}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, nil)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
			for _, p := range ps {
				if p.Msg == "" || p.File != "f.yaml" {
					t.Fatalf("problem without a message or file: %+v", p)
				}
			}
			return
		}
		// A config that passed must satisfy the rules validate enforces.
		if cfg.IP.Port < 1 || cfg.IP.Port > 65535 || cfg.Store.MaxMessages < 1 || cfg.Modem.Port == "" {
			t.Fatalf("invalid config accepted: %+v", cfg)
		}
	})
}

func TestCloudSection(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The contract's block of defaults is valid and changes nothing.
	defaults := `cloud:
  provider: twilio
  api_url: ""
  account_sid: ""
  auth_token_file: ""
  client_id: ""
  client_secret_file: ""
  token_url: ""
  signing_secret_file: ""
  listen: "127.0.0.1:8080"
  tls_cert_file: ""
  tls_key_file: ""
  public_url: ""
  topic_prefix: "supersim"
  device_port: 6969
  sims: []
`
	got, err := Parse("d.yaml", []byte(defaults), nil)
	checkProblems(t, err, nil)
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	good := "cloud:\n  account_sid: AC0123456789abcdef0123456789abcdef\n  auth_token_file: " + token + "\n  public_url: https://bridge.example.com\n  sims: [\"89883070000000000011\", HS0123456789abcdef0123456789abcdef]\n"
	got, err = Parse("g.yaml", []byte(good), nil)
	checkProblems(t, err, nil)
	if !got.Cloud.HasCredentials() || got.Cloud.API() != TwilioAPIURL {
		t.Errorf("cloud %+v", got.Cloud)
	}
	s, err := ReadSecret("cloud.auth_token_file", got.Cloud.AuthTokenFile)
	if err != nil || s != "tok" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}

	bad := `cloud:
  provider: kore
  api_url: ftp://x
  listen: nowhere
  tls_cert_file: /nonexistent/cert
  public_url: https://b.example/?x=1
  topic_prefix: "a/+"
  device_port: 0
  sims: [123]
  signing_secret_file: /nonexistent/s
  tokn_url: x
`
	_, err = Parse("b.yaml", []byte(bad), nil)
	checkProblems(t, err, []string{
		"b.yaml: cloud.client_id: must be set for provider kore",
		"b.yaml: cloud.client_secret_file: must name",
		"b.yaml:3: cloud.api_url: must be an http:// or https:// URL",
		"b.yaml:4: cloud.listen",
		"b.yaml:5: cloud.tls_cert_file: tls_cert_file and tls_key_file must be given together",
		"b.yaml:5: cloud.tls_cert_file: cannot be read",
		"b.yaml:6: cloud.public_url: must be a base URL",
		"b.yaml:7: cloud.topic_prefix",
		"b.yaml:8: cloud.device_port",
		"b.yaml:9: cloud.sims: item 1",
		"b.yaml:10: cloud.signing_secret_file: cannot be read",
		"b.yaml:11: cloud.tokn_url: unknown key (did you mean \"token_url\"?)",
	})
	_, err = Parse("t.yaml", []byte("cloud:\n  account_sid: nope\n"), nil)
	checkProblems(t, err, []string{"t.yaml: cloud.auth_token_file: must name", "t.yaml:2: cloud.account_sid: must be an Account SID"})
}

// A user name or password in mqtt.url is refused with its line, and no
// message repeats it: the file is world-readable and the url is logged.
func TestURLUserInfoRefused(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  []string
		want string
	}{
		{"user and password", "mqtt:\n  url: tcp://alice:hunter2@broker:1883\n", nil,
			"t.yaml:2: mqtt.url: must not hold a user name or password (tcp://REDACTED@broker:1883): set mqtt.username and mqtt.password_file instead"},
		{"user only", "mqtt:\n  url: ssl://alice@broker:8883\n", nil, "t.yaml:2: mqtt.url: must not hold a user name or password"},
		{"bad scheme too", "mqtt:\n  url: http://alice:hunter2@broker\n", nil, "t.yaml:2: mqtt.url: must not hold a user name or password"},
		{"unparsable", "mqtt:\n  url: \"tcp://alice:hunter2@broker:%zz\"\n", nil, "t.yaml:2: mqtt.url: not a URL"},
		{"environment", "", []string{"SIMGATE_MQTT_URL=ws://alice:hunter2@broker:80/mqtt"}, "env SIMGATE_MQTT_URL: mqtt.url: must not hold a user name or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.doc), tt.env)
			checkProblems(t, err, []string{tt.want})
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "alice") {
				t.Errorf("problem repeats the credentials: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1883":            "tcp://127.0.0.1:1883",
		"tcp://u:p@h:1883":                "tcp://REDACTED@h:1883",
		"ws://u:p@ss@h:80/mqtt?x=a@b#f@g": "ws://REDACTED@h:80/mqtt?x=a@b#f@g",
		"u:p@h":                           "REDACTED@h",
		"tcp://h/path@x":                  "tcp://h/path@x",
		"ssl://user%40corp:p%2Fw@h:8883":  "ssl://REDACTED@h:8883",
		"":                                "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// Secret files any user can rewrite are refused; ones other users can read
// are a warning. Group read by a group the gateway is in is the install
// guide's 0640 root:simgate, and passes.
func TestSecretFileModes(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := file("private", 0o600)
	ownGroup := file("own-group", 0o640) // created with this process's group
	everyone := file("everyone", 0o644)
	writable := file("writable", 0o666)
	tls := "mqtt:\n  url: ssl://h:8883\n  cert_file: " + private + "\n  key_file: "
	tests := []struct {
		name                   string
		doc                    string
		wantProblem, wantWarns []string
	}{
		{"private password", "mqtt:\n  username: u\n  password_file: " + private + "\n", nil, nil},
		{"group of the gateway", "mqtt:\n  username: u\n  password_file: " + ownGroup + "\n", nil, nil},
		{"password readable by all", "mqtt:\n  username: u\n  password_file: " + everyone + "\n", nil,
			[]string{"t.yaml:3: mqtt.password_file: " + everyone + " is readable by every user (mode 0644)"}},
		{"password writable by all", "mqtt:\n  username: u\n  password_file: " + writable + "\n",
			[]string{"t.yaml:3: mqtt.password_file: " + writable + " is writable by every user (mode 0666)"}, nil},
		{"key readable by all", tls + everyone + "\n", nil,
			[]string{"t.yaml:4: mqtt.key_file: " + everyone + " is readable by every user"}},
		{"key writable by all", tls + writable + "\n",
			[]string{"t.yaml:4: mqtt.key_file: " + writable + " is writable by every user"}, nil},
		{"certificate is public", "mqtt:\n  url: ssl://h:8883\n  cert_file: " + everyone + "\n  key_file: " + private + "\n  ca_file: " + writable + "\n", nil, nil},
	}
	if os.Geteuid() == 0 {
		// A group this process is not in, and not the service group.
		other := file("other-group", 0o640)
		if err := os.Chown(other, -1, 65533); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name                   string
			doc                    string
			wantProblem, wantWarns []string
		}{"readable by another group", "mqtt:\n  username: u\n  password_file: " + other + "\n", nil,
			[]string{"t.yaml:3: mqtt.password_file: " + other + " is readable by its group (mode 0640), which is not simgate"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := ParseWithWarnings("t.yaml", []byte(tt.doc), nil)
			checkProblems(t, err, tt.wantProblem)
			if len(warns) != len(tt.wantWarns) {
				t.Fatalf("warnings %v, want %d", warns, len(tt.wantWarns))
			}
			for i, w := range tt.wantWarns {
				if !strings.HasPrefix(warns[i].String(), w) {
					t.Errorf("warning %d = %q, want prefix %q", i, warns[i], w)
				}
			}
		})
	}
}

// Whatever the text, a user name or password url.Parse finds in it never
// survives RedactURL.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"tcp://u:p@h:1883", "ws://a@b@c/d@e", "u:p@h", "tcp://h:1883", "ssl://%40:%3A@h", "://@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactURL(raw)
		u, err := url.Parse(out)
		if err != nil || u.User == nil {
			return
		}
		if name := u.User.String(); name != "REDACTED" {
			t.Fatalf("RedactURL(%q) = %q keeps user-info %q", raw, out, name)
		}
	})
}

// An accepted device id is one topic level of UTF-8 text.
func FuzzCheckDeviceID(f *testing.F) {
	for _, s := range []string{"89883070000012345672", "evil/#", "a+b", "\x00", "tab\t", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if CheckDeviceID(id) != nil {
			return
		}
		if id == "" || strings.ContainsAny(id, "/+#\x00") || !utf8.ValidString(id) || utf8.RuneCountInString(id) > MaxDeviceID {
			t.Fatalf("CheckDeviceID accepted %q", id)
		}
	})
}

// The cloud section's secrets get the same file-mode checks as mqtt's.
func TestCloudSecretFileModes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("t.yaml", []byte("cloud:\n  account_sid: AC0123456789abcdef0123456789abcdef\n  auth_token_file: "+p+"\n"), nil)
	checkProblems(t, err, []string{"t.yaml:3: cloud.auth_token_file: " + p + " is writable by every user"})
}
