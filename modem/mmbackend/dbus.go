package mmbackend

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/simgate/simgate/modem"
)

// ModemManager's D-Bus names (its API reference: the
// org.freedesktop.ModemManager1.* interface descriptions).
const (
	mmService   = "org.freedesktop.ModemManager1"
	mmPath      = dbus.ObjectPath("/org/freedesktop/ModemManager1")
	ifModem     = mmService + ".Modem"
	ifModem3gpp = mmService + ".Modem.Modem3gpp"
	ifMessaging = mmService + ".Modem.Messaging"
	ifSim       = mmService + ".Sim"
	ifSms       = mmService + ".Sms"
	ifProps     = "org.freedesktop.DBus.Properties"
	ifObjMgr    = "org.freedesktop.DBus.ObjectManager"
)

// MMModemState values (Modem.State).
const (
	stateFailed   = -1
	stateLocked   = 2
	stateDisabled = 3
	stateEnabling = 5
	stateEnabled  = 6
)

// MMSmsState and MMSmsPduType values (Sms.State, Sms.PduType).
const (
	smsReceiving = 2
	smsReceived  = 3

	pduDeliver = 1
)

// managedObjects is ObjectManager.GetManagedObjects' answer: object path,
// interface, property.
type managedObjects map[dbus.ObjectPath]map[string]map[string]dbus.Variant

// getManaged lists ModemManager's objects: modems with their interfaces
// and properties, and SIMs.
func getManaged(ctx context.Context, conn *dbus.Conn) (managedObjects, error) {
	var out managedObjects
	err := conn.Object(mmService, mmPath).CallWithContext(ctx, ifObjMgr+".GetManagedObjects", 0).Store(&out)
	if err != nil {
		return nil, fmt.Errorf("list ModemManager's modems: %w", err)
	}
	return out, nil
}

// getAll reads every property of iface on path.
func getAll(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	var out map[string]dbus.Variant
	err := conn.Object(mmService, path).CallWithContext(ctx, ifProps+".GetAll", 0, iface).Store(&out)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", iface, path, err)
	}
	return out, nil
}

// Property readers: a missing or mistyped property reads as the zero
// value, as ModemManager leaves properties it does not know unset.

func str(p map[string]dbus.Variant, k string) string {
	if v, ok := p[k]; ok {
		if s, ok := v.Value().(string); ok {
			return s
		}
	}
	return ""
}

func u32(p map[string]dbus.Variant, k string) uint32 {
	if v, ok := p[k]; ok {
		if n, ok := v.Value().(uint32); ok {
			return n
		}
	}
	return 0
}

func i32(p map[string]dbus.Variant, k string) int32 {
	if v, ok := p[k]; ok {
		if n, ok := v.Value().(int32); ok {
			return n
		}
	}
	return 0
}

func bytesOf(p map[string]dbus.Variant, k string) []byte {
	if v, ok := p[k]; ok {
		if b, ok := v.Value().([]byte); ok {
			return b
		}
	}
	return nil
}

func objPath(p map[string]dbus.Variant, k string) dbus.ObjectPath {
	if v, ok := p[k]; ok {
		if o, ok := v.Value().(dbus.ObjectPath); ok {
			return o
		}
	}
	return ""
}

// signalPercent reads Modem.SignalQuality, a (ub) struct: percent and
// whether it is recent.
func signalPercent(p map[string]dbus.Variant) (uint32, bool) {
	v, ok := p["SignalQuality"]
	if !ok {
		return 0, false
	}
	f, ok := v.Value().([]any)
	if !ok || len(f) != 2 {
		return 0, false
	}
	pct, ok1 := f[0].(uint32)
	recent, ok2 := f[1].(bool)
	return pct, ok1 && ok2 && recent
}

// messageErrors maps ModemManager's SMS errors to the +CMS ERROR codes
// they stand for (27.005 3.2.5), so a failed send reads as it does with
// the AT backend: "+CMS ERROR: 332 (network timeout)".
var messageErrors = map[string]int{
	"MeFailure": 300, "SmsServiceReserved": 301, "NotAllowed": 302, "NotSupported": 303,
	"InvalidPduParameter": 304, "InvalidTextParameter": 305, "SimNotInserted": 310, "SimPin": 311,
	"PhSimPin": 312, "SimFailure": 313, "SimBusy": 314, "SimWrong": 315, "SimPuk": 316,
	"SimPin2": 317, "SimPuk2": 318, "MemoryFailure": 320, "InvalidIndex": 321, "MemoryFull": 322,
	"SmscAddressUnknown": 330, "NoNetwork": 331, "NetworkTimeout": 332, "NoCnmaAckExpected": 340,
	"Unknown": 500,
}

// mapError turns a D-Bus error from ModemManager into the error the AT
// backend would return for the same failure; others are kept, wrapped.
func mapError(err error) error {
	if name, ok := strings.CutPrefix(dbusName(err), mmService+".Error.Message."); ok {
		if code, ok := messageErrors[name]; ok {
			return fmt.Errorf("%w (ModemManager %s)", &modem.CMSError{Code: code}, name)
		}
	}
	return fmt.Errorf("ModemManager: %w", err)
}

// gone reports an error that says ModemManager or the modem object is not
// there (restarting, re-enumerating): nothing was done, trying again later
// may work.
func gone(err error) bool {
	switch dbusName(err) {
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.UnknownObject",
		"org.freedesktop.DBus.Error.UnknownMethod", "org.freedesktop.DBus.Error.NameHasNoOwner":
		return true
	}
	return errors.Is(err, dbus.ErrClosed)
}

func dbusName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	var dp *dbus.Error
	if errors.As(err, &dp) {
		return dp.Name
	}
	return ""
}
