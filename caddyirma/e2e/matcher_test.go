package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNamedMatcher: as the README advises, a named matcher protects a
// directory and its bare path alike, and nothing beside them.
func TestNamedMatcher(t *testing.T) {
	g := newGateway(t)
	g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}`, `@members path /members /members/*
	irma_auth @members members
	respond "open {path}"`)
	for path, want := range map[string]int{
		"/members":    http.StatusUnauthorized,
		"/members/":   http.StatusUnauthorized,
		"/members/x":  http.StatusUnauthorized,
		"/MEMBERS":    http.StatusUnauthorized,
		"/membersx":   http.StatusOK,
		"/other/page": http.StatusOK,
	} {
		resp, body := newBrowser(t).get(g.base+path, map[string]string{"Accept": "application/json"})
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d: %.100q", path, resp.StatusCode, want, body)
		}
	}
}

// TestWholeSite: irma_auth without a matcher, as in the README's
// deployment, protects every page, and leaves open what the phone and the
// load balancer call: the IRMA endpoints and the health check.
func TestWholeSite(t *testing.T) {
	g := newGateway(t)
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}`, `irma_auth members
	respond "content {path}"`)
	b := newBrowser(t)
	for _, path := range []string{"/", "/page", "/irma", "/irmax/"} {
		if resp, body := b.get(g.base+path, map[string]string{"Accept": "application/json"}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a login: %d %.100q", path, resp.StatusCode, body)
		}
	}
	if resp, body := b.get(g.base+"/irma/health", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("the health check: %d %q", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := (&authSite{base: g.base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "yes")
	b.login(ctx, alice, g.base+"/page")
	if resp, body := b.get(g.base+"/page", nil); resp.StatusCode != http.StatusOK || body != "content /page" {
		t.Errorf("after the login: %d %q", resp.StatusCode, body)
	}
}
