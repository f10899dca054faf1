package superapi

import (
	"net/http"
	"net/url"
	"sort"
	"time"
)

// recordUsage counts data the network carried for the Sim. Caller holds mu.
func (e *Emulator) recordUsage(s *simRec, upload, download int) {
	ev := usageEvent{at: time.Now().UTC(), sim: s.Sid, upload: int64(upload), download: int64(download)}
	if s.FleetSid != nil {
		ev.fleet = *s.FleetSid
	}
	if len(e.networks) > 0 {
		ev.net, ev.country = e.networks[0].Sid, e.networks[0].IsoCountry
	}
	e.usage = append(e.usage, ev)
}

func (e *Emulator) listUsage(_ *http.Request, q url.Values, _ string) (int, any, *APIError) {
	pg, perr := parsePage(q)
	if perr != nil {
		return 0, nil, perr
	}
	f := &form{v: q}
	gran := f.enum("Granularity", "hour", "day", "all")
	group := f.enum("Group", "sim", "fleet", "network", "isoCountry")
	if f.err != nil {
		return 0, nil, f.err
	}
	if gran == "" {
		gran = "all"
	}
	parseTime := func(name string) (time.Time, *APIError) {
		if !q.Has(name) {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, q.Get(name))
		if err != nil {
			return time.Time{}, invalid("Invalid %s: %q is not an ISO 8601 date-time", name, q.Get(name))
		}
		return t.UTC(), nil
	}
	start, aerr := parseTime("StartTime")
	if aerr != nil {
		return 0, nil, aerr
	}
	end, aerr := parseTime("EndTime")
	if aerr != nil {
		return 0, nil, aerr
	}
	if !start.IsZero() && !end.IsZero() && !end.After(start) {
		return 0, nil, invalid("Invalid EndTime: %s is not after StartTime %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if start.IsZero() {
		start = e.start
	}
	if end.IsZero() {
		end = now().Add(time.Second)
		if end.Before(start) {
			end = start
		}
	}
	simSid, fleetSid := "", ""
	ok := true
	if ref := q.Get("Sim"); ref != "" {
		if s := e.simByRef(ref); s != nil {
			simSid = s.Sid
		} else {
			ok = false
		}
	}
	if ref := q.Get("Fleet"); ref != "" {
		if fl := e.fleetByRef(ref); fl != nil {
			fleetSid = fl.Sid
		} else {
			ok = false
		}
	}
	netSid, country := q.Get("Network"), q.Get("IsoCountry")

	type key struct {
		bucket time.Time
		dim    string
	}
	sums := map[key]*UsageRecord{}
	bucketOf := func(t time.Time) (time.Time, time.Time) {
		switch gran {
		case "hour":
			b := t.Truncate(time.Hour)
			return b, b.Add(time.Hour)
		case "day":
			b := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			return b, b.AddDate(0, 0, 1)
		}
		return start, end
	}
	newRec := func(bs, be time.Time) *UsageRecord {
		r := &UsageRecord{AccountSid: e.opts.AccountSID, Period: Period{StartTime: bs, EndTime: be}, BilledUnit: ptr("USD")}
		if simSid != "" {
			r.SimSid = ptr(simSid)
		}
		if fleetSid != "" {
			r.FleetSid = ptr(fleetSid)
		}
		if netSid != "" {
			r.NetworkSid = ptr(netSid)
		}
		if country != "" {
			r.IsoCountry = ptr(country)
		}
		return r
	}
	for _, ev := range e.usage {
		if !ok || ev.at.Before(start) || !ev.at.Before(end) ||
			(simSid != "" && ev.sim != simSid) || (fleetSid != "" && ev.fleet != fleetSid) ||
			(netSid != "" && ev.net != netSid) || (country != "" && ev.country != country) {
			continue
		}
		dim := ""
		switch group {
		case "sim":
			dim = ev.sim
		case "fleet":
			dim = ev.fleet
		case "network":
			dim = ev.net
		case "isoCountry":
			dim = ev.country
		}
		bs, be := bucketOf(ev.at)
		k := key{bs, dim}
		r := sums[k]
		if r == nil {
			r = newRec(bs, be)
			switch group {
			case "sim":
				r.SimSid = ptr(dim)
			case "fleet":
				r.FleetSid = ptr(dim)
			case "network":
				r.NetworkSid = ptr(dim)
			case "isoCountry":
				r.IsoCountry = ptr(dim)
			}
			sums[k] = r
		}
		r.DataUpload += ev.upload
		r.DataDownload += ev.download
		r.DataTotal += ev.upload + ev.download
	}
	out := make([]UsageRecord, 0, len(sums))
	for _, r := range sums {
		out = append(out, *r)
	}
	if len(out) == 0 && gran == "all" && group == "" {
		out = append(out, *newRec(start, end))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Period.StartTime.Equal(out[j].Period.StartTime) {
			return out[i].Period.StartTime.Before(out[j].Period.StartTime)
		}
		return dimOf(out[i]) < dimOf(out[j])
	})
	items, meta := paginate(e.listURL("UsageRecords"), "usage_records",
		keep(q, "Sim", "Fleet", "Network", "IsoCountry", "Group", "Granularity", "StartTime", "EndTime"), pg, out)
	return http.StatusOK, map[string]any{"usage_records": items, "meta": meta}, nil
}

func dimOf(r UsageRecord) string {
	for _, p := range []*string{r.SimSid, r.FleetSid, r.NetworkSid, r.IsoCountry} {
		if p != nil {
			return *p
		}
	}
	return ""
}
