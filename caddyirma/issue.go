package caddyirma

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/returnurl"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

func init() {
	caddy.RegisterModule(Issue{})
	httpcaddyfile.RegisterHandlerDirective("irma_issue", parseIssue)
	httpcaddyfile.RegisterDirectiveOrder("irma_issue", httpcaddyfile.Before, "respond")
}

// Issue runs an IRMA issuance session for the visitor: it gives the Yivi app
// the configured credentials, with attribute values from constants or Caddy
// placeholders (such as {http.auth.user.id} after basic_auth, or
// {http.request.uri.query.name}). A browser's page navigation gets a page
// with a QR code and an app link that follows the session; any other client
// gets the session as JSON (see sessionpage.Info).
type Issue struct {
	// Credentials are the credentials to issue, at least one. Each type must
	// be in the irma app's schemes, with the issuer's private key present.
	Credentials []CredentialSpec `json:"credentials,omitempty"`

	// Disclose makes the session disclose-then-issue (in one session, as
	// IRMA does it): the Yivi app must first disclose these requirements,
	// as in an irma_auth policy, and receives the credentials only if the
	// IRMA server verified the disclosure. Default: none, issuance only.
	Disclose []policy.Requirement `json:"disclose,omitempty"`

	// Redirect is a same-site path that the browser goes to when the session
	// is done. Default: the page says that it is done.
	Redirect string `json:"redirect,omitempty"`

	// Pairing says whether the page asks for the pairing code that the Yivi
	// app shows after scanning, so that only the phone of the person at the
	// browser receives the credentials: "auto" (irmago's advice, which for
	// issuance is to pair), "on" or "off". Default: auto.
	Pairing string `json:"pairing,omitempty"`

	app    *App
	logger *zap.Logger
}

// CredentialSpec is one credential to issue.
type CredentialSpec struct {
	// Type is the credential type identifier, scheme.issuer.credential,
	// such as "caddy-demo.gateway.person".
	Type string `json:"type,omitempty"`

	// Attributes maps attribute names (the last part of the attribute
	// identifier, such as "email") to their values. Values may hold
	// placeholders, replaced per request. Every attribute of the type that is
	// not optional must be given, and must not be empty once replaced. A
	// value from a placeholder is what the request says (a query parameter
	// is whatever the visitor typed): the issuer signs it as it is, so give
	// it a pattern in Match.
	Attributes map[string]string `json:"attributes,omitempty"`

	// Match maps attribute names to regular expressions (RE2 syntax) that
	// the attribute's value must match as a whole once placeholders are
	// replaced; a request whose value does not match gets 400, and no
	// session. Default: none, any value that is not empty.
	Match map[string]string `json:"match,omitempty"`

	// Validity is how long the credential is valid from issuance. IRMA
	// rounds expiry to whole weeks. Default: the IRMA server's default of
	// six months.
	Validity caddy.Duration `json:"validity,omitempty"`

	// RevocationKey is the key that revokes the credential later (POST
	// /revocation of irma_requestor_api, with this key), for a revocable
	// credential type whose revocation authority the irma app is; required
	// for those, refused for others. It may hold placeholders (such as
	// {http.auth.user.id}), replaced per request; it must not be empty
	// once replaced, and is never logged. Default: none.
	RevocationKey string `json:"revocation_key,omitempty"`

	patterns map[string]*regexp.Regexp
}

// CaddyModule returns the Caddy module information.
func (Issue) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.irma_issue",
		New: func() caddy.Module { return new(Issue) },
	}
}

// Provision checks the credentials against the irma app's schemes and keys.
func (h *Issue) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := irmaApp(ctx, "irma_issue")
	if err != nil {
		return err
	}
	h.app = app
	if len(h.Credentials) == 0 {
		return fmt.Errorf("irma_issue: no credentials configured")
	}
	if h.Redirect != "" {
		if _, err := returnurl.Check(h.Redirect); err != nil {
			return fmt.Errorf("irma_issue: redirect %q: want a same-site path such as /done: %w", h.Redirect, err)
		}
	}
	if err := checkPairing(h.Pairing); err != nil {
		return fmt.Errorf("irma_issue: %w", err)
	}
	if err := h.checkSchemes(h.app.Configuration()); err != nil {
		return err
	}
	if err := h.checkRevocationKeys(); err != nil { // issuecredential.go
		return err
	}
	h.app.requireSchemes(h.checkSchemes)
	for i := range h.Credentials {
		if err := h.Credentials[i].compilePatterns(); err != nil {
			return fmt.Errorf("irma_issue: %w", err)
		}
	}
	return nil
}

