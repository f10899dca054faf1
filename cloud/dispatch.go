package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/transport"
)

// inDoubtMargin widens the window in which a command found at the API is
// taken for one whose creation was in doubt, for a clock that differs from
// the API's.
const inDoubtMargin = 2 * time.Minute

// dispatchLoop runs one worker per SIM that has requests, up to Workers at
// once. A SIM's requests go to the API one at a time, in arrival order.
func (b *Bridge) dispatchLoop(stop <-chan struct{}, abort context.Context) {
	active := map[string]bool{}
	done := make(chan string)
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Below)
	stopping := false
	stopSig := stop // nil once seen, so the select below does not spin
	for {
		if !stopping {
			lanes, err := b.q.JobLanes()
			if err != nil {
				b.log.Error("cannot read requests", "err", err)
				if backoff.Sleep(abort, bo.Next()) != nil {
					// Aborted: start no more workers; wait below
					// for the running ones, which see abort too.
					stopping = true
				}
				continue
			}
			bo.Reset()
			for _, lane := range lanes {
				if len(active) >= b.cfg.Workers {
					break
				}
				if active[lane] {
					continue
				}
				active[lane] = true
				go func() { b.worker(lane, stop, abort); done <- lane }()
			}
		}
		if stopping && len(active) == 0 {
			return
		}
		select {
		case <-b.q.JobSignal():
		case lane := <-done:
			delete(active, lane)
		case <-stopSig:
			stopping = true
			stopSig = nil
		}
	}
}

// pause waits a second, or until stop.
func pause(stop <-chan struct{}) { backoff.Wait(stop, time.Second) }

func (b *Bridge) worker(lane string, stop <-chan struct{}, abort context.Context) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		sj, ok, err := b.q.HeadJob(abort, lane)
		if err != nil {
			b.log.Error("cannot read request", "sim", lane, "err", err)
			pause(stop)
			return
		}
		if !ok {
			return
		}
		if !b.process(sj, stop, abort) {
			// Stopping, or the store failed: the dispatcher starts the
			// lane again, after a pause so a lasting fault is no busy loop.
			pause(stop)
			return
		}
	}
}

// process handles one job to its end: the API created the command (its
// "queued" result replaces the job), or refused it for good (a "failed"
// result with the API's code and message), or the bridge is stopping (the
// job stays). It returns false in the last case.
func (b *Bridge) process(sj transport.StoredJob, stop <-chan struct{}, abort context.Context) bool {
	var req Request
	if err := json.Unmarshal(sj.Body, &req); err != nil || req.ID == "" {
		b.log.Error("unreadable request dropped with a failed result", "job", sj.ID, "err", err)
		return b.finish(sj, abort, []transport.Publication{b.failedResult(Request{ID: sj.ID, Sim: sj.Lane, Channel: ChannelSMS}, "stored request cannot be read", 0)})
	}
	log := b.log.With("id", req.ID, "sim", req.Sim, "channel", req.Channel)
	bo := backoff.New(b.cfg.RetryMin, b.cfg.RetryMax, backoff.Below)
	// wait sleeps before the next attempt; false when stopping.
	wait := func(err *APIError, what string) bool {
		d := bo.Next()
		if err.RetryAfter > d {
			d = err.RetryAfter
		}
		log.Warn("api call failed; retrying", "what", what, "err", err, "retry_in", d.Round(time.Millisecond))
		b.event(gw.EventAPIRetry, fmt.Sprintf("%s for %s request %s failed (%v); retrying in %s", what, req.Channel, req.ID, err, d.Round(time.Millisecond)),
			map[string]any{"id": req.ID, "sim": req.Sim, "channel": req.Channel, "status": err.Status, "code": err.Code})
		b.setAPI(false, err.Error())
		return backoff.Wait(stop, d)
	}
	final := func(err *APIError) bool {
		log.Warn("request failed", "err", err)
		b.event(gw.EventAPIError, fmt.Sprintf("%s request %s for %s refused by the API: %v", req.Channel, req.ID, req.Sim, err),
			map[string]any{"id": req.ID, "sim": req.Sim, "channel": req.Channel, "status": err.Status, "code": err.Code})
		return b.finish(sj, abort, []transport.Publication{b.failedResult(req, err.Message, err.Code)})
	}

	// The SIM, by SID.
	var simSid string
	for {
		sid, err := b.resolve(abort, req.Sim)
		if err == nil {
			simSid = sid
			break
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			ae = &APIError{Message: err.Error(), Err: err}
		}
		if !ae.Retryable() {
			return final(ae)
		}
		if !wait(ae, "SIM lookup") {
			return false
		}
	}
	if len(b.allow) > 0 && !b.allow[simSid] && !b.allow[req.Sim] {
		return final(&APIError{Message: fmt.Sprintf("SIM %s is not in cloud.sims", req.Sim)})
	}

	inDoubt := !req.AttemptedAt.IsZero()
	for {
		if inDoubt {
			cmd, found, err := b.findCreated(abort, req, simSid)
			if err != nil {
				var ae *APIError
				if !errors.As(err, &ae) {
					ae = &APIError{Message: err.Error(), Err: err}
				}
				if !wait(ae, "looking for a command possibly created before") {
					return false
				}
				continue
			}
			if found {
				log.Info("command created before a restart found at the API; not sent again", "sid", cmd.Sid)
				return b.created(sj, req, cmd, abort)
			}
		}
		// Noted before the call: if the bridge dies during it, the next
		// run looks for the command before creating it again.
		req.AttemptedAt = time.Now().UTC()
		body, err := json.Marshal(req)
		if err == nil {
			err = b.q.UpdateJob(abort, sj, body)
		}
		if err != nil {
			log.Error("cannot note the attempt", "err", err)
			return false
		}
		cmd, err := b.create(abort, req, simSid)
		if err == nil {
			b.setAPI(true, "")
			return b.created(sj, req, cmd, abort)
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			ae = &APIError{Message: err.Error(), Err: err}
		}
		if !ae.Retryable() {
			return final(ae)
		}
		// Without an answer the command may exist; with 429 or 5xx the API
		// says it did not take it.
		inDoubt = ae.Status == 0
		if !wait(ae, "create command") {
			return false
		}
	}
}

