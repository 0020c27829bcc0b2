package caddyirma

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/canonicalpath"
)

// Paths that would mean one route to the gateway and another to the
// upstream. Caddy's matchers read a cleaned, decoded path
// ("/adults/..%2fmembers/" is "/members/" to them), and reverse_proxy
// forwards the path as it came, so an upstream that routes on that serves
// another route than the one whose policy was checked. Cleaning the path
// before it goes on would fix it for one kind of upstream only (Tomcat drops
// ";x", IIS trailing dots, some servers decode twice) and would change what
// "%2F" means to those that keep it apart from "/"; and browsers never send
// such paths. So the gateway refuses them, on every route of a site it
// shields, protected or not: an open catch-all could otherwise forward into
// a protected prefix of the upstream.

// refuseAmbiguousPath answers 400 with the reason, and returns true, if r's
// path may read as another path to another server (see
// canonicalpath.Check).
func (a *App) refuseAmbiguousPath(w http.ResponseWriter, r *http.Request) bool {
	err := ambiguousPath(r)
	if err == nil {
		return false
	}
	a.logger.Debug("ambiguous request path refused", zap.Error(err))
	writePathRefusal(w, http.StatusBadRequest, err)
	return true
}

// ambiguousPath checks the path that r goes on with, and, if a rewrite
// changed it, the path that the client sent.
func ambiguousPath(r *http.Request) error {
	p := r.URL.EscapedPath()
	if err := checkEscapedPath(p); err != nil {
		return err
	}
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		if op := orig.URL.EscapedPath(); op != p { // the same path passed just now
			return checkEscapedPath(op)
		}
	}
	return nil
}

// checkPath checks the path of u as it goes on the wire.
func checkPath(u *url.URL) error {
	return checkEscapedPath(u.EscapedPath())
}

// checkEscapedPath checks a path as it goes on the wire.
func checkEscapedPath(p string) error {
	if p == "" || p == "*" {
		// An absolute-form target without a path, or OPTIONS *: nothing
		// to route on.
		return nil
	}
	return canonicalpath.Check(p)
}

// ambiguousOriginalURI checks the original request URI that a proxy in
// front names for forward auth (X-Forwarded-Uri or X-Original-URI): the
// proxy passes that URI on to its app if the gateway says yes.
func ambiguousOriginalURI(uri string) error {
	if uri == "" {
		return nil
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return fmt.Errorf("%w: not a request URI", canonicalpath.ErrAmbiguous)
	}
	return checkPath(u)
}

// writePathRefusal answers with code and the reason, in plain text.
func writePathRefusal(w http.ResponseWriter, code int, err error) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(err.Error() + "\nservers read such a path differently, so the gateway does not pass it on\n"))
}
