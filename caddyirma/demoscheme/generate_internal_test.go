package demoscheme

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/privacybydesign/gabi/gabikeys"
)

// TestGeneratesMissingKeys runs the key generation path with the committed test keys standing in
// for gabikeys.GenerateKeyPair, which takes seconds even at 1024 bits.
func TestGeneratesMissingKeys(t *testing.T) {
	privXML, pubXML := committedKeys(t)
	var gotBits, gotAttrs int
	var gotExpiry time.Time
	generateKeyPair = func(p *gabikeys.SystemParameters, n int, counter uint, expiry time.Time) (*gabikeys.PrivateKey, *gabikeys.PublicKey, error) {
		gotBits, gotAttrs, gotExpiry = int(p.Ln), n, expiry
		sk, err := gabikeys.NewPrivateKeyFromXML(string(privXML), true)
		if err != nil {
			return nil, nil, err
		}
		pk, err := gabikeys.NewPublicKeyFromXML(string(pubXML))
		return sk, pk, err
	}
	t.Cleanup(func() { generateKeyPair = gabikeys.GenerateKeyPair })

	dir := t.TempDir()
	// An orphan public key, as an interrupted generation leaves it, must not block generation.
	if err := os.MkdirAll(filepath.Join(dir, pubKeysDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(dir, pubKeysDirName, keyFileName(DefaultSchemeID))
	if err := os.WriteFile(orphan, []byte("orphan"), 0o644); err != nil {
		t.Fatal(err)
	}

	s, err := Ensure(Options{Dir: dir, TimestampServer: "http://127.0.0.1:9/", KeyBits: 1024, KeyValidity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if gotBits != 1024 || gotAttrs != numKeyAttributes || time.Until(gotExpiry) < 23*time.Hour || time.Until(gotExpiry) > 25*time.Hour {
		t.Fatalf("generator called with bits=%d attrs=%d expiry=%v", gotBits, gotAttrs, gotExpiry)
	}
	if len(s.GeneratedKeys) != 4 {
		t.Fatalf("generated %v, want signing, timestamp, private and public key", s.GeneratedKeys)
	}
	for _, f := range []string{s.PrivateKeyFile(), s.PublicKeyFile()} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// committedKeys reads the committed test issuer key pair of package testscheme.
func committedKeys(t *testing.T) (privXML, pubXML []byte) {
	t.Helper()
	td := filepath.Join("..", "internal", "testkit", "testscheme", "testdata")
	privXML, err := os.ReadFile(filepath.Join(td, "issuer-private-key.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if pubXML, err = os.ReadFile(filepath.Join(td, "issuer-public-key.xml")); err != nil {
		t.Fatal(err)
	}
	return privXML, pubXML
}
