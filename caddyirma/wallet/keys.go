//go:build cgo

package wallet

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/privacybydesign/gabi/signed"
	"github.com/privacybydesign/irmago/irma/irmaclient"
)

// Files in Options.Dir besides irmago's own storage.
const (
	// storageKeyFile holds the 32-byte AES key, hex, that irmago encrypts the wallet's storage with (its bbolt
	// database through an AES middleware, its SQLCipher database directly).
	storageKeyFile = "storage.key"
	// signerKeyFile holds the wallet's ECDSA P-256 key (PEM), irmaclient's Signer: the device key the wallet
	// authenticates to keyshare servers with.
	signerKeyFile = "signer.pem"
	// lockFile is held (flock) while the wallet is open.
	lockFile = "wallet.lock"
)

// loadOrCreateStorageKey returns the storage key in dir, creating it on first use.
//
// The Yivi app keeps this key in the phone's keystore. A development wallet has no keystore: the key lives next to
// the data it encrypts, readable only by its owner (0600), so the encryption at rest is nominal. Whoever can read
// Dir can read the credentials; that is acceptable for demo credentials and nothing else.
func loadOrCreateStorageKey(dir string) ([32]byte, error) {
	var key [32]byte
	path := filepath.Join(dir, storageKeyFile)
	data, err := loadOrCreate(path, func() ([]byte, error) {
		if _, err := rand.Read(key[:]); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(key[:]) + "\n"), nil
	})
	if err != nil {
		return key, fmt.Errorf("storage key: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != len(key) {
		return key, fmt.Errorf("storage key %s: want %d hex-encoded bytes", path, len(key))
	}
	copy(key[:], raw)
	return key, nil
}

// fileSigner is irmaclient's Signer backed by a key file: the same as irmago's tests use (internal/test.Signer),
// except that the key persists across runs. The Yivi app keeps this key in secure hardware. irmago only uses it
// with keyshare servers (enrollment, PIN challenges); the schemes a development wallet trusts have none, but keeping
// the key stable means an enrollment would survive a restart.
type fileSigner struct {
	key *ecdsa.PrivateKey
}

var _ irmaclient.Signer = (*fileSigner)(nil)

func loadOrCreateSigner(dir string) (*fileSigner, error) {
	path := filepath.Join(dir, signerKeyFile)
	data, err := loadOrCreate(path, func() ([]byte, error) {
		sk, err := signed.GenerateKey()
		if err != nil {
			return nil, err
		}
		return signed.MarshalPemPrivateKey(sk)
	})
	if err != nil {
		return nil, fmt.Errorf("signer key: %w", err)
	}
	sk, err := signed.UnmarshalPemPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("signer key %s: %w", path, err)
	}
	return &fileSigner{key: sk}, nil
}

// PublicKey implements irmaclient.Signer. There is one key; keyname is ignored, as in irmago's test signer.
func (s *fileSigner) PublicKey(string) ([]byte, error) {
	return signed.MarshalPublicKey(&s.key.PublicKey)
}

// Sign implements irmaclient.Signer: an ASN.1 ECDSA signature over SHA-256 of msg.
func (s *fileSigner) Sign(_ string, msg []byte) ([]byte, error) {
	return signed.Sign(s.key, msg)
}

// loadOrCreate reads path, or creates it (0600, exclusively, so two processes cannot both create it) with what
// generate returns.
func loadOrCreate(path string, generate func() ([]byte, error)) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data, err = generate()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, err
	}
	return data, nil
}
