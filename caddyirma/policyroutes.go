package caddyirma

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// authRoute is an irma_auth handler of a Caddy JSON config, and the route
// that leads to it, for 'caddy irma policy'.
type authRoute struct {
	server  string
	sites   []string // such as http://localhost:8080
	paths   []string // of the innermost path matcher on the way
	match   []string // the matchers on the way, outermost first, in words
	handler json.RawMessage
}

// where names the route for people: its sites and paths.
func (r authRoute) where() string { return routeWhere(r.sites, r.paths) }

// routeWhere names a route by its sites and paths, such as
// "http://localhost:8080 /members/*".
func routeWhere(sites, paths []string) string {
	s := strings.Join(sites, ", ")
	if len(paths) > 0 {
		s += " " + strings.Join(paths, " ")
	}
	return s
}

// httpAppJSON is what the routes of Caddy's http app need of it.
type httpAppJSON struct {
	HTTPPort  int                       `json:"http_port,omitempty"`
	HTTPSPort int                       `json:"https_port,omitempty"`
	Servers   map[string]httpServerJSON `json:"servers,omitempty"`
}

// httpServerJSON is what the routes need of a server of Caddy's http app.
type httpServerJSON struct {
	Listen         []string            `json:"listen,omitempty"`
	Routes         []any               `json:"routes,omitempty"`
	Errors         map[string]any      `json:"errors,omitempty"`
	NamedRoutes    map[string]any      `json:"named_routes,omitempty"`
	TLSPolicies    []any               `json:"tls_connection_policies,omitempty"`
	AutomaticHTTPS *automaticHTTPSJSON `json:"automatic_https,omitempty"`
}

type automaticHTTPSJSON struct {
	Disable bool     `json:"disable,omitempty"`
	Skip    []string `json:"skip,omitempty"`
}

// findAuthRoutes returns the irma_auth handlers of Caddy's http app (its
// JSON), by server name and then in the order of the routes: those of the
// routes, of the error routes and of the named routes, however deep in
// subroutes.
func findAuthRoutes(raw json.RawMessage) ([]authRoute, error) {
	var app httpAppJSON
	if err := json.Unmarshal(raw, &app); err != nil {
		return nil, fmt.Errorf("the http app: %w", err)
	}
	w := routeWalker{app: app}
	for _, name := range slices.Sorted(maps.Keys(app.Servers)) {
		srv := app.Servers[name]
		w.name, w.srv = name, srv
		w.routes(srv.Routes, routeChain{})
		w.walk(srv.Errors, routeChain{match: []string{"errors"}})
		for _, n := range slices.Sorted(maps.Keys(srv.NamedRoutes)) {
			w.routes([]any{srv.NamedRoutes[n]}, routeChain{match: []string{"named route " + n}})
		}
	}
	return w.found, nil
}

// routeChain is what the routes on the way to a handler match.
type routeChain struct {
	match        []string
	hosts, paths []string // of the innermost host and path matchers
}

// with adds the matcher sets of a route (its "match").
func (c routeChain) with(match any) routeChain {
	sets, _ := match.([]any)
	if len(sets) == 0 {
		return c
	}
	var words, hosts, paths []string
	for _, s := range sets {
		m, _ := s.(map[string]any)
		words = append(words, describeMatcherSet(m))
		hosts = append(hosts, jsonStrings(m["host"])...)
		paths = append(paths, jsonStrings(m["path"])...)
	}
	n := routeChain{match: append(slices.Clone(c.match), strings.Join(words, " or ")), hosts: c.hosts, paths: c.paths}
	if len(hosts) > 0 {
		n.hosts = hosts
	}
	if len(paths) > 0 {
		n.paths = paths
	}
	return n
}

// routeWalker finds irma_auth handlers in the JSON of a server's routes.
type routeWalker struct {
	app   httpAppJSON
	name  string // of the server
	srv   httpServerJSON
	found []authRoute
}

