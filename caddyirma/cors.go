package caddyirma

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
)

// Cross-origin frontends: irma_endpoints' cors_origins lets the session
// pages of other origins follow their sessions at the gateway, as irma
// server's CORS does (for every origin there). Only the routes a session
// page uses answer CORS, each with only its own method:
//
//	GET    session/{token}/frontend/status, .../frontend/statusevents
//	POST   session/{token}/frontend/options, .../frontend/pairingcompleted
//	GET    session/{token}/status, .../statusevents (older frontends)
//	DELETE session/{token} (the frontend's cancel button)
//
// Never the Yivi app's protocol (GET session/{token}, request,
// commitments, proofs), whose answers hold the session request: a page
// that saw the QR code could read it; never login, logout, auth or
// anything else with the gateway's cookies, and never credentials: no
// Access-Control-Allow-Credentials, so a browser sends no cookies with
// these requests, and the frontend sends none (its authorization is a
// header). irma_requestor_api answers no CORS either: its credentials
// (requestor keys, requestor tokens) do not belong in a browser; a page's
// own backend starts its sessions and fetches their results.

// corsMethods is the method that a cross-origin session page may use on
// each route, by the route's ending (irmaPath's group).
var corsMethods = map[string]string{
	"":                           http.MethodDelete,
	"/status":                    http.MethodGet,
	"/statusevents":              http.MethodGet,
	"/frontend/status":           http.MethodGet,
	"/frontend/statusevents":     http.MethodGet,
	"/frontend/options":          http.MethodPost,
	"/frontend/pairingcompleted": http.MethodPost,
}

// corsHeaders are the request headers the frontend sends that a preflight
// must allow: its frontend authorization, the JSON of frontend/options,
// and what its EventSource sends. The same as irma server allows.
var corsHeaders = []string{"Accept", "Authorization", "Cache-Control", "Content-Type"}

// corsMaxAge is how long (seconds) a browser may keep a preflight's answer.
const corsMaxAge = "600"

// corsPolicy answers CORS for the frontend routes of irma_endpoints: only
// for its origins, exactly as browsers send them.
type corsPolicy struct {
	origins map[string]bool
}

// newCORSPolicy checks the origins of cors_origins and returns their
// policy, or nil for none (no CORS headers at all).
func newCORSPolicy(origins []string) (*corsPolicy, error) {
	if len(origins) == 0 {
		return nil, nil
	}
	p := &corsPolicy{origins: map[string]bool{}}
	for _, o := range origins {
		if err := checkCORSOrigin(o); err != nil {
			return nil, fmt.Errorf("irma_endpoints: cors_origins %q: %w", o, err)
		}
		if p.origins[o] {
			return nil, fmt.Errorf("irma_endpoints: cors_origins %q: given twice", o)
		}
		p.origins[o] = true
	}
	return p, nil
}

// checkCORSOrigin accepts one origin as a browser sends it in the Origin
// header: http or https, a host in lower case, a port only if it is not
// the scheme's default, nothing else. A match is an exact comparison, so
// anything else would never match, or match more than meant.
func checkCORSOrigin(o string) error {
	switch {
	case strings.Contains(o, "*"):
		return errors.New("no wildcards: list each origin whose pages may follow sessions (irma server's * would let every site read them)")
	case o == "null":
		return errors.New("not the null origin, which sandboxed pages and files of any site send")
	}
	u, err := url.Parse(o)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return errors.New("want an http or https origin, such as https://app.example.com")
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("an origin is scheme://host[:port], without user, path, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	for _, c := range []byte(host) {
		if c >= 0x80 {
			return errors.New("write an international host name in its ASCII form (xn--), as browsers send it")
		}
	}
	if err := checkOriginHost(host, u.Port()); err != nil {
		return err
	}
	canonical := u.Scheme + "://" + host
	if port := u.Port(); port != "" && !(u.Scheme == "http" && port == "80") && !(u.Scheme == "https" && port == "443") {
		canonical += ":" + port
	}
	if canonical != o {
		return fmt.Errorf("write it as browsers send it: %s", canonical)
	}
	return nil
}

