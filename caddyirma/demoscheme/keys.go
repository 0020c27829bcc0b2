package demoscheme

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/atomicfile"
	"github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
	"github.com/privacybydesign/gabi/big"
	"github.com/privacybydesign/gabi/gabikeys"
	"github.com/privacybydesign/gabi/signed"
	"go.uber.org/zap"
)

// generateKeyPair is gabikeys.GenerateKeyPair; tests replace it to skip the safe-prime search.
var generateKeyPair = gabikeys.GenerateKeyPair

// now is the clock, replaceable in tests.
var now = time.Now

// ensureSigningKey loads the scheme signing key, generating it if missing.
func ensureSigningKey(s *Scheme) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(s.SigningKeyFile)
	switch {
	case err == nil:
		sk, err := signed.UnmarshalPemPrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("scheme signing key %s: %w", s.SigningKeyFile, err)
		}
		return sk, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("scheme signing key: %w", err)
	}
	sk, err := signed.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("scheme signing key %s: generate: %w", s.SigningKeyFile, err)
	}
	pemBytes, err := signed.MarshalPemPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("scheme signing key %s: marshal: %w", s.SigningKeyFile, err)
	}
	if err := atomicfile.Create(s.SigningKeyFile, pemBytes, 0o600); err != nil {
		return nil, fmt.Errorf("scheme signing key: %w", err)
	}
	s.GeneratedKeys = append(s.GeneratedKeys, s.SigningKeyFile)
	return sk, nil
}

// ensureTimestampKey generates the timestamp service key if missing and checks it otherwise, so
// a broken key shows up here rather than when the first signature session needs it.
func ensureTimestampKey(s *Scheme) error {
	_, err := os.Stat(s.TimestampKeyFile)
	switch {
	case err == nil:
		_, err := timestamp.LoadKey(s.TimestampKeyFile)
		return err
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("timestamp key: %w", err)
	}
	if err := timestamp.GenerateKeyFile(s.TimestampKeyFile); err != nil {
		return err
	}
	s.GeneratedKeys = append(s.GeneratedKeys, s.TimestampKeyFile)
	return nil
}

// ensureIssuerKeys returns the issuer public key file's bytes, generating the pair if missing.
// The public key is written before the private key, so an interrupted generation leaves at most
// an orphan public key, which is useless alone and replaced on the next run. A private key
// without its public key cannot be repaired (the public key holds random bases) and is an error.
func ensureIssuerKeys(s *Scheme, opts Options) ([]byte, error) {
	privPath, pubPath := s.PrivateKeyFile(), s.PublicKeyFile()
	privExists, err := exists(privPath)
	if err != nil {
		return nil, err
	}
	pubExists, err := exists(pubPath)
	if err != nil {
		return nil, err
	}
	if privExists && !pubExists {
		return nil, fmt.Errorf("issuer private key %s has no public key %s: restore the public key, or delete the private key to generate a new pair", privPath, pubPath)
	}
	if !privExists {
		bits := opts.KeyBits
		if bits == 0 {
			bits = DefaultKeyBits
		}
		opts.Logger.Info("generating demo issuer key pair; this takes a while",
			zap.Int("bits", bits), zap.String("private_key", privPath))
		start := now()
		sk, pk, err := generateKeyPair(gabikeys.DefaultSystemParameters[bits], numKeyAttributes, keyCounter, now().Add(opts.KeyValidity))
		if err != nil {
			return nil, fmt.Errorf("issuer key pair: generate: %w", err)
		}
		if err := writeKeyPair(privPath, pubPath, sk, pk, atomicfile.Create); err != nil {
			return nil, err
		}
		s.GeneratedKeys = append(s.GeneratedKeys, privPath, pubPath)
		opts.Logger.Info("generated demo issuer key pair", zap.Duration("took", now().Sub(start)))
	}
	if err := addRevocationKeys(s, opts); err != nil {
		return nil, err
	}

	privXML, err := os.ReadFile(privPath)
	if err != nil {
		return nil, fmt.Errorf("issuer private key: %w", err)
	}
	pubXML, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, fmt.Errorf("issuer public key: %w", err)
	}
	bits, expiry, err := checkKeyPair(privXML, pubXML, opts.KeyBits)
	if err != nil {
		return nil, fmt.Errorf("issuer key pair %s and %s: %w", privPath, pubPath, err)
	}
	s.KeyBits, s.KeyExpiry = bits, expiry
	return pubXML, nil
}

