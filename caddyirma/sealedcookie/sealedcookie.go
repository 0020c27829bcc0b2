// Package sealedcookie seals values into cookies that the visitor can neither read nor change:
// encrypted (AES-256) and authenticated (HMAC-SHA256) by gorilla/securecookie, with an expiry
// inside the sealed value, bound to the cookie's name, and with key rotation: the newest key
// seals, every key in the ring opens.
package sealedcookie

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
)

// Limits.
const (
	// MinKeySize is the least secret material a key must have.
	MinKeySize = 32
	// GeneratedKeySize is the size of the keys that LoadOrCreateKeys generates.
	GeneratedKeySize = 64
	// MaxValueSize bounds a sealed value: browsers keep no more than 4096 bytes of name and value
	// per cookie, and Open refuses longer input before doing any work.
	MaxValueSize = 4096
	// MaxLifetime is the furthest in the future that a sealed value may expire: browsers keep
	// no cookie longer than 400 days (RFC 6265bis). It is also securecookie's MaxAge, so that
	// securecookie's own timestamp check never rejects a value that has not expired.
	MaxLifetime = 400 * 24 * time.Hour
)

// Errors of Open and ReadCookie. They say what went wrong, and on purpose no more: the
// details of a forged cookie are the forger's business.
var (
	// ErrExpired means the value was genuine but has expired.
	ErrExpired = errors.New("sealedcookie: expired")
	// ErrInvalid means the value was not sealed by a key of the ring for this name: tampered
	// with, sealed with a retired or foreign key, for another cookie, truncated or malformed.
	ErrInvalid = errors.New("sealedcookie: invalid")
)

// KeyRing seals and opens values. Make one with New; it is immutable and safe for concurrent
// use.
type KeyRing struct {
	codecs []securecookie.Codec // newest first
}

// The labels of the keys derived from each secret. A version in the label lets a future
// format derive fresh keys from the same secrets.
const (
	hashKeyInfo  = "caddy-irma sealedcookie v1 HMAC-SHA256"
	blockKeyInfo = "caddy-irma sealedcookie v1 AES-256"
)

// New returns a key ring of secrets, newest first: secrets[0] seals, all open. Each secret is
// at least MinKeySize bytes of random material, of any length; the HMAC and AES keys are
// derived from it with HKDF-SHA256, so a 64-byte generated key, a 32-byte key from a config
// file and a longer secret are all used the same way, and the two derived keys are
// independent whatever the secret's length.
func New(secrets ...[]byte) (*KeyRing, error) {
	if len(secrets) == 0 {
		return nil, errors.New("sealedcookie: no keys")
	}
	pairs := make([][]byte, 0, 2*len(secrets))
	for i, s := range secrets {
		if len(s) < MinKeySize {
			return nil, fmt.Errorf("sealedcookie: key %d: %d bytes, want at least %d", i, len(s), MinKeySize)
		}
		hashKey, err := hkdf.Key(sha256.New, s, nil, hashKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("sealedcookie: key %d: %w", i, err)
		}
		blockKey, err := hkdf.Key(sha256.New, s, nil, blockKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("sealedcookie: key %d: %w", i, err)
		}
		pairs = append(pairs, hashKey, blockKey)
	}
	codecs := securecookie.CodecsFromPairs(pairs...)
	for _, c := range codecs {
		sc := c.(*securecookie.SecureCookie)
		sc.MaxAge(int(MaxLifetime / time.Second))
		sc.MaxLength(MaxValueSize)
		sc.SetSerializer(securecookie.JSONEncoder{})
	}
	return &KeyRing{codecs: codecs}, nil
}

// ParseKey decodes a key given as base64 (standard or URL alphabet, padded or not), the form
// in which keys come from configuration and environment variables; surrounding space is
// ignored. The key must decode to at least MinKeySize bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("sealedcookie: key is empty: want base64 of at least 32 random bytes")
	}
	var (
		key []byte
		err error
	)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		// Not the decoder's error: it would quote the position in a secret.
		return nil, errors.New("sealedcookie: key is not base64 (standard or URL alphabet)")
	}
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("sealedcookie: key decodes to %d bytes, want at least %d (openssl rand -base64 64 makes one)", len(key), MinKeySize)
	}
	return key, nil
}

