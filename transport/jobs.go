package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Jobs and publications are the queue's general-purpose half, used by the
// cloud bridge (package cloud): its requests are not modem requests but API
// calls, ordered per SIM rather than per channel, and what it publishes is
// built by the bridge itself. They share the queue's group commit, its
// bound (store.max_messages counts jobs) and its memory of completed ids.
//
// A job lives in a lane: lanes are independent FIFOs, so one SIM whose API
// calls are being retried does not hold up the others. A publication is a
// ready MQTT message (topic and payload), kept until the broker acknowledged
// it; one with a Key is stored at most once within the dedup window, which
// makes "once per status change" a property of the store.

// Job is one unit of work for a lane.
type Job struct {
	Lane string `json:"lane"`
	// ID names the job for deduplication: a job whose id is queued or was
	// finished within the dedup window is not queued again.
	ID   string `json:"id"`
	Body []byte `json:"body"`
}

// StoredJob is a Job as read back from the queue.
type StoredJob struct {
	Job
	key []byte
}

// JobOutcome is what AddJobs did with one job.
type JobOutcome int

// Outcomes of AddJobs.
const (
	JobQueued    JobOutcome = iota // stored
	JobDuplicate                   // its id is queued or was finished recently: dropped
	JobFull                        // refused: store.max_messages reached
)

// Publication is one MQTT message waiting for the broker's PUBACK.
type Publication struct {
	// Key, when set, deduplicates: a publication whose key was stored
	// within the dedup window is dropped.
	Key     string `json:"key,omitempty"`
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	Retain  bool   `json:"retain,omitempty"`
}

// StoredPublication is a Publication as read back from the queue.
type StoredPublication struct {
	Publication
	key []byte
	err error
}

// Err is set when the stored record could not be decoded.
func (p StoredPublication) Err() error { return p.err }

// Position identifies the publication for PublicationsAfter.
func (p StoredPublication) Position() []byte { return p.key }

var (
	bucketJobs    = []byte("jobs")    // lane NUL seq(8) -> Job JSON
	bucketJobIDs  = []byte("job_ids") // id -> jobs key of jobs still queued
	bucketPubs    = []byte("pubs")    // seq -> Publication JSON
	jobBuckets    = [][]byte{bucketJobs, bucketJobIDs, bucketPubs}
	errLaneName   = errors.New("job lane must be non-empty and free of NUL")
	errJobNoID    = errors.New("job has no id")
	errPubNoTopic = errors.New("publication has no topic")
)

// Kinds of remembered ids for jobs and publication keys.
const (
	doneJob = 'j'
	donePub = 'p'
)

func jobKey(lane string, seq uint64) []byte {
	return append(append([]byte(lane), 0), seqKey(seq)...)
}

func laneOf(k []byte) string {
	if i := bytes.IndexByte(k, 0); i >= 0 {
		return string(k[:i])
	}
	return string(k)
}

