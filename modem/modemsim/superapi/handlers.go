package superapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the service.
const (
	MaxSMSPayload = 160  // characters of one SMS Command
	MaxIPPayload  = 1300 // bytes of one IP Command
)

// route is one collection or instance path and its methods.
type route struct {
	get, post func(r *http.Request, p url.Values, id string) (int, any, *APIError)
}

// Handler returns the API's HTTP handler (Start serves it; tests may mount
// it elsewhere).
func (e *Emulator) Handler() http.Handler {
	return http.HandlerFunc(e.serveHTTP)
}

func (e *Emulator) routes(collection string) (route, bool) {
	switch collection {
	case "SmsCommands":
		return route{get: e.listSms, post: e.createSms}, true
	case "IpCommands":
		return route{get: e.listIP, post: e.createIP}, true
	case "Sims":
		return route{get: e.listSims}, true
	case "Fleets":
		return route{get: e.listFleets, post: e.createFleet}, true
	case "Networks":
		return route{get: e.listNetworks}, true
	case "NetworkAccessProfiles":
		return route{get: e.listNAPs}, true
	case "UsageRecords":
		return route{get: e.listUsage}, true
	}
	return route{}, false
}

func (e *Emulator) instance(collection string) (route, bool) {
	switch collection {
	case "SmsCommands":
		return route{get: e.fetchSms}, true
	case "IpCommands":
		return route{get: e.fetchIP}, true
	case "Sims":
		return route{get: e.fetchSim, post: e.updateSim}, true
	case "Fleets":
		return route{get: e.fetchFleet, post: e.updateFleet}, true
	case "Networks":
		return route{get: e.fetchNetwork}, true
	case "NetworkAccessProfiles":
		return route{get: e.fetchNAP}, true
	}
	return route{}, false
}

func (e *Emulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == tokenPathKore || r.URL.Path == tokenPathOAuth {
		e.serveToken(w, r)
		return
	}
	if !e.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, apiError(http.StatusUnauthorized, CodeAuthenticate, "Authenticate"))
		return
	}
	if f, ok := e.takeFault(); ok {
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((f.retryAfter+time.Second-1)/time.Second)))
		}
		code := 20000 + f.status // 20429 Too Many Requests, 20500, 20503...
		writeError(w, apiError(f.status, code, "%s", http.StatusText(f.status)))
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var rt route
	var ok bool
	id := ""
	switch {
	case len(parts) == 2 && parts[0] == "v1":
		rt, ok = e.routes(parts[1])
	case len(parts) == 3 && parts[0] == "v1" && parts[2] != "":
		rt, ok = e.instance(parts[1])
		id = parts[2]
	case len(parts) == 4 && parts[0] == "v1" && parts[1] == "Sims" && parts[2] != "":
		rt, ok = e.simSub(parts[3])
		id = parts[2]
	}
	if !ok {
		writeError(w, notFound(r.URL.Path))
		return
	}
	var h func(*http.Request, url.Values, string) (int, any, *APIError)
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		h, params = rt.get, r.URL.Query()
	case http.MethodPost:
		h = rt.post
		if h != nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			if err != nil {
				writeError(w, invalid("Unreadable request body: %v", err))
				return
			}
			params, err = DecodeParams(r.Header.Get("Content-Type"), body)
			if err != nil {
				writeError(w, invalid("Invalid request body: %v", err))
				return
			}
		}
	}
	if h == nil {
		writeError(w, apiError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed: %s %s", r.Method, r.URL.Path))
		return
	}
	status, v, apiErr := h(r, params, id)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, status, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs keep their "&", as the provider writes them
	var b []byte
	if err := enc.Encode(v); err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":20500,"message":"Internal Server Error","more_info":"https://www.twilio.com/docs/errors/20500","status":500}`)
	} else {
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	// A failed write means the client went away; there is no one to tell.
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *APIError) { writeJSON(w, e.Status, e) }

