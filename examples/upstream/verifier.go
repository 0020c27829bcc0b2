package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of a Verifier.
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
	DefaultLeeway = 5 * time.Second
	// DefaultFetchTimeout bounds one fetch of the JWK set.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultRefetchInterval is how often, at most, a token with an unknown kid makes the
	// Verifier fetch the JWK set again: the gateway has rotated its key, or someone is sending
	// made-up kids, and those must not turn into a flood of fetches.
	DefaultRefetchInterval = time.Minute
)

const (
	// retryInterval is how long after a failed fetch the next may start, while the Verifier
	// has no current keys.
	retryInterval = 5 * time.Second
	// defaultMaxAge is how long keys are kept when the JWK set response says nothing.
	defaultMaxAge = 5 * time.Minute
	// minMaxAge and maxMaxAge bound what the response's Cache-Control may ask for.
	minMaxAge = time.Minute
	maxMaxAge = time.Hour
	// maxJWKSSize bounds the JWK set response; the gateway's is a few hundred bytes per key.
	maxJWKSSize = 1 << 20
	// maxTokenLen bounds the tokens parsed: one with a few dozen attributes is a few KiB.
	maxTokenLen = 64 << 10
)

// The errors of Verify that are not golang-jwt's own (jwt.ErrTokenExpired and the like, which
// Verify wraps as well). Test for them with errors.Is.
var (
	// ErrUnknownKey: the token names a kid that the JWK set does not have, even after a
	// refetch (or a refetch was not allowed yet).
	ErrUnknownKey = errors.New("token signed by an unknown key")
	// ErrWrongAlgorithm: the token's alg is not the algorithm of the key it names.
	ErrWrongAlgorithm = errors.New("token alg does not match its key")
	// ErrKeysUnavailable: the JWK set could not be fetched and no cached key fits, so the
	// token could not be checked at all. It says nothing about the token.
	ErrKeysUnavailable = errors.New("cannot fetch the gateway's keys")
)

// Claims are the claims of the gateway's identity token.
type Claims struct {
	jwt.RegisteredClaims
	// Attributes maps each disclosed IRMA attribute id (such as
	// "caddy-demo.gateway.person.email") to its value.
	Attributes map[string]string `json:"attributes"`
	// Policy names the gateway policy that the visitor's login satisfied.
	Policy string `json:"policy"`
}

// Verifier checks the identity tokens that the gateway sends upstream, against the public keys
// that the gateway publishes as a JWK set. It fetches the set on first use, keeps it for as long
// as the response's Cache-Control max-age says (from one minute to one hour, five minutes if it
// says nothing), and fetches it again early, at most once per RefetchInterval, when a token
// names a key it does not have: that is how a key rotation reaches the upstream.
//
// Set the fields before first use, or use NewVerifier; a Verifier is then safe for concurrent
// use.
type Verifier struct {
	// JWKSURL is where the gateway publishes its keys. Required.
	JWKSURL string
	// Issuer is the "iss" the tokens must have: the gateway's URL. Required.
	Issuer string
	// Audience is the "aud" the tokens must have: the name the gateway is configured to use
	// for this upstream. Required.
	Audience string
	// Client fetches the JWK set. Default: a client of its own with a timeout of
	// DefaultFetchTimeout (not http.DefaultClient, whose settings any package may change).
	Client *http.Client
	// Leeway is the clock skew tolerated. Default: DefaultLeeway.
	Leeway time.Duration
	// RefetchInterval limits fetches for unknown kids. Default: DefaultRefetchInterval.
	RefetchInterval time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	initOnce      sync.Once
	defaultClient *http.Client
	// fetching holds a token while a fetch is under way (a mutex that a waiter can give up
	// on), so that requests that miss the cache together fetch once. It is taken before mu,
	// never while holding mu.
	fetching chan struct{}

	mu          sync.Mutex
	keys        map[string]verifyKey // by kid; nil before the first successful fetch
	expires     time.Time            // when keys should be fetched again
	lastAttempt time.Time            // when the last fetch, successful or not, started
	lastErr     error                // of the last fetch, or nil
}

