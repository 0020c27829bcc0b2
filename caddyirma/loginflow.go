package caddyirma

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// loginFlow logs visitors in for one policy. It reads the visitor's login
// from the session cookie; if that does not satisfy the policy, it starts a
// disclosure session for what is missing (a step-up asks only that) and
// answers with the login page or JSON; when the visitor comes back, it
// turns the session's result into a login, bounded by the credentials'
// expiry, and sets the session cookie.
//
// irma_auth holds one per route; the irma app one per named policy, for
// its login and forward-auth endpoints.
type loginFlow struct {
	policy  policy.Policy
	route   string // identifies the policy in pending cookies
	name    string // the policy's name, for the JWT and {irma.policy}
	pairing string
	// audience is the JWT's aud, and what the login's pseudonym is for.
	audience string

	login      *LoginConfig
	backend    backend
	prefix     string        // of the IRMA endpoints, for session pages
	appURL     string        // the IRMA endpoints' URL: its origin is the site's own
	maxSession time.Duration // how long a pending cookie lives
	// scanTimeout is how long a session waits for the Yivi app to scan it.
	scanTimeout time.Duration
	proofsWait  time.Duration // how long a login waits for its proofs' record
	now         func() time.Time
	logger      *zap.Logger
	audit       *zap.Logger          // nil: no audit log (unit tests)
	limiter     sessionlimit.Limiter // nil: no bound
	counters    flowCounters
	// schemes names what the login page lists (nil: identifiers only).
	schemes   func() *irma.Configuration
	revocable []irma.CredentialTypeIdentifier // whose non-revocation the policy asks
}

// destination says where a login goes: ret is the same-site path to land
// on, done where the login page sends the browser when the session is done
// (where the login is picked up), code the status of the login page.
type destination struct {
	ret, done string
	code      int
}

// check returns the visitor's login if it satisfies the policy, picking up
// the result of a login session the visitor ran. Otherwise it answers the
// request itself (a login page, a JSON 401, a refusal) and returns nil.
// dest says where the login goes; it is asked only then, not for a login
// that passes.
func (f *loginFlow) check(w http.ResponseWriter, r *http.Request, dest func() destination) (*loginState, error) {
	now := f.now()
	login, err := f.currentLogin(r, now)
	if err != nil {
		return nil, err
	}
	if login != nil && f.satisfiedBy(login) && f.nonRevocationFresh(login, now) {
		return login, nil
	}
	if p := f.login.cookies.readPending(r, f.route, now); p != nil {
		return f.resume(w, r, p, login, now, dest())
	}
	return nil, f.challenge(w, r, login, now, dest())
}

// satisfied returns the visitor's login if it satisfies the policy, else
// nil; it starts nothing.
func (f *loginFlow) satisfied(r *http.Request) (*loginState, error) {
	now := f.now()
	login, err := f.currentLogin(r, now)
	if err != nil || login == nil || !f.satisfiedBy(login) || !f.nonRevocationFresh(login, now) {
		return nil, err
	}
	return login, nil
}

// satisfiedBy says whether login satisfies the policy; for a login that
// the cache keeps, the answer is kept with it.
func (f *loginFlow) satisfiedBy(login *loginState) bool {
	if login.views == nil {
		return f.policy.SatisfiedBy(toAttributes(login.Attributes))
	}
	return f.view(login).satisfied
}

// currentLogin returns the login of the session cookie, or nil if there
// is none or a logout revoked it. If the store of marks cannot say which,
// it fails closed: 503, neither the login nor a new one.
func (f *loginFlow) currentLogin(r *http.Request, now time.Time) (*loginState, error) {
	value, err := f.login.cookies.loginValue(r)
	if err != nil || value == "" {
		return nil, err
	}
	login := f.login.cookies.openLogin(value, now)
	if login == nil {
		return nil, nil
	}
	revoked, err := loginRevoked(r.Context(), f.backend, login.ID)
	if err != nil {
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: login: %w", err))
	}
	if revoked {
		return nil, nil
	}
	return login, nil
}

// token returns the identity JWT of login for this policy: with the
// attributes that the policy asks for, not everything the login holds
// (another route's step-up may have added more). v is what the flow makes
// of login: it keeps the JWT for reuse, until the Issuer's deadline (on
// the Issuer's clock, time.Now).
func (f *loginFlow) token(login *loginState) (string, error) {
	return f.jwt(f.view(login))
}

// jwt is token of the view v of a login.
func (f *loginFlow) jwt(v *loginView) (string, error) {
	if t := v.token.Load(); t != nil && time.Now().Before(t.until) {
		f.counters.jwt()
		return t.token, nil
	}
	token, until, err := f.login.tokens.TokenUntil(v.identity)
	if err != nil {
		return "", caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: signing the identity token: %w", err))
	}
	v.token.Store(&reusableToken{token: token, until: until})
	f.counters.jwt()
	return token, nil
}

// subject is who the login is to this flow's upstreams: the JWT's sub and
// {irma.login_id}.
func (f *loginFlow) subject(login *loginState) string {
	return f.login.pseudonym(login.ID, f.audience)
}

