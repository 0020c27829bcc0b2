package caddyirma

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// The request shield: whatever route a request takes, no client can forge
// what the gateway tells upstreams (the headers of its namespace), no
// upstream sees the gateway's cookies, and no shared cache keeps what a
// login sees.
//
// The gateway's header namespace is every request header whose name, in
// lower case and with underscores and dots read as dashes (the spellings
// that CGI, PHP and many frameworks fold into one name), starts with
// "x-irma-", or is the identity header (login.identity_header) or a plain
// attribute header of an irma_auth route. Upstreams may so trust the whole
// X-Irma- prefix: what they get there comes from the gateway.

// namespacePrefix starts every header name of the namespace, normalized.
const namespacePrefix = "x-irma-"

// shield makes r safe to pass on: without headers of the gateway's
// namespace that a client sent, without trailers of it, and without the
// gateway's cookies (kept in r's context for the gateway's own handlers).
// A request that declares a trailer of the namespace gets 400 here, and
// shield says false: the request is answered. A trailer of the namespace
// that arrives undeclared beside a declared one fails the reading of the
// body (400) before anyone sees it.
//
// It works once per request: the identity headers that irma_auth sets on
// the way in must survive an irma_endpoints route after it.
func (a *App) shield(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if r.Context().Value(shieldedKey{}) != nil {
		return r, true
	}
	if name, ok := a.declaredTrailer(r); ok {
		a.logger.Info("refused a request that declares a trailer of the gateway's header namespace", zap.String("trailer", name))
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "irma: the request declares the trailer %q, a header name that only the gateway sets\n", name)
		return r, false
	}
	a.stripNamespace(r)
	cookies := a.Login.cookies.hide(r)
	r = r.WithContext(context.WithValue(r.Context(), shieldedKey{}, &shielded{cookies: cookies}))
	if r.Trailer != nil && r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, trailer: r.Trailer, refused: a.refusedTrailer}
	}
	return r, true
}

// shieldedKey marks, in a request's context, that shield has done its work;
// its value is a *shielded.
type shieldedKey struct{}

// shielded is what shield keeps of a request: the Cookie headers as they
// arrived, before it removed the gateway's cookies from them; and the
// {irma.*} placeholders of the last irma_auth that passed the request.
type shielded struct {
	cookies []string
	view    atomic.Pointer[loginView] // whose placeholders the replacer has
	mapped  atomic.Bool               // the replacer asks placeholder
}

// setPlaceholders gives the request's placeholders under {irma.*} the
// values of view, in place of those of an irma_auth before. The replacer
// asks for them (placeholder) instead of getting a copy of each: a copy
// into its map costs a request more than the rest of irma_auth.
func (s *shielded) setPlaceholders(repl *caddy.Replacer, view *loginView) {
	s.view.Store(view)
	if !s.mapped.Swap(true) {
		repl.Map(s.placeholder)
	}
}

// placeholder is the value of the {irma.*} placeholder key.
func (s *shielded) placeholder(key string) (any, bool) {
	view := s.view.Load()
	if view == nil || !strings.HasPrefix(key, placeholderPrefix) {
		return nil, false
	}
	for _, p := range view.placeholders {
		if p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

// inNamespace says whether name is a header of the gateway's namespace.
// It runs for every header of every request: it normalizes into a buffer
// on the stack, not into a new string.
func (a *App) inNamespace(name string) bool {
	var buf [64]byte
	n, ok := appendNormalized(buf[:0], name)
	if !ok {
		n = []byte(normalizeHeader(name))
	}
	return bytes.HasPrefix(n, []byte(namespacePrefix)) || a.identityHeaders.has(n)
}

// appendNormalized appends normalizeHeader(name) to b, for an ASCII name;
// false for any other (which normalizeHeader folds by Unicode's rules).
func appendNormalized(b []byte, name string) ([]byte, bool) {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80:
			return nil, false
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '.':
			c = '-'
		}
		b = append(b, c)
	}
	return b, true
}

