package modemsim

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// maxQueued bounds what waits for a host that does not read: beyond it new
// output is dropped, as a USB serial driver drops what nobody reads.
const maxQueued = 1 << 20

// link is one appearance of the module on the host: a pty pair, the
// symlink to its slave, a reader goroutine (host to module) and a writer
// goroutine (module to host) that applies pacing and chunking.
type link struct {
	master    *os.File // pollable, so Close interrupts a blocked Read/Write
	slave     *os.File // kept open so the host can close and reopen the port
	slaveFd   int
	slaveName string
	path      string
	baud      int
	log       interface{ Warn(string, ...any) }

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []queuedOutput
	queued  int
	writing bool
	closed  bool
	chunk   int // largest chunk written at once; 0 = no chunking
	dropped int

	closeOnce sync.Once
	wdone     chan struct{}
}

// openLink creates a pty in raw mode and points path at its slave.
func openLink(path string, s *Sim) (*link, error) {
	m, t, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	master, err := pollable(m)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open pty: %w", err), t.Close())
	}
	if err := makeRaw(t); err != nil {
		return nil, errors.Join(fmt.Errorf("raw mode on %s: %w", t.Name(), err), master.Close(), t.Close())
	}
	if err := symlinkReplace(t.Name(), path); err != nil {
		return nil, errors.Join(err, master.Close(), t.Close())
	}
	l := &link{
		master:    master,
		slave:     t,
		slaveName: t.Name(),
		slaveFd:   int(t.Fd()),
		path:      path,
		baud:      s.opts.Baud,
		log:       s.log,
		wdone:     make(chan struct{}),
		chunk:     s.faults.chunk(),
	}
	l.cond = sync.NewCond(&l.mu)
	go l.writeLoop(rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())))
	return l, nil
}

// pollable returns a non-blocking duplicate of f registered with the Go
// poller, and closes f. pty.Open's files are in blocking mode (it calls
// Fd), and closing a blocking file does not wake a goroutine blocked
// reading it; unplugging must. The duplicate is close-on-exec, so a child
// process (a daemon under test) does not hold the pty open after Unplug.
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dup %s: %w", f.Name(), err), f.Close())
	}
	if err := f.Close(); err != nil {
		return nil, errors.Join(fmt.Errorf("close %s: %w", f.Name(), err), unix.Close(fd))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, errors.Join(fmt.Errorf("nonblock %s: %w", f.Name(), err), unix.Close(fd))
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// makeRaw puts the slave in raw mode (cfmakeraw) so that the line
// discipline passes every byte untouched: no CR/LF translation, no echo, no
// signals on ^C or ^Z (Ctrl-Z ends an SMS).
func makeRaw(t *os.File) error {
	fd := int(t.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	return nil
}

// symlinkReplace points path at target atomically. Only a symlink may be
// replaced: a regular file at path is somebody else's.
func symlinkReplace(target, path string) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("link %s exists and is not a symlink", path)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	// A leftover of a crashed run; absence is the normal case.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("symlink %s: remove leftover: %w", path, err)
	}
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("symlink %s: %w", path, err), os.Remove(tmp))
	}
	return nil
}

// send queues b for the host. It never blocks: the writer goroutine does
// the slow part.
func (l *link) send(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.queued+len(b) > maxQueued {
		l.dropped += len(b)
		return
	}
	l.queue = append(l.queue, queuedOutput{b: b, at: time.Now()})
	l.queued += len(b)
	l.cond.Broadcast()
}

// waiting is how many bytes are queued for the host.
func (l *link) waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

func (l *link) setChunk(n int) {
	l.mu.Lock()
	l.chunk = n
	l.mu.Unlock()
}

