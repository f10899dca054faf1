package modemsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"time"
)

// The control protocol: one JSON request, one JSON response per
// connection on a unix socket. Requests name an operation in "op" and carry
// its arguments; responses say "ok" or give an "error" (with a "code" for
// the errors a caller may branch on).

// Control operations.
const (
	OpSMS         = "sms"
	OpUDP         = "udp"
	OpState       = "state"
	OpUnplug      = "unplug"
	OpHang        = "hang"
	OpGarbage     = "garbage"
	OpFaults      = "faults"
	OpReset       = "reset"
	OpRegister    = "register"
	OpCloseSocket = "close-socket"
	OpDropData    = "drop-data"
	OpBootStorm   = "boot-storm"
	OpSignal      = "signal"
)

// builtinOps are the operations Sim.HandleOp cannot replace.
var builtinOps = map[string]bool{
	OpSMS: true, OpUDP: true, OpState: true, OpUnplug: true, OpHang: true, OpGarbage: true,
	OpFaults: true, OpReset: true, OpRegister: true, OpCloseSocket: true, OpDropData: true,
	OpBootStorm: true, OpSignal: true,
}

// Request is one control request.
type Request struct {
	Op       string  `json:"op"`
	SMS      *SMS    `json:"sms,omitempty"`
	From     string  `json:"from,omitempty"`
	Port     int     `json:"port,omitempty"`
	Data     []byte  `json:"data,omitempty"`
	Duration string  `json:"duration,omitempty"` // time.ParseDuration syntax
	Faults   *Faults `json:"faults,omitempty"`
	Value    int     `json:"value,omitempty"` // registration stat, socket id, storm count, rssi
}

// Response answers a Request.
type Response struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Code    string `json:"code,omitempty"` // "store_full", "no_socket", "bad_request"
	Indexes []int  `json:"indexes,omitempty"`
	State   *State `json:"state,omitempty"`
	// Data is the answer of an operation added with Sim.HandleOp.
	Data json.RawMessage `json:"data,omitempty"`
}

const maxRequest = 1 << 20

// handleRequest decodes and runs one request. It never panics on bad
// input: a malformed request gets a response saying why.
func (s *Sim) handleRequest(raw []byte) Response {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Response{Error: fmt.Sprintf("bad request: %v", err), Code: "bad_request"}
	}
	bad := func(format string, a ...any) Response {
		return Response{Error: fmt.Sprintf(format, a...), Code: "bad_request"}
	}
	dur := func() (time.Duration, error) {
		d, err := time.ParseDuration(req.Duration)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", req.Duration, err)
		}
		if d < 0 || d > 24*time.Hour {
			return 0, fmt.Errorf("duration %s: want 0..24h", d)
		}
		return d, nil
	}
	switch req.Op {
	case OpSMS:
		if req.SMS == nil {
			return bad("sms: missing \"sms\"")
		}
		idx, err := s.InjectSMS(*req.SMS)
		if err != nil {
			code := "bad_request"
			if errors.Is(err, ErrStoreFull) {
				code = "store_full"
			}
			return Response{Error: err.Error(), Code: code, Indexes: idx}
		}
		return Response{OK: true, Indexes: idx}
	case OpUDP:
		if err := s.InjectUDP(req.From, req.Port, req.Data); err != nil {
			code := "bad_request"
			if errors.Is(err, ErrNoSocket) {
				code = "no_socket"
			}
			return Response{Error: err.Error(), Code: code}
		}
	case OpState:
		st := s.State()
		return Response{OK: true, State: &st}
	case OpUnplug, OpHang:
		d, err := dur()
		if err != nil {
			return bad("%s: %v", req.Op, err)
		}
		if req.Op == OpUnplug {
			s.Unplug(d)
		} else {
			s.Hang(d)
		}
	case OpGarbage:
		s.Garbage(req.Data)
	case OpFaults:
		if req.Faults == nil {
			return bad("faults: missing \"faults\"")
		}
		if err := req.Faults.check(); err != nil {
			return bad("faults: %v", err)
		}
		s.SetFaults(*req.Faults)
	case OpReset:
		s.Reset()
	case OpRegister:
		if req.Value < 0 || req.Value > 10 {
			return bad("register: stat %d: want 0..10", req.Value)
		}
		s.SetRegistration(req.Value)
	case OpCloseSocket:
		s.CloseSocket(req.Value)
	case OpDropData:
		s.DropData()
	case OpBootStorm:
		if req.Value < 1 || req.Value > 100 {
			return bad("boot-storm: count %d: want 1..100", req.Value)
		}
		s.BootStorm(req.Value)
	case OpSignal:
		if (req.Value < 0 || req.Value > 31) && req.Value != 99 {
			return bad("signal: rssi %d: want 0..31 or 99", req.Value)
		}
		s.SetSignal(req.Value)
	default:
		s.mu.Lock()
		fn := s.ops[req.Op]
		s.mu.Unlock()
		if fn == nil {
			return bad("unknown op %q", req.Op)
		}
		v, err := fn()
		if err != nil {
			return Response{Error: fmt.Sprintf("%s: %v", req.Op, err)}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return Response{Error: fmt.Sprintf("%s: encode: %v", req.Op, err)}
		}
		return Response{OK: true, Data: b}
	}
	return Response{OK: true}
}

