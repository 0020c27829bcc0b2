package caddyirma

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/privacybydesign/gabi"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
	"github.com/caddy-irma/caddy-irma/caddyirma/proofbounds"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/signature"
)

func init() {
	caddy.RegisterModule(Endpoints{})
	httpcaddyfile.RegisterHandlerDirective("irma_endpoints", parseEndpoints)
	// Before any authentication: the phone that answers a session is not
	// logged in to the site it unlocks.
	httpcaddyfile.RegisterDirectiveOrder("irma_endpoints", httpcaddyfile.Before, "basic_auth")
}

// Endpoints serves the IRMA endpoints of the irma app on a site: the protocol
// that the Yivi app speaks (under session/), the frontend status and pairing
// endpoints that a session page uses (under session/{token}/frontend/), the
// status of a session as server-sent events (statusevents, beside status,
// as irma server has them with SSE on: served by the gateway, with the
// sessions in memory or in Redis), the public keys of the identity JWT
// (jwks.json), login and logout, forward auth (auth), the verification of
// signatures (verify), and, when the app has a timestamp key, the
// timestamp service (under timestamp), the static sessions of the app
// (POST session/<name>, for a configured name only), and the revocation
// updates that wallets and verifiers fetch of the credential types the app
// is the revocation authority of (two reads under revocation/, bounded:
// see revocationroutes.go). Other paths under the prefix are not found:
// irmaserver's other revocation routes and its own static-session routes
// are not exposed.
// It answers requests whose path starts with the path of the app's URL (by
// default /irma/) and passes every other request on, so it can stand at the
// top of a site that it shares with the content it protects.
type Endpoints struct {
	// CORSOrigins are the origins (scheme://host[:port], exactly as
	// browsers send them in Origin) whose pages may follow their sessions
	// here across origins, as with a Yivi frontend on another site: the
	// frontend's status, statusevents, options and pairingcompleted
	// routes and the cancelling DELETE of a session answer their
	// preflights and carry Access-Control-Allow-Origin for them; no other
	// route, and never with credentials. No wildcards. Default: none, no
	// CORS headers at all.
	CORSOrigins []string `json:"cors_origins,omitempty"`

	app  *App
	cors *corsPolicy
}

// CaddyModule returns the Caddy module information.
func (Endpoints) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.irma_endpoints",
		New: func() caddy.Module { return new(Endpoints) },
	}
}

// Provision finds the irma app and checks cors_origins.
func (e *Endpoints) Provision(ctx caddy.Context) error {
	app, err := irmaApp(ctx, "irma_endpoints")
	if err != nil {
		return err
	}
	e.app = app
	e.cors, err = newCORSPolicy(e.CORSOrigins)
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (e *Endpoints) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	a := e.app
	if a.refuseAmbiguousPath(w, r) {
		// Under the prefix too: "/irma/..%2fmembers/" is no IRMA endpoint.
		return nil
	}
	if !strings.HasPrefix(r.URL.Path, a.prefix) {
		// At the top of a site, the endpoints also keep forged headers of
		// the gateway's namespace and the gateway's cookies from every
		// route, protected or not.
		r, ok := a.shield(w, r)
		if !ok {
			return nil
		}
		return next.ServeHTTP(w, r)
	}
	prefix := a.prefix
	rest := r.URL.Path[len(prefix)-1:] // keeps the leading slash
	if e.cors != nil && e.cors.serve(w, r, rest, a.logger) {
		return nil // a preflight, answered whether the IRMA server runs or not
	}
	if err := a.waitStarted(r.Context()); err != nil {
		return e.notRunning(w, r, err)
	}
	switch {
	case a.timestamps != nil && (rest == "/timestamp" || strings.HasPrefix(rest, "/timestamp/")):
		http.StripPrefix(prefix+"timestamp", a.timestamps).ServeHTTP(w, r)
		return nil
	case rest == "/jwks.json":
		a.Login.keys.JWKSHandler().ServeHTTP(w, r)
		return nil
	case rest == "/verify":
		// Anyone may check an attribute-based signature here.
		http.StripPrefix(prefix+"verify", signature.Handler(a.Configuration)).ServeHTTP(w, r)
		return nil
	case rest == "/logout":
		return answerStoreDown(w, r, a.logger, e.serveLogout(w, r))
	case rest == "/login":
		return answerStoreDown(w, r, a.logger, e.serveLogin(w, r))
	case rest == "/auth":
		return answerStoreDown(w, r, a.logger, e.serveForwardAuth(w, r))
	case rest == "/health":
		return answerStoreDown(w, r, a.logger, e.serveHealth(w, r))
	case strings.HasPrefix(rest, "/revocation/"):
		return e.serveRevocation(w, r, rest) // revocationroutes.go
	}
	return e.serveIRMA(w, r, rest)
}