// writeKeyPair writes a key pair, the public key first (see ensureIssuerKeys); createPrivate
// writes the private key: atomicfile.Create for a new one, atomicfile.Replace to update one.
func writeKeyPair(privPath, pubPath string, sk *gabikeys.PrivateKey, pk *gabikeys.PublicKey, createPrivate func(string, []byte, os.FileMode) error) error {
	var privBuf, pubBuf bytes.Buffer
	if _, err := sk.WriteTo(&privBuf); err != nil {
		return fmt.Errorf("issuer key pair: marshal private key: %w", err)
	}
	if _, err := pk.WriteTo(&pubBuf); err != nil {
		return fmt.Errorf("issuer key pair: marshal public key: %w", err)
	}
	if err := atomicfile.Replace(pubPath, pubBuf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("issuer public key: %w", err)
	}
	if err := createPrivate(privPath, privBuf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("issuer private key: %w", err)
	}
	return nil
}

// addRevocationKeys gives a key pair made before the scheme had a revocable credential type
// its revocation keys (an ECDSA key that signs accumulators, and the bases G and H), as
// gabikeys.GenerateRevocationKeypair adds them; the rest of the pair stays, so credentials
// issued under it stay valid. A pair that has them already is left alone.
func addRevocationKeys(s *Scheme, opts Options) error {
	privPath, pubPath := s.PrivateKeyFile(), s.PublicKeyFile()
	privXML, err := os.ReadFile(privPath)
	if err != nil {
		return fmt.Errorf("issuer private key: %w", err)
	}
	pubXML, err := os.ReadFile(pubPath)
	if err != nil {
		return fmt.Errorf("issuer public key: %w", err)
	}
	if _, _, err := checkKeyPair(privXML, pubXML, 0); err != nil {
		return fmt.Errorf("issuer key pair %s and %s: %w", privPath, pubPath, err)
	}
	// demo: no safe-prime test (checkKeyPair has matched the pair; the server tests at start).
	sk, err := gabikeys.NewPrivateKeyFromXML(string(privXML), true)
	if err != nil {
		return fmt.Errorf("issuer private key %s: %w", privPath, err)
	}
	pk, err := gabikeys.NewPublicKeyFromXML(string(pubXML))
	if err != nil {
		return fmt.Errorf("issuer public key %s: %w", pubPath, err)
	}
	if sk.RevocationSupported() && pk.RevocationSupported() {
		return nil
	}
	if err := gabikeys.GenerateRevocationKeypair(sk, pk); err != nil {
		return fmt.Errorf("issuer key pair: revocation keys: %w", err)
	}
	if err := writeKeyPair(privPath, pubPath, sk, pk, atomicfile.Replace); err != nil {
		return err
	}
	s.GeneratedKeys = append(s.GeneratedKeys, privPath, pubPath)
	opts.Logger.Info("added revocation keys to the demo issuer key pair", zap.String("private_key", privPath))
	return nil
}

