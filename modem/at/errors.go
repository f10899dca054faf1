package at

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/warthog618/modem/info"
)

// Errors a command can end with besides a modem error.
var (
	// ErrTimeout is returned when a command got no final result within its
	// timeout. The engine then resynchronises before the next command.
	ErrTimeout = errors.New("no final result before the command's timeout")
	// ErrClosed is returned for commands issued to, or interrupted by, a
	// closed engine or a port that failed.
	ErrClosed = errors.New("AT engine closed")
	// ErrReset is returned for a command interrupted by the module
	// announcing a boot (Config.IsReset): it restarted and will never
	// answer the command. The engine resynchronises before the next one.
	ErrReset = errors.New("the modem restarted while the command ran")
	// ErrError is the plain "ERROR" final result (no code given).
	ErrError error = &ResultError{Line: "ERROR"}
)

// OpError is an error from one operation on the modem. Its message starts
// with the operation, e.g. "read +CMGR=5: +CMS ERROR: 321 (invalid memory
// index)".
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the underlying error, so errors.Is and errors.As see
// CMSError, CMEError, ErrTimeout and context errors through an OpError.
func (e *OpError) Unwrap() error { return e.Err }

// CMEError is a "+CME ERROR: <n>" final result (27.007 mobile equipment
// errors). Code is -1 when the modem answered with text instead of a number.
type CMEError struct {
	Code int
	Text string // the modem's own text when it gave one
}

func (e *CMEError) Error() string {
	return formatCode("+CME ERROR", e.Code, e.Text, cmeReasons)
}

// CMSError is a "+CMS ERROR: <n>" final result (27.005 message service
// errors, and 24.011/23.040 network causes below 256). Code is -1 when the
// modem answered with text instead of a number.
type CMSError struct {
	Code int
	Text string
}

func (e *CMSError) Error() string {
	return formatCode("+CMS ERROR", e.Code, e.Text, cmsReasons)
}

// Reason is the readable meaning of the code, or "" when it is not known.
func (e *CMSError) Reason() string { return reason(e.Code, e.Text, cmsReasons) }

// Reason is the readable meaning of the code, or "" when it is not known.
func (e *CMEError) Reason() string { return reason(e.Code, e.Text, cmeReasons) }

func reason(code int, text string, table map[int]string) string {
	if code < 0 {
		return text
	}
	return table[code]
}

func formatCode(kind string, code int, text string, table map[int]string) string {
	if code < 0 {
		return kind + ": " + text
	}
	if r := table[code]; r != "" {
		return fmt.Sprintf("%s: %d (%s)", kind, code, r)
	}
	return fmt.Sprintf("%s: %d", kind, code)
}

// parseFinalError turns an error final result line into its error.
func parseFinalError(line string) error {
	for _, kind := range []string{"+CME ERROR", "+CMS ERROR"} {
		if !info.HasPrefix(line, kind) {
			continue
		}
		rest := strings.TrimSpace(info.TrimPrefix(line, kind))
		code, err := strconv.Atoi(rest)
		if err != nil {
			code = -1
		}
		if kind == "+CME ERROR" {
			return &CMEError{Code: code, Text: rest}
		}
		return &CMSError{Code: code, Text: rest}
	}
	return ErrError
}

// cmsReasons are 27.005 §3.2.5 codes and the 24.011 / 23.040 network causes
// a modem passes through for a failed AT+CMGS.
var cmsReasons = map[int]string{
	1:   "unassigned number",
	8:   "operator determined barring",
	10:  "call barred",
	21:  "short message transfer rejected",
	27:  "destination out of service",
	28:  "unidentified subscriber",
	29:  "facility rejected",
	30:  "unknown subscriber",
	38:  "network out of order",
	41:  "temporary failure",
	42:  "congestion",
	47:  "resources unavailable",
	50:  "requested facility not subscribed",
	69:  "requested facility not implemented",
	81:  "invalid short message transfer reference value",
	95:  "invalid message",
	96:  "invalid mandatory information",
	97:  "message type non-existent or not implemented",
	98:  "message not compatible with short message protocol state",
	99:  "information element non-existent or not implemented",
	111: "protocol error",
	127: "interworking unspecified",
	128: "telematic interworking not supported",
	129: "short message type 0 not supported",
	130: "cannot replace short message",
	143: "unspecified TP-PID error",
	144: "data coding scheme not supported",
	145: "message class not supported",
	159: "unspecified TP-DCS error",
	160: "command cannot be actioned",
	161: "command unsupported",
	175: "unspecified TP-Command error",
	176: "TPDU not supported",
	192: "SC busy",
	193: "no SC subscription",
	194: "SC system failure",
	195: "invalid SME address",
	196: "destination SME barred",
	197: "SM rejected, duplicate SM",
	198: "TP-VPF not supported",
	199: "TP-VP not supported",
	208: "SIM SMS storage full",
	209: "no SMS storage capability in SIM",
	210: "error in MS",
	211: "memory capacity exceeded",
	212: "SIM application toolkit busy",
	213: "SIM data download error",
	255: "unspecified error cause",
	300: "ME failure",
	301: "SMS service of ME reserved",
	302: "operation not allowed",
	303: "operation not supported",
	304: "invalid PDU mode parameter",
	305: "invalid text mode parameter",
	310: "SIM not inserted",
	311: "SIM PIN required",
	312: "PH-SIM PIN required",
	313: "SIM failure",
	314: "SIM busy",
	315: "SIM wrong",
	316: "SIM PUK required",
	317: "SIM PIN2 required",
	318: "SIM PUK2 required",
	320: "memory failure",
	321: "invalid memory index",
	322: "memory full",
	330: "SMSC address unknown",
	331: "no network service",
	332: "network timeout",
	340: "no +CNMA acknowledgement expected",
	500: "unknown error",
}

// cmeReasons are 27.007 §9.2 codes.
var cmeReasons = map[int]string{
	0:   "phone failure",
	1:   "no connection to phone",
	2:   "phone-adaptor link reserved",
	3:   "operation not allowed",
	4:   "operation not supported",
	5:   "PH-SIM PIN required",
	10:  "SIM not inserted",
	11:  "SIM PIN required",
	12:  "SIM PUK required",
	13:  "SIM failure",
	14:  "SIM busy",
	15:  "SIM wrong",
	16:  "incorrect password",
	17:  "SIM PIN2 required",
	18:  "SIM PUK2 required",
	20:  "memory full",
	21:  "invalid index",
	22:  "not found",
	23:  "memory failure",
	24:  "text string too long",
	25:  "invalid characters in text string",
	26:  "dial string too long",
	27:  "invalid characters in dial string",
	30:  "no network service",
	31:  "network timeout",
	32:  "network not allowed, emergency calls only",
	50:  "incorrect parameters",
	100: "unknown",
	107: "GPRS services not allowed",
	111: "PLMN not allowed",
	112: "location area not allowed",
	113: "roaming not allowed in this location area",
	132: "service option not supported",
	133: "requested service option not subscribed",
	134: "service option temporarily out of order",
	148: "unspecified GPRS error",
	149: "PDP authentication failure",
}

// ResultError is a failing final result other than ERROR, +CME ERROR and
// +CMS ERROR, such as "SEND FAIL".
type ResultError struct{ Line string }

func (e *ResultError) Error() string { return e.Line }
