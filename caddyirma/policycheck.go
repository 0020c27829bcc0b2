package caddyirma

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// policyReport is what 'caddy irma policy' says of a config: per route,
// what a visitor is asked, and every problem.
type policyReport struct {
	// Schemes are the schemes that the policies were checked against.
	Schemes []policy.Named `json:"schemes"`
	// Routes are the irma_auth routes, and then the named policies that no
	// irma_auth route uses.
	Routes []routeReport `json:"routes"`
	// Errors are the problems, each naming its route or policy.
	Errors []string `json:"errors,omitempty"`
}

// routeReport is what a visitor of one route is asked.
type routeReport struct {
	Sites  []string `json:"sites"`
	Paths  []string `json:"paths,omitempty"`
	Match  []string `json:"match,omitempty"`
	Server string   `json:"server,omitempty"`
	// Policy is the name of the policy; empty for the route's own require
	// lines.
	Policy         string          `json:"policy,omitempty"`
	Asks           []askedItem     `json:"asks"`
	Pairing        bool            `json:"pairing"`
	SessionRequest json.RawMessage `json:"session_request"`
}

// askedItem is an item that a visitor is asked, in the words of the login
// page, with what can satisfy each of its options.
type askedItem struct {
	Text    string        `json:"text"`
	Options []askedOption `json:"options"`
}

// askedOption is an option of an askedItem.
type askedOption struct {
	Text string `json:"text"`
	policy.Source
}

// checkConfigPolicies checks the policies of a Caddy JSON config against
// the schemes that its irma app trusts, offline: those of schemes_path and
// the copy of the default schemes (never fetched), without issuer keys.
// An error means that it could not check at all; the problems of single
// routes and policies are in the report.
func checkConfigPolicies(config []byte) (*policyReport, error) {
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	var routes []authRoute
	if raw, ok := cfg.Apps["http"]; ok {
		var err error
		if routes, err = findAuthRoutes(raw); err != nil {
			return nil, err
		}
	}
	raw, ok := cfg.Apps["irma"]
	switch {
	case !ok && len(routes) > 0:
		return nil, fmt.Errorf("route %s: irma_auth needs the irma global option, and the config has none", routes[0].where())
	case !ok:
		return nil, errors.New("no irma global option and no irma_auth route: no policies to check")
	}
	a, conf, err := loadAppOffline(raw)
	if err != nil {
		return nil, err
	}
	defer closeSchemes(conf)
	if len(routes) == 0 && len(a.Policies) == 0 {
		return nil, errors.New("no irma_auth route and no named policy: no policies to check")
	}

	c := policyChecker{app: a, conf: conf, report: &policyReport{}, used: map[string]bool{}}
	c.report.Schemes = policy.SchemesInWords(conf, "en")
	for _, r := range routes {
		c.route(r)
	}
	for _, name := range slices.Sorted(maps.Keys(a.Policies)) {
		if !c.used[name] {
			c.unusedPolicy(name)
		}
	}
	return c.report, nil
}

