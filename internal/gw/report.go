package gw

import (
	"context"
	"time"
)

// DeliveryReport is one SMS-STATUS-REPORT.
type DeliveryReport struct {
	// Reference is the TP-MR of the SMS reported on (0..255).
	Reference int
	// Recipient is the TP-RA, the number the SMS was sent to.
	Recipient string
	// Status is the TP-ST code (3GPP TS 23.040 9.2.3.15).
	Status int
	// Delivered is set for TP-ST 0x00..0x1F: the recipient has the SMS.
	Delivered bool
	// Error says why a failed SMS was not delivered; "" when delivered.
	Error string
	// DischargedAt is the TP-DT: when the SMS was delivered or given up.
	DischargedAt time.Time
}

// Final reports whether the report ends the SMS's story: TP-ST 0x20..0x3F
// says the service centre is still trying, and another report follows.
func (r DeliveryReport) Final() bool { return r.Status < 0x20 || r.Status >= 0x40 }

// ReportSink is implemented by a Sink that takes delivery reports.
// PutReport returns once the report is durable.
type ReportSink interface {
	PutReport(ctx context.Context, r DeliveryReport) error
}