// NewVerifier returns a Verifier with the default settings.
func NewVerifier(jwksURL, issuer, audience string) *Verifier {
	return &Verifier{JWKSURL: jwksURL, Issuer: issuer, Audience: audience}
}

// verifyKey is a public key from the JWK set and the one algorithm it verifies.
type verifyKey struct {
	alg string
	pub crypto.PublicKey
}

// Verify checks token and returns its claims: the signature with the key that the token's kid
// names, using that key's own algorithm only (EdDSA, ES256 or RS256); iss and aud must be the
// expected ones; exp, nbf and iat must be present and hold now, give or take the leeway.
//
// ctx bounds the wait for the JWK set, but a fetch once started runs to its own timeout, so that
// one impatient client does not spoil it for the others. An error wrapping ErrKeysUnavailable
// means the token could not be checked; any other error means it is not valid.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if v.JWKSURL == "" || v.Issuer == "" || v.Audience == "" {
		return nil, errors.New("verifier: JWKS URL, issuer and audience are required")
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: token of %d bytes", jwt.ErrTokenMalformed, len(token))
	}
	parser := jwt.NewParser(
		// golang-jwt refuses any other alg (none, HS256, ...) before it looks for a key.
		jwt.WithValidMethods([]string{"EdDSA", "ES256", "RS256"}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway()),
		jwt.WithTimeFunc(v.now),
	)
	var claims Claims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: the token has no kid", ErrUnknownKey)
		}
		k, err := v.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		// The key decides the algorithm, never the token.
		if alg := t.Method.Alg(); alg != k.alg {
			return nil, fmt.Errorf("%w: token says %s, key %.64q is %s", ErrWrongAlgorithm, alg, kid, k.alg)
		}
		return k.pub, nil
	})
	if err != nil {
		return nil, err
	}
	// golang-jwt checks iat only if it is there; the gateway always sets it.
	if claims.IssuedAt == nil {
		return nil, fmt.Errorf("%w: iat", jwt.ErrTokenRequiredClaimMissing)
	}
	return &claims, nil
}

// key returns the key named kid, from the cache or, if need be and allowed, from a new fetch.
func (v *Verifier) key(ctx context.Context, kid string) (verifyKey, error) {
	if k, ok := v.cached(kid); ok {
		return k, nil
	}
	// Wait for a fetch under way rather than start another, but not beyond ctx.
	v.init()
	select {
	case v.fetching <- struct{}{}:
		defer func() { <-v.fetching }()
	case <-ctx.Done():
		return verifyKey{}, fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
	}

	// Another request may have fetched while this one waited.
	if k, ok := v.cached(kid); ok {
		return k, nil
	}
	now := v.now()
	v.mu.Lock()
	stale, known := v.keys[kid]
	current := v.keys != nil && now.Before(v.expires)
	wait := retryInterval
	if current {
		wait = v.refetchInterval() // the keys are current, the kid is unknown
	}
	mayFetch := v.lastAttempt.IsZero() || now.Sub(v.lastAttempt) >= wait
	lastErr := v.lastErr
	v.mu.Unlock()

	if !mayFetch {
		switch {
		case known:
			return stale, nil // the keys are out of date, and the last fetch failed just now
		case !current && lastErr != nil:
			return verifyKey{}, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
		}
		return verifyKey{}, fmt.Errorf("%w: no key %.64q", ErrUnknownKey, kid)
	}

	keys, maxAge, err := v.fetch(ctx)
	v.mu.Lock()
	v.lastAttempt = now
	v.lastErr = err
	if err == nil {
		v.keys = keys
		v.expires = now.Add(maxAge)
	}
	k, ok := v.keys[kid]
	v.mu.Unlock()

	switch {
	case ok:
		// After a failed fetch this is a stale key: still the gateway's, and the best there is.
		return k, nil
	case err != nil:
		return verifyKey{}, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	return verifyKey{}, fmt.Errorf("%w: no key %.64q", ErrUnknownKey, kid)
}

// cached returns the key named kid if the cached keys are current and have it.
func (v *Verifier) cached(kid string) (verifyKey, bool) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	k, ok := v.keys[kid]
	return k, ok && now.Before(v.expires)
}

