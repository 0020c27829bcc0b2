package caddyirma

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
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
	storagePseudonymKey = "caddy-irma/pseudonym-keys"
	storageIdentityKeys = "caddy-irma/identity-keys-" // + algorithm
)

// LoginConfig is how the gateway remembers who logged in (the session
// cookie) and tells upstreams (a signed JWT in a request header). It is
// shared by every irma_auth route: one login per site, which step-up logins
// extend.
type LoginConfig struct {
	// CookieName is the name of the session cookie. The pending cookies,
	// one per route, are called the same with "_pending_" and 8 hex digits
	// appended. On https without CookieDomain, every name gets the prefix
	// "__Host-", which no other host or plain-http page can set. Default:
	// irma_session.
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
	// the upstream. It is part of the gateway's header namespace (with every
	// name that starts with X-Irma-): a client's copy, in any spelling, is
	// removed from every request that the gateway passes on. Default:
	// X-Irma-Identity.
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

	// Audience is the JWT's "aud" claim of every route that names no
	// audience of its own (irma_auth's audience). Default: caddy-irma.
	Audience string `json:"audience,omitempty"`

	cookies gatewayCookies
	keys    *assertion.KeyRing // from Start on
	tokens  *assertion.Issuer  // from Start on
	// pseudonymKey makes a login's subject per audience (see pseudonym).
	pseudonymKey []byte // from Start on
}

// pseudonym is who a login is to the upstreams of an audience: the JWT's
// sub and {irma.login_id}. Upstreams of different audiences (other routes,
// other subdomains) get unrelated pseudonyms of one login, so that they
// cannot link a visitor by it; the same audience always gets the same.
func (l *LoginConfig) pseudonym(loginID, audience string) string {
	mac := hmac.New(sha256.New, l.pseudonymKey)
	mac.Write([]byte(audience))
	mac.Write([]byte{0})
	mac.Write([]byte(loginID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
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
	l.cookies = newGatewayCookies(l.CookieName, l.CookieDomain, u.Scheme == "https")
	repl := caddy.NewReplacer()
	for i, k := range l.CookieKeys {
		if _, err := sealedcookie.ParseKey(repl.ReplaceAll(k, "")); err != nil {
			return fmt.Errorf("login: cookie_keys: key %d: %w", i+1, err)
		}
	}
	if l.KeyFile != "" {
		// Here too, so that caddy validate finds a key file that start would
		// not load.
		if _, err := loadKeyFile(repl.ReplaceAll(l.KeyFile, ""), assertion.Algorithm(l.Algorithm)); err != nil {
			return fmt.Errorf("login: key_file %q: %w", l.KeyFile, err)
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
	l.cookies.keys, l.cookies.logins, l.keys = cookies, newLoginCache(loginCacheSize), keys
	// Kept in storage, as the cookie keys are: a restart or another
	// instance gives an upstream the same pseudonym of a login.
	pseudonymKeys, err := sealedcookie.LoadOrCreateKeys(ctx, storage, storagePseudonymKey)
	if err != nil {
		return fmt.Errorf("login: pseudonym key in storage: %w", err)
	}
	l.pseudonymKey = pseudonymKeys[0]
	l.tokens = &assertion.Issuer{Issuer: l.Issuer, Audience: l.Audience, TTL: time.Duration(l.TokenLifetime), Keys: keys}
	return nil
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
