package caddyirma

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestIssueMatch: a value that a visitor brings in a placeholder is issued
// only if it matches its pattern, as a whole.
func TestIssueMatch(t *testing.T) {
	g := newGateway(t)
	config := g.caddyfile("")
	const line = "fullname {http.request.uri.query.name}"
	if !strings.Contains(config, line) {
		t.Fatalf("the test config lacks %q", line)
	}
	caddytest.Start(t, strings.Replace(config, line, line+"\n\t\t\t\tmatch fullname `[A-Z][a-z]+( [A-Z][a-z]+)+`", 1))
	json := map[string]string{"Accept": "application/json"}
	for name, want := range map[string]int{
		"Alice Demo":             http.StatusOK,
		"Alice Van Demo":         http.StatusOK,
		"alice demo":             http.StatusBadRequest,
		"Alice Demo<script>":     http.StatusBadRequest,
		"Administrator\nAlice D": http.StatusBadRequest,
		"Xx Alice Demo":          http.StatusOK,
		"Alice":                  http.StatusBadRequest, // anchored: no partial match
		"Alice Demo Alice Demo!": http.StatusBadRequest,
	} {
		if code, body := get(t, g.base()+"/issue?name="+url.QueryEscape(name), json); code != want {
			t.Errorf("name %q: %d %s, want %d", name, code, body, want)
		}
	}
}