// authorized checks HTTP Basic auth with the account's credentials, or a
// Bearer token the token endpoint issued and that has not expired.
func (e *Emulator) authorized(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		secret, known := e.opts.AuthToken, user == e.opts.AccountSID
		if !known {
			secret, known = e.opts.APIKeys[user]
		}
		return known && subtle.ConstantTimeCompare([]byte(pass), []byte(secret)) == 1
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		e.mu.Lock()
		defer e.mu.Unlock()
		exp, found := e.tokens[tok]
		return found && time.Now().Before(exp)
	}
	return false
}

func (e *Emulator) listURL(collection string) string { return e.base + "/v1/" + collection }

// keep returns the filters of q that a list keeps in its page URLs.
func keep(q url.Values, names ...string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if q.Has(n) {
			out.Set(n, q.Get(n))
		}
	}
	return out
}

// SmsCommands

func (e *Emulator) createSms(_ *http.Request, p url.Values, _ string) (int, any, *APIError) {
	f := &form{v: p}
	simRef := f.required("Sim")
	payload := f.required("Payload")
	cbURL, _ := f.urlParam("CallbackUrl")
	cbMethod := f.method("CallbackMethod")
	if f.err != nil {
		return 0, nil, f.err
	}
	if n := utf8.RuneCountInString(payload); n > MaxSMSPayload {
		return 0, nil, invalid("Invalid Payload: %d characters, an SMS Command has at most %d", n, MaxSMSPayload)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, aerr := e.commandSim(simRef, "SMS Commands", func(fl *Fleet) bool { return fl.SmsCommandsEnabled }, "SMS Commands enabled")
	if aerr != nil {
		return 0, nil, aerr
	}
	t := now()
	c := &smsRec{
		SmsCommand: SmsCommand{
			Sid: newSid("HC"), AccountSid: e.opts.AccountSID, SimSid: s.Sid, Payload: payload,
			Status: StatusQueued, Direction: DirectionToSim, DateCreated: t, DateUpdated: t,
		},
		callbackURL: cbURL, callbackMethod: cbMethod, expires: time.Now().Add(e.opts.CommandTTL),
	}
	c.URL = e.listURL("SmsCommands") + "/" + c.Sid
	e.sms = append(e.sms, c)
	e.wake()
	return http.StatusCreated, c.SmsCommand, nil
}

func (e *Emulator) fetchSms(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	return fetchCommand(e, r, &e.sms, id, func(c *smsRec) (string, any) { return c.Sid, c.SmsCommand })
}

func (e *Emulator) listSms(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, f, perr := parseCommandQuery(q, StatusQueued, StatusSent, StatusDelivered, StatusReceived, StatusFailed)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ok := e.resolveSim(&f, q.Get("Sim"))
	var out []SmsCommand
	for i := len(e.sms) - 1; ok && i >= 0; i-- { // newest first
		if c := e.sms[i]; f.match(c.SimSid, "", c.Status, c.Direction) {
			out = append(out, c.SmsCommand)
		}
	}
	items, meta := paginate(e.listURL("SmsCommands"), "sms_commands", keep(q, "Sim", "Status", "Direction"), pg, out)
	return http.StatusOK, map[string]any{"sms_commands": items, "meta": meta}, nil
}

// commandSim finds the Sim a new command goes to and checks that it may
// take one, as the service checks: kind names the commands, enabled says
// whether the Sim's Fleet allows them, disabled what it lacks. The caller
// holds mu.
func (e *Emulator) commandSim(ref, kind string, enabled func(*Fleet) bool, disabled string) (*simRec, *APIError) {
	s := e.simByRef(ref)
	if s == nil {
		return nil, invalid("Invalid Sim: no Sim %q in this account", ref)
	}
	if !canCommand(s) {
		return nil, invalid("Invalid Sim: Sim %s is %s; %s need a Sim that is active or ready", s.Sid, s.Status, kind)
	}
	if fl := e.fleetOf(s); fl == nil || !enabled(fl) {
		return nil, invalid("Invalid Sim: the Fleet of Sim %s does not have %s", s.Sid, disabled)
	}
	return s, nil
}

// fetchCommand answers the GET of one SmsCommand or IpCommand: the
// resource of the record in recs whose Sid is id. view gives a record's
// Sid and resource.
func fetchCommand[R any](e *Emulator, r *http.Request, recs *[]R, id string, view func(R) (string, any)) (int, any, *APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range *recs {
		if sid, v := view(c); sid == id {
			return http.StatusOK, v, nil
		}
	}
	return 0, nil, notFound(r.URL.Path)
}

// commandQuery is the filters of a list of SmsCommands or IpCommands; an
// empty one keeps every command.
type commandQuery struct {
	simSid, iccid, status, dir string
}

// parseCommandQuery reads the page and the Status (one of statuses) and
// Direction filters of a list of commands.
func parseCommandQuery(q url.Values, statuses ...string) (page, commandQuery, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return page{}, commandQuery{}, perr
	}
	f := &form{v: q}
	cq := commandQuery{
		status: f.enum("Status", statuses...),
		dir:    f.enum("Direction", DirectionToSim, DirectionFromSim),
	}
	if f.err != nil {
		return page{}, commandQuery{}, f.err
	}
	return pg, cq, nil
}

