package transport_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/transport"
)

// printingDevice stands in for the modem session: a transport.Device that
// prints what it is asked to send.
type printingDevice struct{}

func (printingDevice) SendSMS(_ context.Context, to string, payload []byte, _ bool) (int, error) {
	fmt.Printf("device: SMS to %s: %s\n", to, payload)
	return 7, nil
}

func (printingDevice) SendUDP(_ context.Context, payload []byte) error {
	fmt.Printf("device: datagram %q\n", payload)
	return nil
}

func (printingDevice) Status() gw.Status { return gw.Status{Ready: true} }

// The wiring of cmd/simgate, cut down: the durable queue, an embedded
// broker, and the relay between them and a device. An SMS the session
// committed to the queue reaches P/sms/in, and a request on P/sms/out
// reaches the device and comes back as a result.
func Example() {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dir, err := os.MkdirTemp("", "simgate-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	q, err := transport.OpenQueue(transport.StoreConfig{Dir: dir, MaxMessages: 100}, log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close() // after the relay has stopped

	url, err := freeURL()
	if err != nil {
		fmt.Println(err)
		return
	}
	stopBroker, err := transport.StartEmbedded(ctx, url, log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopBroker() // after the relay: it still publishes its offline status

	const prefix = "supersim/89883070000012345672"
	relay, err := transport.NewRelay(transport.RelayConfig{
		MQTT:    transport.MQTTConfig{URL: url, ClientID: "simgate-example", TopicPrefix: prefix},
		Version: "example",
	}, q, printingDevice{}, log)
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(runCtx) }()
	// Run returns once in-flight work is finished and the offline status
	// published.
	stopRelay := sync.OnceValue(func() error { cancelRun(); return <-relayDone })
	defer stopRelay()

	// A program of the user's: it waits for the gateway to say it is
	// online, which it does once its requests are subscribed.
	got := make(chan paho.Message, 16)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("example-app").
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m }))
	if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fmt.Println("connect:", t.Error())
		return
	}
	defer sub.Disconnect(100)
	topics := map[string]byte{prefix + "/status": 1, prefix + "/sms/in": 1, prefix + "/sms/out/result": 1}
	if t := sub.SubscribeMultiple(topics, nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fmt.Println("subscribe:", t.Error())
		return
	}
	next := func(topic string) string {
		for {
			select {
			case m := <-got:
				if m.Topic() == topic {
					return string(m.Payload())
				}
			case <-time.After(10 * time.Second):
				return "nothing on " + topic
			}
		}
	}
	for next(prefix+"/status") == `{"online":false}` {
	}

	// The modem session commits each SMS before it deletes it from the SIM.
	at := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	if err := q.Put(ctx, gw.Inbound{ID: "sms-1", Channel: gw.ChannelSMS, From: "000", Payload: []byte("reboot"), Parts: 1, SentAt: at, ReceivedAt: at}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sms/in:", next(prefix+"/sms/in"))

	if t := sub.Publish(prefix+"/sms/out", 1, false, `{"id":"r1","payload":"status ok"}`); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		fmt.Println("publish:", t.Error())
		return
	}
	fmt.Println("sms/out/result:", next(prefix+"/sms/out/result"))

	if err := stopRelay(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// sms/in: {"id":"sms-1","channel":"sms","from":"000","payload":"reboot","encoding":"text","parts":1,"sent_at":"2026-12-01T18:00:00Z","received_at":"2026-12-01T18:00:00Z"}
	// device: SMS to 000: status ok
	// sms/out/result: {"id":"r1","status":"sent","reference":7}
}

// freeURL is a tcp:// URL on a loopback port nobody listens on now.
func freeURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return "tcp://" + addr, nil
}
