package superapi

import (
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/simgate/simgate/modem/modemsim"
)

// hookQueue takes what the modem's host sent, from the modem's hooks
// (which run under the modem's lock and must not block), for the pump.
type hookQueue struct {
	mu   sync.Mutex
	sent []any // modemsim.SentSMS or modemsim.SentUDP, in order
	kick chan struct{}
}

func newHookQueue() *hookQueue { return &hookQueue{kick: make(chan struct{}, 1)} }

func (q *hookQueue) push(v any) {
	q.mu.Lock()
	q.sent = append(q.sent, v)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *hookQueue) sms(m modemsim.SentSMS) {
	m.Data = append([]byte(nil), m.Data...)
	q.push(m)
}

func (q *hookQueue) udp(u modemsim.SentUDP) { q.push(u) }

func (q *hookQueue) take() []any {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.sent
	q.sent = nil
	return out
}

// pump carries commands between the API and the modem: what the device
// sent becomes from_sim commands, and queued to_sim commands are tried
// whenever something changed and every RetryInterval.
func (e *Emulator) pump() {
	tick := time.NewTicker(e.opts.RetryInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-e.kick:
		case <-e.hooks.kick:
		case <-tick.C:
		}
		for _, v := range e.hooks.take() {
			switch m := v.(type) {
			case modemsim.SentSMS:
				e.fromDeviceSMS(m)
			case modemsim.SentUDP:
				e.fromDeviceUDP(m)
			}
		}
		e.deliverQueued()
	}
}

// statusChange is a callback to make once the lock is released.
type statusChange struct {
	kind, url, method, sid string
	params                 map[string]string
}

// deliverQueued tries every queued to_sim command, oldest first.
func (e *Emulator) deliverQueued() {
	e.mu.Lock()
	queued := false
	for _, c := range e.sms {
		queued = queued || c.Status == StatusQueued
	}
	for _, c := range e.ip {
		queued = queued || c.Status == StatusQueued
	}
	e.mu.Unlock()
	if !queued {
		return
	}
	st := e.modem.State()
	reg := st.Registration == 1 || st.Registration == 5
	var changes []statusChange
	e.mu.Lock()
	for _, c := range e.sms {
		if c.Status != StatusQueued {
			continue
		}
		if time.Now().After(c.expires) {
			changes = append(changes, e.setSmsStatus(c, StatusFailed)...)
			continue
		}
		s := e.simBySid(c.SimSid)
		fl := e.fleetOf(s)
		if !canCommand(s) || s.pendingStatus == SimInactive || fl == nil || !fl.SmsCommandsEnabled || !st.SMSReady || !reg {
			continue
		}
		_, err := e.modem.InjectSMS(modemsim.SMS{From: SMSNumber, Text: c.Payload})
		switch {
		case err == nil:
			changes = append(changes, e.setSmsStatus(c, StatusSent)...)
			changes = append(changes, e.setSmsStatus(c, StatusDelivered)...)
		case errors.Is(err, modemsim.ErrStoreFull):
			// The SIM is full: the network holds the SMS and delivers it
			// when a slot is freed; the SIM has not acknowledged it yet.
			changes = append(changes, e.setSmsStatus(c, StatusSent)...)
		default:
			e.log.Warn("sms command not deliverable", "sid", c.Sid, "err", err)
			changes = append(changes, e.setSmsStatus(c, StatusFailed)...)
		}
	}
	for _, c := range e.ip {
		if c.Status != StatusQueued {
			continue
		}
		if time.Now().After(c.expires) {
			changes = append(changes, e.setIPStatus(c, StatusFailed)...)
			continue
		}
		s := e.simBySid(c.SimSid)
		fl := e.fleetOf(s)
		if !canCommand(s) || s.pendingStatus == SimInactive || fl == nil || !fl.DataEnabled || !reg {
			continue
		}
		if e.opts.DeviceMode == ModeOS {
			dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c.DevicePort}
			if _, err := e.udp.WriteToUDP(c.data, dst); err != nil {
				e.log.Debug("ip command not sent yet", "sid", c.Sid, "err", err)
				continue
			}
			c.DeviceIP = ptr("127.0.0.1")
		} else {
			if !st.DataUp {
				continue
			}
			err := e.modem.InjectUDP(CommandsAddress, c.DevicePort, c.data)
			if err != nil && !errors.Is(err, modemsim.ErrNoSocket) {
				// The data session went down since State: try again.
				e.log.Debug("ip command not sent yet", "sid", c.Sid, "err", err)
				continue
			}
			if err != nil {
				// Sent over the air to a port nobody listens on: lost,
				// as on the real network.
				e.log.Info("ip command sent to a closed port", "sid", c.Sid, "port", c.DevicePort)
			}
			c.DeviceIP = ptr(st.IP)
		}
		e.recordUsage(s, 0, len(c.data))
		changes = append(changes, e.setIPStatus(c, StatusSent)...)
	}
	e.mu.Unlock()
	for _, ch := range changes {
		e.webhooks.send(ch.kind, ch.url, ch.method, ch.sid, ch.params)
	}
}

