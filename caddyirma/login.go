package caddyirma

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
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

	cookies  *sealedcookie.KeyRing
	keys     *assertion.KeyRing
	tokens   *assertion.Issuer
	secure   bool
	lifetime time.Duration
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
	l.lifetime = time.Duration(l.CookieLifetime)
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
func (l *LoginConfig) start(ctx context.Context, storage interface {
	Load(context.Context, string) ([]byte, error)
	Store(context.Context, string, []byte) error
	Lock(context.Context, string) error
	Unlock(context.Context, string) error
}) error {
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

// pendingName is the name of the pending-login cookie.
func (l *LoginConfig) pendingName() string { return l.CookieName + "_pending" }

// cookieOptions are the attributes of both cookies.
func (l *LoginConfig) cookieOptions() sealedcookie.CookieOptions {
	return sealedcookie.CookieOptions{Domain: l.CookieDomain, Path: "/", Secure: l.secure, SameSite: http.SameSiteLaxMode}
}

// readLogin returns the login of r, or nil if it has none that opens.
func (l *LoginConfig) readLogin(r *http.Request, now time.Time) *loginState {
	var s loginState
	if err := l.cookies.ReadCookie(r, l.CookieName, &s, now); err != nil {
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

// readPending returns the pending login of r, or nil.
func (l *LoginConfig) readPending(r *http.Request, now time.Time) *pendingLogin {
	var p pendingLogin
	if err := l.cookies.ReadCookie(r, l.pendingName(), &p, now); err != nil || p.Token == "" {
		return nil
	}
	return &p
}

func (l *LoginConfig) setPending(w http.ResponseWriter, p *pendingLogin, expires time.Time) error {
	c, err := l.cookies.Cookie(l.pendingName(), p, expires, l.cookieOptions())
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

// stripCookies removes the gateway's cookies from the request, so that the
// upstream never sees them.
func (l *LoginConfig) stripCookies(r *http.Request) {
	cookies := r.Cookies()
	kept := cookies[:0]
	for _, c := range cookies {
		if c.Name != l.CookieName && c.Name != l.pendingName() {
			kept = append(kept, c)
		}
	}
	if len(kept) == len(cookies) {
		return
	}
	r.Header.Del("Cookie")
	for _, c := range kept {
		r.AddCookie(c)
	}
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

// namedPolicy is a policy of the irma app, by name.
type namedPolicy struct {
	name string
	policy.Policy
}
