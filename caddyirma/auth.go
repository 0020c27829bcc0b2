package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/returnurl"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

func init() {
	caddy.RegisterModule(Auth{})
	httpcaddyfile.RegisterDirective("irma_auth", parseAuthDirective)
	// Before the other authentication directives, like irma_endpoints,
	// which it brings along.
	httpcaddyfile.RegisterDirectiveOrder("irma_auth", httpcaddyfile.Before, "basic_auth")
}

// Placeholders that irma_auth sets for the handlers after it, once a visitor
// is logged in:
//
//	{irma.attr.<attribute id>}  the value of a disclosed attribute, such as
//	                            {irma.attr.caddy-demo.gateway.person.email}
//	{irma.policy}               the name of the route's policy
//	{irma.login_id}             an opaque id of the login (the JWT's sub)
//	{irma.login_expires}        when the login ends, RFC 3339
const placeholderPrefix = "irma."

// Auth protects the routes it is matched to: a visitor who has not disclosed
// what the route's policy requires gets a login page (a QR code for the
// Yivi app, or a button that opens it on a phone), or, if the request is not
// a page navigation, a 401 with JSON that tells a client how to run the
// session itself (see sessionpage.Info). Once the session is done, the
// visitor has a session cookie and the request goes on, with the disclosed
// attributes in a signed JWT in a request header (X-Irma-Identity by
// default; the keys are at the JWKS endpoint of irma_endpoints), optionally
// in plain headers, and in placeholders under {irma.*}.
//
// A route whose policy asks more than the visitor's login holds (step-up)
// asks only for what is missing, and adds it to the login. Identity headers
// that a client sends are removed, in every spelling, and the gateway's
// cookies never reach the upstream.
type Auth struct {
	// Policy names a policy of the irma app (its "policies"). Either Policy
	// or Requirements must be given, not both. Default: none.
	Policy string `json:"policy,omitempty"`

	// Requirements is a policy of this route alone: every requirement must
	// be met. Default: none.
	Requirements []policy.Requirement `json:"requirements,omitempty"`

	// Headers are plain request headers for upstreams that cannot verify a
	// JWT: attribute id -> header name. A header is set only if the login
	// holds the attribute, and always removed from what the client sent.
	// Default: none.
	Headers map[string]string `json:"headers,omitempty"`

	// Pairing says whether the login page asks for the pairing code that the
	// Yivi app shows after scanning: "auto" (irmago's advice: pair when the
	// policy asks for specific values), "on" or "off". Default: auto.
	Pairing string `json:"pairing,omitempty"`

	app    *App
	policy policy.Policy
	route  string // identifies the policy in pending logins
	name   string // the policy's name, for the JWT and {irma.policy}
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Auth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.irma_auth",
		New: func() caddy.Module { return new(Auth) },
	}
}