// setSmsStatus changes a command's status and returns its callback, if it
// has one. Caller holds mu.
func (e *Emulator) setSmsStatus(c *smsRec, status string) []statusChange {
	c.Status = status
	c.DateUpdated = now()
	e.log.Info("sms command", "sid", c.Sid, "status", status)
	if c.callbackURL == nil {
		return nil
	}
	return []statusChange{{"sms_status", *c.callbackURL, c.callbackMethod, c.Sid, smsParams(c.SmsCommand)}}
}

func (e *Emulator) setIPStatus(c *ipRec, status string) []statusChange {
	c.Status = status
	c.DateUpdated = now()
	e.log.Info("ip command", "sid", c.Sid, "status", status)
	if c.callbackURL == nil {
		return nil
	}
	return []statusChange{{"ip_status", *c.callbackURL, c.callbackMethod, c.Sid, ipParams(c.IpCommand)}}
}

// fromDeviceSMS turns an SMS the device sent to 000 into a from_sim SMS
// Command; the segments of a concatenated SMS are joined first.
func (e *Emulator) fromDeviceSMS(m modemsim.SentSMS) {
	if normalizeNumber(m.To) != SMSNumber {
		e.log.Debug("sms to another number than 000: the network drops it", "to", m.To)
		return
	}
	var payload string
	if m.Total > 1 {
		k := concatKey{m.ConcatRef, m.Total}
		e.mu.Lock()
		parts := append(e.concat[k], m)
		if len(parts) < m.Total {
			e.concat[k] = parts
			e.mu.Unlock()
			return
		}
		delete(e.concat, k)
		e.mu.Unlock()
		sort.SliceStable(parts, func(i, j int) bool { return parts[i].Seq < parts[j].Seq })
		var data []byte
		text := ""
		for _, p := range parts {
			text += p.Text
			data = append(data, p.Data...)
		}
		m.Text, m.Data = text, data
	}
	if m.Encoding == "8bit" {
		payload = base64.StdEncoding.EncodeToString(m.Data)
	} else {
		payload = m.Text
	}
	e.mu.Lock()
	s := e.sims[0]
	fl := e.fleetOf(s)
	if !canCommand(s) || fl == nil || !fl.SmsCommandsEnabled {
		e.mu.Unlock()
		e.log.Info("sms from a Sim without SMS Commands: dropped", "sim", s.Sid)
		return
	}
	t := now()
	c := &smsRec{SmsCommand: SmsCommand{
		Sid: newSid("HC"), AccountSid: e.opts.AccountSID, SimSid: s.Sid, Payload: payload,
		Status: StatusReceived, Direction: DirectionFromSim, DateCreated: t, DateUpdated: t,
	}}
	c.URL = e.listURL("SmsCommands") + "/" + c.Sid
	e.sms = append(e.sms, c)
	hook, method := fl.SmsCommandsURL, fl.SmsCommandsMethod
	e.mu.Unlock()
	e.log.Info("sms command from sim", "sid", c.Sid)
	if hook != nil {
		e.webhooks.send("sms_from_sim", *hook, method, c.Sid, smsParams(c.SmsCommand))
	}
}

// fromDeviceUDP counts a datagram the device sent through its module and,
// when it went to 100.64.0.1:6969, turns it into a from_sim IP Command.
func (e *Emulator) fromDeviceUDP(u modemsim.SentUDP) {
	ip := ""
	if u.To == CommandsAddress {
		ip = e.modem.State().IP
	}
	e.fromDevice(u.To == CommandsAddress, ip, u.Port, u.Data)
}