// fetch gets and parses the JWK set, and returns its keys and how long to keep them.
func (v *Verifier) fetch(ctx context.Context) (map[string]verifyKey, time.Duration, error) {
	// Detached from the request: a client that goes away must not fail the fetch for others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.JWKSURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("JWK set: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client().Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("JWK set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("JWK set: %s answered %s", v.JWKSURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("JWK set: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, 0, fmt.Errorf("JWK set: more than %d bytes", maxJWKSSize)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("JWK set: %w", err)
	}
	return keys, maxAge(resp.Header.Get("Cache-Control")), nil
}

// jwk is a public JSON Web Key (RFC 7517, RFC 7518 section 6, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// parseJWKS returns the signature keys of a JWK set by kid. Keys of other types, without kid, or
// for other uses are skipped (RFC 7517 asks to ignore what one does not understand); a key of a
// supported type that is malformed fails the whole set, as it is a fault at the gateway.
func parseJWKS(data []byte) (map[string]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]verifyKey, len(set.Keys))
	for i, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		k, ok, err := parseJWK(j)
		if err != nil {
			return nil, fmt.Errorf("key %d (%.64q): %w", i, j.Kid, err)
		}
		if !ok {
			continue
		}
		if _, dup := keys[j.Kid]; dup {
			return nil, fmt.Errorf("key %d: kid %.64q appears twice", i, j.Kid)
		}
		keys[j.Kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable key")
	}
	return keys, nil
}

// b64 is the base64url encoding without padding of JOSE.
var b64 = base64.RawURLEncoding.Strict()

// parseJWK returns the public key of j with its algorithm, or false for a key type that the
// gateway does not sign with. The algorithm follows from the key type; an "alg" member must
// agree with it.
func parseJWK(j jwk) (verifyKey, bool, error) {
	var k verifyKey
	switch {
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return k, false, errors.New("bad Ed25519 x")
		}
		k = verifyKey{alg: "EdDSA", pub: ed25519.PublicKey(x)}
	case j.Kty == "EC" && j.Crv == "P-256":
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return k, false, errors.New("bad P-256 coordinates")
		}
		// This checks that the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, false, err
		}
		k = verifyKey{alg: "ES256", pub: pub}
	case j.Kty == "RSA":
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return k, false, errors.New("bad RSA n or e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := pub.N.BitLen(); bits < 2048 || bits > 8192 {
			return k, false, fmt.Errorf("RSA key of %d bits", bits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return k, false, errors.New("bad RSA exponent")
		}
		k = verifyKey{alg: "RS256", pub: pub}
	default:
		return k, false, nil
	}
	if j.Alg != "" && j.Alg != k.alg {
		return k, false, fmt.Errorf("alg %.16q for a %s key", j.Alg, k.alg)
	}
	return k, true, nil
}

// maxAge returns how long to keep a JWK set given its response's Cache-Control.
func maxAge(cacheControl string) time.Duration {
	d := defaultMaxAge
	for _, directive := range strings.Split(cacheControl, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return minMaxAge
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err == nil && secs >= 0 {
				d = time.Duration(min(secs, int64(maxMaxAge/time.Second))) * time.Second
			}
		}
	}
	return min(max(d, minMaxAge), maxMaxAge)
}

func (v *Verifier) init() {
	v.initOnce.Do(func() {
		v.defaultClient = &http.Client{Timeout: DefaultFetchTimeout}
		v.fetching = make(chan struct{}, 1)
	})
}

func (v *Verifier) client() *http.Client {
	if v.Client != nil {
		return v.Client
	}
	v.init()
	return v.defaultClient
}

func (v *Verifier) leeway() time.Duration {
	if v.Leeway == 0 {
		return DefaultLeeway
	}
	return v.Leeway
}

func (v *Verifier) refetchInterval() time.Duration {
	if v.RefetchInterval == 0 {
		return DefaultRefetchInterval
	}
	return v.RefetchInterval
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}