// Provision resolves the policy and checks it against the schemes.
func (h *Auth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := irmaApp(ctx, "irma_auth")
	if err != nil {
		return err
	}
	h.app = app
	switch {
	case h.Policy != "" && len(h.Requirements) > 0:
		return fmt.Errorf("irma_auth: policy %q and requirements given: use one", h.Policy)
	case h.Policy != "":
		p, ok := h.app.Policies[h.Policy]
		if !ok {
			return fmt.Errorf("irma_auth: policy %q: no such policy in the irma app", h.Policy)
		}
		h.policy, h.name, h.route = p, h.Policy, "policy:"+h.Policy
	default:
		h.policy = policy.Policy{Requirements: h.Requirements}
		if err := h.policy.Validate(h.app.Configuration()); err != nil {
			return fmt.Errorf("irma_auth: %w", err)
		}
		b, err := json.Marshal(h.policy)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.route = "route:" + hex.EncodeToString(sum[:12])
		h.name = h.route
	}
	if err := checkPairing(h.Pairing); err != nil {
		return fmt.Errorf("irma_auth: %w", err)
	}
	for id, name := range h.Headers {
		if err := checkAttributeID(h.app, id); err != nil {
			return fmt.Errorf("irma_auth: headers: %w", err)
		}
		if !validHeaderName(name) {
			return fmt.Errorf("irma_auth: headers: attribute %s: %q is not a header name", id, name)
		}
		if reservedHeaders[normalizeHeader(name)] || normalizeHeader(name) == normalizeHeader(h.app.Login.IdentityHeader) {
			return fmt.Errorf("irma_auth: headers: attribute %s: header %q is not for attributes", id, name)
		}
		h.app.identityHeaders.Store(normalizeHeader(name), true)
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Auth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// irma_auth brings the IRMA endpoints along, whatever it is matched to.
	if h.app.servesEndpoint(r) {
		return h.app.serveEndpoint(w, r, next)
	}
	r = h.app.shield(r)
	if err := h.app.waitStarted(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_auth: %w", err))
	}
	// Back to the URL the browser asked for, not the one that rewrite or
	// handle_path made of it.
	uri := r.URL.RequestURI()
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		uri = orig.URL.RequestURI()
	}
	ret, err := returnurl.Check(uri)
	if err != nil {
		ret = "/"
	}
	login, err := h.check(w, r, flow{ret: ret, done: ret, code: http.StatusUnauthorized})
	if login == nil || err != nil {
		return err
	}
	return h.pass(w, r, next, login)
}

// flow says where a login goes: ret is the same-site path to land on, done
// where the login page sends the browser when the session is done (where
// the login is picked up), code the status of the login page.
type flow struct {
	ret, done string
	code      int
}

// check returns the visitor's login if it satisfies the policy, picking up
// the result of a login session the visitor ran. Otherwise it answers the
// request itself (a login page, a JSON 401, a refusal) and returns nil.
func (h *Auth) check(w http.ResponseWriter, r *http.Request, f flow) (*loginState, error) {
	l := h.app.Login
	now := time.Now()
	login := l.readLogin(r, now)
	if login != nil && h.policy.SatisfiedBy(toAttributes(login.Attributes)) {
		return login, nil
	}
	if p := l.readPending(r, h.route, now); p != nil {
		return h.resume(w, r, p, login, now, f)
	}
	return nil, h.challenge(w, r, login, now, f)
}

// token returns the identity JWT of login for this route: with the
// attributes that the route's policy asks for, not everything the login
// holds (another route's step-up may have added more).
func (h *Auth) token(login *loginState) (string, error) {
	attrs := map[string]string{}
	for _, id := range h.policy.AttributeTypes() {
		if v, ok := login.Attributes[id.String()]; ok {
			attrs[id.String()] = v
		}
	}
	token, err := h.app.Login.tokens.Token(assertion.Identity{
		Subject: login.ID, Attributes: attrs, Policy: h.name, LoginID: login.ID, Expires: login.Expires,
	})
	if err != nil {
		return "", caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma: signing the identity token: %w", err))
	}
	return token, nil
}

// pass sends the logged-in request on.
func (h *Auth) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, login *loginState) error {
	l := h.app.Login
	token, err := h.token(login)
	if err != nil {
		return err
	}
	r.Header.Set(l.IdentityHeader, token)
	for id, name := range h.Headers {
		if v, ok := login.Attributes[id]; ok && validHeaderValue(v) {
			r.Header.Set(name, v)
		}
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("irma_auth: no replacer in the request"))
	}
	for id, v := range login.Attributes {
		repl.Set(placeholderPrefix+"attr."+id, v)
	}
	repl.Set(placeholderPrefix+"policy", h.name)
	repl.Set(placeholderPrefix+"login_id", login.ID)
	repl.Set(placeholderPrefix+"login_expires", login.Expires.UTC().Format(time.RFC3339))
	return next.ServeHTTP(&privateResponse{ResponseWriter: w}, r)
}

// privateResponse keeps shared caches from storing what a login sees: the
// response to an authenticated request is for this visitor only, and the
// one that completes a login also sets the session cookie.
type privateResponse struct {
	http.ResponseWriter
	wroteHeader bool
}

