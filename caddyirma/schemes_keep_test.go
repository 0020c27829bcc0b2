package caddyirma

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
)

// TestSchemeUpdateKeepsPolicies: a signed update that drops a credential
// type that a policy of the config names is not taken: the running routes
// keep working on the schemes the server has, and the log says why.
func TestSchemeUpdateKeepsPolicies(t *testing.T) {
	s := newSchemeSite(t)
	local := newScheme(t, "local", s.srv.URL+"/local")
	served := filepath.Join(t.TempDir(), "local")
	schemeserver.Copy(t, local.SchemeDir, served)
	s.srv.Serve("local", served)
	s.cache, s.keys = "", local.PrivateKeysPath
	tick, done := controlUpdates(t)
	caddytest.Start(t, s.caddyfile("schemes_update 1h\n\t\tschemes_path "+local.SchemesPath,
		"irma_auth /members/* {\n\t\trequire local.gateway.person.email\n\t}"))
	app := caddytest.App[*App](t, "irma")
	if r := <-done; r.err != nil || r.changed {
		t.Fatalf("the update at start: %+v", r)
	}
	conf := app.Configuration()
	if err := os.RemoveAll(filepath.Join(served, demoscheme.IssuerID, "Issues", "person")); err != nil {
		t.Fatal(err)
	}
	schemeserver.Sign(t, served, schemeserver.LoadKey(t, local.SigningKeyFile))
	if r := runUpdate(tick, done); r.err == nil || r.changed {
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
