//go:build cgo

package wallet_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestGatewayScheme runs the wallet against the gateway's own demo scheme, with its timestamp service: issuance,
// disclosure, and an attribute-based signature (which needs the timestamp service the scheme names).
func TestGatewayScheme(t *testing.T) {
	s := testscheme.NewWithTimestampServer(t)

	var handler http.Handler = http.NotFoundHandler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv, err := irmaserver.New(&server.Configuration{
		URL:                   ts.URL + "/irma/",
		SchemesPath:           s.SchemesPath,
		IssuerPrivateKeysPath: s.PrivateKeysPath,
		RevocationSettings:    testscheme.RevocationSettings(s),
		DisableSchemesUpdate:  true,
		Logger:                quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	handler = http.StripPrefix("/irma", srv.HandlerFunc())
	env := &testEnv{server: srv, schemes: s.SchemesPath}

	w := openWallet(t, s.SchemesPath, t.TempDir())
	ctx := testContext(t)

	email := s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)
	over18 := s.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeOver18)
	env.issue(t, ctx, w, &irma.CredentialRequest{
		CredentialTypeID: s.Credential(demoscheme.CredentialPerson),
		Attributes: map[string]string{
			demoscheme.AttributeFullname: "Alice Demo",
			demoscheme.AttributeEmail:    "alice@example.com",
			demoscheme.AttributeOver18:   "yes",
		},
	})

	t.Run("disclosure", func(t *testing.T) {
		qr, token := env.start(t, irma.NewDisclosureRequest(email, over18))
		if _, err := w.Run(ctx, qr, yes); err != nil {
			t.Fatal(err)
		}
		got := disclosedValues(t, env.result(t, token))
		if got[email] != "alice@example.com" || got[over18] != "yes" {
			t.Fatalf("server got %v", got)
		}
	})

	t.Run("signature", func(t *testing.T) {
		const message = "I, the undersigned, agree."
		qr, token := env.start(t, irma.NewSignatureRequest(message, email))
		var asked wallet.Request
		start := time.Now()
		res, err := w.Run(ctx, qr, func(r wallet.Request) bool { asked = r; return true })
		t.Logf("signature took %v", time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if asked.Type != irma.ActionSigning || asked.Message != message || len(res.Disclosed) != 1 {
			t.Fatalf("asked %+v, result %+v", asked, res)
		}
		got := env.result(t, token)
		if v := disclosedValues(t, got); v[email] != "alice@example.com" {
			t.Fatalf("server got %v", v)
		}
		if got.Signature == nil || got.Signature.Message != message || got.Signature.Timestamp == nil {
			t.Fatalf("signature %+v", got.Signature)
		}
	})
}
