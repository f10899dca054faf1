package transport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"github.com/google/go-cmp/cmp"
)

// FuzzUDPDatagram follows a datagram's bytes and source, as read from the
// network, through the receiver's checks, the queue's record and the
// P/ip/in rendering: a datagram is either refused for a stated reason or
// reaches MQTT with exactly its bytes.
func FuzzUDPDatagram(f *testing.F) {
	f.Add([]byte("reboot"), []byte{100, 64, 0, 1}, uint16(6969), "")
	f.Add(allBytes(), []byte{127, 0, 0, 1}, uint16(1), "127.0.0.0/8")
	f.Add(bytes.Repeat([]byte{0xff}, gw.MaxUDPPayload), []byte{10, 1, 2, 3}, uint16(65535), "10.0.0.0/8")
	f.Add(bytes.Repeat([]byte("a"), gw.MaxUDPPayload+1), []byte{10, 1, 2, 3}, uint16(5), "")
	f.Add([]byte("caf\xe9\x00\r\n"), netip.MustParseAddr("::ffff:100.64.0.1").AsSlice(), uint16(6969), "100.64.0.0/10")
	f.Add([]byte("\xf0\x9f\x9a\x80 go"), netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(443), "192.168.0.0/16")
	f.Add([]byte{}, []byte{0, 0, 0, 0}, uint16(0), "::/0")
	f.Fuzz(func(t *testing.T, p []byte, addr []byte, port uint16, allowed string) {
		var a netip.Addr
		switch len(addr) {
		case 4:
			a = netip.AddrFrom4([4]byte(addr))
		case 16:
			a = netip.AddrFrom16([16]byte(addr))
		default:
			return
		}
		u := &UDP{port: 6969, now: time.Now}
		if pre, err := netip.ParsePrefix(allowed); err == nil {
			u.allowed = []netip.Prefix{pre.Masked()}
		}
		from := netip.AddrPortFrom(a, port)
		at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
		orig := bytes.Clone(p)
		m, rej := u.accept(from, p, at)
		src := netip.AddrPortFrom(a.Unmap(), port)
		switch {
		case len(u.allowed) > 0 && !u.allowed[0].Contains(src.Addr()):
			if rej == nil || rej.typ != gw.EventSourceRejected {
				t.Fatalf("source %s outside %s: rejection %+v, want %s", src, u.allowed[0], rej, gw.EventSourceRejected)
			}
			return
		case len(p) > gw.MaxUDPPayload:
			if rej == nil || rej.typ != gw.EventIPOversize || rej.fields["size"] != len(p) {
				t.Fatalf("%d bytes: rejection %+v, want %s with the size", len(p), rej, gw.EventIPOversize)
			}
			return
		case rej != nil:
			t.Fatalf("datagram refused: %+v", rej)
		}
		if !bytes.Equal(m.Payload, orig) || m.Binary == gw.IsText(orig) {
			t.Fatalf("message %+v does not hold the datagram %q exactly", m, orig)
		}
		if len(p) > 0 {
			p[0]++ // the reader's buffer is reused for the next datagram
			if !bytes.Equal(m.Payload, orig) {
				t.Fatal("message shares the read buffer")
			}
		}
		if back, err := netip.ParseAddrPort(m.From); err != nil || back != src {
			t.Fatalf("From %q does not read back as %s: %v", m.From, src, err)
		}
		if m.ID != gw.MessageID(m) {
			t.Fatalf("ID %q is not MessageID", m.ID)
		}

		rec, err := encodeInbound(m)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		stored, err := decodeInbound(rec)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if diff := cmp.Diff(m, stored); diff != "" {
			t.Fatalf("stored record (-want +got):\n%s", diff)
		}

		out, err := renderInbound(stored)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		var j struct {
			From     string `json:"from"`
			Port     int    `json:"port"`
			Payload  string `json:"payload"`
			Encoding string `json:"encoding"`
		}
		if err := json.Unmarshal(out, &j); err != nil {
			t.Fatalf("published JSON %s: %v", out, err)
		}
		got := []byte(j.Payload)
		if j.Encoding == EncodingBase64 {
			if got, err = base64.StdEncoding.DecodeString(j.Payload); err != nil {
				t.Fatalf("published base64 %q: %v", j.Payload, err)
			}
		}
		if !bytes.Equal(got, orig) || j.From != m.From || j.Port != 6969 {
			t.Fatalf("published %s for %q from %s", out, orig, m.From)
		}
		if wantText := gw.IsText(orig); (j.Encoding == EncodingText) != wantText {
			t.Fatalf("encoding %q for a datagram whose IsText is %v", j.Encoding, wantText)
		}
	})
}
