package modemsim

import (
	"fmt"
	"strings"
)

// SIMCom SIM7080G (TCP/UDP application note): AT+CNACT brings data session
// 0 up ("+APP PDP: 0,ACTIVE" after OK), AT+CASERVER opens a UDP server on a
// port, or AT+CAOPEN a UDP socket to one peer; arriving data raises
// "+CADATAIND: <cid>" once, until the host has read the buffer empty with
// AT+CARECV; AT+CASEND prompts with ">" and takes exact bytes.

// sim7080Sockets is how many connections (cid 0..12) the module has.
const sim7080Sockets = 13

// sim7080State is the SIM7080's own settings.
type sim7080State struct {
	cnmp, cmnb int
	casrip     bool
}

func sim7080Commands() map[string]spec {
	p := []string{"sim7080"}
	return map[string]spec{
		"+CNMP":     {fn: (*Sim).cmdCNMP, profiles: p},
		"+CMNB":     {fn: (*Sim).cmdCMNB, profiles: p},
		"+CNACT":    {fn: (*Sim).cmdCNACT, profiles: p, phase: phaseSIM},
		"+CNCFG":    {fn: (*Sim).cmdCNCFG, profiles: p},
		"+CASRIP":   {fn: (*Sim).cmdCASRIP, profiles: p},
		"+CASERVER": {fn: (*Sim).cmdCASERVER, profiles: p, phase: phaseSIM},
		"+CAOPEN":   {fn: (*Sim).cmdCAOPEN, profiles: p, phase: phaseSIM, setOnly: true},
		"+CACLOSE":  {fn: (*Sim).cmdCACLOSE, profiles: p, phase: phaseSIM, setOnly: true},
		"+CASTATE":  {fn: (*Sim).cmdCASTATE, profiles: p, phase: phaseSIM},
		"+CACFG":    {fn: (*Sim).cmdCACFG, profiles: p, phase: phaseSIM},
		"+CASEND":   {fn: (*Sim).cmdCASEND, profiles: p, phase: phaseSIM, setOnly: true},
		"+CARECV":   {fn: (*Sim).cmdCARECV, profiles: p, phase: phaseSIM, setOnly: true},
	}
}

func (s *Sim) cmdCNMP(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line(fmt.Sprintf("+CNMP: %d", s.sim7080.cnmp))
	case opTest:
		r.line("+CNMP: (2,13,38,51)")
	case opSet:
		n, err := c.intArg(0, -1, 2, 51)
		if err != nil {
			return err
		}
		if n != 2 && n != 13 && n != 38 && n != 51 {
			return errPlain
		}
		s.sim7080.cnmp = n
	}
	return nil
}

func (s *Sim) cmdCMNB(c *command, r *reply) error {
	switch c.op {
	case opRead:
		r.line(fmt.Sprintf("+CMNB: %d", s.sim7080.cmnb))
	case opTest:
		r.line("+CMNB: (1-3)")
	case opSet:
		n, err := c.intArg(0, -1, 1, 3)
		if err != nil {
			return err
		}
		s.sim7080.cmnb = n
	}
	return nil
}

func (s *Sim) cmdCNACT(c *command, r *reply) error {
	switch c.op {
	case opRead:
		for pdp := range 4 {
			if pdp == 0 && s.data.up {
				r.line(fmt.Sprintf(`+CNACT: 0,1,"%s"`, s.data.ip))
			} else {
				r.line(fmt.Sprintf(`+CNACT: %d,0,"0.0.0.0"`, pdp))
			}
		}
		return nil
	case opTest:
		r.line("+CNACT: (0-3),(0-2)")
		return nil
	case opSet:
	default:
		return errPlain
	}
	pdp, err := c.intArg(0, -1, 0, 3)
	if err != nil {
		return err
	}
	action, err := c.intArg(1, -1, 0, 2)
	if err != nil {
		return err
	}
	if pdp != 0 {
		return errPlain // one data session is all the simulator has
	}
	if action == 0 {
		if !s.data.up {
			return errPlain
		}
		s.deactivateData()
		r.then(func() { s.urc("+APP PDP: 0,DEACTIVE") })
		return nil
	}
	if s.data.up {
		return errPlain // the module refuses to activate an active context
	}
	if err := s.activateData(); err != nil {
		return errPlain
	}
	r.then(func() { s.urc("+APP PDP: 0,ACTIVE") })
	return nil
}

func (s *Sim) cmdCNCFG(c *command, r *reply) error {
	if c.op != opSet {
		return nil
	}
	if _, err := c.intArg(0, -1, 0, 3); err != nil {
		return err
	}
	return nil
}

func (s *Sim) cmdCASRIP(c *command, r *reply) error {
	return flagSetting(c, r, "+CASRIP", &s.sim7080.casrip, "")
}