// routes walks a list of routes.
func (w *routeWalker) routes(list []any, c routeChain) {
	for _, r := range list {
		route, ok := r.(map[string]any)
		if !ok {
			continue
		}
		rc := c.with(route["match"])
		for _, k := range slices.Sorted(maps.Keys(route)) {
			if k != "match" {
				w.walk(route[k], rc)
			}
		}
	}
}

// walk looks for irma_auth handlers in v, and for routes: any list under
// the key "routes" (of a subroute, of reverse_proxy's handle_response).
func (w *routeWalker) walk(v any, c routeChain) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			w.walk(e, c)
		}
	case map[string]any:
		if v["handler"] == "irma_auth" {
			h := maps.Clone(v)
			delete(h, "handler") // the module's name, not one of its fields
			raw, _ := json.Marshal(h)
			w.found = append(w.found, authRoute{server: w.name, sites: w.sites(c.hosts), paths: c.paths, match: c.match, handler: raw})
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if list, ok := v[k].([]any); ok && k == "routes" {
				w.routes(list, c)
				continue
			}
			w.walk(v[k], c)
		}
	}
}

// sites returns the addresses of the server for hosts ("*" without), as
// Caddy serves them: https where it has TLS, or automatic HTTPS applies.
func (w *routeWalker) sites(hosts []string) []string {
	httpPort, httpsPort := orDefault(w.app.HTTPPort, caddyhttp.DefaultHTTPPort), orDefault(w.app.HTTPSPort, caddyhttp.DefaultHTTPSPort)
	if len(hosts) == 0 {
		hosts = []string{"*"}
	}
	var sites []string
	for _, listen := range w.srv.Listen {
		port := listen
		if addr, err := caddy.ParseNetworkAddress(listen); err == nil {
			port = strconv.FormatUint(uint64(addr.StartPort), 10)
		}
		for _, h := range hosts {
			scheme := "https"
			if !w.https(h, port, httpPort) {
				scheme = "http"
			}
			site := scheme + "://" + h
			if (scheme == "http" && port != strconv.Itoa(httpPort)) || (scheme == "https" && port != strconv.Itoa(httpsPort)) {
				site += ":" + port
			}
			sites = append(sites, site)
		}
	}
	if len(sites) == 0 {
		return hosts
	}
	return sites
}

// https tells whether the server serves host on port with TLS.
func (w *routeWalker) https(host, port string, httpPort int) bool {
	auto := w.srv.AutomaticHTTPS
	switch {
	case len(w.srv.TLSPolicies) > 0:
		return true
	case port == strconv.Itoa(httpPort), host == "*", auto != nil && auto.Disable:
		return false
	}
	return auto == nil || !slices.Contains(auto.Skip, host)
}

// orDefault returns v, or def if v is 0.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// describeMatcherSet says what a matcher set matches, in the words of the
// Caddyfile as far as they go: "host localhost and path /members/*".
func describeMatcherSet(set map[string]any) string {
	var words []string
	for _, k := range slices.Sorted(maps.Keys(set)) {
		words = append(words, k+" "+describeMatcher(set[k]))
	}
	return strings.Join(words, " and ")
}

// describeMatcher says what the JSON of one matcher holds.
func describeMatcher(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		if s := jsonStrings(v); len(s) == len(v) {
			return strings.Join(s, " ")
		}
		var sets []string // "not" holds matcher sets
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				sets = nil
				break
			}
			sets = append(sets, "("+describeMatcherSet(m)+")")
		}
		if len(sets) > 0 {
			return strings.Join(sets, " or ")
		}
	case map[string]any:
		var fields []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			fields = append(fields, k+" "+describeMatcher(v[k]))
		}
		return strings.Join(fields, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonStrings returns the strings of a JSON list.
func jsonStrings(v any) []string {
	list, _ := v.([]any)
	var s []string
	for _, e := range list {
		if str, ok := e.(string); ok {
			s = append(s, str)
		}
	}
	return s
}
