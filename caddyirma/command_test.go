package caddyirma

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// runIrmaCommand runs `caddy irma <args>` in the test process.
func runIrmaCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c, ok := caddycmd.Commands()["irma"]
	if !ok {
		t.Fatal("caddy irma is not registered")
	}
	root := &cobra.Command{Use: "irma", SilenceUsage: true}
	c.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestSchemesCommand: `caddy irma schemes` fetches the default schemes into
// a directory, updates them, and fails clearly without network; a gateway
// then starts from that directory without ever asking the scheme server.
func TestSchemesCommand(t *testing.T) {
	s := newSchemeSite(t)
	out, err := runIrmaCommand(t, "schemes", "--dir", s.cache)
	if err != nil || !strings.Contains(out, "caddy-demo") || !strings.Contains(out, "installed") || !strings.Contains(out, "default_schemes_path "+s.cache) {
		t.Fatalf("caddy irma schemes: %v:\n%s", err, out)
	}
	out, err = runIrmaCommand(t, "schemes", "--dir", s.cache)
	if err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("caddy irma schemes, again: %v:\n%s", err, out)
	}
	s.sign(t)
	out, err = runIrmaCommand(t, "schemes", "--dir", s.cache)
	if err != nil || !strings.Contains(out, "updated from") {
		t.Errorf("caddy irma schemes, after an update: %v:\n%s", err, out)
	}

	s.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	before := s.srv.Requests()
	caddytest.Start(t, s.caddyfile("schemes_update off", membersRoute))
	s.loginStarts(t, "/members/")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := s.srv.Requests() - before; n != 0 {
		t.Errorf("the gateway made %d requests to the scheme server", n)
	}

	s.srv.Close()
	out, err = runIrmaCommand(t, "schemes", "--dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "caddy-demo") {
		t.Errorf("caddy irma schemes without a server: %v:\n%s", err, out)
	}
}
