package superapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// APIError is an error answer in the documented shape
// {"code","message","more_info","status"}.
type APIError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Error gives the HTTP status, the code and the message.
func (e *APIError) Error() string { return fmt.Sprintf("%d %d: %s", e.Status, e.Code, e.Message) }

// Error codes. 20003, 20004, 20404, 83006, 83007 and 83010 are the
// provider's documented codes for these cases; 20001 is its code for an
// invalid or missing parameter, used here for every validation refusal
// with the parameter named in the message.
const (
	CodeInvalidParameter = 20001
	CodeAuthenticate     = 20003
	CodeMethodNotAllowed = 20004
	CodeNotFound         = 20404
	CodeFleetNotFound    = 83006
	CodeActivateNoFleet  = 83007
	CodeStatusTransition = 83010
)

func apiError(status, code int, format string, a ...any) *APIError {
	return &APIError{
		Code:     code,
		Message:  fmt.Sprintf(format, a...),
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	}
}

func invalid(format string, a ...any) *APIError {
	return apiError(http.StatusBadRequest, CodeInvalidParameter, format, a...)
}

func notFound(path string) *APIError {
	return apiError(http.StatusNotFound, CodeNotFound, "The requested resource %s was not found", path)
}

// maxBody bounds a request body: the largest legitimate one (an IP Command
// of 1300 bytes, base64) is far smaller.
const maxBody = 64 << 10

// DecodeParams decodes the parameters of a request body: form-encoded (as
// the provider's clients send them) or a JSON object whose values are
// strings, numbers or booleans, each taken as its text. A repeated form
// key keeps its first value, as the provider's parsers do. It never panics
// on any input.
func DecodeParams(contentType string, body []byte) (url.Values, error) {
	if len(body) > maxBody {
		return nil, fmt.Errorf("request body of %d bytes is over %d", len(body), maxBody)
	}
	mt := "application/x-www-form-urlencoded"
	if contentType != "" {
		t, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, fmt.Errorf("content type %q: %w", contentType, err)
		}
		mt = t
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("form body: %w", err)
		}
		for k, vals := range v {
			if !utf8.ValidString(k) || !utf8.ValidString(vals[0]) {
				return nil, fmt.Errorf("form body: parameter %q is not UTF-8", k)
			}
			v[k] = vals[:1]
		}
		return v, nil
	case "application/json":
		if len(bytes.TrimSpace(body)) == 0 {
			return url.Values{}, nil
		}
		var raw map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("JSON body: %w", err)
		}
		if dec.More() {
			return nil, errors.New("JSON body: data after the object")
		}
		v := url.Values{}
		for k, r := range raw {
			var x any
			d := json.NewDecoder(bytes.NewReader(r))
			d.UseNumber()
			if err := d.Decode(&x); err != nil {
				return nil, fmt.Errorf("JSON body: %s: %w", k, err)
			}
			switch t := x.(type) {
			case string:
				v.Set(k, t)
			case json.Number:
				v.Set(k, t.String())
			case bool:
				v.Set(k, strconv.FormatBool(t))
			default:
				return nil, fmt.Errorf("JSON body: %s: want a string, number or boolean", k)
			}
		}
		return v, nil
	default:
		return nil, fmt.Errorf("content type %q: want application/x-www-form-urlencoded or application/json", mt)
	}
}

// form reads one parameter set and validates its values. The first
// problem found is kept; later reads return zero values.
type form struct {
	v   url.Values
	err *APIError
}

func (f *form) has(name string) bool { _, ok := f.v[name]; return ok }

func (f *form) required(name string) string {
	if f.err != nil {
		return ""
	}
	if !f.has(name) || f.v.Get(name) == "" {
		f.err = invalid("Missing required parameter %s in the post body", name)
	}
	return f.v.Get(name)
}

func (f *form) fail(format string, a ...any) {
	if f.err == nil {
		f.err = invalid(format, a...)
	}
}

func (f *form) boolean(name string, def bool) bool {
	if f.err != nil || !f.has(name) {
		return def
	}
	b, err := strconv.ParseBool(f.v.Get(name))
	if err != nil {
		f.fail("Invalid %s: %q is not a boolean", name, f.v.Get(name))
		return def
	}
	return b
}

