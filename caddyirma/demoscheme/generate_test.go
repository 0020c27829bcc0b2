package demoscheme_test

import (
	"testing"

	"github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
)

// TestGeneratesRealKeys has Ensure generate every key of an empty demo
// scheme, the issuer key pair with gabikeys at 1024 bits (a safe-prime
// search: about 2 s, sometimes 20), and checks that irmago takes them: the
// scheme parses and verifies, and the IRMA server, which checks the issuer's
// private key when it starts, issues with it. Every other test installs the
// committed test keys instead.
func TestGeneratesRealKeys(t *testing.T) {
	t.Parallel() // the safe-prime search need not hold up the other tests
	s, err := demoscheme.Ensure(demoscheme.Options{Dir: t.TempDir(), TimestampServer: tsURL, KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.GeneratedKeys) != 4 || !s.Resigned || s.KeyBits != 1024 {
		t.Fatalf("generated %v, resigned %v, %d bits: want the signing, timestamp, private and public key, signed, 1024 bits",
			s.GeneratedKeys, s.Resigned, s.KeyBits)
	}
	if warnings, err := s.Check(); err != nil || len(warnings) != 0 {
		t.Fatalf("Check: %v %q", err, warnings)
	}
	conf, err := parse(t, s)
	if err != nil {
		t.Fatalf("irmago does not accept the scheme: %v", err)
	}
	if pk, err := conf.PublicKeyLatest(s.Issuer()); err != nil || pk.N.BitLen() != 1024 {
		t.Fatalf("public key: %v", err)
	}

	srv, err := irmaserver.New(&server.Configuration{
		URL:                   "http://127.0.0.1:9/irma",
		SchemesPath:           s.SchemesPath,
		IssuerPrivateKeysPath: s.PrivateKeysPath,
		DisableSchemesUpdate:  true,
		Logger:                quietLogger(),
		// irmaserver refuses revocation-capable keys of a revocable credential type
		// without revocation settings; authority mode needs a database, so this
		// server would fetch staff's revocation updates from the scheme's server.
		RevocationSettings: irma.RevocationSettings{
			s.Credential(demoscheme.CredentialStaff): {RevocationServerURL: s.RevocationServer},
		},
	})
	if err != nil {
		t.Fatalf("the IRMA server refuses the generated keys: %v", err)
	}
	t.Cleanup(srv.Stop)
	if _, _, _, err := srv.StartSession(irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: s.Credential(demoscheme.CredentialMembership),
		Attributes:       map[string]string{demoscheme.AttributeClub: "Caddy club", demoscheme.AttributeLevel: "gold"},
	}}), nil, ""); err != nil {
		t.Fatalf("an issuance with the generated keys: %v", err)
	}
}