// notRunning answers 503 while the IRMA server is not running (a start or a
// reload under way). Answered here, not as an error: Caddy would log the
// request's URI, and with it a session's client token.
func (e *Endpoints) notRunning(w http.ResponseWriter, r *http.Request, err error) error {
	e.app.logger.Warn("request refused: the IRMA server is not running",
		zap.String("path", logbridge.RedactPaths(r.URL.Path)), zap.Error(err))
	w.Header().Set("Retry-After", "1")
	sessionpage.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error": "unavailable", "message": "the IRMA server is not running: try again shortly"})
	return nil
}

// serveIRMA passes what the Yivi app and session pages ask to irmaserver.
func (e *Endpoints) serveIRMA(w http.ResponseWriter, r *http.Request, rest string) error {
	if name, ok := e.app.staticSessionOf(r, rest); ok {
		return e.serveStaticSession(w, r, name)
	}
	if !allowedIRMAPath(r.Method, rest) {
		// irmaserver also routes static sessions (the gateway starts
		// them itself, staticsessions.go) and more revocation routes than
		// ServeHTTP serves; none of them is reachable.
		// Answered here, not as an error: Caddy would log the request's URI,
		// and with it the session's client token.
		e.app.logger.Debug("no such IRMA endpoint", zap.String("path", logbridge.RedactPaths(rest)))
		http.NotFound(w, r)
		return nil
	}
	rs := e.app.srv.Load()
	if rs == nil {
		return e.notRunning(w, r, errors.New("irma: the IRMA server is not running"))
	}
	if strings.HasSuffix(rest, "/statusevents") {
		return e.streamStatus(w, r, rest, rs)
	}
	if rs.limitCounts == nil { // the sessions are in memory, which is always there
		return e.passIRMA(w, r, rest, rs)
	}
	return serveStoreAware(w, r, e.app.logger, func(w http.ResponseWriter) error { return e.passIRMA(w, r, rest, rs) })
}

// passIRMA passes a request to an exposed route on to irmaserver, with
// the checks of the posts that it would not make.
func (e *Endpoints) passIRMA(w http.ResponseWriter, r *http.Request, rest string, rs *runningServer) error {
	h := http.StripPrefix(strings.TrimSuffix(e.app.prefix, "/"), rs.handler)
	if r.Method == http.MethodPost && (strings.HasSuffix(rest, "/proofs") || strings.HasSuffix(rest, "/commitments")) {
		// Where a session ends and the next of a chain starts.
		nw := &nextErrorWriter{ResponseWriter: w}
		defer nw.finish()
		w = nw
	}
	if tok, ok := proofsClientToken(rest); ok && r.Method == http.MethodPost {
		check := func(body []byte) (gabi.ProofList, error) {
			return proofbounds.CheckPostedDisclosure(rs.conf.Load(), body)
		}
		return serveProofs(w, r, h, rs.marks, tok, e.app.markTTL(), check)
	}
	if r.Method == http.MethodPost && strings.HasSuffix(rest, "/commitments") {
		// gabi would exponentiate with the numbers of the commitments before
		// it checks their sizes (checkPost, proofs.go).
		check := func(body []byte) error { return proofbounds.CheckCommitments(rs.conf.Load(), body) }
		if _, ok := checkPost(w, r, h, check); ok {
			h.ServeHTTP(w, r)
		}
		return nil
	}
	h.ServeHTTP(w, r)
	return nil
}

// policyFlow returns the login flow of the named policy of the request's
// "policy" query parameter.
func (e *Endpoints) policyFlow(r *http.Request) (*loginFlow, error) {
	name := r.URL.Query().Get("policy")
	f, ok := e.app.policyFlows[name]
	if !ok {
		return nil, caddyhttp.Error(http.StatusNotFound, fmt.Errorf("irma: no policy %q", name))
	}
	return f, nil
}

// serveLogin logs the visitor in for the policy named by the "policy"
// query parameter, and then sends the browser to the same-site path in
// "return" (default /). Forward-auth setups send visitors here.
func (e *Endpoints) serveLogin(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("irma: login: method %s", r.Method))
	}
	f, err := e.policyFlow(r)
	if err != nil {
		return err
	}
	ret := returnTo(r.URL.Query().Get("return"))
	login, err := f.check(w, r, func() destination {
		return destination{ret: ret, done: e.loginURL(f.name, ret), code: http.StatusOK}
	})
	if login == nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, ret, http.StatusSeeOther)
	return nil
}

// loginURL is where the login endpoint logs in for a policy.
func (e *Endpoints) loginURL(policyName, ret string) string {
	return e.app.prefix + "login?" + url.Values{"policy": {policyName}, "return": {ret}}.Encode()
}

