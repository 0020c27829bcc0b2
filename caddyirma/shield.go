package caddyirma

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// The request shield: whatever route a request takes, no client can forge
// what the gateway tells upstreams (the identity headers), no upstream sees
// the gateway's cookies, and no shared cache keeps what a login sees.

// shield makes r safe to pass on: without identity headers that a client
// sent, and without the gateway's cookies (kept in r's context for the
// gateway's own handlers).
//
// It works once per request: the identity headers that irma_auth sets on
// the way in must survive an irma_endpoints route after it.
func (a *App) shield(r *http.Request) *http.Request {
	if r.Context().Value(shieldedKey{}) != nil {
		return r
	}
	a.stripIdentityHeaders(r)
	r = a.Login.cookies.hide(r)
	return r.WithContext(context.WithValue(r.Context(), shieldedKey{}, true))
}

// shieldedKey marks, in a request's context, that shield has done its work.
type shieldedKey struct{}

// stripIdentityHeaders removes from r every header the gateway sets for
// upstreams, in any spelling, so that no client can forge one.
func (a *App) stripIdentityHeaders(r *http.Request) {
	for name := range r.Header {
		if _, ours := a.identityHeaders.Load(normalizeHeader(name)); ours {
			delete(r.Header, name)
		}
	}
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

// crossSite says whether a browser sent r from another site.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "cross-site"
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		u, err := url.Parse(origin)
		return err != nil || u.Host != r.Host
	}
	return false
}
