package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A marker names one injected message: "bm-<tag>-<seq>", with tag made of
// lower-case letters and digits. It travels inside the payload (SMS text,
// datagram) or as the request id, so arrivals are matched to injections
// whatever the gateway, or the peer, wraps around them.
func marker(tag string, seq int) string { return fmt.Sprintf("bm-%s-%d", tag, seq) }

// findMarker returns the first marker in b, or "" when there is none.
func findMarker(b []byte) string {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("bm-"))
		if j < 0 {
			return ""
		}
		start := i + j
		k := start + 3
		for k < len(b) && (b[k] >= 'a' && b[k] <= 'z' || b[k] >= '0' && b[k] <= '9') {
			k++
		}
		tagEnd := k
		if tagEnd > start+3 && k < len(b) && b[k] == '-' {
			k++
			d := k
			for k < len(b) && b[k] >= '0' && b[k] <= '9' && k-d < 9 {
				k++
			}
			if k > d {
				return string(b[start:k])
			}
		}
		i = start + 3
	}
}

// arrival is what the observer saw of one marker on one topic.
type arrival struct {
	first  time.Time
	count  int
	status string // "status" of a result payload
	err    string // "error" of a result payload
	// ids counts copies by the message's "id": several messages may carry
	// one marker (identical SMS), and only a redelivery repeats an id.
	ids  map[string]int
	done chan struct{}
}

// observer subscribes to everything under a prefix and timestamps each
// message the moment the client hands it over.
type observer struct {
	c      paho.Client
	prefix string
	log    *slog.Logger

	mu        sync.Mutex
	seen      map[string]*arrival // suffix + " " + marker
	topics    map[string]int      // suffix -> messages
	unknown   int                 // messages with no marker on data topics
	events    []seenEvent         // P/events, in arrival order
	pending   int                 // queue.pending of the last P/status, -1 before one
	pendingAt time.Time           // when that P/status arrived
	total     int                 // messages seen on every topic
}

// seenEvent is one P/events message.
type seenEvent struct {
	at  time.Time
	typ string
}

// result is the part of a */result payload the observer reads.
type result struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// newObserver connects to url with a persistent session (so QoS 1 messages
// sent while it is away, e.g. during a broker restart, still reach it) and
// subscribes to prefix/#.
func newObserver(url, clientID, prefix string, log *slog.Logger) (*observer, error) {
	o := &observer{prefix: prefix, log: log, seen: map[string]*arrival{}, topics: map[string]int{}, pending: -1}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetMaxReconnectInterval(time.Second).SetOrderMatters(false)
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { o.handle(m.Topic(), m.Payload()) })
	opts.SetOnConnectHandler(func(c paho.Client) {
		// The broker keeps the subscription in the session; subscribing
		// again covers a broker that lost it (no persistence).
		t := c.Subscribe(prefix+"/#", 1, nil)
		if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			log.Warn("observer: subscribe", "err", t.Error())
		}
	})
	o.c = paho.NewClient(opts)
	t := o.c.Connect()
	if !t.WaitTimeout(20*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("observer: connect to %s: %v", url, t.Error())
	}
	// The on-connect subscription runs in its own goroutine; subscribe once
	// more here so messages published right after newObserver returns are
	// seen.
	if st := o.c.Subscribe(prefix+"/#", 1, nil); !st.WaitTimeout(20*time.Second) || st.Error() != nil {
		return nil, fmt.Errorf("observer: subscribe %s/#: %v", prefix, st.Error())
	}
	return o, nil
}

