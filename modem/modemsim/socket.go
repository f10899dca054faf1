package modemsim

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// maxDatagram is the largest datagram a module socket takes or delivers.
const maxDatagram = 1500

// dataSession is the packet data session sockets run over.
type dataSession struct {
	up      bool
	ip      string
	netOpen bool // SIM7600: AT+NETOPEN done
	count   int
}

// datagram is one received datagram waiting to be read.
type datagram struct {
	from netip.AddrPort
	data []byte
}

// socket is a module UDP socket.
type socket struct {
	id      int
	port    int
	service string // Quectel: "UDP SERVICE" or "UDP"
	remote  netip.AddrPort
	push    bool
	queue   []datagram
	// armed: the next arrival in buffer mode raises a URC (Quectel raises
	// "recv" once, then only after the host has read the buffer empty).
	armed  bool
	closed bool
	sent   int
}

// pending is how many bytes wait to be read.
func (sk *socket) pending() int {
	total := 0
	for _, d := range sk.queue {
		total += len(d.data)
	}
	return total
}

// pop takes the oldest waiting datagram, cut to limit bytes: the rest of a
// longer one is lost, as UDP loses it. ok is false when none waits.
func (sk *socket) pop(limit int) (d datagram, ok bool) {
	if len(sk.queue) == 0 {
		return datagram{}, false
	}
	d = sk.queue[0]
	sk.queue = sk.queue[1:]
	if len(d.data) > limit {
		d.data = d.data[:limit]
	}
	return d, true
}

func (sk *socket) state() Socket {
	mode := "buffer"
	if sk.push {
		mode = "push"
	}
	return Socket{ID: sk.id, Port: sk.port, Proto: "UDP", Mode: mode, Pending: len(sk.queue), Closed: sk.closed}
}

func socketCommands() map[string]spec {
	q := []string{"quectel"}
	sc := []string{"simcom"}
	ub := []string{"ublox", "sara-r5"}
	m := map[string]spec{
		"+QICSGP":     {fn: (*Sim).cmdQICSGP, profiles: q, phase: phaseSIM},
		"+QIACT":      {fn: (*Sim).cmdQIACT, profiles: q, phase: phaseSIM},
		"+QIDEACT":    {fn: (*Sim).cmdQIDEACT, profiles: q, phase: phaseSIM, setOnly: true, test: "+QIDEACT: (1-16)"},
		"+QIOPEN":     {fn: (*Sim).cmdQIOPEN, profiles: q, phase: phaseSIM, setOnly: true, test: `+QIOPEN: (1-16),(0-11),"TCP/UDP/TCP LISTENER/UDP SERVICE","<IP_address>/<domain_name>",<remote_port>,<local_port>,(0-2)`},
		"+QICLOSE":    {fn: (*Sim).cmdQICLOSE, profiles: q, phase: phaseSIM, setOnly: true},
		"+QISTATE":    {fn: (*Sim).cmdQISTATE, profiles: q, phase: phaseSIM},
		"+QISEND":     {fn: (*Sim).cmdQISEND, profiles: q, phase: phaseSIM, setOnly: true, test: "+QISEND: (0-11),(0-1460)"},
		"+QIRD":       {fn: (*Sim).cmdQIRD, profiles: q, phase: phaseSIM, setOnly: true, test: "+QIRD: (0-11),(0-1500)"},
		"+QISDE":      {fn: (*Sim).cmdQISDE, profiles: q},
		"+QIGETERROR": {fn: (*Sim).cmdQIGETERROR, profiles: q},
		"+NETOPEN":    {fn: (*Sim).cmdNETOPEN, profiles: sc, phase: phaseSIM},
		"+NETCLOSE":   {fn: (*Sim).cmdNETCLOSE, profiles: sc, phase: phaseSIM},
		"+CGSOCKCONT": {fn: (*Sim).cmdCGSOCKCONT, profiles: sc},
		"+CIPSRIP":    {fn: (*Sim).cmdCIPSRIP, profiles: sc},
		"+CIPOPEN":    {fn: (*Sim).cmdCIPOPEN, profiles: sc, phase: phaseSIM},
		"+CIPSEND":    {fn: (*Sim).cmdCIPSEND, profiles: sc, phase: phaseSIM, setOnly: true, test: "+CIPSEND: (0-9),(1-1500)"},
		"+CIPCLOSE":   {fn: (*Sim).cmdCIPCLOSE, profiles: sc, phase: phaseSIM},
		"+IPADDR":     {fn: (*Sim).cmdIPADDR, profiles: sc, phase: phaseSIM},
		"+USOCR":      {fn: (*Sim).cmdUSOCR, profiles: ub, phase: phaseSIM, setOnly: true, test: "+USOCR: (6,17),(1-65535),(0-2)"},
		"+USOCL":      {fn: (*Sim).cmdUSOCL, profiles: ub, phase: phaseSIM, setOnly: true},
		"+USOST":      {fn: (*Sim).cmdUSOST, profiles: ub, phase: phaseSIM, setOnly: true, test: `+USOST: (0-6),"remote_host",(1-65535),(1-1024),"data"`},
		"+USORF":      {fn: (*Sim).cmdUSORF, profiles: ub, phase: phaseSIM, setOnly: true, test: "+USORF: (0-6),(0-1024)"},
		"+UDCONF":     {fn: (*Sim).cmdUDCONF, profiles: ub, setOnly: true},
	}
	for _, more := range []map[string]spec{sim7080Commands(), sarar5Commands()} {
		for name, sp := range more {
			m[name] = sp
		}
	}
	return m
}

