package caddyirma

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
)

// Defaults of the login settings.
const (
	DefaultCookieName     = "irma_session"
	DefaultCookieLifetime = 12 * time.Hour
	DefaultIdentityHeader = "X-Irma-Identity"
	DefaultAudience       = "caddy-irma"
)

// Where the gateway keeps the keys it generates, in Caddy's storage: shared
// by every instance on that storage, kept across restarts.
const (
	storageCookieKeys   = "caddy-irma/session-cookie-keys"
	storageIdentityKeys = "caddy-irma/identity-keys-" // + algorithm
)

// LoginConfig is how the gateway remembers who logged in (the session
// cookie) and tells upstreams (a signed JWT in a request header). It is
// shared by every irma_auth route: one login per site, which step-up logins
// extend.
type LoginConfig struct {
	// CookieName is the name of the session cookie. The pending-login cookie
	// is called the same, with "_pending" appended. Default: irma_session.
	CookieName string `json:"cookie_name,omitempty"`

	// CookieDomain is the cookie's Domain attribute, to share a login with
	// subdomains. Default: none, the cookie goes back to the host that set
	// it only.
	CookieDomain string `json:"cookie_domain,omitempty"`

	// CookieLifetime is how long a login lasts at most. It never lasts
	// longer than the first of the disclosed credentials expires. Default:
	// 12h.
	CookieLifetime caddy.Duration `json:"cookie_lifetime,omitempty"`

	// CookieKeys are secrets (base64, at least 32 bytes each) that seal the
	// cookies: the first seals, all open, so a new key goes first and an old
	// one goes last until its cookies have expired. Placeholders such as
	// {env.IRMA_COOKIE_KEY} are replaced. Default: one key generated once
	// and kept in Caddy's storage, so that restarts and other instances on
	// the same storage keep visitors logged in.
	CookieKeys []string `json:"cookie_keys,omitempty"`

	// IdentityHeader is the request header that carries the identity JWT to
	// the upstream. Default: X-Irma-Identity.
	IdentityHeader string `json:"identity_header,omitempty"`

	// Algorithm signs the identity JWT: EdDSA (Ed25519), ES256 or RS256.
	// Default: EdDSA.
	Algorithm string `json:"algorithm,omitempty"`

	// KeyFile is a PEM private key (PKCS#8, or SEC 1 EC, or PKCS#1 RSA) that
	// signs the identity JWT; more keys may follow in the same file, newest
	// first, and all are published in the JWKS. Default: a key of the
	// Algorithm generated once and kept in Caddy's storage.
	KeyFile string `json:"key_file,omitempty"`

	// TokenLifetime is how long an identity JWT is valid. Default: 60s.
	TokenLifetime caddy.Duration `json:"token_lifetime,omitempty"`

	// Issuer is the JWT's "iss" claim. Default: the origin of the irma
	// app's URL, such as https://example.com.
	Issuer string `json:"issuer,omitempty"`

	// Audience is the JWT's "aud" claim. Default: caddy-irma.
	Audience string `json:"audience,omitempty"`

	cookies *sealedcookie.KeyRing
	keys    *assertion.KeyRing
	tokens  *assertion.Issuer
	secure  bool
}

