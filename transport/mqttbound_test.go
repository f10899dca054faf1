package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// publishPacket encodes a PUBLISH with paho's own encoder.
func publishPacket(t testing.TB, topic string, qos byte, mid uint16, payload []byte) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.TopicName, p.Qos, p.MessageID, p.Payload = topic, qos, mid, payload
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAllBounded reads what paho would get from a stream.
func readAllBounded(stream []byte) ([]byte, error) {
	c := &boundedConn{r: bufio.NewReader(bytes.NewReader(stream)), limit: MaxPacketBytes, keep: MaxRequestBytes + 1}
	return io.ReadAll(c)
}

func TestBoundedConnPassesSmallPackets(t *testing.T) {
	var stream []byte
	stream = append(stream, publishPacket(t, "p/sms/out", 1, 7, []byte(`{"payload":"x"}`))...)
	stream = append(stream, 0x40, 0x02, 0x00, 0x07) // PUBACK
	stream = append(stream, publishPacket(t, "p/ip/out", 0, 0, bytes.Repeat([]byte("a"), MaxPacketBytes-20))...)
	stream = append(stream, 0xd0, 0x00) // PINGRESP
	got, err := readAllBounded(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream) {
		t.Errorf("packets under the bound changed: got %d bytes, want %d", len(got), len(stream))
	}
}

func TestBoundedConnCutsLargePublish(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 1<<20)
	stream := publishPacket(t, "p/sms/out", 1, 513, big)
	stream = append(stream, 0xd0, 0x00)
	got, err := readAllBounded(stream)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := packets.ReadPacket(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("paho cannot read the cut packet: %v", err)
	}
	p, ok := cp.(*packets.PublishPacket)
	if !ok {
		t.Fatalf("got %T, want a PUBLISH", cp)
	}
	if p.TopicName != "p/sms/out" || p.Qos != 1 || p.MessageID != 513 || len(p.Payload) != MaxRequestBytes+1 {
		t.Errorf("cut PUBLISH: topic %q qos %d id %d payload %d bytes; want p/sms/out, 1, 513, %d", p.TopicName, p.Qos, p.MessageID, len(p.Payload), MaxRequestBytes+1)
	}
	rest, err := packets.ReadPacket(bytes.NewReader(got[len(got)-2:]))
	if err != nil || rest.String() == "" {
		t.Errorf("the packet after the cut one: %v", err)
	}
	if _, err := parseRequest("sms", p.Payload, fixedID); err == nil || !strings.Contains(err.Error(), "more than 8192 bytes") {
		t.Errorf("cut request parses with %v, want it refused as too long", err)
	}
}

func TestBoundedConnRefusesOtherLargePackets(t *testing.T) {
	stream := []byte{0x90} // SUBACK
	stream = appendRemainingLength(stream, MaxPacketBytes+1)
	stream = append(stream, make([]byte, MaxPacketBytes+1)...)
	if _, err := readAllBounded(stream); !errors.Is(err, errPacketTooLarge) {
		t.Errorf("large SUBACK: %v, want errPacketTooLarge", err)
	}
}

// TestBoundedConnMemory streams a 64 MiB request through the bound and
// checks how much it allocated: a few buffers, not the packet.
func TestBoundedConnMemory(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	const size = 64 << 20
	go func() {
		defer server.Close()
		var hdr []byte
		hdr = append(hdr, 0x32) // PUBLISH, QoS 1
		topic := "p/sms/out"
		hdr = appendRemainingLength(hdr, 2+len(topic)+2+size)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(topic)))
		hdr = append(hdr, topic...)
		hdr = binary.BigEndian.AppendUint16(hdr, 9)
		if _, err := server.Write(hdr); err != nil {
			return
		}
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := server.Write(chunk); err != nil {
				return
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := newBoundedConn(client)
	cp, err := packets.ReadPacket(c)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if p := cp.(*packets.PublishPacket); len(p.Payload) != MaxRequestBytes+1 {
		t.Errorf("payload %d bytes, want %d", len(p.Payload), MaxRequestBytes+1)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a %d MiB packet allocated %d KiB, want a few buffers", size>>20, alloc>>10)
	}
}

// TestRelayOversizeRequestBounded publishes a 48 MiB request through
// mosquitto from another process: the relay refuses it as too long,
// and never holds it whole.
func TestRelayOversizeRequestBounded(t *testing.T) {
	pubBin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")
	}
	mq := startMosquitto(t)
	results := make(chan string, 10)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(mq.url()).SetClientID("results"))
	if tok := sub.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { sub.Disconnect(100) })
	tok := sub.Subscribe(testPrefix+"/"+TopicSMSOutResult, 1, func(_ paho.Client, m paho.Message) { results <- string(m.Payload()) })
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	dev := newFakeDevice()
	r := newTestRelay(t, testRelayConfig(mq.url()), openTestQueue(t, t.TempDir(), 10), dev)
	runRelay(t, r)
	eventually(t, "relay to connect", func() bool { return r.Stats().Connected })

	file := t.TempDir() + "/big.json"
	body := `{"id":"big","payload":"` + strings.Repeat("x", 48<<20) + `"}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	body = ""
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, port, err := net.SplitHostPort(mq.addr)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pubBin, "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", testPrefix+"/"+TopicSMSOut, "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	var res string
	select {
	case res = <-results:
	case <-time.After(waitLimit):
		t.Fatal("no result for the oversize request")
	}
	runtime.ReadMemStats(&after)
	if !strings.Contains(res, `"status":"failed"`) || !strings.Contains(res, "more than 8192 bytes") {
		t.Errorf("result %s, want failed: more than 8192 bytes", res)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("relaying a 48 MiB request allocated %d MiB in the gateway", alloc>>20)
	}
	if sms, _ := dev.sent(); len(sms) != 0 {
		t.Errorf("device sent %v", sms)
	}
}

// FuzzBoundedConn feeds arbitrary broker bytes through the bound: it never
// hands paho a packet over the bound, and a stream of packets under it
// passes unchanged.
func FuzzBoundedConn(f *testing.F) {
	f.Add(publishPacket(f, "p/sms/out", 1, 7, []byte(`{"payload":"x"}`)))
	f.Add(publishPacket(f, "p/sms/out", 0, 0, bytes.Repeat([]byte("y"), MaxPacketBytes+100)))
	f.Add([]byte{0x40, 0x02, 0x00, 0x07, 0xd0, 0x00})
	f.Add([]byte{0x32, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01})
	f.Add([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := &boundedConn{r: bufio.NewReader(bytes.NewReader(stream)), limit: 64, keep: 16}
		got, err := io.ReadAll(c)
		r := bytes.NewReader(got)
		for r.Len() > 0 {
			if _, err := r.ReadByte(); err != nil {
				t.Fatal(err)
			}
			n, _, lerr := readRemainingLength(r)
			if lerr != nil {
				t.Fatalf("output has a malformed length: %v", lerr)
			}
			if n > 64 || n > r.Len() {
				t.Fatalf("output packet of %d bytes (bound 64, %d left)", n, r.Len())
			}
			if _, err := r.Seek(int64(n), io.SeekCurrent); err != nil {
				t.Fatal(err)
			}
		}
		if err == nil && !bytes.Equal(got, stream) {
			// Only a cut PUBLISH may differ; then the output is shorter.
			if len(got) >= len(stream) {
				t.Fatalf("output of %d bytes differs from a %d-byte input", len(got), len(stream))
			}
		}
	})
}
