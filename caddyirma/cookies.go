package caddyirma

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
)

// gatewayCookies are the gateway's cookies on a site: the session cookie
// that holds a visitor's login, and a pending cookie per route while the
// visitor runs a session for it. Both are sealed (encrypted and
// authenticated) with the key ring that LoginConfig loads at start.
type gatewayCookies struct {
	// name is the session cookie's; pending cookies add a suffix. On https
	// without a cookie domain it starts with __Host-: a browser takes such
	// a cookie only from this host, over https, for the whole site, so a
	// sibling subdomain or a plain-http page cannot plant one (cookie
	// tossing). base is the name without the prefix.
	name, base string
	domain     string
	secure     bool
	keys       *sealedcookie.KeyRing // from Start on
	logins     *loginCache           // of keys: made with them
}

// newGatewayCookies returns the cookies of the login settings.
func newGatewayCookies(name, domain string, secure bool) gatewayCookies {
	c := gatewayCookies{name: name, base: name, domain: domain, secure: secure}
	if secure && domain == "" {
		c.name = "__Host-" + name
	}
	return c
}

// loginState is what the session cookie holds: who logged in, with what.
type loginState struct {
	// ID is random per login: the JWT's subject, and what its reuse is
	// keyed on.
	ID string `json:"id"`
	// Attributes are the disclosed attributes, by id.
	Attributes map[string]string `json:"a"`
	// Expires is when the login ends: the cookie's lifetime, or the first
	// expiry of the credentials disclosed, whichever comes first.
	Expires time.Time `json:"exp"`
	// NonRevoked holds, by credential type, when the login last proved
	// that its credential of that type was not revoked (Unix seconds): a
	// policy that asks non-revocation counts such a proof for its max age
	// (loginrevocation.go).
	NonRevoked map[string]int64 `json:"nr,omitempty"`

	// views are what flows derive from a login that loginCache keeps; nil
	// for one that it does not.
	views *loginViews
}

func newLoginID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating login id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// pendingName is the name of the pending cookie of a route: one per route,
// so that a login started in one tab does not undo one in another.
func (c *gatewayCookies) pendingName(route string) string {
	sum := sha256.Sum256([]byte(route))
	return c.name + "_pending_" + hex.EncodeToString(sum[:4])
}

// ours says whether a cookie name is one of the gateway's, with or without
// the __Host- prefix.
func (c *gatewayCookies) ours(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	return name == c.base || strings.HasPrefix(name, c.base+"_pending_")
}

// duplicate returns the name of a cookie of the gateway that r carries more
// than once, or "". A browser sends two cookies of one name when another
// site planted one (a sibling subdomain, a plain-http page: cookie tossing):
// which one is the visitor's, nobody can tell.
func (c *gatewayCookies) duplicate(r *http.Request) string {
	return c.duplicateIn(arrivedCookies(r))
}

// duplicateIn is duplicate of a request's cookies.
func (c *gatewayCookies) duplicateIn(cookies []*http.Cookie) string {
	seen := make([]string, 0, 4)
	for _, cookie := range cookies {
		if !c.ours(cookie.Name) {
			continue
		}
		if slices.Contains(seen, cookie.Name) {
			return cookie.Name
		}
		seen = append(seen, cookie.Name)
	}
	return ""
}

// refuseDuplicate answers 400 if r carries a cookie of the gateway twice.
func (c *gatewayCookies) refuseDuplicate(r *http.Request) error {
	return duplicateError(c.duplicate(r))
}

// duplicateError is the answer (400) to a request that carries the cookie
// name twice; nil for "".
func duplicateError(name string) error {
	if name != "" {
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("irma: two cookies named %s: one was set by another site; remove the cookies of this site", name))
	}
	return nil
}

// loginValue returns the value of r's session cookie, "" for none, reading
// r's cookies once; a request that carries a cookie of the gateway twice
// gets 400, as with refuseDuplicate.
func (c *gatewayCookies) loginValue(r *http.Request) (string, error) {
	cookies := arrivedCookies(r)
	if err := duplicateError(c.duplicateIn(cookies)); err != nil {
		return "", err
	}
	for _, cookie := range cookies {
		if cookie.Name == c.name {
			return cookie.Value, nil
		}
	}
	return "", nil
}

// options are the attributes of every cookie of the gateway.
func (c *gatewayCookies) options() sealedcookie.CookieOptions {
	return sealedcookie.CookieOptions{Domain: c.domain, Path: "/", Secure: c.secure, SameSite: http.SameSiteLaxMode}
}

// readLogin returns the login of r, or nil if it has none that opens. If r
// carries several session cookies, the first that opens wins (currentLogin
// refuses such a request before).
func (c *gatewayCookies) readLogin(r *http.Request, now time.Time) *loginState {
	for _, cookie := range arrivedCookies(r) {
		if cookie.Name != c.name {
			continue
		}
		if s := c.openLogin(cookie.Value, now); s != nil {
			return s
		}
	}
	return nil
}