func (p *privateResponse) WriteHeader(code int) {
	if !p.wroteHeader {
		p.wroteHeader = true
		h := p.Header()
		if len(h.Values("Set-Cookie")) > 0 {
			h.Set("Cache-Control", "no-store")
		} else if cc := strings.ToLower(h.Get("Cache-Control")); !strings.Contains(cc, "private") && !strings.Contains(cc, "no-store") {
			// Keep what the upstream said about freshness, for this browser.
			cc = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(cc, "public,", ""), "public", ""))
			cc = strings.Trim(cc, ", ")
			if cc == "" {
				h.Set("Cache-Control", "private")
			} else {
				h.Set("Cache-Control", "private, "+cc)
			}
		}
		h.Add("Vary", "Cookie")
	}
	p.ResponseWriter.WriteHeader(code)
}

func (p *privateResponse) Write(b []byte) (int, error) {
	if !p.wroteHeader {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

func (p *privateResponse) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// resume picks up a login session the visitor started earlier.
func (h *Auth) resume(w http.ResponseWriter, r *http.Request, p *pendingLogin, login *loginState, now time.Time, f flow) (*loginState, error) {
	l := h.app.Login
	pending := l.pendingName(h.route)
	state, res, err := h.app.pendingResult(p)
	switch {
	case err != nil:
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_auth: %w", err))
	case state == pendingRunning:
		// Still going: the same page again, for the same session.
		return nil, h.respond(w, r, p.session(irma.ActionDisclosing, h.app.PathPrefix()), f)
	case state != pendingDone:
		// Gone, cancelled or timed out (the page said so): this is the retry.
		l.clearCookie(w, pending)
		return nil, h.challenge(w, r, login, now, f)
	}

	got, err := policy.FromResult(res)
	if err != nil {
		l.clearCookie(w, pending)
		h.logger.Warn("login refused: the session result does not count", zap.String("route", h.route), zap.Error(err))
		return nil, h.deny(w, r, p.Return)
	}
	// The expiry of the credentials is also what makes a result count
	// once: taking it makes a replayed pending cookie worthless.
	clientToken := clientTokenOf(p.Pointer)
	credExpiry, ok, err := h.app.takeOnce(r.Context(), clientToken)
	if err != nil {
		return nil, caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_auth: %w", err))
	}
	l.clearCookie(w, pending) // final from here on
	if !ok {
		h.logger.Warn("login refused: no credential validity recorded for the session (already used, or the proofs went elsewhere)",
			zap.String("route", h.route), zap.String("session", logbridge.Fingerprint(clientToken)))
		return nil, h.deny(w, r, p.Return)
	}
	have := policy.Attributes{}
	next2 := &loginState{Expires: now.Add(time.Duration(l.CookieLifetime))}
	if login != nil {
		have = toAttributes(login.Attributes)
		next2.ID = login.ID
		if login.Expires.Before(next2.Expires) {
			next2.Expires = login.Expires
		}
	} else if next2.ID, err = newLoginID(); err != nil {
		return nil, caddyhttp.Error(http.StatusInternalServerError, err)
	}
	if credExpiry.Before(next2.Expires) {
		next2.Expires = credExpiry
	}
	if conflicts := have.Conflicts(got); len(conflicts) > 0 {
		// A step-up must not overwrite what the login holds: that would
		// assert two people's attributes about one login.
		h.logger.Warn("login refused: the step-up disclosed other values than the login holds", zap.String("route", h.route), zap.Int("conflicts", len(conflicts)))
		return nil, h.deny(w, r, p.Return)
	}
	merged := have.Merge(got)
	if !h.policy.SatisfiedBy(merged) || !next2.Expires.After(now) {
		h.logger.Warn("login refused: the disclosed attributes do not satisfy the policy", zap.String("route", h.route))
		return nil, h.deny(w, r, p.Return)
	}
	next2.Attributes = fromAttributes(merged)
	if err := l.setLogin(w, next2); err != nil {
		return nil, caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_auth: session cookie: %w", err))
	}
	h.logger.Info("login", zap.String("route", h.route), zap.String("login", logbridge.Fingerprint(next2.ID)),
		zap.Int("attributes", len(next2.Attributes)), zap.Time("expires", next2.Expires))
	return next2, nil
}

// challenge starts a disclosure session for what the policy still asks.
func (h *Auth) challenge(w http.ResponseWriter, r *http.Request, login *loginState, now time.Time, f flow) error {
	need := h.policy
	if login != nil {
		need = h.policy.Missing(toAttributes(login.Attributes))
	}
	s, token, err := h.app.startSession(need.DisclosureRequest(), h.Pairing)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_auth: %w", err))
	}
	p := &pendingLogin{
		Token: string(token), Pointer: s.Pointer.URL, FrontendAuth: string(s.FrontendAuth),
		PairingCode: s.PairingCode, Route: h.route, Return: f.ret,
	}
	if err := h.app.Login.setPending(w, p, now.Add(time.Duration(h.app.MaxSessionLifetime))); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_auth: pending cookie: %w", err))
	}
	return h.respond(w, r, s, f)
}