// resolveSim sets the Sim filter from ref, a Sid or unique name; it is
// false when ref names no Sim (the list is then empty). The caller holds
// mu.
func (e *Emulator) resolveSim(cq *commandQuery, ref string) bool {
	if ref == "" {
		return true
	}
	s := e.simByRef(ref)
	if s == nil {
		return false
	}
	cq.simSid = s.Sid
	return true
}

// match reports whether a command with these fields passes the filters.
func (cq commandQuery) match(simSid, iccid, status, dir string) bool {
	return (cq.simSid == "" || simSid == cq.simSid) && (cq.iccid == "" || iccid == cq.iccid) &&
		(cq.status == "" || status == cq.status) && (cq.dir == "" || dir == cq.dir)
}

// IpCommands

func (e *Emulator) createIP(_ *http.Request, p url.Values, _ string) (int, any, *APIError) {
	f := &form{v: p}
	simRef := f.required("Sim")
	payload := f.required("Payload")
	f.required("DevicePort")
	port, _ := f.integer("DevicePort", 1, 65535)
	ptype := f.enum("PayloadType", "text", "binary")
	cbURL, _ := f.urlParam("CallbackUrl")
	cbMethod := f.method("CallbackMethod")
	if f.err != nil {
		return 0, nil, f.err
	}
	if ptype == "" {
		ptype = "text"
	}
	data := []byte(payload)
	if ptype == "binary" {
		b, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			return 0, nil, invalid("Invalid Payload: a binary payload must be base64: %v", err)
		}
		data = b
	} else if !utf8.ValidString(payload) {
		return 0, nil, invalid("Invalid Payload: a text payload must be UTF-8")
	}
	if len(data) > MaxIPPayload {
		return 0, nil, invalid("Invalid Payload: %d bytes, an IP Command has at most %d", len(data), MaxIPPayload)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, aerr := e.commandSim(simRef, "IP Commands", func(fl *Fleet) bool { return fl.DataEnabled }, "data enabled, which IP Commands need")
	if aerr != nil {
		return 0, nil, aerr
	}
	t := now()
	c := &ipRec{
		IpCommand: IpCommand{
			Sid: newSid("HG"), AccountSid: e.opts.AccountSID, SimSid: s.Sid, SimIccid: s.Iccid,
			Status: StatusQueued, Direction: DirectionToSim, DevicePort: port, PayloadType: ptype,
			Payload: payload, DateCreated: t, DateUpdated: t,
		},
		data: data, callbackURL: cbURL, callbackMethod: cbMethod, expires: time.Now().Add(e.opts.CommandTTL),
	}
	c.URL = e.listURL("IpCommands") + "/" + c.Sid
	e.ip = append(e.ip, c)
	e.wake()
	return http.StatusCreated, c.IpCommand, nil
}