func (e *Emulator) fromDevice(command bool, deviceIP string, devicePort int, data []byte) {
	e.mu.Lock()
	s := e.sims[0]
	fl := e.fleetOf(s)
	if !canCommand(s) || fl == nil || !fl.DataEnabled {
		e.mu.Unlock()
		e.log.Info("datagram from a Sim without data: dropped", "sim", s.Sid)
		return
	}
	e.recordUsage(s, len(data), 0)
	if !command {
		e.mu.Unlock()
		return
	}
	t := now()
	c := &ipRec{IpCommand: IpCommand{
		Sid: newSid("HG"), AccountSid: e.opts.AccountSID, SimSid: s.Sid, SimIccid: s.Iccid,
		Status: StatusReceived, Direction: DirectionFromSim, DeviceIP: ptr(deviceIP), DevicePort: devicePort,
		PayloadType: "binary", Payload: base64.StdEncoding.EncodeToString(data), DateCreated: t, DateUpdated: t,
	}, data: data}
	c.URL = e.listURL("IpCommands") + "/" + c.Sid
	e.ip = append(e.ip, c)
	hook, method := fl.IPCommandsURL, fl.IPCommandsMethod
	e.mu.Unlock()
	e.log.Info("ip command from sim", "sid", c.Sid, "bytes", len(data))
	if hook != nil {
		e.webhooks.send("ip_from_sim", *hook, method, c.Sid, ipParams(c.IpCommand))
	}
}

// readUDP receives what an os-mode device sends to the emulator's socket
// (its ip.cloud): each datagram is a from_sim IP Command.
func (e *Emulator) readUDP() {
	buf := make([]byte, 65536)
	for {
		n, src, err := e.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("cloud UDP read", "err", err)
			select {
			case <-e.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if e.opts.DeviceMode != ModeOS {
			e.log.Debug("datagram on the cloud socket in modem mode: dropped", "from", src)
			continue
		}
		addr := src.Addr()
		if addr.Is4In6() {
			addr = netip.AddrFrom4(addr.As4())
		}
		e.fromDevice(true, addr.String(), int(src.Port()), append([]byte(nil), buf[:n]...))
	}
}

// Webhook and callback parameters. The names of the from_sim webhooks are
// not in the OpenAPI document; they mirror the resource's fields in
// PascalCase, with the command's SID as both Sid and CommandSid. This is
// the one place that maps a resource to its parameters.

func smsParams(c SmsCommand) map[string]string {
	return map[string]string{
		"Sid": c.Sid, "CommandSid": c.Sid, "AccountSid": c.AccountSid, "SimSid": c.SimSid,
		"Payload": c.Payload, "Status": c.Status, "Direction": c.Direction,
		"DateCreated": c.DateCreated.Format(time.RFC3339), "DateUpdated": c.DateUpdated.Format(time.RFC3339),
	}
}

func ipParams(c IpCommand) map[string]string {
	p := map[string]string{
		"Sid": c.Sid, "CommandSid": c.Sid, "AccountSid": c.AccountSid, "SimSid": c.SimSid, "SimIccid": c.SimIccid,
		"Payload": c.Payload, "PayloadType": c.PayloadType, "Status": c.Status, "Direction": c.Direction,
		"DevicePort":  strconv.Itoa(c.DevicePort),
		"DateCreated": c.DateCreated.Format(time.RFC3339), "DateUpdated": c.DateUpdated.Format(time.RFC3339),
	}
	if c.DeviceIP != nil {
		p["DeviceIp"] = *c.DeviceIP
	}
	return p
}

func simParams(s Sim) map[string]string {
	p := map[string]string{
		"Sid": s.Sid, "SimSid": s.Sid, "AccountSid": s.AccountSid, "Iccid": s.Iccid, "Status": s.Status,
		"DateUpdated": s.DateUpdated.Format(time.RFC3339),
	}
	if s.UniqueName != nil {
		p["UniqueName"] = *s.UniqueName
	}
	if s.FleetSid != nil {
		p["FleetSid"] = *s.FleetSid
	}
	return p
}