// activateData brings the data session up; it needs a registration.
func (s *Sim) activateData() error {
	if !registered(s.regStat()) {
		if s.prof.sockets == "quectel" {
			return cme(561)
		}
		return cme(30)
	}
	if !s.data.up {
		s.data.count++
		s.data.up = true
		s.data.ip = fmt.Sprintf("10.64.12.%d", 33+s.data.count%200)
	}
	return nil
}

// deactivateData ends the data session at the host's request.
func (s *Sim) deactivateData() {
	s.data.up = false
	s.data.netOpen = false
	s.sockets = map[int]*socket{}
}

// DropData makes the network end the data session, with the URCs of the
// profile: +QIURC: "pdpdeact" (sockets stay until the host closes them),
// +CIPEVENT: NETWORK CLOSED UNEXPECTEDLY with +IPCLOSE, or +UUSOCL.
func (s *Sim) DropData() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropDataLocked()
}

func (s *Sim) dropDataLocked() {
	if !s.data.up {
		return
	}
	s.data.up = false
	s.data.netOpen = false
	ids := s.socketIDs()
	switch s.prof.sockets {
	case "quectel":
		for _, id := range ids {
			s.sockets[id].closed = true
		}
		s.urc(`+QIURC: "pdpdeact",1`)
	case "simcom":
		for _, id := range ids {
			s.urc(fmt.Sprintf("+IPCLOSE: %d,1", id))
		}
		s.urc("+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY")
		s.sockets = map[int]*socket{}
	case "ublox":
		if s.prof.name == "sara-r5" {
			// The PSD profile went down and its sockets with it.
			s.urc(fmt.Sprintf("+UUPSDD: %d", 0))
		}
		for _, id := range ids {
			s.urc(fmt.Sprintf("+UUSOCL: %d", id))
		}
		s.sockets = map[int]*socket{}
	case "sim7080":
		for _, id := range ids {
			s.urc(fmt.Sprintf("+CASTATE: %d,0", id))
		}
		s.urc("+APP PDP: 0,DEACTIVE")
		s.sockets = map[int]*socket{}
	}
}

