package cloud

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/transport"
)

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// With a certificate and key the listener serves HTTPS, signatures are
// checked against the https public_url, and an oversized body is 413.
func TestBridgeHTTPSAndLimits(t *testing.T) {
	br := startBroker(t)
	api := newFakeAPI(t)
	obs := observe(t, br.url(), "supersim/#")
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	listen := freeAddr(t)
	public := "https://" + listen
	b, err := New(Config{
		MQTT:     transport.MQTTConfig{URL: br.url(), ClientID: "tls-bridge", TopicPrefix: "supersim"},
		Provider: "twilio", API: twilioAPI(t, api), Verifier: NewTwilioVerifier(api.pass),
		Listen: listen, TLSCertFile: certFile, TLSKeyFile: keyFile, PublicURL: public, StoreDir: dir,
	}, q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	hook := public + "/webhooks/ip"
	form := url.Values{"Sid": {"HG1"}, "SimIccid": {testICCID}, "Payload": {"AAE="}, "PayloadType": {"binary"}}
	var resp *http.Response
	if !waitFor(testWait, func() bool {
		req, _ := http.NewRequest("POST", hook, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(HeaderTwilioSignature, signTwilio(api.pass, hook, form))
		resp, err = client.Do(req)
		return err == nil
	}) {
		t.Fatalf("HTTPS webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS webhook answered %d (tls %v)", resp.StatusCode, resp.TLS != nil)
	}
	if !waitFor(testWait, func() bool { return len(obs.on("/ip/from_sim")) == 1 }) {
		t.Fatal("ip/from_sim not published")
	}
	// Plain HTTP to the TLS listener gets nothing useful.
	if r, err := http.Post("http://"+listen+"/webhooks/ip", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); err == nil {
		if r.StatusCode == 200 {
			t.Error("plain HTTP accepted by the TLS listener")
		}
		r.Body.Close()
	}
	big := url.Values{"Sid": {"HG2"}, "Payload": {strings.Repeat("A", MaxCallbackBody)}}
	req, _ := http.NewRequest("POST", hook, strings.NewReader(big.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(HeaderTwilioSignature, signTwilio(api.pass, hook, big))
	r, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body answered %d, want 413", r.StatusCode)
	}
	req, _ = http.NewRequest("PUT", hook, nil)
	if r, err := client.Do(req); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %v %v", r, err)
	} else {
		r.Body.Close()
	}
}