// respond shows the login page to a browser, or tells any other client, as
// JSON, how to run the session.
func (h *Auth) respond(w http.ResponseWriter, r *http.Request, s sessionpage.Session, f flow) error {
	w.Header().Set("Cache-Control", "no-store")
	if !sessionpage.WantsPage(r) {
		info, err := sessionpage.NewInfo(s)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		w.Header().Set("WWW-Authenticate", `IRMA realm="caddy-irma"`)
		sessionpage.WriteJSON(w, http.StatusUnauthorized, info)
		return nil
	}
	return sessionpage.RenderStatus(w, f.code, sessionpage.Page{
		Kind: sessionpage.KindLogin, Lang: sessionpage.Language(r), Session: s, DoneURL: f.done, RetryURL: f.done,
	})
}

// deny answers a finished login that does not count.
func (h *Auth) deny(w http.ResponseWriter, r *http.Request, ret string) error {
	if !sessionpage.WantsPage(r) {
		sessionpage.WriteJSON(w, http.StatusForbidden, map[string]string{"error": "login_refused", "message": "the disclosed attributes do not grant access"})
		return nil
	}
	return sessionpage.RenderMessage(w, http.StatusForbidden, sessionpage.Language(r), "refused", ret)
}

// clientTokenOf returns the client token of a session pointer URL.
func clientTokenOf(pointer string) string { return pointer[strings.LastIndex(pointer, "/")+1:] }

func toAttributes(m map[string]string) policy.Attributes {
	a := make(policy.Attributes, len(m))
	for id, v := range m {
		a[irma.NewAttributeTypeIdentifier(id)] = v
	}
	return a
}

func fromAttributes(a policy.Attributes) map[string]string {
	m := make(map[string]string, len(a))
	for id, v := range a {
		m[id.String()] = v
	}
	return m
}

// checkAttributeID checks that id names an attribute of the app's schemes.
func checkAttributeID(a *App, id string) error {
	return policy.Policy{Requirements: []policy.Requirement{{Options: []policy.Conjunction{{{Type: id}}}}}}.Validate(a.Configuration())
}

