package caddyirma

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// The logout: who may ask for it, and what it ends. Only a POST that the
// browser says comes from the gateway's own origin logs out; a GET (a
// link) answers a page whose button posts. The logout revokes the login's
// id in the store of marks until the login would have ended by itself, so
// that no copy of the session cookie opens anything afterwards, on any
// instance that shares the store; every login check looks the id up.

// serveLogout answers a link to the logout (GET) with a page whose button
// posts it; a POST from the gateway's own origin ends the visitor's login
// and sends the browser on to the same-site path in the "return" query
// parameter (default: /). A request from another origin gets 403, as does
// a POST that does not say where it came from.
func (e *Endpoints) serveLogout(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("irma: logout: method %s", r.Method))
	}
	ret := returnTo(r.URL.Query().Get("return"))
	here := e.app.prefix + "logout?" + url.Values{"return": {ret}}.Encode()
	source, why := sourceOf(r, e.app.serverURL)
	switch {
	case source == sourceForeign:
		return e.refuseLogout(w, r, here, "the request comes from another origin ("+why+")")
	case r.Method == http.MethodGet:
		// A GET is safe: prefetching, link scanners, an <img> on the site
		// and a link in a mail all send one. It changes nothing.
		return sessionpage.RenderLogout(w, sessionpage.Language(r), here, ret)
	case source == sourceUnknown:
		return e.refuseLogout(w, r, here, "the request says neither Sec-Fetch-Site nor Origin")
	}
	if err := e.app.Login.cookies.refuseDuplicate(r); err != nil {
		// Which login would end? A planted cookie beside the visitor's
		// could take the revocation, and leave the visitor's login alive.
		return err
	}
	login, err := endLogin(w, r, &e.app.Login.cookies, appServer{e.app}, time.Now())
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma: logout: %w", err))
	}
	audit := auditEntry{decision: decisionLogout, outcome: auditGranted, reason: "no login"}
	if login != nil {
		audit.reason = ""
		audit.subject, audit.attributes = e.app.Login.pseudonym(login.ID, e.app.Login.Audience), attributeTypes(login.Attributes)
	}
	audit.log(e.app.audit)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, ret, http.StatusSeeOther)
	return nil
}

// refuseLogout answers a logout that the gateway does not take, with the
// reason, and a link to the page of the logout (here).
func (e *Endpoints) refuseLogout(w http.ResponseWriter, r *http.Request, here, reason string) error {
	auditEntry{decision: decisionLogout, outcome: auditRefused, reason: reason}.log(e.app.audit)
	if sessionpage.WantsPage(r) {
		return sessionpage.RenderMessage(w, http.StatusForbidden, sessionpage.Language(r), "logoutrefused", here)
	}
	sessionpage.WriteJSON(w, http.StatusForbidden, map[string]string{"error": "logout_refused", "message": "logout: " + reason})
	return nil
}

// endLogin ends the login of r, if it has one, and returns it: it revokes
// the login's id in the store of marks, then removes the gateway's cookies
// from the browser. If the revocation cannot be stored, it returns the
// error and leaves the cookies, so that the visitor can try again.
func endLogin(w http.ResponseWriter, r *http.Request, cookies *gatewayCookies, b backend, now time.Time) (*loginState, error) {
	login := cookies.readLogin(r, now)
	if login != nil {
		store, err := b.marks()
		if err != nil {
			return nil, err
		}
		if err := revokeLogin(r.Context(), store, login, now); err != nil {
			return nil, err
		}
	}
	cookies.clearAll(w, r)
	return login, nil
}

// revokedLoginKey is the mark of a login that was logged out, by its id.
func revokedLoginKey(loginID string) string { return "revoked-login:" + loginID }

// revocationSlack keeps a revocation a little longer than the login it
// ends, so that instances whose clocks differ by less still agree that
// the login is over.
const revocationSlack = time.Minute

// revokeLogin records that login is over, until it would have ended by
// itself (its Expires, bounded by the cookie and the credentials).
func revokeLogin(ctx context.Context, store marks.Store, login *loginState, now time.Time) error {
	if err := store.Put(ctx, revokedLoginKey(login.ID), nil, login.Expires.Sub(now)+revocationSlack); err != nil {
		return fmt.Errorf("revoking login %s: %w", logbridge.Fingerprint(login.ID), err)
	}
	return nil
}

// loginRevoked says whether a logout revoked the login with this id.
func loginRevoked(ctx context.Context, b backend, loginID string) (bool, error) {
	store, err := b.marks()
	if err != nil {
		return false, err
	}
	revoked, err := store.Has(ctx, revokedLoginKey(loginID))
	if err != nil {
		return false, fmt.Errorf("looking up the logout of login %s: %w", logbridge.Fingerprint(loginID), err)
	}
	return revoked, nil
}
