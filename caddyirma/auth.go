package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
)

func init() {
	caddy.RegisterModule(Auth{})
	httpcaddyfile.RegisterDirective("irma_auth", parseAuthDirective)
	// Before the other authentication directives, like irma_endpoints,
	// which it brings along.
	httpcaddyfile.RegisterDirectiveOrder("irma_auth", httpcaddyfile.Before, "basic_auth")
}

// placeholderPrefix is the prefix of the placeholders that irma_auth sets
// (see Auth).
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
// asks only for what is missing, and adds it to the login. Headers of the
// gateway's namespace that a client sends are removed, in every spelling:
// every name that starts with X-Irma- (ignoring case, with underscores and
// dots read as dashes), the identity header, and the plain headers of every
// irma_auth route; a request that declares a trailer of the namespace gets
// 400. The gateway's cookies never reach the upstream.
//
// Once a visitor is logged in, it sets these placeholders for the handlers
// after it:
//
//	{irma.attr.<attribute id>}  the value of a disclosed attribute, such as
//	                            {irma.attr.caddy-demo.gateway.person.email}
//	{irma.policy}               the name of the route's policy
//	{irma.login_id}             the login's pseudonym for the route's
//	                            audience (the JWT's sub)
//	{irma.login_expires}        when the login ends, RFC 3339
//
// The IRMA endpoints (irma_endpoints) must answer on the site as well: the
// irma_auth directive of the Caddyfile brings them along; in JSON, put an
// irma_endpoints handler before it.
type Auth struct {
	// Policy names a policy of the irma app (its "policies"). Either Policy
	// or Requirements must be given, not both. Default: none.
	Policy string `json:"policy,omitempty"`

	// Requirements is a policy of this route alone: every requirement must
	// be met. Default: none.
	Requirements []policy.Requirement `json:"requirements,omitempty"`

	// Headers are plain request headers for upstreams that cannot verify a
	// JWT: attribute id -> header name. A header is set only if the login
	// holds the attribute. Each name joins the gateway's header namespace:
	// a client's copy, in any spelling, is removed from every request that
	// the gateway passes on, on any route. Default: none.
	Headers map[string]string `json:"headers,omitempty"`

	// Pairing says whether the login page asks for the pairing code that the
	// Yivi app shows after scanning: "auto" (irmago's advice: pair when the
	// policy asks for specific values), "on" or "off". Default: auto.
	Pairing string `json:"pairing,omitempty"`

	// Audience is the JWT's "aud" claim for this route's upstream. The JWT's
	// "sub" (and {irma.login_id}) is a pseudonym of the login for the
	// audience: upstreams of different audiences cannot link a visitor by
	// it, upstreams of one audience see one subject. Default: the login's
	// audience (caddy-irma).
	Audience string `json:"audience,omitempty"`

	app  *App
	flow *loginFlow
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
	app, err := irmaApp(ctx, "irma_auth")
	if err != nil {
		return err
	}
	h.app = app
	p, err := h.resolvePolicy(app.Policies)
	if err != nil {
		return fmt.Errorf("irma_auth: %w", err)
	}
	var name, route string
	if h.Policy != "" {
		name, route = h.Policy, "policy:"+h.Policy
	} else {
		if err := p.Validate(app.Configuration()); err != nil {
			return fmt.Errorf("irma_auth: %w", err)
		}
		app.requireSchemes(func(conf *irma.Configuration) error {
			if err := p.Validate(conf); err != nil {
				return fmt.Errorf("irma_auth: %w", err)
			}
			return nil
		})
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		route = "route:" + hex.EncodeToString(sum[:12])
		name = route
	}
	if err := checkPairing(h.Pairing); err != nil {
		return fmt.Errorf("irma_auth: %w", err)
	}
	if err := h.provisionHeaders(); err != nil {
		return fmt.Errorf("irma_auth: headers: %w", err)
	}
	h.flow = app.newLoginFlow(p, route, name, h.Pairing, h.Audience, ctx.Logger())
	return nil
}

// resolvePolicy returns the policy that h enforces: the one of policies
// that h names, or h's own requirements. The caller checks the latter
// against the schemes; policies are checked already.
func (h *Auth) resolvePolicy(policies map[string]policy.Policy) (policy.Policy, error) {
	switch {
	case h.Policy != "" && len(h.Requirements) > 0:
		return policy.Policy{}, fmt.Errorf("policy %q and requirements given: use one", h.Policy)
	case h.Policy != "":
		p, ok := policies[h.Policy]
		if !ok {
			return policy.Policy{}, fmt.Errorf("policy %q: no such policy in the irma app", h.Policy)
		}
		return p, nil
	}
	return policy.Policy{Requirements: h.Requirements}, nil
}

// provisionHeaders checks the plain attribute headers, and has the app
// strip them from every request.
func (h *Auth) provisionHeaders() error {
	for id, name := range h.Headers {
		if err := checkAttributeID(h.app.Configuration(), id); err != nil {
			return err
		}
		h.app.requireSchemes(func(conf *irma.Configuration) error {
			if err := checkAttributeID(conf, id); err != nil {
				return fmt.Errorf("irma_auth: header of %s: %w", id, err)
			}
			return nil
		})
		if !validHeaderName(name) {
			return fmt.Errorf("attribute %s: %q is not a header name", id, name)
		}
		if reservedHeaders[normalizeHeader(name)] || normalizeHeader(name) == normalizeHeader(h.app.Login.IdentityHeader) {
			return fmt.Errorf("attribute %s: header %q is not for attributes", id, name)
		}
		h.app.identityHeaders.add(name)
	}
	return nil
}

// checkAttributeID checks that id names an attribute of the schemes.
func checkAttributeID(conf *irma.Configuration, id string) error {
	return policy.Policy{Requirements: []policy.Requirement{{Options: []policy.Conjunction{{{Type: id}}}}}}.Validate(conf)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Auth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.app.refuseAmbiguousPath(w, r) {
		return nil
	}
	r, ok := h.app.shield(w, r)
	if !ok {
		return nil
	}
	if err := h.app.waitStarted(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_auth: %w", err))
	}
	login, err := h.flow.check(w, r, func() destination {
		ret := requestReturn(r)
		return destination{ret: ret, done: ret, code: http.StatusUnauthorized}
	})
	h.flow.counters.request(login != nil && err == nil)
	if login == nil || err != nil {
		return answerStoreDown(w, r, h.flow.logger, err)
	}
	return h.pass(w, r, next, login)
}

// pass sends the logged-in request on.
func (h *Auth) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, login *loginState) error {
	view := h.flow.view(login)
	token, err := h.flow.jwt(view)
	if err != nil {
		return err
	}
	r.Header.Set(h.app.Login.IdentityHeader, token)
	for id, name := range h.Headers {
		if v, ok := login.Attributes[id]; ok && validHeaderValue(v) {
			r.Header.Set(name, v)
		}
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	state, shielded := r.Context().Value(shieldedKey{}).(*shielded)
	if !ok || !shielded {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("irma_auth: no replacer or shield in the request"))
	}
	state.setPlaceholders(repl, view)
	return next.ServeHTTP(&privateResponse{ResponseWriter: w}, r)
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
//		pairing  auto|on|off
//		audience <aud>
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
		case "audience":
			if h.Audience != "" {
				return d.Err("irma_auth: audience given twice")
			}
			if err := oneArg(d, &h.Audience); err != nil {
				return err
			}
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Auth)(nil)
	_ caddyhttp.MiddlewareHandler = (*Auth)(nil)
	_ caddyfile.Unmarshaler       = (*Auth)(nil)
)
