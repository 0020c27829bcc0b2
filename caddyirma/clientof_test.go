package caddyirma

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestClientOf: the session limits count an IPv6 client by its /64 (its
// holder may use every address in it), and an IPv4 address as itself,
// also when it comes mapped into IPv6.
func TestClientOf(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.7":                     "192.0.2.7",
		"::ffff:192.0.2.7":              "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":          "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff:ffff:1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":               "2001:db8:1:3::/64",
		"fe80::1%eth0":                  "fe80::/64",
		"not an address":                "not an address",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
		if got := clientOf(r.WithContext(ctx)); got != want {
			t.Errorf("clientOf(%s) = %s, want %s", ip, got, want)
		}
	}
}
