package caddyirma

import (
	"errors"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
)

// The end of a session that no browser brings back to the gateway: an
// issuance (its page only follows the status) and a requestor's session
// (the requestor takes the result). A login or a signature ends where the
// browser comes back with its pending cookie (loginflow.go,
// signresult.go); these are watched instead, by the instance that started
// them, until they end.

// sessionWatchEvery is how often a watched session's status is read when
// the sessions are in Redis, whose irmaserver tells no status changes: one
// read of the session store per watched session and period. In memory the
// watcher reads the status only when irmaserver's status channel says it
// changed (statusChanges, statusstream.go).
var sessionWatchEvery = 2 * time.Second

// watchSession counts the end of the session of token in
// sessions_finished_total and session_duration_seconds and writes entry
// with the outcome (done, cancelled or timeout) to the audit log. A
// session that the store loses first, or that the server stops with, is
// neither. A session chained after it is watched in turn.
func (a *App) watchSession(token irma.RequestorToken, action irma.Action, entry auditEntry) {
	a.followSession(token, action, entry, nil)
}

// followSession is watchSession, which runs ended, if not nil, once the
// session has ended.
func (a *App) followSession(token irma.RequestorToken, action irma.Action, entry auditEntry, ended func(*runningServer)) {
	rs := a.srv.Load()
	if rs == nil {
		return
	}
	started, keep := time.Now(), time.Duration(a.SessionResultLifetime)
	var changes <-chan struct{}
	if subscribe := rs.statusChanges(token); subscribe != nil {
		changes, _ = subscribe() // nil if it fails: then it polls
	}
	go func() {
		outcome := awaitEnd(rs, rs.stopped, changes, token, keep)
		if outcome == "" {
			return
		}
		countSessionEnd(action, outcome, "", started)
		entry.outcome = outcome
		entry.log(a.audit)
		if ended != nil {
			ended(rs)
		}
		if outcome == outcomeDone {
			a.watchNextSession(rs, token, entry)
		}
	}()
}

// watchNextSession watches the session that irmaserver chained after the
// done session of token, if any, as a session the requestor started.
func (a *App) watchNextSession(rs *runningServer, token irma.RequestorToken, entry auditEntry) {
	res, err := rs.GetSessionResult(token)
	if err != nil || res == nil || res.NextSession == "" {
		return
	}
	next, err := rs.GetSessionResult(res.NextSession)
	if err != nil || next == nil {
		return
	}
	handler := "irma_requestor_api"
	if entry.decision == decisionStatic {
		handler = "static_session"
	}
	countSessionStarted(next.Type, handler)
	entry.outcome, entry.session = "", next.Type
	a.watchSession(res.NextSession, next.Type, entry)
}

// sessionResults is what awaitEnd reads of an IRMA server.
type sessionResults interface {
	GetSessionResult(irma.RequestorToken) (*server.SessionResult, error)
}

// awaitEnd reads the status of the session of token until it ends, and
// returns its outcome; or "" if stopped is closed (the server stops), the
// session is gone, or the store has failed for longer than keep, how long
// irmaserver keeps a result. It reads whenever changes (irmaserver's
// status channel, closed when the session ends) says the status changed,
// and every sessionWatchEvery once changes is nil or closed.
func awaitEnd(s sessionResults, stopped, changes <-chan struct{}, token irma.RequestorToken, keep time.Duration) string {
	tick := time.NewTicker(sessionWatchEvery)
	defer tick.Stop()
	var poll <-chan time.Time
	if changes == nil {
		poll = tick.C
	}
	var failing time.Time
	for {
		select {
		case <-stopped:
			return ""
		case <-poll:
		case _, open := <-changes:
			if !open {
				changes, poll = nil, tick.C
			}
		}
		res, err := s.GetSessionResult(token)
		var unknown *irmaserver.UnknownSessionError
		switch {
		case errors.As(err, &unknown) || (err == nil && res == nil):
			return ""
		case err != nil:
			countStoreError("sessions")
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > keep {
				return ""
			}
			continue
		}
		failing = time.Time{}
		switch res.Status {
		case irma.ServerStatusDone:
			return outcomeDone
		case irma.ServerStatusCancelled, irma.ServerStatusTimeout:
			return sessionEndOutcome(res.Status)
		}
	}
}

// requestorSessions is the IRMA server of irma_requestor_api: the app's,
// with each session that it starts watched to its end, and started as the
// API's (chain is its key, chains.go).
type requestorSessions struct {
	appServer
	chain string
}

// StartSession implements requestor.Server.
func (s requestorSessions) StartSession(req any, handler server.SessionHandler, name string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error) {
	ptr, token, frontend, err := s.appServer.StartSession(req, handler, s.chain+"/"+name)
	if err == nil {
		s.app.watchSession(token, ptr.Type, auditEntry{decision: decisionRequestor, requestor: name, session: ptr.Type})
	}
	return ptr, token, frontend, err
}

var _ requestor.Server = requestorSessions{}