// resume picks up a login session the visitor started earlier.
func (f *loginFlow) resume(w http.ResponseWriter, r *http.Request, p *pendingSession, login *loginState, now time.Time, dest destination) (*loginState, error) {
	cookies := &f.login.cookies
	pending := cookies.pendingName(f.route)
	state, res, err := lookUpPending(f.backend, p)
	switch {
	case err != nil:
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: login: %w", err))
	case state == pendingRunning:
		// Still going: the same page again, for the same session.
		return nil, f.respond(w, r, p.session(irma.ActionDisclosing, f.prefix), dest, f.request(login, now))
	case state != pendingDone:
		// Gone, cancelled or timed out (the page said so): this is the retry.
		if state == pendingEnded {
			outcome := sessionEndOutcome(res.Status)
			countSessionEnd(irma.ActionDisclosing, outcome, "", p.started())
			f.decision(login, outcome, "").log(f.audit)
		}
		cookies.clear(w, pending)
		return nil, f.challenge(w, r, login, now, dest)
	}

	got, err := policy.FromResult(res)
	if err == nil {
		err = f.checkNonRevocation(res)
	}
	if err != nil {
		cookies.clear(w, pending)
		f.refused(login, "the session result does not count", nil, err)
		countSessionEnd(irma.ActionDisclosing, outcomeRefused, refusedInvalid, p.started())
		return nil, f.deny(w, r, p.Return, deniedAttributes)
	}
	// The expiry of the credentials is also what makes a result count
	// once: taking it makes a replayed pending cookie worthless.
	store, err := f.backend.marks()
	if err != nil {
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: login: %w", err))
	}
	credExpiry, ok, err := takeCredentialExpiry(r.Context(), store, p.clientToken(), f.proofsWait)
	if err != nil {
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: login: %w", err))
	}
	cookies.clear(w, pending) // final from here on
	if !ok {
		f.refused(login, "no credential validity recorded for the session (already used, or the proofs went elsewhere)", nil, nil)
		countSessionEnd(irma.ActionDisclosing, outcomeRefused, refusedUsed, p.started())
		return nil, f.deny(w, r, p.Return, deniedUsed)
	}
	next, refusal, err := f.grant(login, got, credExpiry, now)
	if err != nil {
		return nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: login: %w", err))
	}
	if refusal != "" {
		f.refused(login, refusal, attributeTypes(fromAttributes(got)), nil)
		countSessionEnd(irma.ActionDisclosing, outcomeRefused, refusedAttributes, p.started())
		return nil, f.deny(w, r, p.Return, deniedAttributes)
	}
	f.markNonRevoked(next, login, res, now)
	if err := cookies.setLogin(w, next); err != nil {
		return nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: login: session cookie: %w", err))
	}
	auditEntry{decision: loginDecision(login), outcome: auditGranted, policy: f.name, route: f.route,
		attributes: attributeTypes(next.Attributes), subject: f.subject(next)}.log(f.audit)
	countSessionEnd(irma.ActionDisclosing, outcomeDone, "", p.started())
	countLogin(f.name, login != nil)
	return next, nil
}

// decision is the audit line of what a session of this flow came to for
// login (nil: a first login, else a step-up of it): outcome, and the reason
// of a refusal.
func (f *loginFlow) decision(login *loginState, outcome, reason string) auditEntry {
	e := auditEntry{decision: loginDecision(login), outcome: outcome, reason: reason, policy: f.name, route: f.route}
	if login != nil {
		e.subject = f.subject(login)
	}
	return e
}

// refused writes the audit line of a login (or a step-up of login) that a
// finished session does not give; disclosed are the types it showed.
func (f *loginFlow) refused(login *loginState, reason string, disclosed []string, err error) {
	e := f.decision(login, auditRefused, reason)
	e.attributes, e.err = disclosed, err
	e.log(f.audit)
}

// loginDecision is the decision of a session that extends login: a step-up
// if there is one.
func loginDecision(login *loginState) string {
	if login != nil {
		return decisionStepUp
	}
	return decisionLogin
}

// grant turns what a session disclosed into the visitor's login, on top of
// the login it has (nil for none), or says why it refuses. The login ends
// at the earliest of: the cookie lifetime from now, the end of the login
// it extends, and the expiry of the credentials just disclosed.
func (f *loginFlow) grant(have *loginState, got policy.Attributes, credExpiry, now time.Time) (next *loginState, refusal string, err error) {
	next = &loginState{Expires: now.Add(time.Duration(f.login.CookieLifetime))}
	held := policy.Attributes{}
	if have != nil {
		held = toAttributes(have.Attributes)
		next.ID = have.ID
		if have.Expires.Before(next.Expires) {
			next.Expires = have.Expires
		}
	} else if next.ID, err = newLoginID(); err != nil {
		return nil, "", err
	}
	if credExpiry.Before(next.Expires) {
		next.Expires = credExpiry
	}
	if conflicts := held.Conflicts(got); len(conflicts) > 0 {
		// A step-up must not overwrite what the login holds: that would
		// assert two people's attributes about one login.
		return nil, fmt.Sprintf("the step-up disclosed other values than the login holds (%d attributes)", len(conflicts)), nil
	}
	for id := range held {
		if _, shown := got[id]; !shown {
			// Without them, nothing binds the new credentials to the wallet
			// that made the login (see bindToLogin).
			return nil, "the step-up did not show the attributes of the login", nil
		}
	}
	merged := held.Merge(got)
	if !f.policy.SatisfiedBy(merged) {
		return nil, "the disclosed attributes do not satisfy the policy", nil
	}
	if !next.Expires.After(now) {
		return nil, "the disclosed credentials have expired", nil
	}
	next.Attributes = fromAttributes(merged)
	return next, "", nil
}

