package caddyirma

import (
	"net/http"
	"regexp"
	"testing"
)

func TestGatewayCookieNames(t *testing.T) {
	for _, tc := range []struct {
		secure bool
		domain string
		want   string
	}{
		{true, "", "__Host-irma_session"},
		{true, "example.com", "irma_session"}, // a Domain attribute rules __Host- out
		{false, "", "irma_session"},           // so does plain http
	} {
		c := newGatewayCookies("irma_session", tc.domain, tc.secure)
		if c.name != tc.want || c.pendingName("r")[:len(tc.want)] != tc.want {
			t.Errorf("secure %v, domain %q: names %q and %q, want %q...", tc.secure, tc.domain, c.name, c.pendingName("r"), tc.want)
		}
	}
	// The README's name of the pending cookies: <cookie_name>_pending_<8 hex
	// digits>, one per route.
	pending := regexp.MustCompile(`^(__Host-)?irma_session_pending_[0-9a-f]{8}$`)
	for _, secure := range []bool{false, true} {
		c := newGatewayCookies("irma_session", "", secure)
		if a, b := c.pendingName("policy:members"), c.pendingName("policy:adults"); !pending.MatchString(a) || !pending.MatchString(b) || a == b {
			t.Errorf("secure %v: pending cookies %q and %q, want irma_session_pending_<8 hex digits>, one per route", secure, a, b)
		}
	}
	c := newGatewayCookies("irma_session", "", true)
	for name, want := range map[string]bool{
		"irma_session": true, "__Host-irma_session": true, "irma_session_pending_0a1b2c3d": true,
		"__Host-irma_session_pending_0a1b2c3d": true, "__Secure-irma_session": false, "irma_sessions": false, "other": false,
	} {
		if got := c.ours(name); got != want {
			t.Errorf("ours(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestDuplicateCookies: two cookies of one of the gateway's names in a
// request (one planted by another site: cookie tossing) are refused.
func TestDuplicateCookies(t *testing.T) {
	c := newGatewayCookies("irma_session", "", false)
	for header, want := range map[string]string{
		"irma_session=a":                   "",
		"irma_session=a; other=1; other=2": "",
		"irma_session=a; irma_session=b":   "irma_session",
		"x=1; irma_session_pending_0a1b2c3d=a; irma_session_pending_0a1b2c3d=b": "irma_session_pending_0a1b2c3d",
		"irma_session_pending_0a1b2c3d=a; irma_session_pending_99999999=b":      "",
	} {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		if got := c.duplicate(r); got != want {
			t.Errorf("%q: duplicate %q, want %q", header, got, want)
		}
	}
}