// AddJobs stores jobs, and pubs alongside them, in one commit, in the order
// given. Only after it returns may the jobs be acknowledged to whoever sent
// them. pubs are typically the failed results of requests refused before
// they became jobs.
func (q *Queue) AddJobs(ctx context.Context, jobs []Job, pubs []Publication) ([]JobOutcome, error) {
	for _, j := range jobs {
		if j.Lane == "" || strings.IndexByte(j.Lane, 0) >= 0 {
			return nil, fmt.Errorf("add jobs: %w", errLaneName)
		}
		if j.ID == "" {
			return nil, fmt.Errorf("add jobs: %w", errJobNoID)
		}
	}
	out := make([]JobOutcome, len(jobs))
	full := false
	// Taken from outside: acknowledged to the broker once this returns.
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		full = false
		b, ids := tx.Bucket(bucketJobs), tx.Bucket(bucketJobIDs)
		for i, j := range jobs {
			if ids.Get([]byte(j.ID)) != nil || isDone(tx, doneJob, j.ID) {
				out[i] = JobDuplicate
				continue
			}
			if q.storeFull.Load() {
				out[i] = JobFull // the disk is full; store_full said so
				continue
			}
			if c.requests() >= q.cfg.MaxRequests {
				out[i], full = JobFull, true
				continue
			}
			val, err := json.Marshal(j)
			if err != nil {
				return fmt.Errorf("encode job %s: %w", j.ID, err)
			}
			seq, err := b.NextSequence()
			if err != nil {
				return fmt.Errorf("sequence: %w", err)
			}
			k := jobKey(j.Lane, seq)
			if err := b.Put(k, val); err != nil {
				return fmt.Errorf("store job %s: %w", j.ID, err)
			}
			if err := ids.Put([]byte(j.ID), k); err != nil {
				return fmt.Errorf("index job %s: %w", j.ID, err)
			}
			c.jobs++
			c.addedJob = true
			out[i] = JobQueued
		}
		return q.putPubs(tx, c, pubs)
	})
	if full {
		q.fullEvent(dirRequests, "requests")
	}
	if err != nil {
		return nil, fmt.Errorf("add jobs: %w", err)
	}
	return out, nil
}

// putPubs stores publications, dropping those whose key was seen.
func (q *Queue) putPubs(tx *bolt.Tx, c *counts, pubs []Publication) error {
	b := tx.Bucket(bucketPubs)
	for _, p := range pubs {
		if p.Topic == "" {
			return errPubNoTopic
		}
		if p.Key != "" {
			if isDone(tx, donePub, p.Key) {
				continue
			}
			if err := q.markDone(tx, c, donePub, p.Key); err != nil {
				return err
			}
		}
		val, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode publication: %w", err)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("sequence: %w", err)
		}
		if err := b.Put(seqKey(seq), val); err != nil {
			return fmt.Errorf("store publication: %w", err)
		}
		c.pubs++
		c.addedPub = true
	}
	return nil
}

// JobLanes lists the lanes that hold jobs, in the order of their keys.
func (q *Queue) JobLanes() ([]string, error) {
	var out []string
	err := q.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketJobs).Cursor()
		for k, _ := cur.First(); k != nil; {
			lane := laneOf(k)
			out = append(out, lane)
			// Skip the rest of this lane: its keys sort after lane NUL.
			k, _ = cur.Seek(append([]byte(lane), 1))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("job lanes: %w", err)
	}
	return out, nil
}

// HeadJob returns the oldest job of lane, if any. A record that cannot be
// decoded is set aside in the dead bucket and the next one returned.
func (q *Queue) HeadJob(ctx context.Context, lane string) (StoredJob, bool, error) {
	for {
		var sj StoredJob
		var found bool
		var bad error
		prefix := append([]byte(lane), 0)
		err := q.db.View(func(tx *bolt.Tx) error {
			k, v := tx.Bucket(bucketJobs).Cursor().Seek(prefix)
			if k == nil || !bytes.HasPrefix(k, prefix) {
				return nil
			}
			found = true
			sj.key = append([]byte(nil), k...)
			if err := json.Unmarshal(v, &sj.Job); err != nil {
				bad = err
			} else if sj.ID == "" {
				bad = errJobNoID
			}
			return nil
		})
		if err != nil {
			return StoredJob{}, false, fmt.Errorf("head job: %w", err)
		}
		if bad == nil || !found {
			return sj, found, nil
		}
		if err := q.quarantineJob(ctx, sj.key, bad); err != nil {
			return StoredJob{}, false, err
		}
	}
}

func (q *Queue) quarantineJob(ctx context.Context, key []byte, reason error) error {
	// The id index keeps the id, so a copy of the bad job is not queued
	// again while the record waits in the dead bucket.
	return q.quarantine(ctx, bucketJobs, key, reason)
}

