package caddyirma

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

func TestReload(t *testing.T) {
	g := newGateway(t)
	app := g.start(t, "")
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	_, token, _, err := srv.StartSession(irma.NewDisclosureRequest(g.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)), nil, "")
	if err != nil {
		t.Fatal(err)
	}

	// Same settings: the running server stays, and with it the session.
	if err := caddytest.Load(g.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	app2 := caddytest.App[*App](t, "irma")
	srv2, err := app2.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv2 != srv {
		t.Error("a reload with the same settings replaced the IRMA server")
	}
	if res, err := srv2.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
		t.Errorf("session after reload: %+v, %v", res, err)
	}
	if _, err := app.Server(); err == nil {
		t.Error("the old app still hands out the server after it stopped")
	}

	// A reload that fails, in Provision or in the irma app's Start, leaves
	// the running server and its sessions alone.
	dead := caddytest.RefusedAddr(t)
	for _, bad := range []string{
		g.caddyfile("max_session_lifetime 30s"),
		g.caddyfile(fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", dead)),
	} {
		if err := caddytest.Load(bad); err == nil {
			t.Fatal("a bad config loaded")
		}
		if n := countServers(); n != 1 {
			t.Errorf("after a failed reload, %d IRMA servers run, want 1", n)
		}
		if res, err := srv2.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
			t.Errorf("session after a failed reload: %+v, %v", res, err)
		}
		if s, err := caddytest.App[*App](t, "irma").Server(); err != nil || s != srv2 {
			t.Errorf("after a failed reload the running app serves %p, %v; want the server from before", s, err)
		}
	}

	// Other settings: a new server, the old one stopped.
	if err := caddytest.Load(g.caddyfile("max_session_lifetime 10m")); err != nil {
		t.Fatal(err)
	}
	app3 := caddytest.App[*App](t, "irma")
	srv3, err := app3.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv3 == srv {
		t.Error("a reload with other settings kept the old server")
	}
	if n := countServers(); n != 1 {
		t.Errorf("%d IRMA servers running, want 1", n)
	}

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	assertNoServers(t)
	assertNoIRMAGoroutines(t)
}

func countServers() int {
	n := 0
	servers.Range(func(_, _ any) bool { n++; return true })
	return n
}

func assertNoServers(t *testing.T) {
	t.Helper()
	if n := countServers(); n != 0 {
		t.Errorf("%d IRMA servers left running", n)
	}
}

// assertNoIRMAGoroutines fails if goroutines of irmago or its schedulers
// outlive the servers.
func assertNoIRMAGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for i := 0; i < 100; i++ {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "gocron") && !strings.Contains(stacks, "privacybydesign/irmago") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	var leaked []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "gocron") || strings.Contains(g, "privacybydesign/irmago") {
			leaked = append(leaked, g)
		}
	}
	t.Errorf("%d irmago goroutines outlived their server:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}
