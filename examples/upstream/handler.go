package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultHeader is the request header in which the gateway sends the identity token.
const DefaultHeader = "X-Irma-Identity"

// legacyPrefix starts the plain attribute headers that an older gateway setup may add
// (header_up X-Irma-Attr-Email ...). Unlike the token they are not signed.
const legacyPrefix = "X-Irma-Attr-"

// DefaultPolicies are the routes of the demo (Caddyfile.example) and the policies that the
// gateway requires on them.
var DefaultPolicies = map[string]string{"/members/": "members", "/adults/": "adults", "/club/": "club"}

// Handler is the example upstream app: it answers only requests that carry a valid identity
// token minted for the policy of the request's route, with a page that shows who the gateway
// says the visitor is, or the same as JSON when the request accepts application/json. Requests
// without a valid token get 401, and 503 when the gateway's keys cannot be fetched; a token for
// another policy than the route's, or a path under no route, gets 403, and a path that is not
// canonical 400.
type Handler struct {
	// Verifier checks the tokens. Required.
	Verifier *Verifier
	// Header is the request header that holds the token. Default: DefaultHeader.
	Header string
	// Policies maps path prefixes (the app's routes) to the policy that the gateway requires
	// there: a token counts on a path only if its policy claim is that of the longest prefix
	// that the path starts with, and a path under no prefix is refused. A prefix that ends in
	// "/" is a directory: "/adults/" holds "/adults/x", not "/adultsx". Default:
	// DefaultPolicies.
	Policies map[string]string
	// Logger logs rejected requests (never the token). Default: the standard logger.
	Logger *log.Logger
}