// waitFlushed waits until everything queued has been written and read by
// the host, the link is closed or d has passed. Closing the master
// discards what the host has not read yet, so a reset waits here for its
// OK to be read, as a module finishes its reply before it restarts.
//
// Bytes written to the master reach the slave's input queue a little later
// (the kernel pushes them from a work queue), so an empty queue only counts
// once the writer has been idle for settle.
func (l *link) waitFlushed(d time.Duration) {
	const settle = 20 * time.Millisecond
	deadline := time.Now().Add(d)
	var idleSince time.Time
	for time.Now().Before(deadline) {
		l.mu.Lock()
		closed := l.closed
		idle := len(l.queue) == 0 && !l.writing
		l.mu.Unlock()
		if closed {
			return
		}
		switch {
		case !idle:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = time.Now()
		case time.Since(idleSince) >= settle:
			n, err := unix.IoctlGetInt(l.slaveFd, unix.TIOCINQ)
			if err != nil || n == 0 {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (l *link) writeLoop(rng *rand.Rand) {
	defer close(l.wdone)
	out := newLine(l.baud)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.cond.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		q := l.queue[0]
		b := q.b
		l.queue = l.queue[1:]
		l.queued -= len(b)
		l.writing = true
		chunk := l.chunk
		l.mu.Unlock()
		for len(b) > 0 {
			n := len(b)
			if chunk > 0 {
				n = min(n, 1+rng.IntN(chunk))
			} else if l.baud > 0 {
				n = min(n, 64)
			}
			if out != nil {
				sleepUntil(out.due(q.at, n))
			}
			wrote := time.Now()
			if _, err := l.master.Write(b[:n]); err != nil {
				l.mu.Lock()
				closed := l.closed
				l.writing = false
				l.mu.Unlock()
				if !closed {
					l.log.Warn("write to host", "err", err)
				}
				return
			}
			if out != nil && time.Since(wrote) > out.time(n) {
				// The host did not read: the line held still meanwhile.
				out.stalled(time.Now())
			}
			b = b[n:]
			if chunk > 0 && len(b) > 0 {
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				if out != nil {
					out.stalled(time.Now()) // the gap is the fault's
				}
			}
		}
		l.mu.Lock()
		l.writing = false
		l.mu.Unlock()
	}
}

// readLoop feeds host bytes to the module until the link closes. With
// Baud set, bytes reach the module no faster than the line carries them.
func (l *link) readLoop(s *Sim) {
	buf := make([]byte, 4096)
	in := newLine(l.baud)
	for {
		n, err := l.master.Read(buf)
		if n > 0 {
			if in != nil {
				// The host wrote them a moment ago; they arrive once the
				// line has carried them.
				sleepUntil(in.due(time.Now(), n))
			}
			s.feed(l, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// queuedOutput is output for the host and when the module handed it over.
type queuedOutput struct {
	b  []byte
	at time.Time
}

// line is one direction of a UART at a baud rate, 10 bits a byte (8N1):
// bytes handed to it go out back to back once it is free, at the rate,
// whenever the goroutine that passes them on wakes. Pacing each write
// from the moment that goroutine woke would add every oversleep of a busy
// machine to the line time, a line slower than its baud rate.
type line struct {
	byteTime time.Duration
	free     time.Time // when the last byte handed over has gone out
}

// newLine is a line at baud; nil when baud is 0 (not paced).
func newLine(baud int) *line {
	if baud <= 0 {
		return nil
	}
	return &line{byteTime: 10 * time.Second / time.Duration(baud)}
}

// time is how long n bytes take on the line.
func (l *line) time(n int) time.Duration { return time.Duration(n) * l.byteTime }

// due schedules n bytes handed over at queued and returns when the last
// of them has gone out: they start once both they and the line are there.
func (l *line) due(queued time.Time, n int) time.Time {
	start := l.free
	if queued.After(start) {
		start = queued
	}
	l.free = start.Add(l.time(n))
	return l.free
}

// stalled notes that the line carried nothing until now (the host did not
// read, or a fault held the bytes): what follows goes no faster for it.
func (l *line) stalled(now time.Time) {
	if now.After(l.free) {
		l.free = now
	}
}

// sleepUntil waits until t on the kernel's high-resolution timer, never
// less. The runtime's timers can wake most of a millisecond late, the
// line time of some 80 bytes at 115200 baud, so a line paced by them is
// slower than its rate. It blocks its thread, which only the two pacing
// goroutines of a paced link do, for the line time of one chunk or one
// read at most.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := unix.NsecToTimespec(d.Nanoseconds())
		if err := unix.Nanosleep(&ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
			// Not expected on Linux; the runtime's timer still waits.
			time.Sleep(time.Until(t))
			return
		}
	}
}

// close removes the symlink (if it still points here) and closes both pty
// ends, so the host's reads fail as when a USB device goes away.
func (l *link) close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.cond.Broadcast()
		l.mu.Unlock()
		var errs []error
		if target, rerr := os.Readlink(l.path); rerr == nil && target == l.slaveName {
			if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", l.path, rerr))
			}
		}
		if cerr := l.master.Close(); cerr != nil {
			errs = append(errs, fmt.Errorf("close pty master: %w", cerr))
		}
		if cerr := l.slave.Close(); cerr != nil {
			errs = append(errs, fmt.Errorf("close pty slave: %w", cerr))
		}
		<-l.wdone
		err = errors.Join(errs...)
	})
	return err
}
