package testscheme

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
)

var generate = flag.Bool("generate-testkeys", false, "regenerate the committed 1024-bit test issuer key pair in testdata/ (takes 1 to 15 s)")

// TestGenerateKeys writes a new test key pair into testdata/ when run with -generate-testkeys.
// The keys expire in 2100 so that tests do not start failing on a date.
func TestGenerateKeys(t *testing.T) {
	if !*generate {
		t.Skip("run with -generate-testkeys to regenerate testdata/")
	}
	start := time.Now()
	s, err := demoscheme.Ensure(demoscheme.Options{
		Dir:             t.TempDir(),
		TimestampServer: "http://127.0.0.1:1/",
		KeyBits:         KeyBits,
		KeyValidity:     time.Until(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated a %d-bit key pair in %v", s.KeyBits, time.Since(start))
	for src, dst := range map[string]string{
		s.PrivateKeyFile(): "issuer-private-key.xml",
		s.PublicKeyFile():  "issuer-public-key.xml",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
