package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// simCache maps ICCIDs to Sim SIDs and back. It is kept durably in
// store.dir/sims.json, so a restart does not look every SIM up again and
// the bridge can address SIMs it resolved while the API answers lookups
// slowly. A SIM's SID never changes, so entries never go stale.
type simCache struct {
	path string
	mu   sync.Mutex
	sid  map[string]string // iccid -> sid
	icc  map[string]string // sid -> iccid
}

func openSimCache(dir string) (*simCache, error) {
	c := &simCache{path: filepath.Join(dir, "sims.json"), sid: map[string]string{}, icc: map[string]string{}}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sim cache: %w", err)
	}
	if err := json.Unmarshal(b, &c.sid); err != nil {
		// A torn or foreign file only costs lookups: start empty.
		c.sid = map[string]string{}
		return c, nil
	}
	for i, s := range c.sid {
		c.icc[s] = i
	}
	return c, nil
}

func (c *simCache) bySim(iccid string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sid[iccid]
	return s, ok
}

func (c *simCache) bySid(sid string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.icc[sid]
	return i, ok
}

// put records a pair and writes the file through a rename, so a crash
// leaves either the old or the new file.
func (c *simCache) put(iccid, sid string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sid[iccid] == sid {
		return nil
	}
	c.sid[iccid], c.icc[sid] = sid, iccid
	b, err := json.Marshal(c.sid)
	if err != nil {
		return fmt.Errorf("write sim cache: %w", err)
	}
	tmp := c.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write sim cache: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(fmt.Errorf("write sim cache: %w", err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("write sim cache: %w", err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write sim cache: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("write sim cache: %w", err)
	}
	return nil
}
