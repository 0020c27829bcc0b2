package requestor

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/privacybydesign/irmago/irma/server"
)

// TestHostPermissions checks a session request's "host" (the host the Yivi
// app must use) as irma server's host_perms: without host permissions only
// the host of Config.URL; with them only hosts that match one, the URL's
// own included. The session pointer then names that host.
func TestHostPermissions(t *testing.T) {
	ts, _ := setup(t, func(c *Config) {
		hm := c.Requestors["hm"]
		hm.Permissions.Hosts = []string{"gw.example", "*.gw.example"}
		c.Requestors["hm"] = hm
	})
	withHost := func(host string) string {
		return `{"@context":"https://irma.app/ld/request/disclosure/v2","host":"` + host + `","disclose":[[["caddy-demo.gateway.person.fullname"]]]}`
	}
	hmJWT := func(request string) string {
		return requestorJWT(t, jwt.SigningMethodHS256, hmacKey, "hm", time.Now(), request)
	}
	const refused = "requestor not allowed to use the requested host"
	tests := []struct {
		name     string
		headers  map[string]string
		body     string
		wantHost string // "" if refused
	}{
		{"no host permissions, the URL's host", jsonHeaders(testToken), withHost("localhost"), "localhost"},
		{"no host permissions, another host", jsonHeaders(testToken), withHost("gw.example"), ""},
		{"no host permissions, the URL's host with another port", jsonHeaders(testToken), withHost("localhost:8443"), ""},
		{"host permitted", textHeaders, hmJWT(withHost("gw.example")), "gw.example"},
		{"host permitted by a pattern", textHeaders, hmJWT(withHost("a.gw.example")), "a.gw.example"},
		{"a pattern's * spans labels (path.Match)", textHeaders, hmJWT(withHost("a.b.gw.example")), "a.b.gw.example"},
		{"a port is part of the host", textHeaders, hmJWT(withHost("gw.example:8443")), ""},
		{"host not permitted", textHeaders, hmJWT(withHost("evil.example")), ""},
		{"host permissions leave out the URL's host", textHeaders, hmJWT(withHost("localhost")), ""},
		{"no host asks for the URL's host", textHeaders, hmJWT(discloseEmail), ""},
	}
	// Hosts that a pattern's * would match, but that are no host: a URL
	// would read what follows the name as another part.
	for _, notHost := range []string{"evil.com#.gw.example", "evil.com?.gw.example", "evil.com@a.gw.example", `evil.com\\.gw.example`,
		"evil.com%2F.gw.example", "evil.com .gw.example", ".gw.example", "evil.com/.gw.example", "a..gw.example"} {
		tests = append(tests, struct {
			name     string
			headers  map[string]string
			body     string
			wantHost string
		}{"not a host: " + notHost, textHeaders, hmJWT(withHost(notHost)), ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, ts.URL+"/session", tt.headers, tt.body)
			if tt.wantHost == "" {
				if rerr := checkError(t, r, 403, "UNAUTHORIZED"); rerr.Message != refused {
					t.Fatalf("message %q, want %q", rerr.Message, refused)
				}
				return
			}
			var pkg server.SessionPackage
			if err := json.Unmarshal([]byte(r.body), &pkg); err != nil || r.status != 200 || pkg.SessionPtr == nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if u, err := url.Parse(pkg.SessionPtr.URL); err != nil || u.Host != tt.wantHost || !strings.HasPrefix(u.Path, "/irma/session/") {
				t.Fatalf("session pointer %s, want host %s", pkg.SessionPtr.URL, tt.wantHost)
			}
		})
	}
}