// Answer is the JSON answer of the Handler.
type Answer struct {
	Policy     string            `json:"policy"`
	Subject    string            `json:"subject"`
	Attributes map[string]string `json:"attributes"`
	Path       string            `json:"path"`
	// LegacyHeaders are the X-Irma-Attr-* request headers, unverified.
	LegacyHeaders map[string]string `json:"legacy_headers,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := h.Header
	if name == "" {
		name = DefaultHeader
	}
	// The route decides which policy a token must have been minted for: called directly, the
	// app must not let a token of a weaker route (members) open a stronger one (adults). The
	// policy is looked up on the path that the app serves, which must be canonical: no dot
	// segments, no empty segments (a router that cleans paths would serve /members/../adults/
	// as /adults/).
	want, err := routePolicy(h.policies(), r.URL.Path)
	if err != nil {
		status := http.StatusForbidden
		if errors.Is(err, errPathNotCanonical) {
			status = http.StatusBadRequest
		}
		h.refuse(w, r, status, err.Error(), err)
		return
	}
	// The gateway sets the header once, replacing whatever the client sent; two values mean
	// something in between added one.
	var claims *Claims
	switch values := r.Header.Values(name); len(values) {
	case 0:
		err = errNoToken
	case 1:
		claims, err = h.Verifier.Verify(r.Context(), strings.TrimSpace(values[0]))
	default:
		err = errManyTokens
	}
	if err != nil {
		h.reject(w, r, name, err)
		return
	}
	if claims.Policy != want {
		reason := fmt.Sprintf("identity token is for the policy %q, not %q that this path requires", claims.Policy, want)
		h.refuse(w, r, http.StatusForbidden, reason, errors.New(reason))
		return
	}

	answer := Answer{
		Policy:        claims.Policy,
		Subject:       claims.Subject,
		Attributes:    claims.Attributes,
		Path:          r.URL.Path,
		LegacyHeaders: legacyHeaders(r.Header),
	}
	if answer.Attributes == nil {
		answer.Attributes = map[string]string{}
	}
	hdr := w.Header()
	// The answer is about one person: no shared cache may keep it.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Vary", "Accept")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if acceptsJSON(r) {
		hdr.Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
		return
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := page.Execute(w, pageData(answer)); err != nil {
		h.logf("upstream: page: %v", err)
	}
}

var (
	errNoToken          = errors.New("no identity token")
	errManyTokens       = errors.New("more than one identity token")
	errPathNotCanonical = errors.New("path is not canonical: no dot segments or empty segments")
	errNoPolicy         = errors.New("no policy is configured for this path")
)

func (h *Handler) policies() map[string]string {
	if h.Policies == nil {
		return DefaultPolicies
	}
	return h.Policies
}

// routePolicy returns the policy of the longest prefix in policies that p starts with.
func routePolicy(policies map[string]string, p string) (string, error) {
	if !canonicalPath(p) {
		return "", errPathNotCanonical
	}
	var prefix, policy string
	for pre, name := range policies {
		if strings.HasPrefix(p, pre) && len(pre) > len(prefix) {
			prefix, policy = pre, name
		}
	}
	if prefix == "" {
		return "", errNoPolicy
	}
	return policy, nil
}

// canonicalPath says whether p is an absolute path without ".", ".." or empty segments (a
// trailing slash aside).
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segments := strings.Split(p[1:], "/")
	for i, s := range segments {
		if s == "." || s == ".." || (s == "" && i < len(segments)-1) {
			return false
		}
	}
	return true
}

// reject answers a request whose token is missing or invalid, with a short reason: enough for a
// developer to see what is wrong, nothing of the token itself.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, header string, err error) {
	status, reason := http.StatusUnauthorized, rejection(err, header)
	if errors.Is(err, ErrKeysUnavailable) {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	h.refuse(w, r, status, reason, err)
}

// refuse answers with status and one line, reason, and logs err.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	h.logf("upstream: %s %s: %d: %v", r.Method, r.URL.Path, status, err)
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason + "\n"))
}

// rejection says briefly why err refused a token in header. Claim checks may fail together, so
// the order matters: the signature first, then who the token is from and for, then time.
func rejection(err error, header string) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{errNoToken, "no identity token in the " + header + " header: log in through the gateway"},
		{errManyTokens, "more than one " + header + " header"},
		{ErrKeysUnavailable, "cannot fetch the gateway's keys to check the identity token; try again shortly"},
		{ErrUnknownKey, "identity token signed by an unknown key"},
		{ErrWrongAlgorithm, "identity token alg does not match its key"},
		{jwt.ErrTokenMalformed, "malformed identity token"},
		{jwt.ErrTokenSignatureInvalid, "identity token has an invalid signature or a forbidden alg"},
		{jwt.ErrTokenUnverifiable, "identity token cannot be verified"},
		{jwt.ErrTokenInvalidIssuer, "identity token is from another issuer"},
		{jwt.ErrTokenInvalidAudience, "identity token is for another audience"},
		{jwt.ErrTokenRequiredClaimMissing, "identity token lacks a required claim"},
		{jwt.ErrTokenExpired, "identity token has expired"},
		{jwt.ErrTokenNotValidYet, "identity token is not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "identity token is issued in the future"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid identity token"
}

// acceptsJSON reports whether the request asks for JSON rather than a page.
func acceptsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if t, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && t == "application/json" {
			return true
		}
	}
	return false
}

// legacyHeaders returns the X-Irma-Attr-* headers of h, or nil.
func legacyHeaders(h http.Header) map[string]string {
	var m map[string]string
	for name, values := range h {
		if len(name) > len(legacyPrefix) && strings.EqualFold(name[:len(legacyPrefix)], legacyPrefix) {
			if m == nil {
				m = make(map[string]string)
			}
			m[name] = strings.Join(values, ", ")
		}
	}
	return m
}

func (h *Handler) logf(format string, args ...any) {
	if h.Logger != nil {
		h.Logger.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// row is one line of a table on the page.
type row struct{ Name, Value string }

// pageData is what the page template shows: tables in a stable order.
func pageData(a Answer) map[string]any {
	return map[string]any{
		"Path":       a.Path,
		"Policy":     a.Policy,
		"Subject":    a.Subject,
		"Attributes": sortedRows(a.Attributes),
		"Legacy":     sortedRows(a.LegacyHeaders),
	}
}

func sortedRows(m map[string]string) []row {
	rows := make([]row, 0, len(m))
	for name, value := range m {
		rows = append(rows, row{name, value})
	}
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.Name, b.Name) })
	return rows
}

// page is the answer for a browser. html/template escapes every value: attribute values come
// from the visitor's credentials, and issuers may let people choose them.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example upstream</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>
</head><body>
<h1>Hello from the example upstream</h1>
<p>This page is served by an app behind the gateway, which checked the identity token of this request.</p>
<p>Path: <code>{{.Path}}</code></p>
<p>Policy: <code>{{.Policy}}</code>{{if .Subject}}<br>Subject: <code>{{.Subject}}</code>{{end}}</p>
<h2>Attributes</h2>
{{if .Attributes}}<table>
<tr><th>Attribute</th><th>Value</th></tr>
{{range .Attributes}}<tr><td><code>{{.Name}}</code></td><td>{{.Value}}</td></tr>
{{end}}</table>{{else}}<p>The token discloses no attributes.</p>{{end}}
{{if .Legacy}}<h2>Plain X-Irma-Attr-* headers (not signed)</h2>
<p>These headers are not part of the token: trust them only if the gateway removes any that the client sends.</p>
<table>
<tr><th>Header</th><th>Value</th></tr>
{{range .Legacy}}<tr><td><code>{{.Name}}</code></td><td>{{.Value}}</td></tr>
{{end}}</table>{{end}}
<p><a href="/">Back to the tour</a></p>
</body></html>
`))