// normalizeHeader folds the spellings under which a header may reach an
// upstream: case, and underscores for dashes (CGI turns both into the
// same variable).
func normalizeHeader(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// reservedHeaders are headers that an attribute must not stand in for:
// the gateway removes what clients send in attribute headers.
var reservedHeaders = map[string]bool{
	"cookie": true, "authorization": true, "host": true, "content-length": true, "content-type": true,
	"transfer-encoding": true, "connection": true, "x-forwarded-for": true, "x-forwarded-host": true,
	"x-forwarded-proto": true, "forwarded": true, "proxy-authorization": true, "te": true, "upgrade": true,
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if c > 0x7e || c <= 0x20 || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseAuthDirective sets up irma_auth from Caddyfile tokens, and the IRMA
// endpoints with it. Syntax:
//
//	irma_auth [<matcher>] [<policy name>] {
//		policy  <name>
//		require <expression> [{
//			label <lang> <text>
//		}]
//		header  <attribute id> <header name>
//		pairing auto|on|off
//	}
//
// A named policy (of the irma global option), or requirements, not both.
// Each require line is one requirement, an expression such as
// `a.b.c.d=yes and a.b.c.e or x.y.z.w` (see package policy).
func parseAuthDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	a := new(Auth)
	if err := a.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// The directive's matcher applies to the protection only: the endpoints
	// answer on their own prefix, and pass everything else on.
	return append(h.NewRoute(nil, new(Endpoints)), h.NewRoute(matcherSet, a)...), nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Auth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Policy = d.Val()
		if d.NextArg() {
			return d.Errf("irma_auth: unexpected argument %q after the policy name", d.Val())
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "policy":
			if h.Policy != "" {
				return d.Err("irma_auth: policy given twice")
			}
			if err := oneArg(d, &h.Policy); err != nil {
				return err
			}
		case "require":
			req, err := parseRequire(d)
			if err != nil {
				return err
			}
			h.Requirements = append(h.Requirements, req)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Err("irma_auth: header takes an attribute id and a header name")
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			if _, dup := h.Headers[args[0]]; dup {
				return d.Errf("irma_auth: header for %s given twice", args[0])
			}
			h.Headers[args[0]] = args[1]
		case "pairing":
			if h.Pairing != "" {
				return d.Err("irma_auth: pairing given twice")
			}
			if err := oneArg(d, &h.Pairing); err != nil {
				return err
			}
			if err := checkPairing(h.Pairing); err != nil {
				return d.Errf("irma_auth: %v", err)
			}
		default:
			return d.Errf("irma_auth: unknown setting %q", d.Val())
		}
	}
	if h.Policy == "" && len(h.Requirements) == 0 {
		return d.Err("irma_auth: a policy name or at least one require line is needed")
	}
	if h.Policy != "" && len(h.Requirements) > 0 {
		return d.Errf("irma_auth: policy %q and require lines given: use one", h.Policy)
	}
	return nil
}

// parseRequire parses a require line: one expression, and an optional
// block of labels.
func parseRequire(d *caddyfile.Dispenser) (policy.Requirement, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return policy.Requirement{}, d.Err("require needs an expression, such as caddy-demo.gateway.person.over18=yes")
	}
	if len(args) > 1 && strings.Contains(strings.Join(args, " "), `"`) {
		// Caddy's lexer honours a quote only at the start of a token, so a
		// quoted value with spaces would be cut up and joined with one space:
		// a required value could change unnoticed.
		return policy.Requirement{}, d.Err("require: put an expression with a quoted value in backticks, such as `a.b.c.d=\"Alice Demo\"`")
	}
	req, err := policy.ParseRequirement(strings.Join(args, " "))
	if err != nil {
		return policy.Requirement{}, d.Errf("require %q: %v", strings.Join(args, " "), err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "label" {
			return policy.Requirement{}, d.Errf("require: unknown setting %q (want label)", d.Val())
		}
		args := d.RemainingArgs()
		if len(args) != 2 {
			return policy.Requirement{}, d.Err("label takes a language and a text, such as: label en \"Proof of age\"")
		}
		if req.Label == nil {
			req.Label = map[string]string{}
		}
		if _, dup := req.Label[args[0]]; dup {
			return policy.Requirement{}, d.Errf("label %s given twice", args[0])
		}
		req.Label[args[0]] = args[1]
	}
	return req, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Auth)(nil)
	_ caddyhttp.MiddlewareHandler = (*Auth)(nil)
	_ caddyfile.Unmarshaler       = (*Auth)(nil)
)