// LoadOrCreateKeys returns the keys kept at key in s, newest first, generating one random
// GeneratedKeySize-byte key and storing it the first time, so that restarts and every
// instance on the same storage share the cookies. The stored value is one base64 key per
// line; an operator rotates by adding a line in front and removes the old line once the
// cookies sealed with it have expired.
func LoadOrCreateKeys(ctx context.Context, s keystore.Storage, key string) ([][]byte, error) {
	data, err := keystore.LoadOrCreate(ctx, s, key, func() ([]byte, error) {
		k := make([]byte, GeneratedKeySize)
		_, _ = rand.Read(k) // never fails (crypto/rand panics instead)
		return []byte(base64.StdEncoding.EncodeToString(k) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("sealedcookie: storage key %q: line %d: %w", key, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sealedcookie: storage key %q holds no keys", key)
	}
	return keys, nil
}

// envelope is what is sealed: the caller's value and its expiry.
type envelope struct {
	Expires int64           `json:"e"` // Unix seconds
	Value   json.RawMessage `json:"v"`
}

// Seal returns v (encoded as JSON) sealed for the cookie called name, valid until expires.
// The expiry must be set and at most MaxLifetime away; the sealed value must fit in
// MaxValueSize.
func (k *KeyRing) Seal(name string, v any, expires time.Time) (string, error) {
	if expires.IsZero() {
		return "", fmt.Errorf("sealedcookie: seal %q: no expiry", name)
	}
	if until := time.Until(expires); until > MaxLifetime {
		return "", fmt.Errorf("sealedcookie: seal %q: expiry %s away, more than %s", name, until.Round(time.Second), MaxLifetime)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sealedcookie: seal %q: %w", name, err)
	}
	if len(raw) > MaxValueSize {
		return "", fmt.Errorf("sealedcookie: seal %q: value of %d bytes as JSON, more than %d", name, len(raw), MaxValueSize)
	}
	sealed, err := securecookie.EncodeMulti(name, envelope{Expires: expires.Unix(), Value: raw}, k.codecs[0])
	if err != nil {
		return "", fmt.Errorf("sealedcookie: seal %q: %w", name, err)
	}
	return sealed, nil
}

// Open decodes into v the value sealed for the cookie called name, if it was sealed by a key of
// the ring and has not expired at now. Otherwise it returns ErrInvalid or ErrExpired and leaves
// v alone. A genuine value that does not decode into v (the caller's type changed since it was
// sealed) is ErrInvalid too.
func (k *KeyRing) Open(name string, value string, v any, now time.Time) error {
	_, err := k.OpenUntil(name, value, v, now)
	return err
}

// OpenUntil is Open that also returns when the sealed value expires: from then on, Open
// refuses it. A caller that keeps what it opened (a cache keyed by the value) must not use
// it from that time on.
func (k *KeyRing) OpenUntil(name string, value string, v any, now time.Time) (time.Time, error) {
	if len(value) > MaxValueSize || !canonicalBase64(value) {
		return time.Time{}, ErrInvalid
	}
	var env envelope
	if err := securecookie.DecodeMulti(name, value, &env, k.codecs...); err != nil {
		// Wrong key, wrong name, tampering, or sealed more than MaxLifetime ago: one answer
		// for all, as the value says nothing trustworthy about which.
		return time.Time{}, ErrInvalid
	}
	if now.Unix() >= env.Expires {
		return time.Time{}, ErrExpired
	}
	if err := json.Unmarshal(env.Value, v); err != nil {
		// The value was genuine, so this is the caller's type not matching what was sealed.
		return time.Time{}, fmt.Errorf("%w: cookie %q: %w", ErrInvalid, name, err)
	}
	return time.Unix(env.Expires, 0), nil
}

// canonicalBase64 reports whether s is base64url as securecookie writes it (padded) in its one
// canonical form. Go's decoder ignores line breaks and the unused bits of the last character,
// so several strings decode alike; refusing all but one makes any change to a sealed value
// fail, instead of only the changes that alter the bytes.
func canonicalBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	_, err := base64.URLEncoding.Strict().DecodeString(s)
	return err == nil
}

// CookieOptions are the attributes of the cookies that Cookie makes.
type CookieOptions struct {
	// Domain is the cookie's Domain attribute. Empty means the host that set it only, the
	// safer choice.
	Domain string
	// Path is the cookie's Path attribute. Empty means "/".
	Path string
	// Secure sends the cookie over HTTPS only. Set it on every HTTPS site.
	Secure bool
	// SameSite is the cookie's SameSite attribute. Zero means Lax: sent on top-level
	// navigation from other sites, so a visitor following a link arrives logged in, but not on
	// cross-site subrequests and form posts.
	SameSite http.SameSite
}

// Cookie returns a cookie called name holding v sealed until expires, which is also the
// cookie's expiry. It is always HttpOnly: scripts on the page have no business with it.
func (k *KeyRing) Cookie(name string, v any, expires time.Time, opts CookieOptions) (*http.Cookie, error) {
	value, err := k.Seal(name, v, expires)
	if err != nil {
		return nil, err
	}
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Domain:   opts.Domain,
		Path:     opts.Path,
		Expires:  expires,
		Secure:   opts.Secure,
		HttpOnly: true,
		SameSite: opts.SameSite,
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.SameSite == 0 {
		c.SameSite = http.SameSiteLaxMode
	}
	if err := c.Valid(); err != nil {
		return nil, fmt.Errorf("sealedcookie: cookie %q: %w", name, err)
	}
	if n := len(name) + len(value); n > MaxValueSize {
		return nil, fmt.Errorf("sealedcookie: cookie %q: name and value of %d bytes, more than browsers keep (%d)", name, n, MaxValueSize)
	}
	return c, nil
}

// ReadCookie opens the cookie called name of r into v, like Open. A missing cookie is
// http.ErrNoCookie. If the request carries several cookies of that name (one set for a parent
// domain or path, say), the first that opens wins.
func (k *KeyRing) ReadCookie(r *http.Request, name string, v any, now time.Time) error {
	cookies := r.CookiesNamed(name)
	if len(cookies) == 0 {
		return http.ErrNoCookie
	}
	err := ErrInvalid
	for _, c := range cookies {
		e := k.Open(name, c.Value, v, now)
		if e == nil {
			return nil
		}
		if errors.Is(e, ErrExpired) {
			err = e // more useful to the caller than invalid
		}
	}
	return err
}
