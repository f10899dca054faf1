package modemsim

import "fmt"

// u-blox SARA-R5 (AT commands manual, "Packet switched data services"):
// sockets as on the SARA-R4, but they need the internal PSD profile 0 up,
// which only AT+UPSDA=0,3 brings: OK, then "+UUPSDA: 0,"<ip>"". The
// network ending it says "+UUPSDD: 0".

// sarar5State is the PSD profile 0 configuration (AT+UPSD).
type sarar5State struct {
	cid     int // parameter 100: the context the profile uses
	pdpType int // parameter 0
}

func sarar5Commands() map[string]spec {
	p := []string{"sara-r5"}
	return map[string]spec{
		"+UPSD":  {fn: (*Sim).cmdUPSD, profiles: p, setOnly: true},
		"+UPSDA": {fn: (*Sim).cmdUPSDA, profiles: p, phase: phaseSIM, setOnly: true},
		"+UPSND": {fn: (*Sim).cmdUPSND, profiles: p, phase: phaseSIM, setOnly: true},
	}
}

// psdProfile0 checks the first argument of the AT+UPSD commands: the PSD
// profile, of which the simulator has profile 0 only.
func psdProfile0(c *command) error {
	if prof, err := c.intArg(0, -1, 0, 6); err != nil || prof != 0 {
		return errParam
	}
	return nil
}

func (s *Sim) cmdUPSD(c *command, r *reply) error {
	if err := psdProfile0(c); err != nil {
		return err
	}
	param, err := c.intArg(1, -1, 0, 255)
	if err != nil {
		return err
	}
	if len(c.args) == 2 {
		v := 0
		switch param {
		case 0:
			v = s.sarar5.pdpType
		case 100:
			v = s.sarar5.cid
		}
		r.line(fmt.Sprintf("+UPSD: 0,%d,%d", param, v))
		return nil
	}
	switch param {
	case 0:
		v, err := c.intArg(2, -1, 0, 3)
		if err != nil {
			return err
		}
		s.sarar5.pdpType = v
	case 100:
		v, err := c.intArg(2, -1, 0, 8)
		if err != nil {
			return err
		}
		s.sarar5.cid = v
	}
	return nil
}

func (s *Sim) cmdUPSDA(c *command, r *reply) error {
	if err := psdProfile0(c); err != nil {
		return err
	}
	action, err := c.intArg(1, -1, 0, 6)
	if err != nil {
		return err
	}
	switch action {
	case 3:
		if s.data.up {
			return cme(3) // already active
		}
		if s.sarar5.cid == 0 {
			return cme(3) // not mapped to a context (AT+UPSD=0,100,<cid>)
		}
		if err := s.activateData(); err != nil {
			return err
		}
		ip := s.data.ip
		r.then(func() { s.urc(fmt.Sprintf(`+UUPSDA: 0,"%s"`, ip)) })
	case 4:
		if !s.data.up {
			return cme(3)
		}
		s.deactivateData()
	}
	return nil
}

func (s *Sim) cmdUPSND(c *command, r *reply) error {
	if err := psdProfile0(c); err != nil {
		return err
	}
	param, err := c.intArg(1, -1, 0, 8)
	if err != nil {
		return err
	}
	switch param {
	case 0:
		if !s.data.up {
			return cme(3)
		}
		r.line(fmt.Sprintf(`+UPSND: 0,0,"%s"`, s.data.ip))
	case 8:
		r.line(fmt.Sprintf("+UPSND: 0,8,%d", b2i(s.data.up)))
	default:
		return errParam
	}
	return nil
}
