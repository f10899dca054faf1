package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Files in store.dir besides queue.db.
const (
	dbName = "queue.db"
	// hwmName holds the id of the last transaction whose commit a caller
	// was told of. It lives apart from queue.db so that damage to the
	// database cannot take it along: a queue.db whose transaction id is
	// below it has lost committed work (a bad meta page rolls bbolt back
	// to the previous transaction without a word).
	hwmName = "queue.txid"
	// A damaged queue.db is renamed to queue.db.corrupt-<UTC time> and
	// left for a person to inspect.
	corruptInfix = ".corrupt-"
)

// StoreDamage describes a damaged queue.db found at open.
type StoreDamage struct {
	// Reason says what was wrong, for a person.
	Reason string
	// SetAside is the path the damaged file was renamed to; empty when
	// there was no file to keep (a missing queue.db).
	SetAside string
	// Salvaged counts the records copied from the damaged file into the
	// new one.
	Salvaged int
}

// hwmFile is the durable high-water mark of committed transactions.
type hwmFile struct {
	f *os.File
	// sync makes the mark durable; nil is f.Sync. Tests hold it.
	sync func(*os.File) error
}

// The record is the transaction id and a CRC-32 of it, so a torn or
// foreign file is told from a real mark.
const hwmSize = 12

func encodeHWM(txid uint64) []byte {
	b := make([]byte, hwmSize)
	binary.BigEndian.PutUint64(b, txid)
	binary.BigEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[:8]))
	return b
}

// decodeHWM reads a mark; ok is false for anything that is not one.
func decodeHWM(b []byte) (txid uint64, ok bool) {
	if len(b) != hwmSize || crc32.ChecksumIEEE(b[:8]) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

func openHWM(dir string) (*hwmFile, uint64, bool, error) {
	path := filepath.Join(dir, hwmName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, false, fmt.Errorf("open %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, hwmSize+1))
	if err != nil {
		return nil, 0, false, errors.Join(fmt.Errorf("read %s: %w", path, err), f.Close())
	}
	txid, ok := decodeHWM(b)
	return &hwmFile{f: f}, txid, ok || len(b) == 0, nil
}

// set records txid, durably when sync is set; it must return before a
// writer is told its transaction committed. A mark left unsynced can only
// be lower than the file after a power cut, never higher, so it never
// makes a sound file look damaged.
func (h *hwmFile) set(txid uint64, sync bool) error {
	if _, err := h.f.WriteAt(encodeHWM(txid), 0); err != nil {
		return fmt.Errorf("write %s: %w", hwmName, err)
	}
	if !sync {
		return nil
	}
	syncFile := (*os.File).Sync
	if h.sync != nil {
		syncFile = h.sync
	}
	if err := syncFile(h.f); err != nil {
		return fmt.Errorf("sync %s: %w", hwmName, err)
	}
	return nil
}

func (h *hwmFile) close() error { return h.f.Close() }

// isDamage tells bbolt's reports of a file that is not a sound database
// from other failures to open (permissions, a lock held elsewhere).
func isDamage(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping)
}

// boltOptions are the options every open of queue.db uses.
func boltOptions(readOnly bool) *bolt.Options {
	return &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType, ReadOnly: readOnly}
}

// errDamaged carries why a file is not usable.
type errDamaged struct{ reason string }

func (e *errDamaged) Error() string { return e.reason }

// openChecked opens path and checks it: bbolt's own consistency check and
// its transaction id against the high-water mark. A panic inside bbolt, as
// a random page over live data causes, is a damaged file too. Damage is
// returned as *errDamaged with the database closed.
func openChecked(path string, hwm uint64) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The half-opened handle cannot be closed; the file is
			// renamed and never used again by this process.
			db, err = nil, &errDamaged{fmt.Sprintf("bbolt panicked reading it: %v", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, boltOptions(false))
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("locked by another process (is another simgate running?): %w", err)
	case err != nil && isDamage(err):
		return nil, &errDamaged{fmt.Sprintf("not a sound database: %v", err)}
	case err != nil:
		return nil, err
	}
	var problems []string
	var txid uint64
	verr := db.View(func(tx *bolt.Tx) error {
		txid = uint64(tx.ID())
		for e := range tx.Check() {
			if len(problems) < 5 {
				problems = append(problems, e.Error())
			}
		}
		return nil
	})
	if verr != nil {
		problems = append(problems, verr.Error())
	}
	if len(problems) == 0 && hwm > txid {
		problems = append(problems, fmt.Sprintf("its last transaction is %d but transaction %d was committed: a damaged meta page rolled it back", txid, hwm))
	}
	if len(problems) > 0 {
		return nil, errors.Join(&errDamaged{"consistency check failed: " + strings.Join(problems, "; ")}, db.Close())
	}
	return db, nil
}

// setAside renames a damaged file out of the way, keeping it.
func setAside(path string, now time.Time) (string, error) {
	aside := path + corruptInfix + now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s%s%s-%d", path, corruptInfix, now.UTC().Format("20060102T150405Z"), i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("set aside damaged %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return aside, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// setAsideFiles lists damaged files left in dir, newest last.
func setAsideFiles(dir string) []string {
	m, err := filepath.Glob(filepath.Join(dir, dbName+corruptInfix+"*"))
	if err != nil {
		// Only a malformed pattern fails, and this one is fixed.
		return nil
	}
	sort.Strings(m)
	return m
}

// salvage copies what can still be read from a damaged file into db, one
// bucket at a time, keeping keys and sequences, so that a damaged page
// costs the records on it rather than the whole queue. A record that was
// read wrongly is caught by the decoders when it is used, and set aside.
func salvage(from string, db *bolt.DB, log *slog.Logger) int {
	src, err := openForSalvage(from)
	if err != nil {
		log.Warn("nothing salvaged from the damaged queue", "file", from, "err", err)
		return 0
	}
	defer func() {
		if err := src.Close(); err != nil {
			log.Warn("close damaged queue", "file", from, "err", err)
		}
	}()
	total := 0
	for _, name := range allBuckets {
		recs, seq, rerr := readBucket(src, name)
		if rerr != nil {
			log.Warn("damaged queue: bucket read in part", "bucket", string(name), "records", len(recs), "err", rerr)
		}
		if len(recs) == 0 && seq == 0 {
			continue
		}
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			for _, kv := range recs {
				if err := b.Put(kv[0], kv[1]); err != nil {
					return fmt.Errorf("salvage %s: %w", name, err)
				}
			}
			if seq > b.Sequence() {
				return b.SetSequence(seq)
			}
			return nil
		})
		if err != nil {
			log.Warn("salvage failed", "bucket", string(name), "err", err)
			continue
		}
		total += len(recs)
	}
	return total
}

func openForSalvage(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	return bolt.Open(path, 0o400, boltOptions(true))
}

// readBucket reads what it can of one bucket; a panic ends the read but
// keeps what came before it.
func readBucket(db *bolt.DB, name []byte) (recs [][2][]byte, seq uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt panicked: %v", r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		seq = b.Sequence()
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				continue // a nested bucket: the queue has none
			}
			recs = append(recs, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		return nil
	})
	return recs, seq, err
}