func (e *Emulator) fetchIP(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	return fetchCommand(e, r, &e.ip, id, func(c *ipRec) (string, any) { return c.Sid, c.IpCommand })
}

func (e *Emulator) listIP(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, f, perr := parseCommandQuery(q, StatusQueued, StatusSent, StatusReceived, StatusFailed)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ok := e.resolveSim(&f, q.Get("Sim"))
	f.iccid = q.Get("SimIccid")
	var out []IpCommand
	for i := len(e.ip) - 1; ok && i >= 0; i-- { // newest first
		if c := e.ip[i]; f.match(c.SimSid, c.SimIccid, c.Status, c.Direction) {
			out = append(out, c.IpCommand)
		}
	}
	items, meta := paginate(e.listURL("IpCommands"), "ip_commands", keep(q, "Sim", "SimIccid", "Status", "Direction"), pg, out)
	return http.StatusOK, map[string]any{"ip_commands": items, "meta": meta}, nil
}

// Sims

func (e *Emulator) listSims(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	f := &form{v: q}
	status := f.enum("Status", SimNew, SimReady, SimActive, SimInactive, SimScheduled)
	if f.err != nil {
		return 0, nil, f.err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fleetSid, ok := "", true
	if ref := q.Get("Fleet"); ref != "" {
		if fl := e.fleetByRef(ref); fl != nil {
			fleetSid = fl.Sid
		} else {
			ok = false
		}
	}
	iccid := q.Get("Iccid")
	var out []Sim
	for _, s := range e.sims {
		if ok && (status == "" || s.Status == status) && (iccid == "" || s.Iccid == iccid) &&
			(fleetSid == "" || (s.FleetSid != nil && *s.FleetSid == fleetSid)) {
			out = append(out, s.Sim)
		}
	}
	items, meta := paginate(e.listURL("Sims"), "sims", keep(q, "Status", "Fleet", "Iccid"), pg, out)
	return http.StatusOK, map[string]any{"sims": items, "meta": meta}, nil
}

func (e *Emulator) fetchSim(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.simByRef(id); s != nil {
		return http.StatusOK, s.Sim, nil
	}
	return 0, nil, notFound(r.URL.Path)
}

// simTransitions are the status changes the service allows.
var simTransitions = map[string][]string{
	SimNew:      {SimReady, SimActive, SimInactive},
	SimReady:    {SimActive, SimInactive},
	SimActive:   {SimInactive},
	SimInactive: {SimReady, SimActive},
}

func (e *Emulator) updateSim(r *http.Request, p url.Values, id string) (int, any, *APIError) {
	f := &form{v: p}
	status := f.enum("Status", SimReady, SimActive, SimInactive)
	cbURL, _ := f.urlParam("CallbackUrl")
	cbMethod := f.method("CallbackMethod")
	if f.err != nil {
		return 0, nil, f.err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.simByRef(id)
	if s == nil {
		return 0, nil, notFound(r.URL.Path)
	}
	if p.Has("AccountSid") && p.Get("AccountSid") != e.opts.AccountSID {
		return 0, nil, invalid("Invalid AccountSid: %q is not this account or a subaccount of it", p.Get("AccountSid"))
	}
	var fleet *Fleet
	if p.Has("Fleet") {
		if fleet = e.fleetByRef(p.Get("Fleet")); fleet == nil {
			return 0, nil, apiError(http.StatusBadRequest, CodeFleetNotFound, "Super SIM's target Fleet %q not found", p.Get("Fleet"))
		}
	}
	if p.Has("UniqueName") {
		if other := e.simByRef(p.Get("UniqueName")); other != nil && other != s {
			return 0, nil, invalid("Invalid UniqueName: %q is already used by Sim %s", p.Get("UniqueName"), other.Sid)
		}
	}
	current := s.Status
	if s.pendingStatus != "" {
		current = s.pendingStatus
	}
	async := status != "" && status != current
	if async {
		if !slices.Contains(simTransitions[current], status) {
			return 0, nil, apiError(http.StatusBadRequest, CodeStatusTransition, "Unable to update your Super SIM from %s to %s", current, status)
		}
		if (status == SimActive || status == SimReady) && s.FleetSid == nil && fleet == nil {
			return 0, nil, apiError(http.StatusBadRequest, CodeActivateNoFleet, "Unable to activate your Super SIM as it does not belong to a Fleet")
		}
	}
	// Validated: now change.
	if p.Has("UniqueName") {
		if n := p.Get("UniqueName"); n == "" {
			s.UniqueName = nil
		} else {
			s.UniqueName = ptr(n)
		}
	}
	if fleet != nil {
		s.FleetSid = ptr(fleet.Sid)
	}
	s.DateUpdated = now()
	if !async {
		e.wake()
		return http.StatusOK, s.Sim, nil
	}
	s.pendingStatus = status
	shown := s.Sim
	sid := s.Sid
	time.AfterFunc(e.opts.StatusDelay, func() { e.completeStatus(sid, status, cbURL, cbMethod) })
	return http.StatusAccepted, shown, nil
}

// completeStatus finishes an accepted status change: the network
// deregisters an inactive SIM's modem and registers it again when it is
// active or ready; then the callback tells the account.
func (e *Emulator) completeStatus(sid, status string, cbURL *string, cbMethod string) {
	e.mu.Lock()
	s := e.simBySid(sid)
	if e.closed || s == nil || s.pendingStatus != status {
		e.mu.Unlock()
		return
	}
	s.pendingStatus = ""
	s.Status = status
	s.DateUpdated = now()
	snap := s.Sim
	e.mu.Unlock()
	if status == SimInactive {
		e.modem.SetRegistration(0)
	} else {
		e.modem.SetRegistration(5) // Super SIMs roam on partner networks
	}
	e.log.Info("sim status", "sim", sid, "status", status)
	if cbURL != nil {
		e.webhooks.send("sim_status", *cbURL, cbMethod, sid, simParams(snap))
	}
	e.wake()
}

// Fleets

func (e *Emulator) createFleet(_ *http.Request, p url.Values, _ string) (int, any, *APIError) {
	f := &form{v: p}
	napRef := f.required("NetworkAccessProfile")
	dataEnabled := f.boolean("DataEnabled", true)
	smsEnabled := f.boolean("SmsCommandsEnabled", true)
	limit, hasLimit := f.integer("DataLimit", 1, 2000000)
	smsURL, _ := f.urlParam("SmsCommandsUrl")
	smsMethod := f.method("SmsCommandsMethod")
	ipURL, _ := f.urlParam("IpCommandsUrl")
	ipMethod := f.method("IpCommandsMethod")
	if f.err != nil {
		return 0, nil, f.err
	}
	if !hasLimit {
		limit = 1000
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	nap := e.napByRef(napRef)
	if nap == nil {
		return 0, nil, invalid("Invalid NetworkAccessProfile: no Network Access Profile %q in this account", napRef)
	}
	var unique *string
	if n := p.Get("UniqueName"); n != "" {
		if e.fleetByRef(n) != nil {
			return 0, nil, invalid("Invalid UniqueName: %q is already used by another Fleet", n)
		}
		unique = ptr(n)
	}
	t := now()
	fl := &Fleet{
		AccountSid: e.opts.AccountSID, Sid: newSid("HF"), UniqueName: unique, DateCreated: t, DateUpdated: t,
		DataEnabled: dataEnabled, DataLimit: limit, DataMetering: "payg", SmsCommandsEnabled: smsEnabled,
		SmsCommandsURL: smsURL, SmsCommandsMethod: smsMethod, NetworkAccessProfileSid: nap.Sid,
		IPCommandsURL: ipURL, IPCommandsMethod: ipMethod,
	}
	fl.URL = e.listURL("Fleets") + "/" + fl.Sid
	e.fleets = append(e.fleets, fl)
	return http.StatusCreated, *fl, nil
}

func (e *Emulator) fetchFleet(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if fl := e.fleetByRef(id); fl != nil {
		return http.StatusOK, *fl, nil
	}
	return 0, nil, notFound(r.URL.Path)
}

func (e *Emulator) listFleets(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	napSid, ok := "", true
	if ref := q.Get("NetworkAccessProfile"); ref != "" {
		if n := e.napByRef(ref); n != nil {
			napSid = n.Sid
		} else {
			ok = false
		}
	}
	var out []Fleet
	for _, fl := range e.fleets {
		if ok && (napSid == "" || fl.NetworkAccessProfileSid == napSid) {
			out = append(out, *fl)
		}
	}
	items, meta := paginate(e.listURL("Fleets"), "fleets", keep(q, "NetworkAccessProfile"), pg, out)
	return http.StatusOK, map[string]any{"fleets": items, "meta": meta}, nil
}

// updateFleet takes the documented parameters and DataEnabled and
// SmsCommandsEnabled too, so that a test can switch a Fleet's capabilities
// off as the provider's console does.
func (e *Emulator) updateFleet(r *http.Request, p url.Values, id string) (int, any, *APIError) {
	f := &form{v: p}
	dataEnabled := f.boolean("DataEnabled", false)
	smsEnabled := f.boolean("SmsCommandsEnabled", false)
	limit, hasLimit := f.integer("DataLimit", 1, 2000000)
	smsURL, setSMSURL := f.urlParam("SmsCommandsUrl")
	smsMethod := f.method("SmsCommandsMethod")
	ipURL, setIPURL := f.urlParam("IpCommandsUrl")
	ipMethod := f.method("IpCommandsMethod")
	if f.err != nil {
		return 0, nil, f.err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	fl := e.fleetByRef(id)
	if fl == nil {
		return 0, nil, notFound(r.URL.Path)
	}
	var nap *NetworkAccessProfile
	if p.Has("NetworkAccessProfile") {
		if nap = e.napByRef(p.Get("NetworkAccessProfile")); nap == nil {
			return 0, nil, invalid("Invalid NetworkAccessProfile: no Network Access Profile %q in this account", p.Get("NetworkAccessProfile"))
		}
	}
	if n := p.Get("UniqueName"); n != "" {
		if other := e.fleetByRef(n); other != nil && other != fl {
			return 0, nil, invalid("Invalid UniqueName: %q is already used by another Fleet", n)
		}
	}
	if p.Has("UniqueName") {
		if n := p.Get("UniqueName"); n == "" {
			fl.UniqueName = nil
		} else {
			fl.UniqueName = ptr(n)
		}
	}
	if nap != nil {
		fl.NetworkAccessProfileSid = nap.Sid
	}
	if p.Has("DataEnabled") {
		fl.DataEnabled = dataEnabled
	}
	if p.Has("SmsCommandsEnabled") {
		fl.SmsCommandsEnabled = smsEnabled
	}
	if hasLimit {
		fl.DataLimit = limit
	}
	if setSMSURL {
		fl.SmsCommandsURL = smsURL
	}
	if p.Has("SmsCommandsMethod") {
		fl.SmsCommandsMethod = smsMethod
	}
	if setIPURL {
		fl.IPCommandsURL = ipURL
	}
	if p.Has("IpCommandsMethod") {
		fl.IPCommandsMethod = ipMethod
	}
	fl.DateUpdated = now()
	e.wake()
	return http.StatusOK, *fl, nil
}

// Networks and Network Access Profiles (read only)

func (e *Emulator) listNetworks(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Network
	for _, n := range e.networks {
		if c := q.Get("IsoCountry"); c != "" && !strings.EqualFold(c, n.IsoCountry) {
			continue
		}
		match := func(mcc, mnc string) bool {
			for _, id := range n.Identifiers {
				if (mcc == "" || id.Mcc == mcc) && (mnc == "" || id.Mnc == mnc) {
					return true
				}
			}
			return false
		}
		if match(q.Get("Mcc"), q.Get("Mnc")) {
			out = append(out, *n)
		}
	}
	items, meta := paginate(e.listURL("Networks"), "networks", keep(q, "IsoCountry", "Mcc", "Mnc"), pg, out)
	return http.StatusOK, map[string]any{"networks": items, "meta": meta}, nil
}

func (e *Emulator) fetchNetwork(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.networks {
		if n.Sid == id {
			return http.StatusOK, *n, nil
		}
	}
	return 0, nil, notFound(r.URL.Path)
}

func (e *Emulator) listNAPs(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []NetworkAccessProfile
	for _, n := range e.naps {
		out = append(out, *n)
	}
	items, meta := paginate(e.listURL("NetworkAccessProfiles"), "network_access_profiles", url.Values{}, pg, out)
	return http.StatusOK, map[string]any{"network_access_profiles": items, "meta": meta}, nil
}

func (e *Emulator) fetchNAP(r *http.Request, _ url.Values, id string) (int, any, *APIError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := e.napByRef(id); n != nil {
		return http.StatusOK, *n, nil
	}
	return 0, nil, notFound(r.URL.Path)
}

// Subresources of a Sim, as its links name them.

func (e *Emulator) simSub(name string) (route, bool) {
	switch name {
	case "IpAddresses":
		return route{get: e.listIPAddresses}, true
	case "BillingPeriods":
		return route{get: e.listBillingPeriods}, true
	}
	return route{}, false
}

// IPAddress is one address of a Sim's data session.
type IPAddress struct {
	IPAddress        string `json:"ip_address"`
	IPAddressVersion string `json:"ip_address_version"`
}

// BillingPeriod is a Sim's billing period: here one month from when the
// Sim became active in the emulated account.
type BillingPeriod struct {
	Sid         string    `json:"sid"`
	AccountSid  string    `json:"account_sid"`
	SimSid      string    `json:"sim_sid"`
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`
	PeriodType  string    `json:"period_type"`
	DateCreated time.Time `json:"date_created"`
	DateUpdated time.Time `json:"date_updated"`
}

func (e *Emulator) listIPAddresses(r *http.Request, q url.Values, id string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	s := e.simByRef(id)
	e.mu.Unlock()
	if s == nil {
		return 0, nil, notFound(r.URL.Path)
	}
	out := []IPAddress{}
	if e.opts.DeviceMode == ModeOS {
		out = append(out, IPAddress{"127.0.0.1", "IPv4"})
	} else if st := e.modem.State(); st.DataUp && st.IP != "" {
		out = append(out, IPAddress{st.IP, "IPv4"})
	}
	items, meta := paginate(e.base+r.URL.Path, "ip_addresses", url.Values{}, pg, out)
	return http.StatusOK, map[string]any{"ip_addresses": items, "meta": meta}, nil
}

func (e *Emulator) listBillingPeriods(r *http.Request, q url.Values, id string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.simByRef(id)
	if s == nil {
		return 0, nil, notFound(r.URL.Path)
	}
	out := []BillingPeriod{}
	if s.Status == SimActive || s.Status == SimReady {
		bp := BillingPeriod{
			Sid: "HB" + s.Sid[2:], AccountSid: s.AccountSid, SimSid: s.Sid,
			StartTime: e.start, EndTime: e.start.AddDate(0, 1, 0), PeriodType: s.Status,
			DateCreated: e.start, DateUpdated: e.start,
		}
		out = append(out, bp)
	}
	items, meta := paginate(e.base+r.URL.Path, "billing_periods", url.Values{}, pg, out)
	return http.StatusOK, map[string]any{"billing_periods": items, "meta": meta}, nil
}