// openLogin returns the login that a session cookie's value holds, or nil
// if it does not open or the login has ended. A value that opened before is
// taken from the cache of logins, until it expires.
func (c *gatewayCookies) openLogin(value string, now time.Time) *loginState {
	if c.logins != nil {
		if s := c.logins.get(value, now); s != nil {
			return s
		}
	}
	s := new(loginState)
	until, err := c.keys.OpenUntil(c.name, value, s, now)
	if err != nil || s.ID == "" || len(s.Attributes) == 0 || !now.Before(s.Expires) {
		return nil
	}
	if c.logins != nil {
		s.views = new(loginViews)
		c.logins.put(value, s, until)
	}
	return s
}

// setLogin sets the session cookie.
func (c *gatewayCookies) setLogin(w http.ResponseWriter, s *loginState) error {
	cookie, err := c.keys.Cookie(c.name, s, s.Expires, c.options())
	if err != nil {
		return err
	}
	http.SetCookie(w, cookie)
	return nil
}

// readPending returns the pending session of r for route, or nil.
func (c *gatewayCookies) readPending(r *http.Request, route string, now time.Time) *pendingSession {
	var p pendingSession
	if err := c.keys.ReadCookie(cookieSource(r), c.pendingName(route), &p, now); err != nil || p.Token == "" || p.Route != route {
		return nil
	}
	return &p
}

// setPending sets the pending cookie of p's route, until expires.
func (c *gatewayCookies) setPending(w http.ResponseWriter, p *pendingSession, expires time.Time) error {
	cookie, err := c.keys.Cookie(c.pendingName(p.Route), p, expires, c.options())
	if err != nil {
		return err
	}
	http.SetCookie(w, cookie)
	return nil
}

// clear removes one of the gateway's cookies from the browser.
func (c *gatewayCookies) clear(w http.ResponseWriter, name string) {
	opts := c.options()
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: opts.Path, Domain: opts.Domain, MaxAge: -1,
		Secure: opts.Secure, HttpOnly: true, SameSite: opts.SameSite})
}

// clearAll removes every cookie of the gateway that r carries.
func (c *gatewayCookies) clearAll(w http.ResponseWriter, r *http.Request) {
	c.clear(w, c.name)
	for _, cookie := range arrivedCookies(r) {
		if c.ours(cookie.Name) && cookie.Name != c.name {
			c.clear(w, cookie.Name)
		}
	}
}

// hide removes the gateway's cookies from r's Cookie headers, so that no
// upstream ever sees them, and returns the headers as they arrived, for the
// gateway's own handlers (shield keeps them in r's context). Other cookies
// are left byte for byte as they were: rebuilding them would drop values
// that Go's cookie parser does not like.
func (c *gatewayCookies) hide(r *http.Request) []string {
	orig := r.Header["Cookie"]
	if !slices.ContainsFunc(orig, func(line string) bool { return strings.Contains(line, c.base) }) {
		return orig // none of ours: every name of ours holds the base
	}
	orig = slices.Clone(orig)
	var kept []string
	for _, line := range orig {
		var parts []string
		for pair := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if !c.ours(strings.TrimSpace(name)) {
				parts = append(parts, pair)
			}
		}
		if v := strings.TrimSpace(strings.Join(parts, ";")); v != "" {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(r.Header, "Cookie")
	} else {
		r.Header["Cookie"] = kept
	}
	return orig
}

// arrivedCookies returns the cookies that r arrived with, as cookieSource;
// without a request to return, it makes none on the heap.
func arrivedCookies(r *http.Request) []*http.Cookie {
	if s, ok := r.Context().Value(shieldedKey{}).(*shielded); ok && s.cookies != nil {
		src := http.Request{Header: http.Header{"Cookie": s.cookies}}
		return src.Cookies()
	}
	return r.Cookies()
}

// cookieSource returns a request whose cookies are those r arrived with.
func cookieSource(r *http.Request) *http.Request {
	if s, ok := r.Context().Value(shieldedKey{}).(*shielded); ok && s.cookies != nil {
		return &http.Request{Header: http.Header{"Cookie": s.cookies}}
	}
	return r
}

// toAttributes and fromAttributes convert between a login's attributes
// and the policy's.
func toAttributes(m map[string]string) policy.Attributes {
	a := make(policy.Attributes, len(m))
	for id, v := range m {
		a[irma.NewAttributeTypeIdentifier(id)] = v
	}
	return a
}

func fromAttributes(a policy.Attributes) map[string]string {
	m := make(map[string]string, len(a))
	for id, v := range a {
		m[id.String()] = v
	}
	return m
}
