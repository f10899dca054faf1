package modem

import (
	"context"
	"fmt"
	"strings"

	"github.com/simgate/simgate/modem/at"
)

// u-blox SARA-R5: sockets as on the R4 (AT+USOCR, AT+USOST, AT+USORF), but
// they run over the internal packet switched data profile 0, which the host
// activates with AT+UPSDA=0,3; the R4's default bearer is not enough.

// sarar5Profile is the PSD profile simgate uses; sarar5CID the context it
// is mapped to (AT+UPSD=0,100,<cid>).
const (
	sarar5Profile = 0
	sarar5CID     = 1
)

// sarar5Data brings the PSD profile up; o.Fresh deactivates it first, as a
// "+UUPSDD" (the network ended it) asks.
func sarar5Data(ctx context.Context, l sockLink, o sockOpen) error {
	if o.Fresh {
		if _, err := l.try(ctx, "deactivate data session", at.Cmd{Line: fmt.Sprintf("AT+UPSDA=%d,4", sarar5Profile)}); err != nil {
			return err
		}
	}
	r, err := l.try(ctx, "query data session", at.Cmd{Line: fmt.Sprintf("AT+UPSND=%d,8", sarar5Profile)})
	if err != nil {
		return err
	}
	if up, err := parseUPSND8(r.Lines, sarar5Profile); err == nil && up {
		return nil
	}
	r, err = l.try(ctx, "read APN", at.Cmd{Line: "AT+CGDCONT?"})
	if err != nil {
		return err
	}
	if apn, ok := parseCGDCONT(r.Lines, sarar5CID); !ok || !strings.EqualFold(apn, o.APN) {
		if _, err := l.try(ctx, "set APN", at.Cmd{Line: fmt.Sprintf(`AT+CGDCONT=%d,"IP","%s"`, sarar5CID, o.APN)}); err != nil {
			return err
		}
	}
	for _, line := range []string{
		fmt.Sprintf("AT+UPSD=%d,100,%d", sarar5Profile, sarar5CID), // map the profile to the context
		fmt.Sprintf("AT+UPSD=%d,0,0", sarar5Profile),               // IPv4
	} {
		if _, err := l.try(ctx, "configure data profile", at.Cmd{Line: line}); err != nil {
			return err
		}
	}
	line := fmt.Sprintf("AT+UPSDA=%d,3", sarar5Profile)
	r, err = l.do(ctx, "activate data session", at.Cmd{Line: line})
	if err != nil {
		return err
	}
	// OK may come before the activation completes; "+UUPSDA: <result>,<ip>"
	// reports it.
	match := func(line string) bool { return strings.HasPrefix(line, "+UUPSDA:") }
	res := ""
	for _, l := range r.Lines {
		if match(l) {
			res = l
		}
	}
	if res == "" {
		if res, err = l.await(ctx, "+UUPSDA", at.DefaultTimeout(line), match); err != nil {
			return fmt.Errorf("activate data session UPSDA: %w", err)
		}
	}
	code, err := parseUUPSDA(res)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("activate data session UPSDA: +UUPSDA result %d", code)
	}
	return nil
}

// sarar5Address reads the PSD profile's address (AT+UPSND=0,0); "" when
// unknown.
func sarar5Address(ctx context.Context, l sockLink) string {
	r, err := l.try(ctx, "read address", at.Cmd{Line: fmt.Sprintf("AT+UPSND=%d,0", sarar5Profile)})
	if err != nil {
		return ""
	}
	for _, line := range r.Lines {
		if ip, err := parseUPSND0(line); err == nil {
			return ip
		}
	}
	return ""
}

// parseUPSND8 reads `+UPSND: <profile>,8,<0|1>`: whether the profile is
// active.
func parseUPSND8(lines []string, profile int) (bool, error) {
	for _, l := range lines {
		f, err := fields(l, "+UPSND:")
		if err != nil || len(f) != 3 {
			continue
		}
		p, err0 := field(f, 0)
		param, err1 := field(f, 1)
		v, err2 := field(f, 2)
		if err0 == nil && err1 == nil && err2 == nil && p == profile && param == 8 {
			return v == 1, nil
		}
	}
	return false, fmt.Errorf("no +UPSND: %d,8 line in %q", profile, lines)
}

// parseUPSND0 reads `+UPSND: <profile>,0,"<ip>"`; "" for 0.0.0.0.
func parseUPSND0(line string) (string, error) {
	f, err := fields(line, "+UPSND:")
	if err == nil && len(f) != 3 {
		err = fmt.Errorf("want 3 fields")
	}
	if err == nil {
		var param int
		if param, err = field(f, 1); err == nil && param != 0 {
			err = fmt.Errorf("parameter %d is not the address (0)", param)
		}
	}
	if err != nil {
		return "", fmt.Errorf("parse %q: %w", line, err)
	}
	return parseAddrLine("+UPSND: " + f[2])
}

// parseUUPSDA reads `+UUPSDA: <result>[,"<ip>"]`: 0 is success.
func parseUUPSDA(line string) (int, error) {
	f, err := fields(line, "+UUPSDA:")
	if err != nil {
		return 0, fmt.Errorf("parse +UUPSDA: %w", err)
	}
	code, err := field(f, 0)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", line, err)
	}
	return code, nil
}
