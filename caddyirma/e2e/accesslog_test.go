package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccessLogKeepsTokens: with Caddy's access log on, the identity JWT
// that the forward-auth endpoint answers with reaches the proxy that asked,
// but not the log; and with the README's filter, neither do the client
// tokens in the Yivi app's URLs.
func TestAccessLogKeepsTokens(t *testing.T) {
	g := newGateway(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}`, `log {
		output file `+logFile+`
		format filter {
			wrap json
			fields {
				request>uri regexp "^(.*/session/)[^/?]+" "${1}REDACTED"
			}
		}
	}
	irma_endpoints
	irma_auth /members/* members
	respond "members"`)
	s := &authSite{base: g.base, scheme: g.scheme, app: app}
	alice := s.newWallet(t, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBrowser(t)
	b.login(ctx, alice, g.base+"/members/")
	if resp, body := b.get(g.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}

	resp, _ := b.get(g.base+"/irma/auth?policy=members", nil)
	token := resp.Header.Get("X-Irma-Identity")
	if resp.StatusCode != http.StatusOK || strings.Count(token, ".") != 2 {
		t.Fatalf("forward auth: %d, identity %q", resp.StatusCode, token)
	}
	// Caddy writes the access log line as the request ends: wait for the
	// line of this request (bounded).
	var log []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log, _ = os.ReadFile(logFile)
		if strings.Contains(string(log), `"uri":"/irma/auth?policy=members"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line of the forward-auth request:\n%s", log)
		}
	}
	// The Yivi app's requests name the session's client token in their
	// URL; the README's filter keeps it from the log.
	if n := strings.Count(string(log), "/irma/session/"); n == 0 || n != strings.Count(string(log), "/irma/session/REDACTED") {
		t.Errorf("%d session URLs in the access log, not all of them filtered:\n%s", n, log)
	}
	_, payload, _ := strings.Cut(token, ".")
	payload, _, _ = strings.Cut(payload, ".")
	if strings.Contains(string(log), payload) {
		t.Errorf("the access log holds the identity token:\n%s", log)
	}
}
