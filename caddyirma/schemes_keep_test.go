package caddyirma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
)

// TestSchemeUpdateKeepsPolicies: a signed update that drops a credential
// type that a policy of the config names is not taken: the running routes
// keep working on the schemes the server has, and the log says why.
func TestSchemeUpdateKeepsPolicies(t *testing.T) {
	l := startLocalSchemeSite(t, "irma_auth /members/* {\n\t\trequire local.gateway.person.email\n\t}")
	s, local, served, app := l.schemeSite, l.local, l.served, l.app
	conf := app.Configuration()
	if err := os.RemoveAll(filepath.Join(served, demoscheme.IssuerID, "Issues", "person")); err != nil {
		t.Fatal(err)
	}
	schemeserver.Sign(t, served, schemeserver.LoadKey(t, local.SigningKeyFile))
	if r := runUpdate(l.tick, l.done); r.err == nil || r.changed {
		t.Fatalf("an update without the policy's credential type: %+v, want it refused", r)
	}
	if app.Configuration() != conf {
		t.Error("the update was taken")
	}
	s.loginStarts(t, "/members/")
	if logs := s.logs(t); !strings.Contains(logs, "lack what the config names") {
		t.Errorf("the refusal was not logged:\n%s", logs)
	}
}