// compilePatterns compiles the patterns of Match, each anchored at both
// ends.
func (c *CredentialSpec) compilePatterns() error {
	c.patterns = make(map[string]*regexp.Regexp, len(c.Match))
	for name, pattern := range c.Match {
		if _, ok := c.Attributes[name]; !ok {
			return fmt.Errorf("credential %q: match %q: no such attribute is issued", c.Type, name)
		}
		re, err := regexp.Compile(`^(?:` + pattern + `)$`)
		if err != nil {
			return fmt.Errorf("credential %q: match %q: %w", c.Type, name, err)
		}
		c.patterns[name] = re
	}
	return nil
}

// checkSchemes checks that conf has what the handler discloses and issues.
func (h *Issue) checkSchemes(conf *irma.Configuration) error {
	if len(h.Disclose) > 0 {
		if err := (policy.Policy{Requirements: h.Disclose}).Validate(conf); err != nil {
			return fmt.Errorf("irma_issue: disclose: %w", err)
		}
	}
	for _, c := range h.Credentials {
		if err := checkCredentialSpec(conf, c); err != nil {
			return fmt.Errorf("irma_issue: %w", err)
		}
	}
	return nil
}

// checkCredentialSpec checks that c can be issued with conf.
func checkCredentialSpec(conf *irma.Configuration, c CredentialSpec) error {
	id := irma.NewCredentialTypeIdentifier(c.Type)
	ct, ok := conf.CredentialTypes[id]
	if !ok || strings.Count(c.Type, ".") != 2 {
		return fmt.Errorf("credential %q: unknown credential type", c.Type)
	}
	if _, err := conf.PrivateKeys.Latest(id.IssuerIdentifier()); err != nil {
		return fmt.Errorf("credential %q: no private key for issuer %s: %w", c.Type, id.IssuerIdentifier(), err)
	}
	known := map[string]bool{}
	for _, at := range ct.AttributeTypes {
		if at.RandomBlind || at.ID == "" {
			continue
		}
		known[at.ID] = true
		if _, given := c.Attributes[at.ID]; !given && !at.IsOptional() {
			return fmt.Errorf("credential %q: attribute %q is required", c.Type, at.ID)
		}
	}
	for name := range c.Attributes {
		if !known[name] {
			return fmt.Errorf("credential %q: unknown attribute %q", c.Type, name)
		}
	}
	if c.Validity < 0 {
		return fmt.Errorf("credential %q: negative validity", c.Type)
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Issue) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return answerStoreDown(w, r, h.logger, h.serve(w, r))
}

// serve starts an issuance session for the visitor, or shows the page that
// starts it.
func (h *Issue) serve(w http.ResponseWriter, r *http.Request) error {
	if err := h.app.waitStarted(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_issue: %w", err))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("irma_issue: method %s", r.Method))
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("irma_issue: no replacer in the request"))
	}
	req, err := h.request(repl)
	if err != nil {
		auditEntry{decision: decisionIssuance, outcome: auditRefused, reason: "the request does not make the credentials", err: err}.log(h.app.audit)
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	page := sessionpage.Page{Kind: sessionpage.KindIssue, DoneURL: h.Redirect, Request: req, Schemes: h.app.Configuration()}
	if deferred, err := deferStart(w, r, h.app.serverURL, http.StatusOK, page); deferred {
		return err
	}
	if !admitSession(w, r, h.app.limiter, h.logger) {
		return nil
	}
	var token irma.RequestorToken
	if page.Session, token, err = startSession(appServer{h.app}, h.app.prefix, req, h.Pairing, time.Duration(h.app.ScanTimeout)); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_issue: %w", err))
	}
	countSessionStarted(irma.ActionIssuing, "irma_issue")
	issuance := auditEntry{decision: decisionIssuance, outcome: auditStarted, attributes: issuedTypes(req)}
	issuance.log(h.app.audit)
	h.app.watchSession(token, irma.ActionIssuing, issuance)
	return showSession(w, r, http.StatusOK, http.StatusOK, page)
}

