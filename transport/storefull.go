package transport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simgate/simgate/internal/gw"

	"golang.org/x/sys/unix"
)

// ErrStoreFull is returned for new work refused while the disk under
// store.dir is full. It wraps ErrQueueFull, so the modem leaves a refused SMS
// on the SIM as it does when the queue is at its bound.
var ErrStoreFull = fmt.Errorf("%w: the disk under store.dir is full", ErrQueueFull)

// DefaultReserveBytes is the space held back in store.dir for removals
// (at most an eighth of the file system).
// bbolt writes every change to fresh pages, deleting included, so a queue on
// a full disk could no longer remove what the broker has acknowledged: it
// would never shrink, and everything would be sent again after a restart.
const DefaultReserveBytes = 4 << 20

// reserveName is the file that holds the reserve: blocks really allocated,
// given back to the file system the moment a write fails for space.
const reserveName = "queue.reserve"

// probeEvery is how often a full store looks for room again.
const probeEvery = time.Second

// isNoSpace tells a write that failed for lack of space. bbolt passes some
// such errors on as text only.
func isNoSpace(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "no space left on device")
}

// reserve is the space held back, owned by the writer goroutine after open.
type reserve struct {
	path string
	size int64
}

// fill allocates the reserve file. On a file system without fallocate it
// writes zeros instead, which allocates as well.
func (r *reserve) fill() error {
	if r.size <= 0 {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, r.size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = writeZeros(f, r.size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A reserve that is only partly there is no reserve; what it got
		// goes back to the disk.
		return errors.Join(fmt.Errorf("reserve %d bytes in %s: %w", r.size, filepath.Dir(r.path), err), r.release())
	}
	return nil
}

func writeZeros(f *os.File, n int64) error {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < n; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), n-off)]
		if _, err := f.WriteAt(chunk, off); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// release gives the reserve back to the file system.
func (r *reserve) release() error {
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release reserve: %w", err)
	}
	return nil
}

// freeBytes is what the file system under dir has left for this user.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// noSpace is called by the writer when a commit failed for space: the
// reserve is given back so removals can go on, and new work is refused
// until there is room for the reserve again.
func (q *Queue) noSpace(err error) {
	if q.storeFull.Load() {
		return
	}
	q.storeFull.Store(true)
	q.lastProbe = time.Now()
	released := int64(0)
	if !q.reserveMissing {
		released = q.reserve.size
	}
	q.reserveMissing = true
	rerr := q.reserve.release()
	q.log.Error("store full: the disk under store.dir has no space; new messages and requests are refused, deliveries go on",
		"dir", q.cfg.Dir, "err", err, "reserve_released", released, "release_err", rerr)
	q.fullNotice()
}

// room is the space new pages can take: what the file system has left and
// the free pages inside queue.db, which bbolt reuses before it grows the
// file.
func (q *Queue) room() (int64, error) {
	free, err := freeBytes(q.cfg.Dir)
	if err != nil {
		return 0, err
	}
	return free + int64(q.db.Stats().FreeAlloc), nil
}

// probeSpace runs on the writer before each commit. While the store is
// full it looks for room, at most once per probeEvery: the reserve is taken
// back once the file system has room for it, and new work is accepted
// again once there is room for the reserve twice over, counting the free
// pages that deliveries left inside queue.db (a file bbolt never shrinks:
// on a disk it filled, the reserve may not fit again until the file's own
// free pages are used up). While the reserve is missing, new work stops as
// soon as less than the reserve is left, so removals always have room.
func (q *Queue) probeSpace() {
	full := q.storeFull.Load()
	if !full && !q.reserveMissing {
		return
	}
	if !full {
		// Without a reserve, every commit checks that one is left.
		room, err := q.room()
		if err != nil || room >= q.reserve.size {
			return
		}
		q.storeFull.Store(true)
		q.lastProbe = time.Now()
		q.log.Error("store full: less than the reserve is left on the disk under store.dir; new messages and requests are refused, deliveries go on",
			"dir", q.cfg.Dir, "room_bytes", room, "reserve_bytes", q.reserve.size)
		q.fullNotice()
		return
	}
	if time.Since(q.lastProbe) < probeEvery {
		return
	}
	q.lastProbe = time.Now()
	free, err := freeBytes(q.cfg.Dir)
	if err != nil {
		q.log.Warn("cannot measure free space", "err", err)
		return
	}
	if q.reserveMissing && free >= 2*q.reserve.size {
		if err := q.reserve.fill(); err == nil {
			q.reserveMissing = false
		}
	}
	room, err := q.room()
	if err != nil {
		return
	}
	if !q.reserveMissing || room >= 2*q.reserve.size {
		q.storeFull.Store(false)
		q.log.Info("store has room again: accepting new messages and requests", "room_bytes", room, "reserve_restored", !q.reserveMissing)
		q.stateChanged()
	}
}

// fullNotice raises store_full and refreshes status.
func (q *Queue) fullNotice() {
	q.event(gw.EventStoreFull, fmt.Sprintf("the disk under store.dir (%s) is full: new messages stay on the SIM and new requests fail until space is freed; queued ones are still delivered", q.cfg.Dir),
		map[string]any{"dir": q.cfg.Dir})
	q.stateChanged()
}

// reserveSize is the reserve for a file system: at most an eighth of it,
// so a small disk still has room for work.
func reserveSize(dir string, want int64) int64 {
	var st unix.Statfs_t
	if want <= 0 || unix.Statfs(dir, &st) != nil {
		return max(want, 0)
	}
	return min(want, int64(st.Blocks)*int64(st.Bsize)/8)
}

// SetStateHandler sets fn to be called when StoreFull or StoreCorrupt in
// Stats change, so P/status follows at once. It must not block.
func (q *Queue) SetStateHandler(fn func()) {
	if fn == nil {
		q.onState.Store(nil)
		return
	}
	q.onState.Store(&fn)
}

func (q *Queue) stateChanged() {
	if fn := q.onState.Load(); fn != nil {
		(*fn)()
	}
}
