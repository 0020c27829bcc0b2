package testscheme

import (
	"crypto/rand"
	"testing"

	"github.com/bwesterb/go-atum"
)

func TestNewWithTimestampServer(t *testing.T) {
	s := NewWithTimestampServer(t)
	if s.KeyBits != KeyBits || !s.Resigned {
		t.Fatalf("scheme: bits %d resigned %v", s.KeyBits, s.Resigned)
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	ts, aerr := atum.Stamp(s.TimestampServer, nonce)
	if aerr != nil {
		t.Fatalf("stamp from the scheme's timestamp server: %v", aerr)
	}
	if ok, aerr := ts.Verify(nonce); !ok || aerr != nil {
		t.Fatalf("stamp does not verify: %v", aerr)
	}
}