// loadAppOffline reads the irma app's JSON and loads its schemes as the
// app would, but offline and without issuer keys.
func loadAppOffline(raw json.RawMessage) (*App, *irma.Configuration, error) {
	a := new(App)
	if err := caddy.StrictUnmarshalJSON(raw, a); err != nil {
		return nil, nil, fmt.Errorf("the irma global option: %w", err)
	}
	repl := caddy.NewReplacer()
	for _, step := range []func(*caddy.Replacer) error{a.provisionURL, a.provisionDurations, a.findSchemeSources} {
		if err := step(repl); err != nil {
			return nil, nil, err
		}
	}
	if err := a.checkPolicyNames(); err != nil {
		return nil, nil, err
	}
	// Issuer private keys play no part in disclosure.
	sources := a.sources
	sources.KeysPath, sources.DemoKeys = "", false
	loaded, err := sources.load(zap.NewNop())
	if errors.Is(err, schemecache.ErrNoCopy) {
		err = fmt.Errorf("%w (this command never fetches them: run 'caddy irma schemes' first)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return a, loaded.conf, nil
}

// policyChecker builds a policyReport.
type policyChecker struct {
	app    *App
	conf   *irma.Configuration
	report *policyReport
	used   map[string]bool // the named policies that routes use
}

// route reports the irma_auth handler of r.
func (c *policyChecker) route(r authRoute) {
	where := "route " + r.where()
	var h Auth
	if err := caddy.StrictUnmarshalJSON(r.handler, &h); err != nil {
		c.fail(where, fmt.Errorf("irma_auth: %w", err))
		return
	}
	if h.Policy != "" {
		c.used[h.Policy] = true
	}
	p, err := h.resolvePolicy(c.app.Policies)
	if err == nil {
		err = checkPairing(h.Pairing)
	}
	if err != nil {
		c.fail(where, err)
		return
	}
	if h.Policy != "" {
		where += fmt.Sprintf(": policy %q", h.Policy)
	}
	c.add(where, routeReport{Sites: r.sites, Paths: r.paths, Match: r.match, Server: r.server, Policy: h.Policy}, p, h.Pairing)
}

// unusedPolicy reports a named policy that no irma_auth route uses: the
// login and forward-auth endpoints can still ask it.
func (c *policyChecker) unusedPolicy(name string) {
	q := "?policy=" + name
	c.add(fmt.Sprintf("policy %q", name), routeReport{
		Sites:  []string{c.app.serverURL + "login" + q, c.app.serverURL + "auth" + q},
		Match:  []string{"no irma_auth route: the login and forward-auth endpoints only"},
		Policy: name,
	}, c.app.Policies[name], "")
}

// add checks p and adds what it asks to the report as rr.
func (c *policyChecker) add(where string, rr routeReport, p policy.Policy, pairing string) {
	if err := p.Validate(c.conf); err != nil {
		c.fail(where, err)
		return
	}
	// What a login flow asks a visitor without a login: it uses the policy
	// only, with the non-revocation proofs that the policy asks.
	req := (&loginFlow{policy: p, revocable: revocableTypes(p, c.conf)}).request(nil, time.Time{})
	rreq, err := withScanTimeout(req, time.Duration(c.app.ScanTimeout))
	if err == nil {
		rr.SessionRequest, err = json.Marshal(rreq)
	}
	if err != nil {
		c.fail(where, err)
		return
	}
	rr.Asks = askedItems(p.Sources(c.conf, "en"), sessionpage.DescribeRequest(c.conf, req).DiscloseWords("en"))
	rr.Pairing = pairing == PairingOn || (pairing != PairingOff && asksValues(p))
	c.report.Routes = append(c.report.Routes, rr)
}

// askedItems puts the login page's words to the sources of each item, in
// the order of the disclosure request that both come from.
func askedItems(sources [][]policy.Source, words []sessionpage.ItemWords) []askedItem {
	items := make([]askedItem, len(sources))
	for i, options := range sources {
		if i < len(words) {
			items[i].Text = words[i].Text
		}
		for j, src := range options {
			o := askedOption{Source: src}
			if i < len(words) && j < len(words[i].Options) {
				o.Text = words[i].Options[j]
			}
			items[i].Options = append(items[i].Options, o)
		}
	}
	return items
}

// fail adds err to the report, a line per problem, each naming where.
func (c *policyChecker) fail(where string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		c.report.Errors = append(c.report.Errors, where+": "+line)
	}
}

// asksValues tells whether p requires a value anywhere: irmago then
// recommends pairing, which pairing auto follows.
func asksValues(p policy.Policy) bool {
	for _, r := range p.Requirements {
		for _, o := range r.Options {
			for _, a := range o {
				if a.Value != nil {
					return true
				}
			}
		}
	}
	return false
}