// request is the disclosure request of a login session for what the
// policy still asks of login (nil: everything) at now: with the
// non-revocation proofs that it asks (loginrevocation.go).
func (f *loginFlow) request(login *loginState, now time.Time) *irma.DisclosureRequest {
	req := f.need(login, now).DisclosureRequest()
	if login != nil {
		bindToLogin(req, login.Attributes)
	}
	f.askNonRevocation(req)
	return req
}

// challenge starts a disclosure session for what the policy still asks.
func (f *loginFlow) challenge(w http.ResponseWriter, r *http.Request, login *loginState, now time.Time, dest destination) error {
	req := f.request(login, now)
	if deferred, err := deferStart(w, r, f.appURL, dest.code, f.page(sessionpage.Session{}, dest, req)); deferred {
		return err
	}
	if !admitSession(w, r, f.limiter, f.logger) {
		return nil
	}
	s, token, err := startSession(f.backend, f.prefix, req, f.pairing, f.scanTimeout)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: login: %w", err))
	}
	countSessionStarted(irma.ActionDisclosing, "login")
	p := newPending(s, token, f.route, dest.ret)
	if err := f.login.cookies.setPending(w, p, now.Add(f.maxSession)); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: login: pending cookie: %w", err))
	}
	return f.respond(w, r, s, dest, req)
}

// respond shows the login page to a browser, or tells any other client, as
// JSON with a 401, how to run the session.
func (f *loginFlow) respond(w http.ResponseWriter, r *http.Request, s sessionpage.Session, dest destination, req *irma.DisclosureRequest) error {
	if !sessionpage.WantsPage(r) {
		w.Header().Set("WWW-Authenticate", `IRMA realm="caddy-irma"`)
	}
	return showSession(w, r, http.StatusUnauthorized, dest.code, f.page(s, dest, req))
}

// page is the login page of session s, which asks what req does.
func (f *loginFlow) page(s sessionpage.Session, dest destination, req *irma.DisclosureRequest) sessionpage.Page {
	var conf *irma.Configuration
	if f.schemes != nil {
		conf = f.schemes()
	}
	return sessionpage.Page{Kind: sessionpage.KindLogin, Session: s, DoneURL: dest.done, RetryURL: dest.done,
		Request: req, Schemes: conf}
}

// Why a finished login does not count, as the JSON answer says it.
const (
	deniedAttributes = "the disclosed attributes do not grant access"
	deniedUsed       = "the result of this login session was used already, or never arrived: log in again"
)

// deny answers a finished login that does not count.
func (f *loginFlow) deny(w http.ResponseWriter, r *http.Request, ret, why string) error {
	if !sessionpage.WantsPage(r) {
		sessionpage.WriteJSON(w, http.StatusForbidden, map[string]string{"error": "login_refused", "message": why})
		return nil
	}
	return sessionpage.RenderMessage(w, http.StatusForbidden, sessionpage.Language(r), "refused", ret)
}

// bindToLogin makes a step-up session also disclose every attribute that
// the login holds; grant checks that they come with the same values. IRMA
// binds all credentials disclosed in one session to one holder (they share
// the wallet's secret key), so the new attributes come from a wallet that
// holds the login's, not from someone else's; two sessions are bound by
// nothing. The request names no values: whoever scans its QR code would
// see them.
func bindToLogin(req *irma.DisclosureRequest, held map[string]string) {
	ids := make([]string, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		req.Disclose = append(req.Disclose, irma.AttributeDisCon{irma.AttributeCon{
			irma.AttributeRequest{Type: irma.NewAttributeTypeIdentifier(id), NotNull: true},
		}})
	}
}

// newLoginFlow returns a login flow for a policy on the app's server and
// login settings: route identifies the policy in pending cookies, name is
// its name for the JWT and {irma.policy}.
func (a *App) newLoginFlow(p policy.Policy, route, name, pairing, audience string, logger *zap.Logger) *loginFlow {
	if audience == "" {
		audience = a.Login.Audience
	}
	return &loginFlow{
		policy: p, route: route, name: name, pairing: pairing, audience: audience,
		login: a.Login, backend: appServer{a}, prefix: a.prefix, appURL: a.serverURL,
		maxSession: time.Duration(a.MaxSessionLifetime), scanTimeout: time.Duration(a.ScanTimeout),
		proofsWait: defaultProofsWait, now: a.now, logger: logger, audit: a.audit,
		limiter: a.limiter, counters: newFlowCounters(name), schemes: a.Configuration,
		revocable: revocableTypes(p, a.Configuration()),
	}
}
