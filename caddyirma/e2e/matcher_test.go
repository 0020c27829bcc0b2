package e2e

import (
	"net/http"
	"testing"
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
