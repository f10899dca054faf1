package gw

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// MessageID derives the stable id of an inbound message from what identifies
// it. An SMS is identified by sender, service centre timestamp and content, so
// the same SMS read again after a restart, or redelivered by the network a day
// later, gets the same id; identical SMS that are separate messages differ
// by Occurrence. A datagram has no sender timestamp, so its arrival
// time (nanoseconds) stands in; it is fixed when the datagram is first stored.
func MessageID(m Inbound) string {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(m.Channel))
	field([]byte(m.From))
	binary.BigEndian.PutUint64(n[:], uint64(m.Port))
	h.Write(n[:])
	var t time.Time
	if m.Channel == ChannelSMS {
		t = m.SentAt
	} else {
		t = m.ReceivedAt
	}
	binary.BigEndian.PutUint64(n[:], uint64(t.UnixNano()))
	h.Write(n[:])
	field(m.Payload)
	// Both are left out when zero, so the first of identical SMS keeps the
	// id that sender, timestamp and content alone give.
	if m.Occurrence > 0 {
		binary.BigEndian.PutUint64(n[:], uint64(m.Occurrence))
		h.Write([]byte("occurrence"))
		h.Write(n[:])
	}
	if m.Undecodable != "" {
		h.Write([]byte("undecodable"))
	}
	sum := h.Sum(nil)
	return m.Channel + "-" + hex.EncodeToString(sum[:12])
}