// serve adds CORS to a request for rest (the path below the prefix, with
// its leading slash): on a frontend route, Vary: Origin, and for a
// configured origin with the route's method, Access-Control-Allow-Origin.
// It answers preflights itself (and says true): 204 with what may be
// asked for a configured origin that asks the route's method and headers
// the frontend sends, else 403 without CORS headers. Preflights never
// reach irmaserver. Other routes get nothing.
func (p *corsPolicy) serve(w http.ResponseWriter, r *http.Request, rest string, logger *zap.Logger) bool {
	m := irmaPath.FindStringSubmatch(rest)
	if m == nil {
		return false
	}
	method, ok := corsMethods[m[1]]
	if !ok {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Values("Origin")
	allowed := len(origin) == 1 && p.origins[origin[0]]
	asked := r.Header.Values("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || len(asked) == 0 {
		if allowed && r.Method == method {
			h.Set("Access-Control-Allow-Origin", origin[0])
		}
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Cache-Control", "no-store")
	if !allowed || len(asked) != 1 || asked[0] != method || !corsHeadersAllowed(r.Header.Values("Access-Control-Request-Headers")) {
		logger.Debug("refused a cross-origin preflight",
			zap.String("path", logbridge.RedactPaths(rest)), zap.Strings("origin", origin),
			zap.Strings("method", asked), zap.Strings("headers", r.Header.Values("Access-Control-Request-Headers")))
		w.WriteHeader(http.StatusForbidden)
		return true
	}
	h.Set("Access-Control-Allow-Origin", origin[0])
	h.Set("Access-Control-Allow-Methods", method)
	h.Set("Access-Control-Allow-Headers", strings.Join(corsHeaders, ", "))
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// corsHeadersAllowed says whether a preflight's Access-Control-Request-Headers
// (comma-separated names, in any number of lines) asks only corsHeaders.
func corsHeadersAllowed(lines []string) bool {
	for _, line := range lines {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if !slices.ContainsFunc(corsHeaders, func(h string) bool { return strings.EqualFold(name, h) }) {
				return false
			}
		}
	}
	return true
}

// unmarshalCORSOrigins reads cors_origins' origins, checked as at load time.
func unmarshalCORSOrigins(d *caddyfile.Dispenser) ([]string, error) {
	origins := d.RemainingArgs()
	if len(origins) == 0 {
		return nil, d.Err("cors_origins needs one or more origins, such as https://app.example.com")
	}
	if _, err := newCORSPolicy(origins); err != nil {
		return nil, d.Errf("%v", err)
	}
	return origins, nil
}

// dnsName is a host name as browsers send it in an origin: ASCII labels of
// letters, digits and hyphens (punycode included).
var dnsName = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// checkOriginHost checks that an origin's host and port are ones a browser
// sends: a host name or an IP address in its canonical form, and a port
// from 1 to 65535 without leading zeros. Any other spelling would never
// match, which is safe but surely not what was meant.
func checkOriginHost(host, port string) error {
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("port %q: want a number from 1 to 65535, as browsers write it", port)
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		want := ip.String()
		if ip.Is6() {
			want = "[" + want + "]"
		}
		if ip.Is4In6() || want != host {
			return fmt.Errorf("host %q: write the address as browsers do, such as %s", host, ip.Unmap())
		}
		return nil
	}
	if !dnsName.MatchString(host) || allDigitsAndDots(host) {
		return fmt.Errorf("host %q: not a host name or an address as browsers send it", host)
	}
	return nil
}

// allDigitsAndDots is a host that browsers would read as a (shortened or
// numeric) IPv4 address, such as 127.1 or 2130706433.
func allDigitsAndDots(host string) bool {
	return strings.Trim(host, "0123456789.") == "" || strings.HasPrefix(host, "0x") || strings.Contains(host, ".0x")
}