func (o *observer) handle(topic string, payload []byte) {
	now := time.Now()
	suffix := strings.TrimPrefix(topic, o.prefix+"/")
	mk := findMarker(payload)
	var r result
	if strings.HasSuffix(suffix, "/result") || suffix == "sms/in" || suffix == "ip/in" {
		if err := json.Unmarshal(payload, &r); err != nil {
			o.log.Warn("observer: message is not JSON", "topic", topic, "err", err)
		}
	}
	var meta struct {
		Type  string `json:"type"`
		Queue *struct {
			Pending int `json:"pending"`
		} `json:"queue"`
	}
	if suffix == "events" || suffix == "status" {
		if err := json.Unmarshal(payload, &meta); err != nil {
			o.log.Warn("observer: message is not JSON", "topic", topic, "err", err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.topics[suffix]++
	o.total++
	switch {
	case suffix == "events":
		o.events = append(o.events, seenEvent{at: now, typ: meta.Type})
		return
	case suffix == "status" && meta.Queue != nil:
		o.pending, o.pendingAt = meta.Queue.Pending, now
		return
	}
	if mk == "" {
		if suffix == "sms/in" || suffix == "ip/in" {
			o.unknown++
		}
		return
	}
	a := o.entryLocked(suffix, mk)
	a.count++
	if r.ID != "" {
		if a.ids == nil {
			a.ids = map[string]int{}
		}
		a.ids[r.ID]++
	}
	if a.count == 1 {
		a.first = now
		a.status, a.err = r.Status, r.Error
		close(a.done)
	}
}

func (o *observer) entryLocked(suffix, mk string) *arrival {
	k := suffix + " " + mk
	a := o.seen[k]
	if a == nil {
		a = &arrival{done: make(chan struct{})}
		o.seen[k] = a
	}
	return a
}

// wait returns when mk first arrived on suffix, waiting up to timeout.
func (o *observer) wait(suffix, mk string, timeout time.Duration) (arrival, error) {
	o.mu.Lock()
	a := o.entryLocked(suffix, mk)
	o.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-a.done:
		o.mu.Lock()
		defer o.mu.Unlock()
		return arrival{first: a.first, count: a.count, status: a.status, err: a.err}, nil
	case <-t.C:
		return arrival{}, fmt.Errorf("%s did not arrive on %s/%s within %s", mk, o.prefix, suffix, timeout)
	}
}

// got returns what arrived for mk on suffix so far (count 0: nothing).
func (o *observer) got(suffix, mk string) arrival {
	o.mu.Lock()
	defer o.mu.Unlock()
	a := o.seen[suffix+" "+mk]
	if a == nil {
		return arrival{}
	}
	return arrival{first: a.first, count: a.count, status: a.status, err: a.err, ids: maps.Clone(a.ids)}
}

// eventsSince counts the P/events of type typ that arrived at or after t.
func (o *observer) eventsSince(typ string, t time.Time) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, e := range o.events {
		if e.typ == typ && !e.at.Before(t) {
			n++
		}
	}
	return n
}

// eventCounts returns how many P/events of each type arrived.
func (o *observer) eventCounts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := map[string]int{}
	for _, e := range o.events {
		m[e.typ]++
	}
	return m
}

// lastPending is queue.pending of the last P/status seen (-1 before one)
// and when it arrived.
func (o *observer) lastPending() (int, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending, o.pendingAt
}

// publish sends a request with QoS 1 and waits for the broker's PUBACK.
func (o *observer) publish(suffix string, payload []byte) error {
	t := o.c.Publish(o.prefix+"/"+suffix, 1, false, payload)
	if !t.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publish to %s/%s: no PUBACK within 10s", o.prefix, suffix)
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("publish to %s/%s: %w", o.prefix, suffix, err)
	}
	return nil
}

func (o *observer) close() { o.c.Disconnect(250) }

// waitQuiet returns once no message has arrived for quiet, or after limit.
func (o *observer) waitQuiet(quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	o.mu.Lock()
	last, lastAt := o.total, time.Now()
	o.mu.Unlock()
	for time.Now().Before(deadline) && time.Since(lastAt) < quiet {
		time.Sleep(100 * time.Millisecond)
		o.mu.Lock()
		if o.total != last {
			last, lastAt = o.total, time.Now()
		}
		o.mu.Unlock()
	}
}
