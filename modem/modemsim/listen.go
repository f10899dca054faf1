package modemsim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// unixPort serves the module's AT port on a UNIX stream socket, as
// ModemManager's test mode (Test.SetProfile) expects a port to be. A
// connection is joined to the pty slave, so every byte still goes through
// the link of the moment (pacing, chunking, unplug): the socket is one more
// way to the same serial port, not a second module. A serial port has one
// user, so a second connection while one is served is closed at once.
type unixPort struct {
	ln  *net.UnixListener
	sim *Sim

	mu     sync.Mutex
	cur    *net.UnixConn
	closed bool
	wg     sync.WaitGroup
}

// listenUnix listens on path, replacing a stale socket left by a crashed
// run; any other file there is somebody else's.
func listenUnix(path string, s *Sim) (*unixPort, error) {
	ln, err := listenSocket(path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	p := &unixPort{ln: ln, sim: s}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// listenSocket listens on a UNIX stream socket at path. A socket left there
// by a run that died is replaced (nobody listens on it); any other file
// there is somebody else's.
func listenSocket(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, errors.New("exists and is not a socket")
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}

func (p *unixPort) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptUnix()
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				p.sim.log.Warn("AT socket accept", "err", err)
			}
			return
		}
		p.mu.Lock()
		busy := p.cur != nil || p.closed
		if !busy {
			p.cur = c
		}
		p.mu.Unlock()
		if busy {
			p.sim.log.Warn("AT socket: a second connection while one is served; closed", "path", p.ln.Addr().String())
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
			p.mu.Lock()
			p.cur = nil
			p.mu.Unlock()
		}()
	}
}

// serve copies between c and the pty slave until either side ends: the
// host hung up, or the link dropped (unplug, reset), which the host sees
// as the socket closing, as a USB port vanishing.
func (p *unixPort) serve(c *net.UnixConn) {
	defer c.Close()
	// Non-blocking, so os.NewFile registers it with the poller and Close
	// interrupts a Read blocked on it.
	fd, err := unix.Open(p.sim.Link(), unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		p.sim.log.Warn("AT socket: the pty is not there (unplugged?); closing the connection", "err", err)
		return
	}
	tty := os.NewFile(uintptr(fd), p.sim.Link())
	defer tty.Close()
	// What the module said to nobody before this host connected is gone,
	// as on a serial line nobody read.
	if err := unix.IoctlSetInt(int(tty.Fd()), unix.TCFLSH, unix.TCIOFLUSH); err != nil {
		p.sim.log.Debug("AT socket: flush pty", "err", err)
	}
	p.sim.log.Info("AT socket: host connected")
	done := make(chan struct{}, 2)
	go func() {
		_, err := io.Copy(tty, c)
		logCopy(p, "host to module", err)
		done <- struct{}{}
	}()
	go func() {
		_, err := io.Copy(c, tty)
		logCopy(p, "module to host", err)
		done <- struct{}{}
	}()
	<-done
	// Either side ending ends both copies.
	_ = c.Close()
	_ = tty.Close()
	<-done
	p.sim.log.Info("AT socket: host disconnected")
}

func logCopy(p *unixPort, dir string, err error) {
	if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, unix.EIO) {
		p.sim.log.Debug("AT socket copy ended", "dir", dir, "err", err)
	}
}

// close stops listening, ends the connection served and removes the socket.
func (p *unixPort) close() error {
	p.mu.Lock()
	p.closed = true
	c := p.cur
	p.mu.Unlock()
	err := p.ln.Close() // removes the socket file too
	if c != nil {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}
