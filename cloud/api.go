package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	twilio "github.com/twilio/twilio-go/client"
	supersim "github.com/twilio/twilio-go/rest/supersim/v1"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// APIError is an answer of the Super SIM API other than 2xx, in the API's
// documented error shape, or a failure to get an answer at all (Status 0).
type APIError struct {
	Status   int    // HTTP status; 0 when no answer arrived
	Code     int    // the API's error code, e.g. 20003, 20404, 83xxx
	Message  string // the API's message, or what went wrong
	MoreInfo string
	// RetryAfter is the delay the API asked for with Retry-After.
	RetryAfter time.Duration
	Err        error // the transport error when Status is 0
}

func (e *APIError) Error() string {
	switch {
	case e.Status == 0:
		return "super sim api: " + e.Message
	case e.Code != 0:
		return fmt.Sprintf("super sim api: %d %s (code %d)", e.Status, e.Message, e.Code)
	default:
		return fmt.Sprintf("super sim api: %d %s", e.Status, e.Message)
	}
}

func (e *APIError) Unwrap() error { return e.Err }

// Retryable says whether the same call may succeed later: no answer, 429
// and 5xx are retried; any other 4xx is final.
func (e *APIError) Retryable() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// maxAPIBody bounds what is read of an API answer.
const maxAPIBody = 1 << 20

// APIConfig says how to reach the Super SIM API.
type APIConfig struct {
	// BaseURL replaces https://supersim.twilio.com (the emulator in tests).
	BaseURL string
	// Twilio: HTTP Basic with an Account SID or API Key SID and its secret.
	Username, Password string
	// KORE: OAuth2 client credentials; TokenURL set selects it.
	ClientID, ClientSecret, TokenURL string
	// Timeout bounds one HTTP exchange (default 30 s).
	Timeout time.Duration
	// OnCall, when set, is told of every exchange: the resource (the path's
	// first element after /v1/, e.g. SmsCommands), the method, the HTTP
	// status (0 when no answer came) and how long it took.
	OnCall func(resource, method string, status int, d time.Duration)
}

// API is a Super SIM API client. Calls go through twilio-go's generated
// supersim service; API supplies the transport (base URL, authentication,
// the error shape with Retry-After).
type API struct {
	base   *url.URL
	cfg    APIConfig
	http   *http.Client
	tokens oauth2.TokenSource // nil for Basic auth
}

// NewAPI checks cfg and returns a client.
func NewAPI(cfg APIConfig) (*API, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("api url %q: must be an http:// or https:// URL", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	a := &API{base: u, cfg: cfg, http: &http.Client{Timeout: cfg.Timeout}}
	if cfg.TokenURL != "" {
		cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL}
		// The token source caches the token and fetches a new one shortly
		// before it expires; its own HTTP client is bounded too.
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: cfg.Timeout})
		a.tokens = oauth2.ReuseTokenSource(nil, cc.TokenSource(ctx))
	} else if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("api: username and password (or OAuth2 client credentials) are required")
	}
	return a, nil
}

// service returns twilio-go's supersim service bound to ctx.
func (a *API) service(ctx context.Context) *supersim.ApiService {
	return supersim.NewApiServiceWithClient(&baseClient{api: a, ctx: ctx})
}

// SMSCommand is the part of an SmsCommand or IpCommand resource the bridge uses.
type Command struct {
	Sid    string
	SimSid string
	Status string
	// Payload, Created: for matching a command whose creation is in doubt.
	Payload string
	Created time.Time
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func tm(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return *p
}

// CreateSMS posts an SmsCommand.
func (a *API) CreateSMS(ctx context.Context, sim, payload, callback string) (Command, error) {
	p := &supersim.CreateSmsCommandParams{}
	p.SetSim(sim).SetPayload(payload)
	if callback != "" {
		p.SetCallbackUrl(callback).SetCallbackMethod("POST")
	}
	c, err := a.service(ctx).CreateSmsCommand(p)
	if err != nil {
		return Command{}, apiErr(err)
	}
	return Command{Sid: str(c.Sid), SimSid: str(c.SimSid), Status: str(c.Status), Payload: str(c.Payload), Created: tm(c.DateCreated)}, nil
}

// CreateIP posts an IpCommand. binary selects PayloadType binary, with
// payload in base64.
func (a *API) CreateIP(ctx context.Context, sim, payload string, binary bool, port int, callback string) (Command, error) {
	p := &supersim.CreateIpCommandParams{}
	p.SetSim(sim).SetPayload(payload).SetDevicePort(port)
	if binary {
		p.SetPayloadType("binary")
	} else {
		p.SetPayloadType("text")
	}
	if callback != "" {
		p.SetCallbackUrl(callback).SetCallbackMethod("POST")
	}
	c, err := a.service(ctx).CreateIpCommand(p)
	if err != nil {
		return Command{}, apiErr(err)
	}
	return Command{Sid: str(c.Sid), SimSid: str(c.SimSid), Status: str(c.Status), Payload: str(c.Payload), Created: tm(c.DateCreated)}, nil
}

// RecentSMS lists the newest to_sim SmsCommands of a Sim (one page).
func (a *API) RecentSMS(ctx context.Context, simSid string) ([]Command, error) {
	p := &supersim.ListSmsCommandParams{}
	p.SetSim(simSid).SetDirection("to_sim").SetPageSize(100)
	page, err := a.service(ctx).PageSmsCommand(p, "", "")
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]Command, 0, len(page.SmsCommands))
	for _, c := range page.SmsCommands {
		out = append(out, Command{Sid: str(c.Sid), SimSid: str(c.SimSid), Status: str(c.Status), Payload: str(c.Payload), Created: tm(c.DateCreated)})
	}
	return out, nil
}

