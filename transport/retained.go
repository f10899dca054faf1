package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ErrNotConnected is returned by PublishRetained while the relay has no
// broker connection.
var ErrNotConnected = errors.New("not connected to the broker")

// Connection reports whether the relay's broker connection is open, and a
// count of connections lost so far: a caller that publishes something once
// per connection publishes again when the count moves.
func (r *Relay) Connection() (up bool, lost uint64) {
	up, _ = r.conn.state()
	return up, r.conn.currentEpoch()
}

// PublishRetained publishes one retained QoS 1 message on the relay's
// connection, outside P (Home Assistant's discovery topics), and waits for
// the broker's PUBACK. An empty payload clears the topic's retained
// message.
func (r *Relay) PublishRetained(ctx context.Context, topic string, payload []byte) error {
	if up, _ := r.conn.state(); !up {
		return fmt.Errorf("publish %s: %w", topic, ErrNotConnected)
	}
	t, err := r.publish(ctx, topic, true, payload)
	if err == nil {
		err = waitToken(ctx, t, r.cfg.MQTT.ConnectTimeout)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// ReadRetained connects to the broker of cfg with a client of its own (a
// clean session, no will, its own client id), subscribes to topic (which may
// hold wildcards) and returns the first retained message, with the topic it
// was on. It fails when the broker cannot be reached or nothing retained
// arrives before ctx ends. It is how `simgate status` reads P/status when
// the daemon's socket cannot be reached.
func ReadRetained(ctx context.Context, cfg MQTTConfig, topic string) (payload []byte, on string, err error) {
	if cfg.ClientID == "" {
		cfg.ClientID = "simgate-status"
	}
	cfg.ClientID += "-" + strconv.Itoa(os.Getpid())
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "unused"
	}
	if err := cfg.fill(); err != nil {
		return nil, "", fmt.Errorf("read retained %s: %w", topic, err)
	}
	opts, err := clientOptions(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("read retained %s: %w", topic, err)
	}
	// A reader must never leave a will on P/status behind, nor a session.
	// UnsetWill leaves the will's retain flag and QoS set, which brokers
	// refuse in a CONNECT without a will, so they are cleared too.
	opts.UnsetWill()
	opts.WillRetained, opts.WillQos, opts.WillTopic, opts.WillPayload = false, 0, "", nil
	opts.SetCleanSession(true)
	opts.SetAutoReconnect(false)
	opts.SetAutoAckDisabled(false)
	opts.SetOrderMatters(false)
	type msg struct {
		payload []byte
		topic   string
	}
	got := make(chan msg, 1)
	c := paho.NewClient(opts)
	t := c.Connect()
	if err := waitToken(ctx, t, cfg.ConnectTimeout); err != nil {
		return nil, "", fmt.Errorf("read retained %s: connect %s: %w", topic, redactURL(cfg.URL), err)
	}
	defer c.Disconnect(100)
	st := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		if !m.Retained() {
			return
		}
		select {
		case got <- msg{append([]byte(nil), m.Payload()...), m.Topic()}:
		default:
		}
	})
	if err := waitToken(ctx, st, cfg.ConnectTimeout); err != nil {
		return nil, "", fmt.Errorf("read retained %s: subscribe: %w", topic, err)
	}
	select {
	case m := <-got:
		return m.payload, m.topic, nil
	case <-ctx.Done():
		return nil, "", fmt.Errorf("read retained %s: nothing retained on %s: %w", topic, redactURL(cfg.URL), ctx.Err())
	}
}
