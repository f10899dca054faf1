package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string // client side
	serverCert                tls.Certificate
	pool                      *x509.CertPool
	otherCAFile, garbageFile  string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir, pool: x509.NewCertPool()}
	caKey, caCert, caDER := makeCA(t, "simgate test CA")
	p.pool.AddCert(caCert)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	_, _, otherDER := makeCA(t, "someone else")
	p.otherCAFile = writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER)

	srvKey, srvDER := makeLeaf(t, caCert, caKey, "broker", x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	cliKey, cliDER := makeLeaf(t, caCert, caKey, "gateway", x509.ExtKeyUsageClientAuth)
	p.certFile = writePEM(t, dir, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER)
	p.garbageFile = filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(p.garbageFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func makeCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func makeLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authHook accepts one username and password and records what clients
// presented.
type authHook struct {
	mochi.HookBase
	user, pass string
	mu         sync.Mutex
	seen       []string
}

func (h *authHook) ID() string { return "test-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

func (h *authHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, string(pk.Connect.Username)+":"+string(pk.Connect.Password))
	return string(pk.Connect.Username) == h.user && string(pk.Connect.Password) == h.pass
}

func (h *authHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// TestRelayTLS connects over ssl:// to a broker that verifies the client's
// certificate and its username and password, as a clustered cloud broker
// would, and relays a message through it.
func TestRelayTLS(t *testing.T) {
	pki := newTestPKI(t)
	addr := freeAddr(t)
	obs := new(observer)
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: testLogger(t)})
	hook := &authHook{user: "gw", pass: "s3cret"}
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.Subscribe(testPrefix+"/#", 1, obs.inline); err != nil {
		t.Fatal(err)
	}
	tl := listeners.NewTCP(listeners.Config{ID: "tls", Address: addr, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{pki.serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	}})
	if err := srv.AddListener(tl); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testRelayConfig("ssl://" + addr)
	cfg.MQTT.Username, cfg.MQTT.PasswordFile = "gw", pw
	cfg.MQTT.CAFile, cfg.MQTT.CertFile, cfg.MQTT.KeyFile = pki.caFile, pki.certFile, pki.keyFile
	q := openTestQueue(t, t.TempDir(), 10)
	runRelay(t, newTestRelay(t, cfg, q, newFakeDevice()))
	if err := q.Put(context.Background(), sms(1)); err != nil {
		t.Fatal(err)
	}
	got := obs.wait(t, TopicSMSIn, 1)
	if got[0].Payload != mustRender(t, sms(1)) {
		t.Errorf("published %s", got[0].Payload)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.seen) == 0 || hook.seen[0] != "gw:s3cret" {
		t.Errorf("credentials presented = %q, want gw:s3cret (trailing newline dropped)", hook.seen)
	}
}

// TestRelayTLSWrongCA keeps retrying a broker whose certificate it cannot
// verify, and never delivers to it.
func TestRelayTLSWrongCA(t *testing.T) {
	pki := newTestPKI(t)
	addr := freeAddr(t)
	srv := mochi.New(&mochi.Options{Logger: testLogger(t)})
	if err := srv.AddHook(&authHook{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: addr,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.serverCert}}})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := testRelayConfig("ssl://" + addr)
	cfg.MQTT.CAFile = pki.otherCAFile
	r := newTestRelay(t, cfg, openTestQueue(t, t.TempDir(), 10), newFakeDevice())
	stop := runRelay(t, r)
	// Let it make a few attempts; it must neither connect nor give up.
	time.Sleep(300 * time.Millisecond)
	if r.Stats().Connected {
		t.Error("connected to a broker with a certificate from another CA")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestNewRelayConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name    string
		edit    func(*MQTTConfig)
		wantErr string
	}{
		{"bad scheme", func(c *MQTTConfig) { c.URL = "http://127.0.0.1:1883" }, "scheme"},
		{"no host", func(c *MQTTConfig) { c.URL = "tcp://:1883" }, "no host"},
		{"credentials in url", func(c *MQTTConfig) { c.URL = "tcp://alice:hunter2@127.0.0.1:1883" }, "mqtt url tcp://REDACTED@127.0.0.1:1883: a user name or password belongs in"},
		{"unparsable url with credentials", func(c *MQTTConfig) { c.URL = "tcp://alice:hunter2@127.0.0.1:%zz" }, "invalid port"},
		{"no client id", func(c *MQTTConfig) { c.ClientID = "" }, "client id"},
		{"wildcard prefix", func(c *MQTTConfig) { c.TopicPrefix = "a/+" }, "wildcards"},
		{"missing password file", func(c *MQTTConfig) { c.Username, c.PasswordFile = "u", missing }, "password_file"},
		{"tls files on tcp", func(c *MQTTConfig) { c.CAFile = pki.caFile }, "need an ssl:// or wss://"},
		{"missing ca", func(c *MQTTConfig) { c.URL, c.CAFile = "ssl://127.0.0.1:8883", missing }, "ca_file"},
		{"ca without certificates", func(c *MQTTConfig) { c.URL, c.CAFile = "ssl://127.0.0.1:8883", pki.garbageFile }, "no PEM certificate"},
		{"cert without key", func(c *MQTTConfig) { c.URL, c.CertFile = "ssl://127.0.0.1:8883", pki.certFile }, "together"},
		{"key that does not match", func(c *MQTTConfig) {
			c.URL, c.CertFile, c.KeyFile = "ssl://127.0.0.1:8883", pki.certFile, pki.garbageFile
		}, "cert_file/key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testRelayConfig("tcp://127.0.0.1:1883")
			tt.edit(&cfg.MQTT)
			_, err := NewRelay(cfg, openTestQueue(t, t.TempDir(), 10), newFakeDevice(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewRelay error = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("NewRelay error %q shows the password", err)
			}
		})
	}
	cfg := testRelayConfig("wss://127.0.0.1:8883/mqtt")
	cfg.MQTT.CAFile, cfg.MQTT.CertFile, cfg.MQTT.KeyFile = pki.caFile, pki.certFile, pki.keyFile
	if _, err := NewRelay(cfg, openTestQueue(t, t.TempDir(), 10), newFakeDevice(), nil); err != nil {
		t.Errorf("NewRelay with wss:// and a full TLS setup: %v", err)
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ content, want string }{
		{"s3cret\n", "s3cret"},
		{"s3cret\r\n", "s3cret"},
		{"s3cret", "s3cret"},
		{" spaced out \n\n", " spaced out "},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, "pw")
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readPassword(path)
		if err != nil || got != tt.want {
			t.Errorf("case %d: readPassword = %q, %v, want %q", i, got, err, tt.want)
		}
	}
	if got, err := readPassword(""); got != "" || err != nil {
		t.Errorf("readPassword(\"\") = %q, %v, want empty", got, err)
	}
}