// headerSet is a set of normalized header names that requests read
// without a lock: adding (at provision) copies it.
type headerSet struct {
	mu    sync.Mutex
	names atomic.Pointer[map[string]bool]
}

// add adds name, normalized.
func (s *headerSet) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{normalizeHeader(name): true}
	if old := s.names.Load(); old != nil {
		for n := range *old {
			names[n] = true
		}
	}
	s.names.Store(&names)
}

// has says whether the set holds the normalized name n.
func (s *headerSet) has(n []byte) bool {
	names := s.names.Load()
	return names != nil && (*names)[string(n)]
}

// stripNamespace removes from r every header of the gateway's namespace,
// in any spelling, so that no client can forge one; and every such name
// from Connection, so that no client can have reverse_proxy drop the
// gateway's own headers as hop-by-hop ones (it removes the headers that
// Connection names after the gateway set them).
func (a *App) stripNamespace(r *http.Request) {
	for name := range r.Header {
		if a.inNamespace(name) {
			delete(r.Header, name)
		}
	}
	lines := r.Header.Values("Connection")
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		for _, name := range strings.Split(line, ",") {
			if name = strings.TrimSpace(name); name != "" && !a.inNamespace(name) {
				kept = append(kept, name)
			}
		}
	}
	r.Header.Del("Connection")
	if len(kept) > 0 {
		r.Header.Set("Connection", strings.Join(kept, ", "))
	}
}

// declaredTrailer returns a trailer of the namespace that r declares. Go's
// server moves the names that a chunked request declares into r.Trailer
// (whose values it fills in only once the body has been read), and leaves
// the Trailer header of any other request as it came.
func (a *App) declaredTrailer(r *http.Request) (string, bool) {
	for name := range r.Trailer {
		if a.refusedTrailer(name) {
			return name, true
		}
	}
	for _, v := range r.Header.Values("Trailer") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); a.refusedTrailer(name) {
				return name, true
			}
		}
	}
	return "", false
}

// refusedTrailer says whether a request may not carry name as a trailer:
// a header of the namespace, or Cookie, by which the gateway's cookies
// would reach the upstream past the shield.
func (a *App) refusedTrailer(name string) bool {
	return a.inNamespace(name) || normalizeHeader(name) == "cookie"
}

// trailerGuard reads a request's body and, at its end, checks the
// trailers that arrived: Go's HTTP/1 server adds every trailer it reads,
// declared or not, to the request's Trailer map, which handlers after the
// shield (reverse_proxy) pass on. A trailer of the namespace is removed,
// and the read fails, then and on every later read, so that no upstream
// gets a complete request with it.
type trailerGuard struct {
	io.ReadCloser
	trailer http.Header
	refused func(string) bool
	err     error // the refusal, once a forged trailer arrived
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		var forged string
		for name := range g.trailer {
			if g.refused(name) {
				delete(g.trailer, name)
				forged = name
			}
		}
		if forged != "" {
			g.err = caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("irma: the request carries the trailer %q, a header name that only the gateway sets", forged))
			return n, g.err
		}
	}
	return n, err
}

// normalizeHeader folds the spellings under which a header may reach an
// upstream: case, and underscores and dots for dashes (CGI turns dashes
// into underscores, PHP dots too, so all reach an app as one variable).
func normalizeHeader(name string) string {
	return headerFolder.Replace(strings.ToLower(name))
}

var headerFolder = strings.NewReplacer("_", "-", ".", "-")

// reservedHeaders are headers that an attribute must not stand in for:
// the gateway removes what clients send in attribute headers.
var reservedHeaders = map[string]bool{
	"cookie": true, "authorization": true, "host": true, "content-length": true, "content-type": true,
	"transfer-encoding": true, "connection": true, "x-forwarded-for": true, "x-forwarded-host": true,
	"x-forwarded-proto": true, "forwarded": true, "proxy-authorization": true, "te": true, "upgrade": true,
}

// validHeaderName says whether name can be a request header's name.
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

// validHeaderValue says whether v can be a request header's value.
func validHeaderValue(v string) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
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