// serveForwardAuth answers the subrequests of nginx auth_request, Traefik
// ForwardAuth and Caddy forward_auth for the policy named by the "policy"
// query parameter: 200 with the identity JWT in the identity header if the
// visitor's login satisfies it, else 401 with where to log in, in the
// X-Irma-Login header (and, for a browser's page, a page that goes there);
// 503 if the store of marks cannot say whether a logout ended the login.
// The original URL, to return to afterwards, comes from X-Forwarded-Uri
// (Traefik, Caddy) or X-Original-URI (the usual nginx setting).
func (e *Endpoints) serveForwardAuth(w http.ResponseWriter, r *http.Request) error {
	f, err := e.policyFlow(r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	original := r.Header.Get("X-Forwarded-Uri")
	if original == "" {
		original = r.Header.Get("X-Original-Uri")
	}
	// Every value of both headers: a proxy that sets one passes the other
	// on from the client, and which one its app routes on is its own.
	for _, uri := range append(r.Header.Values("X-Forwarded-Uri"), r.Header.Values("X-Original-Uri")...) {
		if err == nil {
			err = ambiguousOriginalURI(uri)
		}
	}
	if err != nil {
		// The proxy would pass this path on to its app as it is, and the app
		// may read it as another route than the proxy asked about. 403, not
		// 400: nginx turns a 400 into a 500, and all three pass a 403 on.
		writePathRefusal(w, http.StatusForbidden, err)
		return nil
	}
	login, err := f.satisfied(r)
	f.counters.request(login != nil && err == nil)
	if err != nil {
		return err
	} else if login != nil {
		token, err := f.token(login)
		if err != nil {
			return err
		}
		w.Header().Set(e.app.Login.IdentityHeader, token)
		w.WriteHeader(http.StatusOK)
		// The response has its headers now (net/http keeps a copy of them
		// at WriteHeader); Caddy's access log reads the map afterwards, and
		// must not find the token, a bearer credential with attribute
		// values in it.
		w.Header().Del(e.app.Login.IdentityHeader)
		return nil
	}
	loginURL := e.loginURL(f.name, returnTo(original))
	w.Header().Set("X-Irma-Login", loginURL)
	if sessionpage.WantsPage(r) {
		return sessionpage.RenderRedirect(w, http.StatusUnauthorized, sessionpage.Language(r), loginURL)
	}
	sessionpage.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "login_required", "login_url": loginURL})
	return nil
}

// irmaPath splits the irmaserver routes the gateway exposes, relative to the
// prefix: the session protocol of the Yivi app, and the frontend endpoints
// of session pages.
var irmaPath = regexp.MustCompile(`^/session/[A-Za-z0-9]+(/?|/request|/commitments|/proofs|/status|/statusevents|/frontend/status|/frontend/statusevents|/frontend/options|/frontend/pairingcompleted)$`)

// irmaMethods is the method of each exposed route, by its ending. POST on a
// bare session path is irmaserver's static-session route: not exposed (the
// gateway starts configured static sessions itself, staticSessionOf).
var irmaMethods = map[string][]string{
	"":                           {http.MethodGet, http.MethodDelete},
	"/":                          {http.MethodGet, http.MethodDelete},
	"/request":                   {http.MethodGet},
	"/commitments":               {http.MethodPost},
	"/proofs":                    {http.MethodPost},
	"/status":                    {http.MethodGet},
	"/statusevents":              {http.MethodGet},
	"/frontend/status":           {http.MethodGet},
	"/frontend/statusevents":     {http.MethodGet},
	"/frontend/options":          {http.MethodPost},
	"/frontend/pairingcompleted": {http.MethodPost},
}

func allowedIRMAPath(method, rest string) bool {
	m := irmaPath.FindStringSubmatch(rest)
	return m != nil && slices.Contains(irmaMethods[m[1]], method)
}

// parseEndpoints sets up the handler from Caddyfile tokens. Syntax:
//
//	irma_endpoints {
//		cors_origins <origin...>
//	}
//
// It takes no arguments: the path prefix is the path of the irma app's url.
// The block is optional.
func parseEndpoints(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	e := new(Endpoints)
	if err := e.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return e, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (e *Endpoints) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("irma_endpoints takes no arguments; the path prefix comes from the url of the irma global option, got %q", d.Val())
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "cors_origins":
			if e.CORSOrigins != nil {
				return d.Err("cors_origins given twice")
			}
			origins, err := unmarshalCORSOrigins(d)
			if err != nil {
				return err
			}
			e.CORSOrigins = origins
		default:
			return d.Errf("irma_endpoints: unknown setting %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Endpoints)(nil)
	_ caddyhttp.MiddlewareHandler = (*Endpoints)(nil)
	_ caddyfile.Unmarshaler       = (*Endpoints)(nil)
)

// serveHealth answers a load balancer's health check: 200 if this instance
// can serve logins (its IRMA server runs, and the store of sessions and
// marks takes a write), else 503 with Retry-After.
func (e *Endpoints) serveHealth(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("irma: health: method %s", r.Method))
	}
	store, err := appServer{e.app}.marks()
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: health: %w", err))
	}
	// A write, as every login and logout makes: a full Redis, or a replica
	// that a failover left read-only, answers reads but cannot serve them.
	if err := store.Put(r.Context(), "health", nil, time.Minute); err != nil {
		return fmt.Errorf("irma: health: %w", err)
	}
	sessionpage.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}
