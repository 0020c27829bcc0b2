// Package assertion vouches for a logged-in visitor to the upstream application: it signs a
// short-lived JWT with the attributes the visitor disclosed, publishes the public keys as a JWK
// set, and verifies such tokens (for upstream applications written in Go, and for tests).
//
// Tokens are signed with asymmetric keys only, so an upstream can check them without being able
// to forge them.
package assertion

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
)

// Algorithm is a JWS signature algorithm ("alg") that the gateway signs with.
type Algorithm string

// The supported algorithms. Each determines the key type: the key decides the algorithm, never
// the token.
const (
	// EdDSA is Ed25519 (RFC 8037): small, fast and deterministic. The default.
	EdDSA Algorithm = "EdDSA"
	// ES256 is ECDSA on P-256 with SHA-256, for upstreams whose JWT libraries lack EdDSA.
	ES256 Algorithm = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit key (or larger), the one algorithm
	// every JWT library has; slow to sign.
	RS256 Algorithm = "RS256"
)

// DefaultAlgorithm is the algorithm of generated keys when none is chosen.
const DefaultAlgorithm = EdDSA

// minRSABits is the smallest RSA key accepted, for signing and verifying: anything smaller is
// within reach of factoring.
const minRSABits = 2048

// Valid reports whether a is a supported algorithm.
func (a Algorithm) Valid() bool {
	switch a {
	case EdDSA, ES256, RS256:
		return true
	}
	return false
}

// GenerateKey returns a new random private key for alg: Ed25519, P-256 or 2048-bit RSA. An
// empty alg means DefaultAlgorithm.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	if alg == "" {
		alg = DefaultAlgorithm
	}
	switch alg {
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, minRSABits)
	}
	return nil, fmt.Errorf("assertion: algorithm %q: want EdDSA, ES256 or RS256", alg)
}

// ParsePrivateKeyPEM parses the first PEM block of data as a private key: PKCS#8 ("PRIVATE
// KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"). The key must be of a supported
// type: Ed25519, P-256, or RSA of at least 2048 bits. Encrypted keys are not supported.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("assertion: private key: no PEM block found")
	}
	return parsePrivateKeyBlock(block)
}

// parsePrivateKeysPEM parses every PEM block of data as a private key, in order.
func parsePrivateKeysPEM(data []byte) ([]crypto.Signer, error) {
	var keys []crypto.Signer
	for i := 0; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := parsePrivateKeyBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("assertion: private key: no PEM block found")
	}
	return keys, nil
}

func parsePrivateKeyBlock(block *pem.Block) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("assertion: private key: encrypted keys are not supported")
	default:
		return nil, fmt.Errorf("assertion: private key: PEM block %q: want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("assertion: private key: %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("assertion: private key: %T cannot sign", key)
	}
	if _, err := algorithmOf(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block. The key must be an
// in-memory key (ed25519.PrivateKey, *ecdsa.PrivateKey or *rsa.PrivateKey) of a supported type.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	if _, err := algorithmOf(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("assertion: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// algorithmOf returns the algorithm that pub's key signs with, and refuses key types and sizes
// that the gateway does not sign with.
func algorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return "", fmt.Errorf("assertion: Ed25519 public key of %d bytes", len(pub))
		}
		return EdDSA, nil
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", fmt.Errorf("assertion: ECDSA key on %s: want P-256 (ES256)", pub.Curve.Params().Name)
		}
		return ES256, nil
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < minRSABits {
			return "", fmt.Errorf("assertion: RSA key of %d bits: want at least %d", n, minRSABits)
		}
		return RS256, nil
	}
	return "", fmt.Errorf("assertion: key type %T: want Ed25519, ECDSA P-256 or RSA", pub)
}

// LoadOrCreateKeyRing returns the key ring kept at key in s, generating a key for alg and
// storing it (PKCS#8 PEM) the first time, so that restarts and every instance on the same
// storage sign with the same key and publish the same JWK set. An empty alg means
// DefaultAlgorithm.
//
// The stored value may hold several PEM blocks, newest first: an operator rotates the key by
// putting a new one in front and removes the old one once its tokens have expired. If the newest
// stored key is not an alg key, LoadOrCreateKeyRing fails rather than silently signing with
// another algorithm than the configured one.
func LoadOrCreateKeyRing(ctx context.Context, s keystore.Storage, key string, alg Algorithm) (*KeyRing, error) {
	if alg == "" {
		alg = DefaultAlgorithm
	}
	if !alg.Valid() {
		return nil, fmt.Errorf("assertion: algorithm %q: want EdDSA, ES256 or RS256", alg)
	}
	data, err := keystore.LoadOrCreate(ctx, s, key, func() ([]byte, error) {
		k, err := GenerateKey(alg)
		if err != nil {
			return nil, err
		}
		return MarshalPrivateKeyPEM(k)
	})
	if err != nil {
		return nil, err
	}
	kr, err := ParseKeyRingPEM(data, alg)
	if err != nil {
		return nil, fmt.Errorf("assertion: storage key %q: %w", key, err)
	}
	return kr, nil
}

// ParseKeyRingPEM returns the key ring of the PEM private keys in data, newest first, whose
// newest key must be an alg key: a key file or stored value.
func ParseKeyRingPEM(data []byte, alg Algorithm) (*KeyRing, error) {
	keys, err := parsePrivateKeysPEM(data)
	if err != nil {
		return nil, err
	}
	kr, err := NewKeyRing(keys...)
	if err != nil {
		return nil, err
	}
	if got := kr.keys[0].alg; got != alg {
		return nil, fmt.Errorf("the newest key is for %s, but %s is configured: remove it to generate a new key, or configure %s", got, alg, got)
	}
	return kr, nil
}
