package caddyirma

import (
	"path"
	"strings"
	"testing"
)

func TestAllowedIRMAPath(t *testing.T) {
	for path, want := range map[string]bool{
		"GET /session/abc123":                            true,
		"GET /session/abc123/":                           true,
		"GET /session/abc123/request":                    true,
		"POST /session/abc123/commitments":               true,
		"POST /session/abc123/proofs":                    true,
		"GET /session/abc123/status":                     true,
		"GET /session/abc123/frontend/status":            true,
		"POST /session/abc123/frontend/options":          true,
		"POST /session/abc123/frontend/pairingcompleted": true,
		"GET /session/abc123/statusevents":               false,
		"GET /session/abc123/frontend/statusevents":      false,
		"GET /session/":                                  false,
		"GET /session/abc/../../revocation/x":            false,
		"GET /session/a%2Fb":                             false,
		"GET /revocation/x/events/0/0/1":                 false,
		"GET /session/x/proofs/extra":                    false,
		"GET /":                                          false,
		"GET ":                                           false,
	} {
		method, path, _ := strings.Cut(path, " ")
		if got := allowedIRMAPath(method, path); got != want {
			t.Errorf("allowedIRMAPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// FuzzAllowedIRMAPath checks that every path the gateway passes to
// irmaserver is a session path that stays one after cleaning.
func FuzzAllowedIRMAPath(f *testing.F) {
	for _, s := range []string{"/session/abc/proofs", "/session/abc/../x", "/revocation/a", "/session//x", "/session/a/frontend/status"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !allowedIRMAPath("GET", p) && !allowedIRMAPath("POST", p) {
			return
		}
		if path.Clean(p) != strings.TrimSuffix(p, "/") || !strings.HasPrefix(p, "/session/") {
			t.Errorf("allowed %q, which is not a clean session path", p)
		}
	})
}
