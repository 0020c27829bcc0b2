package demoscheme_test

import (
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
)

// TestIRMAServerAcceptsScheme starts irmago's embeddable server on a generated scheme and has it
// accept an issuance, a disclosure and a signature request. No wallet takes part.
func TestIRMAServerAcceptsScheme(t *testing.T) {
	s := testscheme.New(t, tsURL)
	start := time.Now()
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
		t.Fatalf("irmaserver.New: %v", err)
	}
	t.Logf("irmaserver.New took %v", time.Since(start))
	t.Cleanup(srv.Stop)
	if ct := conf(t, s).CredentialTypes[s.Credential(demoscheme.CredentialStaff)]; ct == nil || !ct.RevocationSupported() || ct.RevocationServers[0] != s.RevocationServer {
		t.Fatalf("staff is not revocable at %s: %+v", s.RevocationServer, ct)
	}

	person := s.Credential(demoscheme.CredentialPerson)
	email := s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)
	requests := map[string]irma.SessionRequest{
		"issuance person": irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: person,
			Attributes: map[string]string{
				demoscheme.AttributeFullname: "Alice Demo",
				demoscheme.AttributeEmail:    "alice@example.com",
				demoscheme.AttributeOver18:   "yes",
			},
		}}),
		"issuance membership": irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: s.Credential(demoscheme.CredentialMembership),
			Attributes:       map[string]string{demoscheme.AttributeClub: "Caddy club", demoscheme.AttributeLevel: "gold"},
		}}),
		"issuance staff (revocable)": irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: s.Credential(demoscheme.CredentialStaff),
			RevocationKey:    "alice-1",
			Attributes:       map[string]string{demoscheme.AttributeName: "Alice Demo", demoscheme.AttributeRole: "admin"},
		}}),
		"disclosure email": irma.NewDisclosureRequest(email),
		"signature":        irma.NewSignatureRequest("I agree", email),
	}
	for name, req := range requests {
		t.Run(name, func(t *testing.T) {
			qr, token, frontend, err := srv.StartSession(req, nil, "")
			if err != nil {
				t.Fatalf("StartSession: %v", err)
			}
			if qr == nil || qr.URL == "" || token == "" || frontend == nil {
				t.Fatalf("incomplete session: qr=%+v token=%q", qr, token)
			}
			res, err := srv.GetSessionResult(token)
			if err != nil || res == nil || res.Status != irma.ServerStatusInitialized {
				t.Fatalf("result: %+v %v", res, err)
			}
		})
	}

	// A credential type the scheme does not have is refused, so the acceptance above means something.
	if _, _, _, err := srv.StartSession(irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier(s.ID+".gateway.person.shoesize")), nil, ""); err == nil {
		t.Fatal("StartSession accepted an unknown attribute")
	}
}

// conf parses the scheme of s as a wallet would.
func conf(t *testing.T, s *demoscheme.Scheme) *irma.Configuration {
	t.Helper()
	c, err := irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ParseFolder(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Scheduler.Stop() })
	return c
}
