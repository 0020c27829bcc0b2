// Command genkeys regenerates the committed test issuer key pair of package
// testscheme, through the same demoscheme.Ensure that generates a demo
// scheme's keys. Run it with
//
//	go generate ./caddyirma/internal/testkit/testscheme
//
// It takes 1 to 15 s (a safe-prime search). The keys expire in 2100, so that
// tests do not start failing on a date.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

func main() {
	out := flag.String("out", "testdata", "the directory to write issuer-private-key.xml and issuer-public-key.xml into")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "genkeys:", err)
		os.Exit(1)
	}
}

func generate(out string) error {
	dir, err := os.MkdirTemp("", "testscheme-genkeys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	s, err := demoscheme.Ensure(demoscheme.Options{
		Dir:             dir,
		TimestampServer: "http://127.0.0.1:1/",
		KeyBits:         testscheme.KeyBits,
		KeyValidity:     time.Until(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		return err
	}
	for src, dst := range map[string]string{
		s.PrivateKeyFile(): "issuer-private-key.xml",
		s.PublicKeyFile():  "issuer-public-key.xml",
	} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, dst), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("generated a %d-bit key pair in %s into %s\n", s.KeyBits, time.Since(start).Round(time.Millisecond), out)
	return nil
}
