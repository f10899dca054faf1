package transport

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The relay's MQTT and retry helpers, exported for the cloud bridge (package
// cloud), which speaks to another broker with the same rules.

// ClientOptions returns the paho options the relay connects with: the
// broker URL, credentials and TLS of c, a persistent session, manual
// acknowledgement of received messages (a request is acknowledged only once
// queued), handlers left unset and the will on TopicPrefix/status. Files
// named in c are read here, so a mistake is reported at start.
func ClientOptions(c MQTTConfig) (*paho.ClientOptions, error) {
	if err := c.fill(); err != nil {
		return nil, err
	}
	return clientOptions(c)
}

// NewResumeStore returns paho's memory store made safe for ordered
// publishing, as the relay uses it: on reconnect it lists the messages in
// flight in the order they were stored (paho's own store lists them in map
// order), and it calls resumed when paho reads it to resume a connection,
// which is the moment from which publishing is safe again.
func NewResumeStore(resumed func()) paho.Store {
	return &resumeStore{MemoryStore: paho.NewMemoryStore(), resumed: resumed}
}

// WaitToken waits for a paho token, for ctx, and for limit when positive.
func WaitToken(ctx context.Context, t paho.Token, limit time.Duration) error {
	return waitToken(ctx, t, limit)
}