func (b *Bridge) create(ctx context.Context, req Request, simSid string) (Command, error) {
	cb := b.callbackURL(req)
	if req.Channel == ChannelIP {
		return b.cfg.API.CreateIP(ctx, simSid, req.Payload, req.Binary, req.Port, cb)
	}
	return b.cfg.API.CreateSMS(ctx, simSid, req.Payload, cb)
}

// callbackURL carries the request's id and SIM, so the status callback is
// published against the request even when it arrives first, or at another
// instance.
func (b *Bridge) callbackURL(req Request) string {
	if b.cfg.PublicURL == "" {
		return ""
	}
	v := url.Values{"id": {req.ID}, "sim": {req.Sim}}
	return b.cfg.PublicURL + "/callbacks/" + req.Channel + "?" + v.Encode()
}

// findCreated looks at the SIM's newest to_sim commands for one this
// request created before the bridge died: same payload, created after the
// attempt began, and not taken by another request. A command whose result
// was stored is taken, by this request if a status callback for this
// request's id named it (the callback can outrun the API's answer, and the
// crash can fall between the two), else by another request.
func (b *Bridge) findCreated(ctx context.Context, req Request, simSid string) (Command, bool, error) {
	var cmds []Command
	var err error
	if req.Channel == ChannelIP {
		cmds, err = b.cfg.API.RecentIP(ctx, simSid)
	} else {
		cmds, err = b.cfg.API.RecentSMS(ctx, simSid)
	}
	if err != nil {
		return Command{}, false, err
	}
	since := req.AttemptedAt.Add(-inDoubtMargin)
	var best Command
	found := false
	for _, c := range cmds {
		if c.Payload != req.Payload || (!c.Created.IsZero() && c.Created.Before(since)) {
			continue
		}
		taken, err := b.q.Seen(resultKey(c.Sid, StatusQueued, ""))
		if err != nil {
			return Command{}, false, err
		}
		if taken {
			mine, err := b.calledBack(req, c.Sid)
			if err != nil {
				return Command{}, false, err
			}
			if mine {
				return c, true, nil
			}
			continue
		}
		// The oldest unclaimed match: requests of one SIM are created in
		// order, so an earlier in-doubt one would have claimed its own.
		if !found || c.Created.Before(best.Created) {
			best, found = c, true
		}
	}
	return best, found, nil
}

// calledBack says whether a status callback for req named the command sid:
// its callback URL carries the request's id, and the results it stored are
// keyed by it.
func (b *Bridge) calledBack(req Request, sid string) (bool, error) {
	for _, s := range afterQueued(req.Channel) {
		seen, err := b.q.Seen(resultKey(sid, s, req.ID))
		if err != nil || seen {
			return seen, err
		}
	}
	return false, nil
}

func (b *Bridge) created(sj transport.StoredJob, req Request, cmd Command, abort context.Context) bool {
	b.Created.Add(1)
	status := cmd.Status
	if statusChain(req.Channel, status) == nil {
		status = StatusQueued
	}
	b.log.Debug("command created", "id", req.ID, "sid", cmd.Sid, "status", status)
	return b.finish(sj, abort, b.statusResults(b.resultTopic(req), req.Channel, req.ID, cmd.Sid, status, time.Now()))
}

func (b *Bridge) finish(sj transport.StoredJob, abort context.Context, pubs []transport.Publication) bool {
	bo := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Below)
	for {
		err := b.q.FinishJob(context.Background(), sj, pubs)
		if err == nil {
			return true
		}
		b.log.Error("cannot store the result", "job", sj.ID, "err", err)
		if errors.Is(err, transport.ErrClosed) || backoff.Sleep(abort, bo.Next()) != nil {
			return false
		}
	}
}

// resolve returns the Sim SID for a topic's {sim}: a SID as is, an ICCID
// through the cache or GET /v1/Sims?Iccid=.
func (b *Bridge) resolve(ctx context.Context, sim string) (string, error) {
	if strings.HasPrefix(sim, "HS") {
		return sim, nil
	}
	if sid, ok := b.sims.bySim(sim); ok {
		return sid, nil
	}
	s, ok, err := b.cfg.API.SimByICCID(ctx, sim)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &APIError{Status: http.StatusNotFound, Code: 20404, Message: fmt.Sprintf("no SIM with ICCID %s in this account", sim)}
	}
	if err := b.sims.put(sim, s.Sid); err != nil {
		b.log.Warn("sim cache not written", "err", err)
	}
	return s.Sid, nil
}

// iccidOf is the reverse, for webhooks that name the SIM by SID only.
func (b *Bridge) iccidOf(ctx context.Context, simSid string) (string, error) {
	if i, ok := b.sims.bySid(simSid); ok {
		return i, nil
	}
	s, ok, err := b.cfg.API.SimBySid(ctx, simSid)
	if err != nil {
		return "", err
	}
	if !ok || s.Iccid == "" {
		return simSid, nil // unknown to the API: addressed by its SID
	}
	if err := b.sims.put(s.Iccid, s.Sid); err != nil {
		b.log.Warn("sim cache not written", "err", err)
	}
	return s.Iccid, nil
}
