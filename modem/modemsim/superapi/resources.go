package superapi

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// The resources as the API shows them: the fields and names of the
// OpenAPI document's schemas (supersim.v1.*). A nullable field is a
// pointer; nil is JSON null.

// SmsCommand is the SmsCommand resource.
type SmsCommand struct {
	Sid         string    `json:"sid"`
	AccountSid  string    `json:"account_sid"`
	SimSid      string    `json:"sim_sid"`
	Payload     string    `json:"payload"`
	Status      string    `json:"status"`
	Direction   string    `json:"direction"`
	DateCreated time.Time `json:"date_created"`
	DateUpdated time.Time `json:"date_updated"`
	URL         string    `json:"url"`
}

// IpCommand is the IpCommand resource.
type IpCommand struct {
	Sid         string    `json:"sid"`
	AccountSid  string    `json:"account_sid"`
	SimSid      string    `json:"sim_sid"`
	SimIccid    string    `json:"sim_iccid"`
	Status      string    `json:"status"`
	Direction   string    `json:"direction"`
	DeviceIP    *string   `json:"device_ip"`
	DevicePort  int       `json:"device_port"`
	PayloadType string    `json:"payload_type"`
	Payload     string    `json:"payload"`
	DateCreated time.Time `json:"date_created"`
	DateUpdated time.Time `json:"date_updated"`
	URL         string    `json:"url"`
}

// Sim is the Sim resource.
type Sim struct {
	Sid         string            `json:"sid"`
	UniqueName  *string           `json:"unique_name"`
	AccountSid  string            `json:"account_sid"`
	Iccid       string            `json:"iccid"`
	Status      string            `json:"status"`
	FleetSid    *string           `json:"fleet_sid"`
	DateCreated time.Time         `json:"date_created"`
	DateUpdated time.Time         `json:"date_updated"`
	URL         string            `json:"url"`
	Links       map[string]string `json:"links"`
}

// Fleet is the Fleet resource.
type Fleet struct {
	AccountSid              string    `json:"account_sid"`
	Sid                     string    `json:"sid"`
	UniqueName              *string   `json:"unique_name"`
	DateCreated             time.Time `json:"date_created"`
	DateUpdated             time.Time `json:"date_updated"`
	URL                     string    `json:"url"`
	DataEnabled             bool      `json:"data_enabled"`
	DataLimit               int       `json:"data_limit"`
	DataMetering            string    `json:"data_metering"`
	SmsCommandsEnabled      bool      `json:"sms_commands_enabled"`
	SmsCommandsURL          *string   `json:"sms_commands_url"`
	SmsCommandsMethod       string    `json:"sms_commands_method"`
	NetworkAccessProfileSid string    `json:"network_access_profile_sid"`
	IPCommandsURL           *string   `json:"ip_commands_url"`
	IPCommandsMethod        string    `json:"ip_commands_method"`
}

// Network is the Network resource.
type Network struct {
	Sid          string       `json:"sid"`
	FriendlyName string       `json:"friendly_name"`
	URL          string       `json:"url"`
	IsoCountry   string       `json:"iso_country"`
	Identifiers  []Identifier `json:"identifiers"`
}

// Identifier is one MCC-MNC of a Network.
type Identifier struct {
	Mcc string `json:"mcc"`
	Mnc string `json:"mnc"`
}

// NetworkAccessProfile is the NetworkAccessProfile resource.
type NetworkAccessProfile struct {
	Sid         string            `json:"sid"`
	UniqueName  *string           `json:"unique_name"`
	AccountSid  string            `json:"account_sid"`
	DateCreated time.Time         `json:"date_created"`
	DateUpdated time.Time         `json:"date_updated"`
	URL         string            `json:"url"`
	Links       map[string]string `json:"links"`
}

// UsageRecord is the UsageRecord resource. The Sid fields and IsoCountry
// are set only when the query filters or groups by them.
type UsageRecord struct {
	AccountSid      string  `json:"account_sid"`
	SimSid          *string `json:"sim_sid"`
	NetworkSid      *string `json:"network_sid"`
	FleetSid        *string `json:"fleet_sid"`
	IsoCountry      *string `json:"iso_country"`
	Period          Period  `json:"period"`
	DataUpload      int64   `json:"data_upload"`
	DataDownload    int64   `json:"data_download"`
	DataTotal       int64   `json:"data_total"`
	DataTotalBilled float64 `json:"data_total_billed"`
	BilledUnit      *string `json:"billed_unit"`
}

// Period is the time span of a UsageRecord, end exclusive.
type Period struct {
	StartTime time.Time `json:"start_time"`
	EndTime   time.Time `json:"end_time"`
}

// Statuses and directions, as the OpenAPI document's enums spell them.
const (
	StatusQueued    = "queued"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusReceived  = "received"
	StatusFailed    = "failed"

	DirectionToSim   = "to_sim"
	DirectionFromSim = "from_sim"

	SimNew       = "new"
	SimReady     = "ready"
	SimActive    = "active"
	SimInactive  = "inactive"
	SimScheduled = "scheduled"
)

// newSid returns a SID: the two-letter prefix of its resource type (HC SMS
// Command, HG IP Command, HS Sim, HF Fleet, HA Network Access Profile, HW
// Network, AC Account) and 32 lowercase hex digits.
func newSid(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; a SID must never repeat.
		panic("superapi: crypto/rand: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

// isSid tells whether s has the shape of a SID with the given prefix.
func isSid(s, prefix string) bool {
	if len(s) != 34 || s[:2] != prefix {
		return false
	}
	for _, c := range s[2:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }
