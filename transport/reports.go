package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/simgate/simgate/internal/gw"

	bolt "go.etcd.io/bbolt"
)

// Delivery reports. When an SMS request is sent, the queue remembers which
// request its message reference belongs to, in the same transaction that
// records the "sent" result, so the mapping survives a restart as the
// result does. A report for that reference becomes a second result on
// P/sms/out/result. References are one byte (0..255) and the module
// counts them round: a newer SMS with the same reference replaces the
// older one's entry, so the bucket never holds more than 256 entries and
// a report that never comes costs nothing.

var bucketReports = []byte("reports") // reference (decimal) -> pendingReport JSON

// pendingReport is a sent SMS waiting for its delivery report.
type pendingReport struct {
	ID string `json:"id"`
}

func reportKey(ref int) []byte { return []byte(strconv.Itoa(ref)) }

// rememberReport records the request a "sent" SMS result belongs to.
func rememberReport(tx *bolt.Tx, r Result) error {
	if r.Channel != gw.ChannelSMS || r.Status != StatusSent || r.Reference == nil || r.Report {
		return nil
	}
	val, err := json.Marshal(pendingReport{ID: r.ID})
	if err != nil {
		return fmt.Errorf("encode report mapping %s: %w", r.ID, err)
	}
	if err := tx.Bucket(bucketReports).Put(reportKey(*r.Reference), val); err != nil {
		return fmt.Errorf("store report mapping %s: %w", r.ID, err)
	}
	return nil
}

var _ gw.ReportSink = (*Queue)(nil)

// PutReport turns a delivery report into a second result for the request
// whose SMS had its reference. A report no request is waiting for (sent
// before the mapping was kept, or already reported) is dropped: there is
// no id to publish it under.
func (q *Queue) PutReport(ctx context.Context, rep gw.DeliveryReport) error {
	found := ""
	err := q.doTaken(ctx, func(tx *bolt.Tx, c *counts) error {
		b := tx.Bucket(bucketReports)
		k := reportKey(rep.Reference)
		v := b.Get(k)
		if v == nil {
			return nil
		}
		var p pendingReport
		if err := json.Unmarshal(v, &p); err != nil || p.ID == "" {
			// Unreadable: nothing to publish under; drop the entry.
			return b.Delete(k)
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("remove report mapping: %w", err)
		}
		ref := rep.Reference
		res := Result{ID: p.ID, Channel: gw.ChannelSMS, Status: StatusDelivered, Reference: &ref, Report: true}
		if !rep.Delivered {
			res.Status, res.Error = StatusFailed, rep.Error
		}
		found = p.ID
		return q.putResult(tx, c, res)
	})
	if err != nil {
		return fmt.Errorf("put delivery report for reference %d: %w", rep.Reference, err)
	}
	if found == "" {
		q.log.Info("delivery report for an SMS no request is waiting for", "reference", rep.Reference, "to", rep.Recipient)
	}
	return nil
}
