package superapi

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/supersim/v1"
)

// benchEmu starts an os-mode emulator and its modem for a benchmark.
func benchEmu(b *testing.B) *Emulator {
	b.Helper()
	e, _ := startEmuTB(b, Options{DeviceMode: ModeOS})
	return e
}

// BenchmarkIPCommandToDevice: an IP Command created with twilio-go until
// its datagram is read by an os-mode device (HTTP, the pump, UDP).
func BenchmarkIPCommandToDevice(b *testing.B) {
	e := benchEmu(b)
	api := twilioAPI(e)
	dev, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := dev.Close(); err != nil {
			b.Error(err)
		}
	}()
	port := dev.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 2048)
	p := (&openapi.CreateIpCommandParams{}).SetSim(e.SimSid()).SetPayload("bench payload").SetDevicePort(port)
	b.ResetTimer()
	for range b.N {
		if _, err := api.CreateIpCommand(p); err != nil {
			b.Fatal(err)
		}
		if err := dev.SetReadDeadline(time.Now().Add(testWait)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := dev.ReadFromUDP(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromSimWebhook: a datagram from an os-mode device until the
// signed webhook reaches the Fleet's ip_commands_url.
func BenchmarkFromSimWebhook(b *testing.B) {
	e := benchEmu(b)
	got := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		got <- struct{}{}
	}))
	defer srv.Close()
	api := twilioAPI(e)
	if _, err := api.UpdateFleet(e.FleetSid(), (&openapi.UpdateFleetParams{}).SetIpCommandsUrl(srv.URL)); err != nil {
		b.Fatal(err)
	}
	dev, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := dev.Close(); err != nil {
			b.Error(err)
		}
	}()
	cloud, err := net.ResolveUDPAddr("udp", e.CloudUDP())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := dev.WriteToUDP([]byte("reading 21.5"), cloud); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(testWait):
			b.Fatal("no webhook")
		}
	}
}