func (f *form) integer(name string, lo, hi int) (int, bool) {
	if f.err != nil || !f.has(name) {
		return 0, false
	}
	n, err := strconv.Atoi(f.v.Get(name))
	if err != nil || n < lo || n > hi {
		f.fail("Invalid %s: %q is not an integer from %d to %d", name, f.v.Get(name), lo, hi)
		return 0, false
	}
	return n, true
}

func (f *form) enum(name string, allowed ...string) string {
	if f.err != nil || !f.has(name) {
		return ""
	}
	v := f.v.Get(name)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	f.fail("Invalid %s: %q is not one of %s", name, v, strings.Join(allowed, ", "))
	return ""
}

// method reads an http-method parameter: GET or POST, default POST.
func (f *form) method(name string) string {
	if f.err != nil || !f.has(name) {
		return http.MethodPost
	}
	m := strings.ToUpper(f.v.Get(name))
	if m != http.MethodGet && m != http.MethodPost {
		f.fail("Invalid %s: %q is not GET or POST", name, f.v.Get(name))
		return http.MethodPost
	}
	return m
}

// urlParam reads an absolute http or https URL; "" clears it (nil).
func (f *form) urlParam(name string) (*string, bool) {
	if f.err != nil || !f.has(name) {
		return nil, false
	}
	s := f.v.Get(name)
	if s == "" {
		return nil, true
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		f.fail("Invalid %s: %q is not an absolute http or https URL", name, s)
		return nil, false
	}
	return &s, true
}

// Paging. A page token is "PT" and the base64 of the offset of the page's
// first record, so that a token the API did not make is refused.

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

type page struct {
	size, number, offset int
}

func pageToken(offset int) string {
	return "PT" + base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(offset)))
}

func parsePageToken(tok string) (int, bool) {
	if !strings.HasPrefix(tok, "PT") {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok[2:])
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	// The decoder skips newlines; only the token the API made is one.
	if err != nil || n < 0 || pageToken(n) != tok {
		return 0, false
	}
	return n, true
}

func parsePage(q url.Values) (page, *APIError) {
	p := page{size: defaultPageSize}
	if s := q.Get("PageSize"); q.Has("PageSize") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return p, invalid("Invalid PageSize: %q is not an integer from 1 to %d", s, maxPageSize)
		}
		p.size = n
	}
	if s := q.Get("Page"); q.Has("Page") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, invalid("Invalid Page: %q is not a non-negative integer", s)
		}
		p.number = n
	}
	p.offset = p.number * p.size
	if q.Has("PageToken") {
		off, ok := parsePageToken(q.Get("PageToken"))
		if !ok {
			return p, invalid("Invalid PageToken: %q", q.Get("PageToken"))
		}
		p.offset = off
	}
	return p, nil
}

// Meta is the paging block of a list answer.
type Meta struct {
	FirstPageURL    string  `json:"first_page_url"`
	Key             string  `json:"key"`
	NextPageURL     *string `json:"next_page_url"`
	Page            int     `json:"page"`
	PageSize        int     `json:"page_size"`
	PreviousPageURL *string `json:"previous_page_url"`
	URL             string  `json:"url"`
}

// paginate cuts the page out of items and builds its meta. filters are the
// list's own query parameters, kept in every page URL.
func paginate[T any](base, key string, filters url.Values, p page, items []T) ([]T, Meta) {
	link := func(number, offset int, token bool) string {
		q := url.Values{}
		for k, v := range filters {
			q[k] = v
		}
		q.Set("PageSize", strconv.Itoa(p.size))
		q.Set("Page", strconv.Itoa(number))
		if token {
			q.Set("PageToken", pageToken(offset))
		}
		return base + "?" + q.Encode()
	}
	m := Meta{
		FirstPageURL: link(0, 0, false),
		Key:          key,
		Page:         p.number,
		PageSize:     p.size,
		URL:          link(p.number, p.offset, p.offset > 0),
	}
	start := min(p.offset, len(items))
	end := min(start+p.size, len(items))
	if end < len(items) {
		m.NextPageURL = ptr(link(p.number+1, end, true))
	}
	if start > 0 {
		m.PreviousPageURL = ptr(link(max(p.number-1, 0), max(start-p.size, 0), true))
	}
	out := items[start:end]
	if out == nil {
		out = []T{}
	}
	return out, m
}