// controlServer serves the control socket.
type controlServer struct {
	ln   net.Listener
	path string
	wg   sync.WaitGroup
}

func listenControl(path string, s *Sim) (*controlServer, error) {
	ln, err := listenSocket(path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	c := &controlServer{ln: ln, path: path}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Warn("control accept", "err", err)
				}
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.serve(s, conn)
			}()
		}
	}()
	return c, nil
}

func (c *controlServer) serve(s *Sim, conn net.Conn) {
	defer func() {
		if err := conn.Close(); err != nil {
			s.log.Debug("control close", "err", err)
		}
	}()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.log.Warn("control deadline", "err", err)
		return
	}
	raw, err := readRequest(conn)
	var resp Response
	if err != nil {
		resp = Response{Error: err.Error(), Code: "bad_request"}
	} else {
		resp = s.handleRequest(raw)
	}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Warn("control reply", "err", err)
	}
}

// readRequest reads one newline-terminated JSON request.
func readRequest(r io.Reader) ([]byte, error) {
	var buf []byte
	b := make([]byte, 4096)
	for {
		n, err := r.Read(b)
		buf = append(buf, b[:n]...)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			return buf[:i], nil
		}
		if len(buf) > maxRequest {
			return nil, fmt.Errorf("request over %d bytes", maxRequest)
		}
		if errors.Is(err, io.EOF) {
			if len(buf) == 0 {
				return nil, errors.New("empty request")
			}
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
	}
}

func (c *controlServer) close() error {
	err := c.ln.Close()
	c.wg.Wait()
	if rerr := os.Remove(c.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// Client talks to a simulator's control socket. It offers the operations
// of Sim for a simulator running in another process (the modemsim binary).
type Client struct {
	// Socket is the control socket path.
	Socket string
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
}

// Do sends one request and returns the response. A response that reports
// a failure is returned with a non-nil error that wraps ErrStoreFull or
// ErrNoSocket when the code says so.
func (c *Client) Do(req Request) (resp Response, err error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := net.DialTimeout("unix", c.Socket, timeout)
	if err != nil {
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("control %s: close: %w", req.Op, cerr)
		}
	}()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("control %s: send: %w", req.Op, err)
	}
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("control %s: read response: %w", req.Op, err)
	}
	if !resp.OK {
		err := errors.New(resp.Error)
		switch resp.Code {
		case "store_full":
			err = fmt.Errorf("%s: %w", resp.Error, ErrStoreFull)
		case "no_socket":
			err = fmt.Errorf("%s: %w", resp.Error, ErrNoSocket)
		}
		return resp, fmt.Errorf("control %s: %w", req.Op, err)
	}
	return resp, nil
}

// InjectSMS is Sim.InjectSMS over the control socket.
func (c *Client) InjectSMS(m SMS) ([]int, error) {
	resp, err := c.Do(Request{Op: OpSMS, SMS: &m})
	return resp.Indexes, err
}

// run is Do for an operation that answers nothing but whether it worked.
func (c *Client) run(req Request) error {
	_, err := c.Do(req)
	return err
}

// InjectUDP is Sim.InjectUDP over the control socket.
func (c *Client) InjectUDP(from string, port int, payload []byte) error {
	return c.run(Request{Op: OpUDP, From: from, Port: port, Data: payload})
}

// State is Sim.State over the control socket.
func (c *Client) State() (State, error) {
	resp, err := c.Do(Request{Op: OpState})
	if err != nil {
		return State{}, err
	}
	if resp.State == nil {
		return State{}, errors.New("control state: response has no state")
	}
	return *resp.State, nil
}

// Unplug is Sim.Unplug over the control socket.
func (c *Client) Unplug(d time.Duration) error {
	return c.run(Request{Op: OpUnplug, Duration: d.String()})
}

// Hang is Sim.Hang over the control socket.
func (c *Client) Hang(d time.Duration) error {
	return c.run(Request{Op: OpHang, Duration: d.String()})
}

// Garbage is Sim.Garbage over the control socket.
func (c *Client) Garbage(b []byte) error {
	return c.run(Request{Op: OpGarbage, Data: b})
}

// SetFaults is Sim.SetFaults over the control socket.
func (c *Client) SetFaults(f Faults) error {
	return c.run(Request{Op: OpFaults, Faults: &f})
}

// Reset is Sim.Reset over the control socket.
func (c *Client) Reset() error {
	return c.run(Request{Op: OpReset})
}

// SetRegistration is Sim.SetRegistration over the control socket.
func (c *Client) SetRegistration(stat int) error {
	return c.run(Request{Op: OpRegister, Value: stat})
}

// SetSignal is Sim.SetSignal over the control socket.
func (c *Client) SetSignal(rssi int) error {
	return c.run(Request{Op: OpSignal, Value: rssi})
}

// CloseSocket is Sim.CloseSocket over the control socket.
func (c *Client) CloseSocket(id int) error {
	return c.run(Request{Op: OpCloseSocket, Value: id})
}

// DropData is Sim.DropData over the control socket.
func (c *Client) DropData() error {
	return c.run(Request{Op: OpDropData})
}

// BootStorm is Sim.BootStorm over the control socket.
func (c *Client) BootStorm(n int) error {
	return c.run(Request{Op: OpBootStorm, Value: n})
}