// provision fills in defaults and checks the settings; keys are loaded in
// start, which may touch storage.
func (l *LoginConfig) provision(serverURL string) error {
	if l.CookieName == "" {
		l.CookieName = DefaultCookieName
	}
	if c := (&http.Cookie{Name: l.CookieName + "_pending", Value: "x"}); c.Valid() != nil {
		return fmt.Errorf("login: cookie_name %q: not a valid cookie name", l.CookieName)
	}
	if l.CookieLifetime == 0 {
		l.CookieLifetime = caddy.Duration(DefaultCookieLifetime)
	}
	if l.CookieLifetime < 0 || time.Duration(l.CookieLifetime) > sealedcookie.MaxLifetime {
		return fmt.Errorf("login: cookie_lifetime %s: want more than 0 and at most %s", time.Duration(l.CookieLifetime), sealedcookie.MaxLifetime)
	}
	if l.IdentityHeader == "" {
		l.IdentityHeader = DefaultIdentityHeader
	}
	if !validHeaderName(l.IdentityHeader) {
		return fmt.Errorf("login: identity_header %q: not a header name", l.IdentityHeader)
	}
	if l.Algorithm == "" {
		l.Algorithm = string(assertion.DefaultAlgorithm)
	}
	if !assertion.Algorithm(l.Algorithm).Valid() {
		return fmt.Errorf("login: algorithm %q: want EdDSA, ES256 or RS256", l.Algorithm)
	}
	if l.TokenLifetime == 0 {
		l.TokenLifetime = caddy.Duration(assertion.DefaultTTL)
	}
	if l.TokenLifetime < caddy.Duration(time.Second) {
		return fmt.Errorf("login: token_lifetime %s: want at least 1s", time.Duration(l.TokenLifetime))
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return err
	}
	if l.Issuer == "" {
		l.Issuer = u.Scheme + "://" + u.Host
	}
	if l.Audience == "" {
		l.Audience = DefaultAudience
	}
	// A Secure cookie is never sent over plain http, except by browsers to
	// localhost; a gateway whose URL is http is a development setup.
	l.secure = u.Scheme == "https"
	repl := caddy.NewReplacer()
	for i, k := range l.CookieKeys {
		if _, err := sealedcookie.ParseKey(repl.ReplaceAll(k, "")); err != nil {
			return fmt.Errorf("login: cookie_keys: key %d: %w", i+1, err)
		}
	}
	return nil
}

// start loads or creates the keys.
func (l *LoginConfig) start(ctx context.Context, storage keystore.Storage) error {
	var secrets [][]byte
	if len(l.CookieKeys) > 0 {
		repl := caddy.NewReplacer()
		for _, k := range l.CookieKeys {
			b, err := sealedcookie.ParseKey(repl.ReplaceAll(k, ""))
			if err != nil {
				return fmt.Errorf("login: cookie_keys: %w", err)
			}
			secrets = append(secrets, b)
		}
	} else {
		var err error
		if secrets, err = sealedcookie.LoadOrCreateKeys(ctx, storage, storageCookieKeys); err != nil {
			return fmt.Errorf("login: session cookie keys in storage: %w", err)
		}
	}
	cookies, err := sealedcookie.New(secrets...)
	if err != nil {
		return fmt.Errorf("login: cookie keys: %w", err)
	}

	var keys *assertion.KeyRing
	if l.KeyFile != "" {
		keys, err = loadKeyFile(caddy.NewReplacer().ReplaceAll(l.KeyFile, ""), assertion.Algorithm(l.Algorithm))
		if err != nil {
			return fmt.Errorf("login: key_file %q: %w", l.KeyFile, err)
		}
	} else if keys, err = assertion.LoadOrCreateKeyRing(ctx, storage, storageIdentityKeys+l.Algorithm, assertion.Algorithm(l.Algorithm)); err != nil {
		return fmt.Errorf("login: identity keys in storage: %w", err)
	}
	l.cookies, l.keys = cookies, keys
	l.tokens = &assertion.Issuer{Issuer: l.Issuer, Audience: l.Audience, TTL: time.Duration(l.TokenLifetime), Keys: keys}
	return nil
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
}

// pendingLogin is what the pending cookie holds while a visitor runs a
// disclosure session: enough to pick up the result, and to show the same
// page again. The requestor token is the key to the result: sealed, the
// browser never reads it.
type pendingLogin struct {
	Token        string `json:"t"`
	Pointer      string `json:"u"`
	FrontendAuth string `json:"f"`
	PairingCode  string `json:"p,omitempty"`
	// Route identifies the policy that the session was started for.
	Route string `json:"r"`
	// Return is where to land when done: a checked same-site path.
	Return string `json:"ret"`
}

func newLoginID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating login id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// pendingName is the name of the pending-login cookie of a route: one per
// route, so that a login started in one tab does not undo one in another.
func (l *LoginConfig) pendingName(route string) string {
	sum := sha256.Sum256([]byte(route))
	return l.CookieName + "_pending_" + hex.EncodeToString(sum[:4])
}

// ours says whether a cookie name is one of the gateway's.
func (l *LoginConfig) ours(name string) bool {
	return name == l.CookieName || strings.HasPrefix(name, l.CookieName+"_pending_")
}