func (s *Sim) socketIDs() []int {
	ids := make([]int, 0, len(s.sockets))
	for id := range s.sockets {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// CloseSocket makes the network close socket id: +QIURC: "closed" (the
// host must still AT+QICLOSE it), +IPCLOSE or +UUSOCL.
func (s *Sim) CloseSocket(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sk := s.sockets[id]
	if sk == nil || sk.closed {
		return
	}
	switch s.prof.sockets {
	case "quectel":
		sk.closed = true
		s.urc(fmt.Sprintf(`+QIURC: "closed",%d`, id))
	case "simcom":
		delete(s.sockets, id)
		s.urc(fmt.Sprintf("+IPCLOSE: %d,1", id))
	case "ublox":
		delete(s.sockets, id)
		s.urc(fmt.Sprintf("+UUSOCL: %d", id))
	case "sim7080":
		delete(s.sockets, id)
		s.urc(fmt.Sprintf("+CASTATE: %d,0", id))
	}
}

// InjectUDP delivers a datagram from the network to the socket open on
// port: from is the sender "ip:port". It fails when no socket is open on
// the port or the data session is down (the datagram is lost, as on a
// real network).
func (s *Sim) InjectUDP(from string, port int, payload []byte) error {
	src, err := netip.ParseAddrPort(from)
	if err != nil {
		return fmt.Errorf("inject udp: source %q: %w", from, err)
	}
	if len(payload) > maxDatagram {
		return fmt.Errorf("inject udp: %d bytes, a module socket takes at most %d", len(payload), maxDatagram)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.data.up {
		return fmt.Errorf("inject udp: data session down")
	}
	var sk *socket
	for _, id := range s.socketIDs() {
		if c := s.sockets[id]; c.port == port && !c.closed {
			sk = c
			break
		}
	}
	if sk == nil {
		return fmt.Errorf("inject udp: port %d: %w", port, ErrNoSocket)
	}
	s.count(CounterUDPIn)
	data := append([]byte(nil), payload...)
	ip, p := src.Addr().String(), src.Port()
	switch s.prof.sockets {
	case "quectel":
		if sk.push {
			s.emit(append([]byte(fmt.Sprintf("\r\n+QIURC: \"recv\",%d,%d,\"%s\",%d\r\n", sk.id, len(data), ip, p)), append(data, "\r\n"...)...))
			return nil
		}
		sk.queue = append(sk.queue, datagram{src, data})
		if sk.armed {
			sk.armed = false
			s.urc(fmt.Sprintf(`+QIURC: "recv",%d`, sk.id))
		}
	case "simcom":
		var b []byte
		if s.set.cipsrip {
			b = append(b, fmt.Sprintf("\r\nRECV FROM:%s:%d", ip, p)...)
		}
		sep := ","
		if s.opts.ReceiveColon {
			sep = ": "
		}
		b = append(b, fmt.Sprintf("\r\n+RECEIVE%s%d,%d\r\n", sep, sk.id, len(data))...)
		s.emit(append(b, data...))
	case "ublox":
		sk.queue = append(sk.queue, datagram{src, data})
		s.urc(fmt.Sprintf("+UUSORF: %d,%d", sk.id, len(data)))
	case "sim7080":
		sk.queue = append(sk.queue, datagram{src, data})
		if sk.armed {
			sk.armed = false
			s.urc(fmt.Sprintf("+CADATAIND: %d", sk.id))
		}
	}
	return nil
}

// recordSend records a datagram the host sent.
func (s *Sim) recordSend(sk *socket, to netip.AddrPort, data []byte) {
	s.count(CounterUDPOut)
	sk.sent += len(data)
	s.sentUDP = trim(append(s.sentUDP, SentUDP{Socket: sk.id, Port: sk.port, To: to.String(), Data: append([]byte{}, data...)}))
	if s.hooks.UDP != nil {
		u := s.sentUDP[len(s.sentUDP)-1]
		u.Data = append([]byte{}, u.Data...)
		s.hooks.UDP(u)
	}
}

// flagSetting answers a 0/1 setting command: =<n> sets it, ? reads it, =?
// lists test (the modules that answer it).
func flagSetting(c *command, r *reply, name string, flag *bool, test string) error {
	switch c.op {
	case opSet:
		n, err := c.intArg(0, -1, 0, 1)
		if err != nil {
			return err
		}
		*flag = n == 1
	case opRead:
		r.line(fmt.Sprintf("%s: %d", name, b2i(*flag)))
	case opTest:
		if test != "" {
			r.line(name + ": " + test)
		}
	}
	return nil
}

// b2i is a flag as the 0 or 1 that modules report it as.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// destArg reads arguments ip and port as a destination.
func (c *command) destArg(ip, port int) (netip.AddrPort, error) {
	p, err := c.intArg(port, -1, 1, 65535)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return parseDest(c.strArg(ip, ""), p)
}

func parseDest(ip string, port int) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || port < 1 || port > 65535 {
		return netip.AddrPort{}, errParam
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// Quectel BG96 (TCP/IP application note).

func (s *Sim) cmdQICSGP(c *command, r *reply) error {
	switch c.op {
	case opSet:
		ctx, err := c.intArg(0, -1, 1, 16)
		if err != nil {
			return err
		}
		if len(c.args) == 1 {
			apn := s.contexts[ctx].apn
			r.line(fmt.Sprintf(`+QICSGP: 1,"%s","","",1`, apn))
			return nil
		}
		if _, err := c.intArg(1, 1, 1, 3); err != nil {
			return err
		}
		s.contexts[ctx] = pdpContext{pdpType: "IP", apn: c.strArg(2, "")}
	case opTest:
		r.line(`+QICSGP: (1-16),(1-3),"APN","USERNAME","PASSWORD",(0-3)`)
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdQIACT(c *command, r *reply) error {
	switch c.op {
	case opSet:
		if _, err := c.intArg(0, -1, 1, 16); err != nil {
			return err
		}
		if s.data.up {
			// BG96 refuses to activate an active context.
			return errPlain
		}
		return s.activateData()
	case opRead:
		if s.data.up {
			r.line(fmt.Sprintf(`+QIACT: 1,1,1,"%s"`, s.data.ip))
		}
	case opTest:
		r.line("+QIACT: (1-16)")
	default:
		return errPlain
	}
	return nil
}

func (s *Sim) cmdQIDEACT(c *command, r *reply) error {
	if _, err := c.intArg(0, -1, 1, 16); err != nil {
		return err
	}
	s.deactivateData()
	return nil
}

func (s *Sim) cmdQIOPEN(c *command, r *reply) error {
	if _, err := c.intArg(0, -1, 1, 16); err != nil {
		return err
	}
	id, err := c.intArg(1, -1, 0, 11)
	if err != nil {
		return err
	}
	service := strings.ToUpper(c.strArg(2, ""))
	remotePort, err := c.intArg(4, 0, 0, 65535)
	if err != nil {
		return err
	}
	local, err := c.intArg(5, 0, 0, 65535)
	if err != nil {
		return err
	}
	mode, err := c.intArg(6, 0, 0, 2)
	if err != nil {
		return err
	}
	if mode == 2 {
		// Transparent mode takes the port over; not simulated.
		return cme(555)
	}
	sk := &socket{id: id, port: local, service: service, push: mode == 1, armed: true}
	switch service {
	case "UDP SERVICE":
	case "UDP":
		dst, err := parseDest(c.strArg(3, ""), remotePort)
		if err != nil {
			return err
		}
		sk.remote = dst
		if sk.port == 0 {
			sk.port = 49152 + id
		}
	default:
		return cme(555)
	}
	code := 0
	switch {
	case s.sockets[id] != nil:
		code = 563
	case !s.data.up:
		code = 561
	default:
		s.sockets[id] = sk
	}
	r.then(func() { s.urc(fmt.Sprintf("+QIOPEN: %d,%d", id, code)) })
	return nil
}

func (s *Sim) cmdQICLOSE(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 11)
	if err != nil {
		return err
	}
	if _, err := c.intArg(1, 10, 0, 65535); err != nil {
		return err
	}
	delete(s.sockets, id)
	return nil
}

func (s *Sim) cmdQISTATE(c *command, r *reply) error {
	line := func(sk *socket) string {
		state := 2
		if sk.closed {
			state = 4
		}
		mode := 0
		if sk.push {
			mode = 1
		}
		rip, rport := "127.0.0.1", 0
		if sk.remote.IsValid() {
			rip, rport = sk.remote.Addr().String(), int(sk.remote.Port())
		}
		return fmt.Sprintf(`+QISTATE: %d,"%s","%s",%d,%d,%d,1,%d,%d,"usbat"`, sk.id, sk.service, rip, rport, sk.port, state, sk.id, mode)
	}
	switch c.op {
	case opRead, opExec:
		for _, id := range s.socketIDs() {
			r.line(line(s.sockets[id]))
		}
	case opSet:
		typ, err := c.intArg(0, -1, 0, 1)
		if err != nil {
			return err
		}
		n, err := c.intArg(1, -1, 0, 16)
		if err != nil {
			return err
		}
		for _, id := range s.socketIDs() {
			if typ == 0 || id == n {
				r.line(line(s.sockets[id]))
			}
		}
	}
	return nil
}

func (s *Sim) cmdQISEND(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 11)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil || sk.closed || !s.data.up {
		return errPlain
	}
	if len(c.args) == 1 {
		// Variable length: text until Ctrl-Z.
		if sk.service != "UDP" {
			return errPlain
		}
		s.startData(modeText, 0, s.set.echo && s.set.qisde, func(data []byte, cancelled bool, r *reply) error {
			return s.quectelSent(sk, sk.remote, data, cancelled, r)
		})
		r.prompt = "\r\n> "
		return nil
	}
	n, err := c.intArg(1, -1, 0, 1460)
	if err != nil {
		return err
	}
	if n == 0 {
		r.line(fmt.Sprintf("+QISEND: %d,%d,0", sk.sent, sk.sent))
		return nil
	}
	dst := sk.remote
	if sk.service == "UDP SERVICE" {
		if dst, err = c.destArg(2, 3); err != nil {
			return err
		}
	}
	s.startData(modeData, n, s.set.echo && s.set.qisde, func(data []byte, cancelled bool, r *reply) error {
		return s.quectelSent(sk, dst, data, cancelled, r)
	})
	r.prompt = "\r\n> "
	return nil
}

func (s *Sim) quectelSent(sk *socket, dst netip.AddrPort, data []byte, cancelled bool, r *reply) error {
	if cancelled {
		return nil
	}
	if s.sockets[sk.id] != sk || sk.closed || !s.data.up {
		return errPlain
	}
	if s.faults.SocketSendFail {
		r.final = "SEND FAIL"
		return nil
	}
	s.recordSend(sk, dst, data)
	r.final = "SEND OK"
	r.delay = s.opts.SendDelay
	return nil
}

func (s *Sim) cmdQIRD(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 11)
	if err != nil {
		return err
	}
	max, err := c.intArg(1, 1500, 0, 1500)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil || sk.push {
		return errPlain
	}
	if max == 0 {
		total := sk.pending()
		r.line(fmt.Sprintf("+QIRD: %d,0,%d", total, total))
		return nil
	}
	d, ok := sk.pop(max)
	if !ok {
		sk.armed = true
		r.line("+QIRD: 0")
		return nil
	}
	r.raw(fmt.Sprintf(`+QIRD: %d,"%s",%d`, len(d.data), d.from.Addr(), d.from.Port()), d.data)
	return nil
}

func (s *Sim) cmdQISDE(c *command, r *reply) error {
	return flagSetting(c, r, "+QISDE", &s.set.qisde, "(0,1)")
}

func (s *Sim) cmdQIGETERROR(c *command, r *reply) error {
	r.line(`+QIGETERROR: 0,"operation successful"`)
	return nil
}

// SIMCom SIM7600 (TCP/IP AT command manual).

func (s *Sim) cmdNETOPEN(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line(fmt.Sprintf("+NETOPEN: %d", b2i(s.data.netOpen)))
		return nil
	case opExec:
	default:
		return errPlain
	}
	if s.data.netOpen {
		r.line("+IP ERROR: Network is already opened")
		return errPlain
	}
	code := 0
	if err := s.activateData(); err != nil {
		code = 1
	} else {
		s.data.netOpen = true
	}
	r.then(func() { s.urc(fmt.Sprintf("+NETOPEN: %d", code)) })
	return nil
}

func (s *Sim) cmdNETCLOSE(c *command, r *reply) error {
	if c.op != opExec {
		return errPlain
	}
	if !s.data.netOpen {
		r.line("+NETCLOSE: 2")
		return errPlain
	}
	s.deactivateData()
	r.then(func() { s.urc("+NETCLOSE: 0") })
	return nil
}

func (s *Sim) cmdCGSOCKCONT(c *command, r *reply) error {
	if c.op != opSet {
		return nil
	}
	cid, err := c.intArg(0, -1, 1, 16)
	if err != nil {
		return err
	}
	s.contexts[cid] = pdpContext{pdpType: strings.ToUpper(c.strArg(1, "IP")), apn: c.strArg(2, "")}
	return nil
}

func (s *Sim) cmdCIPSRIP(c *command, r *reply) error {
	return flagSetting(c, r, "+CIPSRIP", &s.set.cipsrip, "(0-1)")
}

func (s *Sim) cmdCIPOPEN(c *command, r *reply) error {
	switch c.op {
	case opRead:
		for id := range 10 {
			if sk := s.sockets[id]; sk != nil {
				r.line(fmt.Sprintf(`+CIPOPEN: %d,"UDP",,,%d`, id, sk.port))
			} else {
				r.line(fmt.Sprintf("+CIPOPEN: %d", id))
			}
		}
		return nil
	case opTest:
		r.line(`+CIPOPEN: (0-9),("TCP","UDP")`)
		return nil
	case opSet:
	default:
		return errPlain
	}
	id, err := c.intArg(0, -1, 0, 9)
	if err != nil {
		return err
	}
	if strings.ToUpper(c.strArg(1, "")) != "UDP" {
		return cme(4)
	}
	port, err := c.intArg(4, -1, 1, 65535)
	if err != nil {
		return err
	}
	if !s.data.netOpen {
		r.line(fmt.Sprintf("+CIPOPEN: %d,2", id))
		return errPlain
	}
	if s.sockets[id] != nil {
		r.line(fmt.Sprintf("+CIPOPEN: %d,4", id))
		return errPlain
	}
	s.sockets[id] = &socket{id: id, port: port, service: "UDP", push: true}
	r.line(fmt.Sprintf("+CIPOPEN: %d,0", id))
	return nil
}

func (s *Sim) cmdCIPSEND(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 9)
	if err != nil {
		return err
	}
	n, err := c.intArg(1, -1, 1, maxDatagram)
	if err != nil {
		return err
	}
	dst, err := c.destArg(2, 3)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil || !s.data.up {
		return errPlain
	}
	s.startData(modeData, n, s.set.echo, func(data []byte, cancelled bool, r *reply) error {
		if s.sockets[id] != sk || !s.data.up {
			return errPlain
		}
		if s.faults.SocketSendFail {
			r.then(func() { s.urc(fmt.Sprintf("+CIPERROR: %d", 4)) })
			return errPlain
		}
		s.recordSend(sk, dst, data)
		r.delay = s.opts.SendDelay
		r.then(func() { s.urc(fmt.Sprintf("+CIPSEND: %d,%d,%d", id, len(data), len(data))) })
		return nil
	})
	r.prompt = "\r\n>"
	return nil
}

func (s *Sim) cmdCIPCLOSE(c *command, r *reply) error {
	switch c.op {
	case opRead:
		st := make([]string, 10)
		for i := range st {
			st[i] = "0"
			if s.sockets[i] != nil {
				st[i] = "1"
			}
		}
		r.line("+CIPCLOSE: " + strings.Join(st, ","))
		return nil
	case opSet:
	default:
		return errPlain
	}
	id, err := c.intArg(0, -1, 0, 9)
	if err != nil {
		return err
	}
	if s.sockets[id] == nil {
		r.line(fmt.Sprintf("+CIPCLOSE: %d,4", id))
		return errPlain
	}
	delete(s.sockets, id)
	r.then(func() { s.urc(fmt.Sprintf("+CIPCLOSE: %d,0", id)) })
	return nil
}

func (s *Sim) cmdIPADDR(c *command, r *reply) error {
	if !s.data.netOpen {
		r.line("+IP ERROR: Network not opened")
		return errPlain
	}
	r.line("+IPADDR: " + s.data.ip)
	return nil
}

// u-blox SARA-R4 (AT commands manual, section "Internet protocol transport
// layer").

func (s *Sim) cmdUSOCR(c *command, r *reply) error {
	proto, err := c.intArg(0, -1, 6, 17)
	if err != nil {
		return err
	}
	if proto != 17 {
		return cme(4)
	}
	port, err := c.intArg(1, 0, 0, 65535)
	if err != nil {
		return err
	}
	if !s.data.up {
		return cme(3)
	}
	for id := range 7 {
		if s.sockets[id] == nil {
			if port == 0 {
				port = 49152 + id
			}
			s.sockets[id] = &socket{id: id, port: port, service: "UDP"}
			r.line(fmt.Sprintf("+USOCR: %d", id))
			return nil
		}
	}
	return cme(3)
}

func (s *Sim) cmdUSOCL(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 6)
	if err != nil {
		return err
	}
	if s.sockets[id] == nil {
		return cme(3)
	}
	delete(s.sockets, id)
	return nil
}