// cmdCASERVER: AT+CASERVER=<cid>,<pdp>,"UDP",<port>. Firmware without it
// (Options.SIM7080NoServer) answers ERROR.
func (s *Sim) cmdCASERVER(c *command, r *reply) error {
	if s.opts.SIM7080NoServer || c.op != opSet {
		return errPlain
	}
	id, err := c.intArg(0, -1, 0, sim7080Sockets-1)
	if err != nil {
		return err
	}
	if _, err := c.intArg(1, -1, 0, 3); err != nil {
		return err
	}
	if strings.ToUpper(c.strArg(2, "")) != "UDP" {
		return errPlain
	}
	port, err := c.intArg(3, -1, 1, 65535)
	if err != nil {
		return err
	}
	if !s.data.up || s.sockets[id] != nil {
		return errPlain
	}
	for _, sk := range s.sockets {
		if sk.port == port {
			return errPlain
		}
	}
	s.sockets[id] = &socket{id: id, port: port, service: "UDP SERVER", armed: true}
	return nil
}

// cmdCAOPEN: AT+CAOPEN=<cid>,<pdp>,"UDP","<host>",<port>; the local port
// is the module's choice.
func (s *Sim) cmdCAOPEN(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, sim7080Sockets-1)
	if err != nil {
		return err
	}
	if _, err := c.intArg(1, -1, 0, 3); err != nil {
		return err
	}
	if strings.ToUpper(c.strArg(2, "")) != "UDP" {
		return errPlain
	}
	dst, err := c.destArg(3, 4)
	if err != nil {
		return err
	}
	switch {
	case !s.data.up:
		r.line(fmt.Sprintf("+CAOPEN: %d,21", id))
	case s.sockets[id] != nil:
		r.line(fmt.Sprintf("+CAOPEN: %d,3", id))
	default:
		s.sockets[id] = &socket{id: id, port: 49152 + id, service: "UDP", remote: dst, armed: true}
		r.line(fmt.Sprintf("+CAOPEN: %d,0", id))
	}
	return nil
}

func (s *Sim) cmdCACLOSE(c *command, r *reply) error {
	id, err := c.intArg(0, -1, 0, sim7080Sockets-1)
	if err != nil {
		return err
	}
	if s.sockets[id] == nil {
		return errPlain
	}
	delete(s.sockets, id)
	return nil
}

func (s *Sim) cmdCASTATE(c *command, r *reply) error {
	if c.op != opRead {
		return nil
	}
	for _, id := range s.socketIDs() {
		r.line(fmt.Sprintf("+CASTATE: %d,1", id))
	}
	return nil
}

// cmdCACFG: AT+CACFG="REMOTEADDR",<cid>,<ip>,<port> names where a server
// socket's AT+CASEND goes; other settings are accepted and ignored.
func (s *Sim) cmdCACFG(c *command, r *reply) error {
	if c.op != opSet {
		return nil
	}
	if !strings.EqualFold(c.strArg(0, ""), "REMOTEADDR") {
		return nil
	}
	id, err := c.intArg(1, -1, 0, sim7080Sockets-1)
	if err != nil {
		return err
	}
	dst, err := c.destArg(2, 3)
	if err != nil {
		return err
	}
	sk := s.sockets[id]
	if sk == nil {
		return errPlain
	}
	sk.remote = dst
	return nil
}

// cidLen reads the <cid>,<len> of AT+CASEND and AT+CARECV: the socket
// (nil when none is open there), its cid and the length.
func (s *Sim) cidLen(c *command) (*socket, int, int, error) {
	id, err := c.intArg(0, -1, 0, sim7080Sockets-1)
	if err != nil {
		return nil, 0, 0, err
	}
	n, err := c.intArg(1, -1, 1, 1460)
	if err != nil {
		return nil, 0, 0, err
	}
	return s.sockets[id], id, n, nil
}

func (s *Sim) cmdCASEND(c *command, r *reply) error {
	sk, id, n, err := s.cidLen(c)
	if err != nil {
		return err
	}
	if sk == nil || !s.data.up || !sk.remote.IsValid() {
		return errPlain
	}
	s.startData(modeData, n, s.set.echo, func(data []byte, cancelled bool, r *reply) error {
		if cancelled {
			return nil
		}
		if s.sockets[id] != sk || !s.data.up || s.faults.SocketSendFail {
			return errPlain
		}
		s.recordSend(sk, sk.remote, data)
		r.delay = s.opts.SendDelay
		return nil
	})
	r.prompt = "\r\n> "
	return nil
}

// cmdCARECV: AT+CARECV=<cid>,<len> returns one datagram (its first len
// bytes), "+CARECV: [<ip>,<port>,]<n>,<data>", or "+CARECV: 0" when none
// waits, which re-arms +CADATAIND.
func (s *Sim) cmdCARECV(c *command, r *reply) error {
	sk, _, max, err := s.cidLen(c)
	if err != nil {
		return err
	}
	if sk == nil {
		return errPlain
	}
	d, ok := sk.pop(max)
	if !ok {
		sk.armed = true
		r.line("+CARECV: 0")
		return nil
	}
	g := []byte("+CARECV: ")
	if s.sim7080.casrip {
		g = fmt.Appendf(g, "%s,%d,", d.from.Addr(), d.from.Port())
	}
	g = fmt.Appendf(g, "%d,", len(d.data))
	r.add(append(g, d.data...))
	return nil
}
