package demoscheme

import (
	"bytes"
	"regexp"
	"slices"
	"testing"

	"github.com/privacybydesign/gabi/gabikeys"
)

// TestAddsRevocationKeys: a key pair made before the scheme had a revocable
// credential type gets revocation keys, once; the rest of the pair stays.
func TestAddsRevocationKeys(t *testing.T) {
	strip := regexp.MustCompile(`(?s)\s*<(ECDSA|G|H)>.*?</(ECDSA|G|H)>`)
	privXML, pubXML := committedKeys(t)
	priv, pub := strip.ReplaceAll(privXML, nil), strip.ReplaceAll(pubXML, nil)
	if bytes.Contains(pub, []byte("<G>")) || bytes.Contains(priv, []byte("<ECDSA>")) {
		t.Fatal("the test keys still have revocation keys")
	}
	dir := t.TempDir()
	if err := InstallIssuerKeyPair(dir, "", priv, pub); err != nil {
		t.Fatal(err)
	}
	opts := Options{Dir: dir, TimestampServer: "http://127.0.0.1:1/", KeyBits: 1024}
	s, err := Ensure(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.GeneratedKeys, s.PrivateKeyFile()) || !slices.Contains(s.GeneratedKeys, s.PublicKeyFile()) {
		t.Fatalf("generated %v, want the key pair updated", s.GeneratedKeys)
	}
	sk, err := gabikeys.NewPrivateKeyFromFile(s.PrivateKeyFile(), true)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := gabikeys.NewPublicKeyFromFile(s.PublicKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	old, err := gabikeys.NewPublicKeyFromXML(string(pub))
	if err != nil {
		t.Fatal(err)
	}
	if !sk.RevocationSupported() || !pk.RevocationSupported() || pk.N.Cmp(old.N) != 0 || pk.Z.Cmp(old.Z) != 0 {
		t.Fatal("the pair has no revocation keys, or another key")
	}
	if s, err = Ensure(opts); err != nil || len(s.GeneratedKeys) != 0 {
		t.Fatalf("second run: %v, generated %v", err, s.GeneratedKeys)
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
