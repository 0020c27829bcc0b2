package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Leeway is the clock skew that Verify tolerates on exp, nbf and iat.
const Leeway = 5 * time.Second

// maxTokenLen bounds what Verify parses: a token with a few dozen attributes is a few KiB.
const maxTokenLen = 64 << 10

// Claims are the claims of an identity token, as Verify returns them.
type Claims struct {
	jwt.RegisteredClaims
	// Attributes maps each disclosed IRMA attribute id to its value.
	Attributes map[string]string `json:"attributes"`
	// Policy names the policy that the login satisfied.
	Policy string `json:"policy,omitempty"`
}

// Verify checks token as an upstream application should and returns its claims: the signature
// with the key of jwks (a JWK set, as KeyRing.JWKS returns) that the token's kid names, using
// that key's algorithm only; iss and aud must equal issuer and audience; exp and nbf must be
// present and hold at now, with Leeway either way; iat must not be in the future. A zero now
// means time.Now(). Errors wrap golang-jwt's (jwt.ErrTokenExpired and the like).
func Verify(token string, jwks []byte, issuer, audience string, now time.Time) (*Claims, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("assertion: verify: issuer and audience are required")
	}
	if len(token) > maxTokenLen {
		return nil, fmt.Errorf("assertion: verify: token of %d bytes, more than %d", len(token), maxTokenLen)
	}
	keys, err := parseJWKS(jwks)
	if err != nil {
		return nil, fmt.Errorf("assertion: verify: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{string(EdDSA), string(ES256), string(RS256)}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		// Refuse non-canonical base64, so that a token has one encoding only.
		jwt.WithStrictDecoding(),
	)
	var claims Claims
	_, err = parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key with kid %.64q", kid)
		}
		// The key decides the algorithm, never the token: this is what stops "alg" games
		// such as HS256 keyed with the public key.
		if alg := t.Method.Alg(); alg != string(k.alg) {
			return nil, fmt.Errorf("token alg %.16q, but key %s is %s", alg, kid, k.alg)
		}
		return k.pub, nil
	})
	if err != nil {
		return nil, fmt.Errorf("assertion: verify: %w", err)
	}
	return &claims, nil
}

// verifyKey is a public key from a JWK set and the one algorithm it verifies.
type verifyKey struct {
	alg Algorithm
	pub crypto.PublicKey
}

// parseJWKS returns the keys of a JWK set by kid. Keys of other types, keys without kid and keys
// not for signatures are skipped, as RFC 7517 asks of unknown key types; a supported key that is
// malformed is an error.
func parseJWKS(data []byte) (map[string]verifyKey, error) {
	var set jwkSet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWK set: %w", err)
	}
	keys := make(map[string]verifyKey, len(set.Keys))
	for i, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		pub, alg, err := parseJWK(j)
		if err != nil {
			return nil, fmt.Errorf("JWK set: key %d (%.64q): %w", i, j.Kid, err)
		}
		if pub == nil {
			continue
		}
		if _, dup := keys[j.Kid]; dup {
			return nil, fmt.Errorf("JWK set: key %d: kid %.64q appears twice", i, j.Kid)
		}
		keys[j.Kid] = verifyKey{alg, pub}
	}
	return keys, nil
}

// parseJWK returns the public key of j and its algorithm, or nil for a key type that the
// gateway does not sign with.
func parseJWK(j jwk) (crypto.PublicKey, Algorithm, error) {
	var (
		pub crypto.PublicKey
		err error
	)
	switch {
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		var x []byte
		if x, err = b64.Strict().DecodeString(j.X); err == nil && len(x) != ed25519.PublicKeySize {
			err = fmt.Errorf("x of %d bytes", len(x))
		}
		pub = ed25519.PublicKey(x)
	case j.Kty == "EC" && j.Crv == "P-256":
		pub, err = parseP256(j.X, j.Y)
	case j.Kty == "RSA":
		pub, err = parseRSA(j.N, j.E)
	default:
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	alg, err := algorithmOf(pub)
	if err != nil {
		return nil, "", err
	}
	if j.Alg != "" && j.Alg != string(alg) {
		return nil, "", fmt.Errorf("alg %.16q for a %s key", j.Alg, alg)
	}
	return pub, alg, nil
}

func parseP256(xs, ys string) (*ecdsa.PublicKey, error) {
	x, err := b64.Strict().DecodeString(xs)
	if err != nil {
		return nil, fmt.Errorf("x: %w", err)
	}
	y, err := b64.Strict().DecodeString(ys)
	if err != nil {
		return nil, fmt.Errorf("y: %w", err)
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("coordinates of %d and %d bytes, want 32", len(x), len(y))
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}

func parseRSA(ns, es string) (*rsa.PublicKey, error) {
	n, err := b64.Strict().DecodeString(ns)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}
	e, err := b64.Strict().DecodeString(es)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if len(n) > 2048 { // 16384 bits: more is a denial of service, not a key
		return nil, fmt.Errorf("n of %d bytes", len(n))
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("e of %d bytes", len(e))
	}
	eb := new(big.Int).SetBytes(e)
	if eb.Cmp(big.NewInt(3)) < 0 || eb.Bit(0) == 0 || eb.BitLen() > 31 {
		return nil, errors.New("e is not an odd number from 3 to 2^31-1")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eb.Int64())}, nil
}