func TestStartEmbedded(t *testing.T) {
	for _, scheme := range []string{"tcp", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			url := scheme + "://" + freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop, err := StartEmbedded(ctx, url, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			var c paho.Client
			eventually(t, "a client to connect", func() bool {
				c = paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("t-" + scheme))
				tok := c.Connect()
				return tok.WaitTimeout(waitLimit) && tok.Error() == nil
			})
			sub := c.Subscribe("x", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
			if !sub.WaitTimeout(waitLimit) || sub.Error() != nil {
				t.Fatalf("subscribe: %v", sub.Error())
			}
			pub := c.Publish("x", 1, false, "hello")
			if !pub.WaitTimeout(waitLimit) || pub.Error() != nil {
				t.Fatalf("publish: %v", pub.Error())
			}
			select {
			case s := <-got:
				if s != "hello" {
					t.Errorf("got %q", s)
				}
			case <-time.After(waitLimit):
				t.Fatal("message not delivered")
			}
			c.Disconnect(100)
			if err := stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
			if err := stop(); err != nil {
				t.Errorf("second stop: %v", err)
			}
		})
	}
}

func TestStartEmbeddedErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, url := range []string{
		"tcp://" + busy.Addr().String(),
		"ws://" + busy.Addr().String(),
		"ssl://127.0.0.1:8883",
		"http://127.0.0.1:1883",
		"tcp://",
	} {
		if stop, err := StartEmbedded(context.Background(), url, nil); err == nil {
			stop()
			t.Errorf("StartEmbedded(%q) succeeded, want an error", url)
		}
	}
}

// TestStartEmbeddedContext stops the broker when its context ends, freeing
// the port.
func TestStartEmbeddedContext(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := StartEmbedded(ctx, "tcp://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	eventually(t, "the port to be free", func() bool {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		l.Close()
		return true
	})
	if err := stop(); err != nil {
		t.Errorf("stop after context end: %v", err)
	}
}

// TestRelayWebSocket relays through the embedded broker over ws://.
func TestRelayWebSocket(t *testing.T) {
	url := "ws://" + freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopBroker, err := StartEmbedded(ctx, url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stopBroker()
	obs := new(observer)
	eventually(t, "the ws listener", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	obs.connect(t, url, "observer")
	q := openTestQueue(t, t.TempDir(), 10)
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig(url), q, dev)
	stop := runRelay(t, r)
	if err := q.Put(context.Background(), udp(1)); err != nil {
		t.Fatal(err)
	}
	got := obs.wait(t, TopicIPIn, 1)
	if got[0].Payload != mustRender(t, udp(1)) {
		t.Errorf("published %s", got[0].Payload)
	}
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })
	publish(t, publisher(t, url), TopicIPOut, `{"id":"w","payload":"AQI=","encoding":"base64"}`)
	obs.wait(t, TopicIPOutResult, 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1883":       "tcp://127.0.0.1:1883",
		"tcp://alice:hunter2@h:1883": "tcp://REDACTED@h:1883",
		"ws://alice@h:80/mqtt":       "ws://REDACTED@h:80/mqtt",
		"tcp://alice:hunter2@h:%zz":  "(a URL that does not parse)",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