// RecentIP lists the newest to_sim IpCommands of a Sim (one page).
func (a *API) RecentIP(ctx context.Context, simSid string) ([]Command, error) {
	p := &supersim.ListIpCommandParams{}
	p.SetSim(simSid).SetDirection("to_sim").SetPageSize(100)
	page, err := a.service(ctx).PageIpCommand(p, "", "")
	if err != nil {
		return nil, apiErr(err)
	}
	out := make([]Command, 0, len(page.IpCommands))
	for _, c := range page.IpCommands {
		out = append(out, Command{Sid: str(c.Sid), SimSid: str(c.SimSid), Status: str(c.Status), Payload: str(c.Payload), Created: tm(c.DateCreated)})
	}
	return out, nil
}

// Sim is the part of a Sim resource the bridge uses.
type Sim struct {
	Sid, Iccid, Status string
}

// SimByICCID looks a Sim up with GET /v1/Sims?Iccid=. ok is false when the
// account has no such SIM.
func (a *API) SimByICCID(ctx context.Context, iccid string) (Sim, bool, error) {
	p := &supersim.ListSimParams{}
	p.SetIccid(iccid).SetPageSize(2)
	page, err := a.service(ctx).PageSim(p, "", "")
	if err != nil {
		return Sim{}, false, apiErr(err)
	}
	for _, s := range page.Sims {
		if str(s.Iccid) == iccid {
			return Sim{Sid: str(s.Sid), Iccid: str(s.Iccid), Status: str(s.Status)}, true, nil
		}
	}
	return Sim{}, false, nil
}

// apiErr keeps an *APIError as it is and wraps anything else (a response
// body twilio-go could not decode) as a failed exchange.
func apiErr(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return &APIError{Message: err.Error(), Err: err}
}

// baseClient is twilio-go's client.BaseClient for one call: it sends the
// request twilio-go built to the configured base URL, authenticates it, and
// turns any answer other than 2xx into an *APIError that keeps Retry-After
// (twilio-go's own client drops the headers of an error).
type baseClient struct {
	api *API
	ctx context.Context
}

var _ twilio.BaseClient = (*baseClient)(nil)

func (c *baseClient) AccountSid() string       { return c.api.cfg.Username }
func (c *baseClient) SetTimeout(time.Duration) {}
func (c *baseClient) SetOauth(twilio.OAuth)    {}
func (c *baseClient) OAuth() twilio.OAuth      { return nil }

func (c *baseClient) SendRequest(method, rawURL string, data url.Values, headers map[string]interface{}, body ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &APIError{Message: err.Error(), Err: err}
	}
	// twilio-go builds https://supersim.twilio.com/...; keep the path.
	u.Scheme, u.Host = c.api.base.Scheme, c.api.base.Host
	u.Path = c.api.base.Path + u.Path
	var rd io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		u.RawQuery = data.Encode()
	} else {
		rd = strings.NewReader(data.Encode())
	}
	req, err := http.NewRequestWithContext(c.ctx, method, u.String(), rd)
	if err != nil {
		return nil, &APIError{Message: err.Error(), Err: err}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "simgate-cloud")
	if c.api.tokens != nil {
		tok, err := c.api.tokens.Token()
		if err != nil {
			return nil, tokenErr(err)
		}
		tok.SetAuthHeader(req)
	} else {
		req.SetBasicAuth(c.api.cfg.Username, c.api.cfg.Password)
	}
	start := time.Now()
	resp, err := c.api.http.Do(req)
	if f := c.api.cfg.OnCall; f != nil {
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		f(resourceOf(u.Path), method, status, time.Since(start))
	}
	if err != nil {
		return nil, &APIError{Message: fmt.Sprintf("%s %s: %v", method, u.Path, err), Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxAPIBody), resp.Body}
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeAPIError(resp)
}

// resourceOf is the resource a path names: /v1/SmsCommands/HC... is
// SmsCommands.
func resourceOf(path string) string {
	_, rest, ok := strings.Cut(path, "/v1/")
	if !ok {
		return "other"
	}
	r, _, _ := strings.Cut(rest, "/")
	return r
}

// tokenErr reports a failed token fetch: the token endpoint refusing the
// client's credentials is final, anything else may pass.
func tokenErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		msg := "oauth2 token: " + strings.TrimSpace(re.ErrorCode+" "+re.ErrorDescription)
		if re.ErrorCode == "" {
			msg = fmt.Sprintf("oauth2 token: %s", http.StatusText(st))
		}
		return &APIError{Status: st, Code: 20003, Message: msg, Err: err}
	}
	return &APIError{Message: "oauth2 token: " + err.Error(), Err: err}
}

func decodeAPIError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Code     json.Number `json:"code"`
		Message  string      `json:"message"`
		MoreInfo string      `json:"more_info"`
	}
	if json.Unmarshal(b, &body) == nil {
		if n, err := body.Code.Int64(); err == nil {
			e.Code = int(n)
		}
		if body.Message != "" {
			e.Message = body.Message
		}
		e.MoreInfo = body.MoreInfo
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; anything
// else, or a date in the past, is no request at all.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

// SimBySid fetches a Sim. ok is false when the account has no such SIM.
func (a *API) SimBySid(ctx context.Context, sid string) (Sim, bool, error) {
	s, err := a.service(ctx).FetchSim(sid)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return Sim{}, false, nil
		}
		return Sim{}, false, apiErr(err)
	}
	return Sim{Sid: str(s.Sid), Iccid: str(s.Iccid), Status: str(s.Status)}, true, nil
}