// cookieOptions are the attributes of both cookies.
func (l *LoginConfig) cookieOptions() sealedcookie.CookieOptions {
	return sealedcookie.CookieOptions{Domain: l.CookieDomain, Path: "/", Secure: l.secure, SameSite: http.SameSiteLaxMode}
}

// gatewayCookiesKey keeps, in a request's context, the Cookie headers as
// they arrived, before the gateway removed its own cookies from them.
type gatewayCookiesKey struct{}

// cookieSource returns a request whose cookies are those r arrived with.
func cookieSource(r *http.Request) *http.Request {
	if orig, ok := r.Context().Value(gatewayCookiesKey{}).([]string); ok {
		return &http.Request{Header: http.Header{"Cookie": orig}}
	}
	return r
}

// readLogin returns the login of r, or nil if it has none that opens.
func (l *LoginConfig) readLogin(r *http.Request, now time.Time) *loginState {
	var s loginState
	if err := l.cookies.ReadCookie(cookieSource(r), l.CookieName, &s, now); err != nil {
		return nil
	}
	if s.ID == "" || len(s.Attributes) == 0 || !now.Before(s.Expires) {
		return nil
	}
	return &s
}

// setLogin sets the session cookie.
func (l *LoginConfig) setLogin(w http.ResponseWriter, s *loginState) error {
	c, err := l.cookies.Cookie(l.CookieName, s, s.Expires, l.cookieOptions())
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	return nil
}

// readPending returns the pending login of r for route, or nil.
func (l *LoginConfig) readPending(r *http.Request, route string, now time.Time) *pendingLogin {
	var p pendingLogin
	if err := l.cookies.ReadCookie(cookieSource(r), l.pendingName(route), &p, now); err != nil || p.Token == "" || p.Route != route {
		return nil
	}
	return &p
}

func (l *LoginConfig) setPending(w http.ResponseWriter, p *pendingLogin, expires time.Time) error {
	c, err := l.cookies.Cookie(l.pendingName(p.Route), p, expires, l.cookieOptions())
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	return nil
}

// clearCookie removes one of the gateway's cookies from the browser.
func (l *LoginConfig) clearCookie(w http.ResponseWriter, name string) {
	opts := l.cookieOptions()
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: opts.Path, Domain: opts.Domain, MaxAge: -1,
		Secure: opts.Secure, HttpOnly: true, SameSite: opts.SameSite})
}

// clearAll removes every cookie of the gateway that r carries.
func (l *LoginConfig) clearAll(w http.ResponseWriter, r *http.Request) {
	l.clearCookie(w, l.CookieName)
	for _, c := range cookieSource(r).Cookies() {
		if l.ours(c.Name) && c.Name != l.CookieName {
			l.clearCookie(w, c.Name)
		}
	}
}

// hideCookies removes the gateway's cookies from r's Cookie headers, so
// that no upstream ever sees them, keeping the headers as they arrived in
// r's context for the gateway's own handlers. Other cookies are left
// byte for byte as they were: rebuilding them would drop values that Go's
// cookie parser does not like.
func (l *LoginConfig) hideCookies(r *http.Request) *http.Request {
	orig := r.Header.Values("Cookie")
	if len(orig) == 0 {
		return r
	}
	if _, stashed := r.Context().Value(gatewayCookiesKey{}).([]string); !stashed {
		r = r.WithContext(context.WithValue(r.Context(), gatewayCookiesKey{}, slices.Clone(orig)))
	}
	var kept []string
	for _, line := range orig {
		var parts []string
		for _, pair := range strings.Split(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if !l.ours(strings.TrimSpace(name)) {
				parts = append(parts, pair)
			}
		}
		if v := strings.TrimSpace(strings.Join(parts, ";")); v != "" {
			kept = append(kept, v)
		}
	}
	r.Header.Del("Cookie")
	for _, v := range kept {
		r.Header.Add("Cookie", v)
	}
	return r
}

// loadKeyFile reads a PEM file of one or more private keys, newest first.
func loadKeyFile(path string, alg assertion.Algorithm) (*assertion.KeyRing, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > 1<<20 {
		return nil, errors.New("larger than 1 MiB: not a key file")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return assertion.ParseKeyRingPEM(data, alg)
}
