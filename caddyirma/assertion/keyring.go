package assertion

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// b64 is the base64url encoding without padding that JOSE uses everywhere.
var b64 = base64.RawURLEncoding

// KeyRing is the set of keys the gateway signs assertions with: the first (newest) key signs,
// and all of them are published in the JWK set, so that tokens signed before a rotation still
// verify until the old key is dropped. Make one with NewKeyRing or LoadOrCreateKeyRing; it is
// immutable and safe for concurrent use.
type KeyRing struct {
	keys []*signingKey // newest first
	jwks []byte
}

// signingKey is one key of a KeyRing, with what signing needs precomputed.
type signingKey struct {
	signer crypto.Signer
	alg    Algorithm
	kid    string
	header string // the encoded JOSE header of the tokens it signs
	jwk    jwk
}

// NewKeyRing returns a key ring of keys, newest first: keys[0] signs. Each key must be an
// Ed25519, ECDSA P-256 or (2048-bit or larger) RSA signer; its algorithm follows from its type.
// Any crypto.Signer works, so a key may live in a hardware module.
func NewKeyRing(keys ...crypto.Signer) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("assertion: key ring: no keys")
	}
	kr := &KeyRing{}
	seen := make(map[string]int, len(keys))
	set := jwkSet{Keys: make([]jwk, 0, len(keys))}
	for i, signer := range keys {
		if signer == nil {
			return nil, fmt.Errorf("assertion: key ring: key %d is nil", i)
		}
		j, alg, err := publicJWK(signer.Public())
		if err != nil {
			return nil, fmt.Errorf("assertion: key ring: key %d: %w", i, err)
		}
		if prev, dup := seen[j.Kid]; dup {
			return nil, fmt.Errorf("assertion: key ring: key %d is the same key as key %d", i, prev)
		}
		seen[j.Kid] = i
		header, err := json.Marshal(struct {
			Alg Algorithm `json:"alg"`
			Kid string    `json:"kid"`
			Typ string    `json:"typ"`
		}{alg, j.Kid, "JWT"})
		if err != nil {
			return nil, fmt.Errorf("assertion: key ring: key %d: header: %w", i, err)
		}
		kr.keys = append(kr.keys, &signingKey{
			signer: signer,
			alg:    alg,
			kid:    j.Kid,
			header: b64.EncodeToString(header),
			jwk:    j,
		})
		set.Keys = append(set.Keys, j)
	}
	var err error
	if kr.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("assertion: key ring: JWK set: %w", err)
	}
	return kr, nil
}

// KeyID returns the kid of the key that signs: an RFC 7638 JWK thumbprint.
func (kr *KeyRing) KeyID() string { return kr.keys[0].kid }

// Algorithm returns the algorithm of the key that signs.
func (kr *KeyRing) Algorithm() Algorithm { return kr.keys[0].alg }

// JWKS returns the RFC 7517 JWK set of the ring's public keys, newest first, each with its kid,
// alg and "use": "sig".
func (kr *KeyRing) JWKS() []byte { return bytes.Clone(kr.jwks) }

// JWKSHandler serves the JWK set, for upstreams to fetch the keys from. It answers GET and HEAD
// (and conditional requests, with an ETag) and refuses other methods with 405.
//
// The content type is application/json rather than application/jwk-set+json: it is what most
// JWT libraries' key fetchers expect, and none rejects it. Responses may be cached for five
// minutes, which bounds how long after a rotation an upstream can miss the new key; publish a
// new key before it signs.
func (kr *KeyRing) JWKSHandler() http.Handler {
	sum := sha256.Sum256(kr.jwks)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(kr.jwks))
	})
}

// sign returns the JWS compact serialization of payload (the claims as JSON), signed by k.
func (k *signingKey) sign(payload []byte) (string, error) {
	buf := make([]byte, 0, len(k.header)+1+b64.EncodedLen(len(payload))+1+b64.EncodedLen(512))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	sig, err := k.signature(buf)
	if err != nil {
		return "", fmt.Errorf("assertion: sign with key %s: %w", k.kid, err)
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, sig)
	return string(buf), nil
}

// signature signs the JWS signing input as alg requires (RFC 7518 section 3, RFC 8037).
func (k *signingKey) signature(input []byte) ([]byte, error) {
	switch k.alg {
	case EdDSA:
		return k.signer.Sign(rand.Reader, input, crypto.Hash(0))
	case ES256:
		digest := sha256.Sum256(input)
		der, err := k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		// crypto.Signer gives ASN.1; JWS wants r and s as two 32-byte big-endian integers.
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("ECDSA signature is not ASN.1: %v", err)
		}
		if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
			return nil, errors.New("ECDSA signature out of range")
		}
		sig := make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
		return sig, nil
	case RS256:
		digest := sha256.Sum256(input)
		return k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	}
	return nil, fmt.Errorf("algorithm %q", k.alg)
}

// jwk is a public JSON Web Key (RFC 7517, 7518 section 6, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// jwkSet is a JWK set (RFC 7517 section 5).
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// publicJWK returns the JWK of pub, with its thumbprint as kid, and its algorithm.
func publicJWK(pub crypto.PublicKey) (jwk, Algorithm, error) {
	alg, err := algorithmOf(pub)
	if err != nil {
		return jwk{}, "", err
	}
	var j jwk
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		j = jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(pub)}
	case *ecdsa.PublicKey:
		point, err := pub.Bytes() // 0x04 || x || y, each 32 bytes
		if err != nil {
			return jwk{}, "", fmt.Errorf("ECDSA public key: %w", err)
		}
		j = jwk{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(point[1:33]), Y: b64.EncodeToString(point[33:])}
	case *rsa.PublicKey:
		j = jwk{Kty: "RSA", N: b64.EncodeToString(pub.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
	}
	j.Kid = thumbprint(j)
	j.Alg = string(alg)
	j.Use = "sig"
	return j, alg, nil
}

// thumbprint is the RFC 7638 thumbprint of j: SHA-256 over the required members in
// lexicographic order, without whitespace. The members are base64url and fixed names, so they
// need no JSON escaping.
func thumbprint(j jwk) string {
	var canonical string
	switch j.Kty {
	case "OKP":
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, j.Crv, j.X)
	case "EC":
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, j.Crv, j.X, j.Y)
	case "RSA":
		canonical = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, j.E, j.N)
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64.EncodeToString(sum[:])
}