// UpdateJob replaces the body of a queued job, keeping its place: the
// bridge notes there that an API call is under way before making it.
func (q *Queue) UpdateJob(ctx context.Context, sj StoredJob, body []byte) error {
	sj.Body = body
	val, err := json.Marshal(sj.Job)
	if err != nil {
		return fmt.Errorf("update job %s: %w", sj.ID, err)
	}
	// The API call that follows is an effect outside: the note must be
	// durable first, as work taken from outside is.
	err = q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(bucketJobs)
		if b.Get(sj.key) == nil {
			return nil
		}
		return b.Put(sj.key, val)
	})
	if err != nil {
		return fmt.Errorf("update job %s: %w", sj.ID, err)
	}
	return nil
}

// FinishJob removes a job, remembers its id, and stores what it produced in
// one commit: from then on only the publications remain to be delivered.
func (q *Queue) FinishJob(ctx context.Context, sj StoredJob, pubs []Publication) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(bucketJobs)
		if b.Get(sj.key) == nil {
			return nil
		}
		if err := b.Delete(sj.key); err != nil {
			return fmt.Errorf("delete job: %w", err)
		}
		c.jobs--
		if err := tx.Bucket(bucketJobIDs).Delete([]byte(sj.ID)); err != nil {
			return fmt.Errorf("unindex job: %w", err)
		}
		if err := q.markDone(tx, c, doneJob, sj.ID); err != nil {
			return err
		}
		return q.putPubs(tx, c, pubs)
	})
	if err != nil {
		return fmt.Errorf("finish job %s: %w", sj.ID, err)
	}
	return nil
}

// AddPublications stores publications for the broker in one commit. The
// bridge answers a webhook 200 only after it returns, so it is work taken
// from outside.
func (q *Queue) AddPublications(ctx context.Context, pubs []Publication) error {
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		return q.putPubs(tx, c, pubs)
	})
	if err != nil {
		return fmt.Errorf("add publications: %w", err)
	}
	return nil
}

// Seen reports whether a publication with key was stored within the dedup
// window.
func (q *Queue) Seen(key string) (bool, error) {
	seen := false
	err := q.db.View(func(tx *bolt.Tx) error {
		seen = isDone(tx, donePub, key)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("seen: %w", err)
	}
	return seen, nil
}

// PublicationsAfter returns up to n publications in commit order, following
// the one at position after (from the front when after is nil).
func (q *Queue) PublicationsAfter(after []byte, n int) ([]StoredPublication, error) {
	var out []StoredPublication
	err := q.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketPubs).Cursor()
		for k, v := seekAfter(cur, after); k != nil && len(out) < n; k, v = cur.Next() {
			sp := StoredPublication{key: append([]byte(nil), k...)}
			if err := json.Unmarshal(v, &sp.Publication); err != nil {
				sp.err = fmt.Errorf("decode stored publication: %w", err)
			} else if sp.Topic == "" {
				sp.err = fmt.Errorf("decode stored publication: %w", errPubNoTopic)
			}
			out = append(out, sp)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read publications: %w", err)
	}
	return out, nil
}

// AckPublications removes delivered publications.
func (q *Queue) AckPublications(ctx context.Context, items []StoredPublication) error {
	err := q.do(ctx, func(tx *bolt.Tx, c *counts) error {
		return deleteStored(tx.Bucket(bucketPubs), items, func(it StoredPublication) []byte { return it.key }, "publication", &c.pubs)
	})
	if err != nil {
		return fmt.Errorf("ack publications: %w", err)
	}
	return nil
}

// SetAsidePublication moves an unreadable publication to the dead bucket.
func (q *Queue) SetAsidePublication(ctx context.Context, sp StoredPublication) error {
	return q.quarantine(ctx, bucketPubs, sp.key, sp.err)
}

// JobSignal receives a value after a commit that added jobs.
func (q *Queue) JobSignal() <-chan struct{} { return q.sigJob }

// PublicationSignal receives a value after a commit that added publications.
func (q *Queue) PublicationSignal() <-chan struct{} { return q.sigPub }