// request builds the issuance request for one visitor.
func (h *Issue) request(repl *caddy.Replacer) (*irma.IssuanceRequest, error) {
	creds := make([]*irma.CredentialRequest, 0, len(h.Credentials))
	for _, c := range h.Credentials {
		attrs := make(map[string]string, len(c.Attributes))
		for name, tmpl := range c.Attributes {
			v := strings.TrimSpace(repl.ReplaceAll(tmpl, ""))
			if v == "" {
				return nil, fmt.Errorf("irma_issue: credential %q: attribute %q has no value for this request", c.Type, name)
			}
			if re := c.patterns[name]; re != nil && !re.MatchString(v) {
				// The value is the visitor's: not in the error, which is logged.
				return nil, fmt.Errorf("irma_issue: credential %q: the value of attribute %q does not match its pattern", c.Type, name)
			}
			attrs[name] = v
		}
		cr := &irma.CredentialRequest{
			CredentialTypeID: irma.NewCredentialTypeIdentifier(c.Type),
			Attributes:       attrs,
		}
		if err := c.setRevocationKey(cr, repl); err != nil {
			return nil, err
		}
		if c.Validity > 0 {
			t := irma.Timestamp(time.Now().Add(time.Duration(c.Validity)))
			cr.Validity = &t
		}
		creds = append(creds, cr)
	}
	req := irma.NewIssuanceRequest(creds)
	if len(h.Disclose) > 0 {
		d := policy.Policy{Requirements: h.Disclose}.DisclosureRequest()
		req.Disclose, req.Labels = d.Disclose, d.Labels
	}
	return req, nil
}

// parseIssue sets up the handler from Caddyfile tokens. Syntax:
//
//	irma_issue [<matcher>] {
//		credential <scheme.issuer.credential> {
//			<attribute> <value>
//			...
//			match          <attribute> <regular expression>
//			validity       <duration>
//			revocation_key <value>
//		}
//		disclose <expression> [{
//			label <lang> <text>
//		}]
//		redirect <path>
//		pairing  auto|on|off
//	}
//
// Values may hold placeholders. "match" gives an attribute's value a pattern
// (RE2, matched as a whole); "validity" is the credential's lifetime;
// "revocation_key" the key that revokes it. An attribute that is itself
// called match, validity or revocation_key cannot be set this way.
func parseIssue(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	iss := new(Issue)
	if err := iss.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return iss, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Issue) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("irma_issue: unexpected argument %q", d.Val())
	}
	seenRedirect := false
	for d.NextBlock(0) {
		switch d.Val() {
		case "credential":
			c, err := parseCredential(d)
			if err != nil {
				return err
			}
			h.Credentials = append(h.Credentials, c)
		case "disclose":
			req, err := parseRequire(d)
			if err != nil {
				return err
			}
			h.Disclose = append(h.Disclose, req)
		case "pairing":
			if h.Pairing != "" {
				return d.Err("irma_issue: pairing given twice")
			}
			if err := oneArg(d, &h.Pairing); err != nil {
				return err
			}
			if err := checkPairing(h.Pairing); err != nil {
				return d.Errf("irma_issue: %v", err)
			}
		case "redirect":
			if seenRedirect {
				return d.Err("irma_issue: redirect given twice")
			}
			seenRedirect = true
			if err := oneArg(d, &h.Redirect); err != nil {
				return err
			}
		default:
			return d.Errf("irma_issue: unknown setting %q", d.Val())
		}
	}
	if len(h.Credentials) == 0 {
		return d.Err("irma_issue: at least one credential is required")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Issue)(nil)
	_ caddyhttp.MiddlewareHandler = (*Issue)(nil)
	_ caddyfile.Unmarshaler       = (*Issue)(nil)
)