// checkKeyPair checks that the two key files belong together and suit the scheme, and returns
// the key size and expiry. It parses the XML itself instead of through gabikeys' constructors,
// which dereference missing elements and would panic on a damaged file, and it skips the
// safe-prime test (hundreds of milliseconds at 2048 bits) that the IRMA server does at start.
func checkKeyPair(privXML, pubXML []byte, wantBits int) (int, time.Time, error) {
	var sk gabikeys.PrivateKey
	if err := xml.Unmarshal(privXML, &sk); err != nil {
		return 0, time.Time{}, fmt.Errorf("private key: %w", err)
	}
	if sk.P == nil || sk.Q == nil || sk.PPrime == nil || sk.QPrime == nil {
		return 0, time.Time{}, errors.New("private key: missing p, q, pPrime or qPrime")
	}
	var pk gabikeys.PublicKey
	if err := xml.Unmarshal(pubXML, &pk); err != nil {
		return 0, time.Time{}, fmt.Errorf("public key: %w", err)
	}
	if pk.N == nil || pk.Z == nil || pk.S == nil {
		return 0, time.Time{}, errors.New("public key: missing n, Z or S")
	}
	if new(big.Int).Mul(sk.P, sk.Q).Cmp(pk.N) != 0 {
		return 0, time.Time{}, errors.New("they do not belong together (p*q differs from n)")
	}
	if sk.Counter != keyCounter || pk.Counter != keyCounter {
		return 0, time.Time{}, fmt.Errorf("counters are %d and %d, want %d", sk.Counter, pk.Counter, keyCounter)
	}
	bits := pk.N.BitLen()
	if _, ok := gabikeys.DefaultSystemParameters[bits]; !ok || (bits != 1024 && bits != 2048) {
		return 0, time.Time{}, fmt.Errorf("key size %d bits: want 1024 or 2048", bits)
	}
	if wantBits != 0 && bits != wantBits {
		return 0, time.Time{}, fmt.Errorf("key size is %d bits but %d were asked: delete both files to generate a new pair, or ask for %d", bits, wantBits, bits)
	}
	if need := maxAttributes() + 2; len(pk.R) < need {
		return 0, time.Time{}, fmt.Errorf("public key has %d bases, the scheme's credential types need %d", len(pk.R), need)
	}
	// irmago refuses a non-demo key pair whose revocation support differs (keyring.go).
	skRev := sk.ECDSAString != ""
	pkRev := pk.G != nil && pk.H != nil && pk.ECDSAString != ""
	if skRev != pkRev {
		return 0, time.Time{}, errors.New("revocation support of private and public key differs")
	}
	expiry := time.Unix(pk.ExpiryDate, 0)
	if !expiry.After(now()) {
		return 0, time.Time{}, fmt.Errorf("expired at %s: delete both files to generate a new pair", expiry.UTC().Format(time.RFC3339))
	}
	return bits, expiry, nil
}

// InstallIssuerKeyPair puts an existing issuer key pair (gabikeys XML) where Ensure looks for it,
// so that Ensure uses it instead of generating one: for tests and for pre-generated keys. It
// checks that the pair belongs together and never replaces existing key files.
func InstallIssuerKeyPair(dir, schemeID string, privateKeyXML, publicKeyXML []byte) error {
	if schemeID == "" {
		schemeID = DefaultSchemeID
	}
	if !schemeIDPattern.MatchString(schemeID) {
		return fmt.Errorf("install issuer key pair: invalid scheme id %q", schemeID)
	}
	if _, _, err := checkKeyPair(privateKeyXML, publicKeyXML, 0); err != nil {
		return fmt.Errorf("install issuer key pair: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("install issuer key pair: %w", err)
	}
	s := layout(abs, schemeID)
	for _, d := range []struct {
		path string
		perm os.FileMode
	}{{s.Dir, 0o700}, {s.PrivateKeysPath, 0o700}, {s.PublicKeysPath, 0o755}} {
		if err := os.MkdirAll(d.path, d.perm); err != nil {
			return fmt.Errorf("install issuer key pair: %w", err)
		}
	}
	if err := atomicfile.Create(s.PublicKeyFile(), publicKeyXML, 0o644); err != nil {
		return fmt.Errorf("install issuer key pair: %w", err)
	}
	if err := atomicfile.Create(s.PrivateKeyFile(), privateKeyXML, 0o600); err != nil {
		return fmt.Errorf("install issuer key pair: %w", err)
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
}
