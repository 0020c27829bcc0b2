package timestamp

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"runtime"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/atomicfile"
)

const pemTypePrivateKey = "PRIVATE KEY"

// LoadKey reads the service's Ed25519 private key from a PEM file holding a PKCS#8 "PRIVATE KEY"
// block, the format GenerateKeyFile writes and `openssl genpkey -algorithm ed25519` makes.
// Outside Windows it refuses a file that group or others may access: whoever reads the key can
// backdate signatures.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("timestamp key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("timestamp key %s: accessible by group or others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("timestamp key: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("timestamp key %s: no PEM block found", path)
	}
	if block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("timestamp key %s: PEM block is %q, want %q (PKCS#8)", path, block.Type, pemTypePrivateKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("timestamp key %s: unexpected data after the PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("timestamp key %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("timestamp key %s: is a %T, want an Ed25519 key", path, parsed)
	}
	return key, nil
}

// GenerateKeyFile writes a new Ed25519 private key to path (PEM, PKCS#8, mode 0600). It never
// replaces an existing file: it fails with an error wrapping fs.ErrExist instead, so a service's
// key cannot be lost to a second call. The file appears complete or not at all.
func GenerateKeyFile(path string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("timestamp key %s: generate: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("timestamp key %s: marshal: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})
	if err := atomicfile.Create(path, data, 0o600); err != nil {
		return fmt.Errorf("timestamp key: %w", err)
	}
	return nil
}