func (s *Sim) cmdUSOST(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 6)
	if err != nil {
		return err
	}
	dst, err := c.destArg(1, 2)
	if err != nil {
		return err
	}
	n, err := c.intArg(3, -1, 1, 1024)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil || !s.data.up {
		return cme(3)
	}
	done := func(data []byte, cancelled bool, r *reply) error {
		if cancelled {
			return nil
		}
		if s.sockets[id] != sk || !s.data.up || s.faults.SocketSendFail {
			return cme(3)
		}
		s.recordSend(sk, dst, data)
		r.line(fmt.Sprintf("+USOST: %d,%d", id, len(data)))
		r.delay = s.opts.SendDelay
		return nil
	}
	if len(c.args) >= 5 {
		// Data on the command line: hex in hex mode, else the string itself.
		data := []byte(c.args[4].text)
		if s.set.udHex {
			if data, err = hex.DecodeString(c.args[4].text); err != nil {
				return errParam
			}
		}
		if len(data) != n {
			return errParam
		}
		return done(data, false, r)
	}
	s.startData(modeData, n, s.set.echo, done)
	r.prompt = "\r\n@"
	return nil
}

func (s *Sim) cmdUSORF(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, 6)
	if err != nil {
		return err
	}
	limit := 1024
	if s.set.udHex {
		limit = 512
	}
	max, err := c.intArg(1, -1, 0, limit)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil {
		return cme(3)
	}
	if max == 0 || len(sk.queue) == 0 {
		r.line(fmt.Sprintf("+USORF: %d,%d", id, sk.pending()))
		return nil
	}
	d := &sk.queue[0]
	data := d.data
	if len(data) > max {
		// The rest stays for the next read; the host frames by length.
		data = data[:max]
		d.data = d.data[max:]
	} else {
		sk.queue = sk.queue[1:]
	}
	payload := data
	if s.set.udHex {
		payload = []byte(strings.ToUpper(hex.EncodeToString(data)))
	}
	g := fmt.Appendf(nil, `+USORF: %d,"%s",%d,%d,"`, id, d.from.Addr(), d.from.Port(), len(data))
	g = append(g, payload...)
	g = append(g, '"')
	r.add(g)
	return nil
}

func (s *Sim) cmdUDCONF(c *command, r *reply) error {
	what, err := c.intArg(0, -1, 0, 100)
	if err != nil {
		return err
	}
	if what != 1 {
		return nil
	}
	if len(c.args) == 1 {
		r.line(fmt.Sprintf("+UDCONF: 1,%d", b2i(s.set.udHex)))
		return nil
	}
	n, err := c.intArg(1, -1, 0, 1)
	if err != nil {
		return err
	}
	s.set.udHex = n == 1
	return nil
}
