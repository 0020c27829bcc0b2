package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestForwardAuth protects an app behind another proxy (Caddy's own
// forward_auth here; nginx and Traefik work alike, see examples/) with the
// gateway's /irma/auth endpoint, and logs in through /irma/login.
func TestForwardAuth(t *testing.T) {
	// The proxy: a second site in the same Caddy, on its own port.
	proxyLn := caddytest.Listen(t)
	proxy := "http://" + proxyLn.Addr()
	s := newAuthSiteWith(t, func(s *authSite) string {
		gateway := strings.TrimPrefix(s.base, "http://")
		up := strings.TrimPrefix(s.upstream.srv.URL, "http://")
		return fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	%[4]s
	handle /irma/* {
		reverse_proxy %[2]s
	}
	handle {
		forward_auth %[2]s {
			uri /irma/auth?policy=members
			copy_headers X-Irma-Identity
		}
		reverse_proxy %[3]s
	}
}
`, proxyLn.Port, gateway, up, proxyLn.Bind())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")

	b := newBrowser(t)
	resp, body := b.get(proxy+"/app/page", nil)
	var answer struct {
		Error    string `json:"error"`
		LoginURL string `json:"login_url"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusUnauthorized ||
		answer.LoginURL != "/irma/login?policy=members&return=%2Fapp%2Fpage" || resp.Header.Get("X-Irma-Login") != answer.LoginURL {
		t.Fatalf("not logged in: %d %s %v", resp.StatusCode, body, err)
	}
	// A browser's page gets a page that goes to the login.
	resp, body = newBrowser(t).get(proxy+"/app/page", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "/irma/login?policy=members") {
		t.Errorf("page navigation: %d %.300s", resp.StatusCode, body)
	}

	b.login(ctx, alice, proxy+answer.LoginURL)
	resp, _ = b.get(proxy+answer.LoginURL, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page" {
		t.Fatalf("finishing the login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
	resp, body = b.get(proxy+"/app/page", map[string]string{"X-Irma-Identity": forged})
	if resp.StatusCode != 200 || body != "upstream /app/page for alice@example.com" {
		t.Fatalf("after login: %d %q", resp.StatusCode, body)
	}
	if got := s.upstream.lastSeen(); got.claims.Policy != "members" || got.header.Get("X-Irma-Identity") == forged {
		t.Errorf("upstream saw %+v", got.claims)
	}
	// Unknown policies and open redirects.
	if resp, _ := b.get(s.base+"/irma/auth?policy=nope", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown policy: %d", resp.StatusCode)
	}
	// (A //host path is refused outright as ambiguous: see paths_test.go.)
	resp, _ = newBrowser(t).get(s.base+"/irma/auth?policy=members", map[string]string{"X-Forwarded-Uri": "https://evil.example/x"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Irma-Login") != "/irma/login?policy=members&return=%2F" {
		t.Errorf("open redirect through X-Forwarded-Uri: %d %q", resp.StatusCode, resp.Header.Get("X-Irma-Login"))
	}
}

// TestLoginSurvives checks that a login outlives a restart of Caddy (the
// keys are in Caddy's storage), and works with sessions in Redis, where the
// credential expiry that a login needs goes through Redis too.
func TestLoginSurvives(t *testing.T) {
	addr := startRedis(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", addr))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/")
	// The wallet has posted its proofs; the login has not picked them up.
	if n := redisCommand(t, addr, "KEYS *credential-expiry*"); n != "*1" {
		t.Errorf("the credential expiry of the session is not in Redis before the login: %s, want one key", n)
	}
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Fatalf("login with redis: %d %s", resp.StatusCode, body)
	}
	if n := redisCommand(t, addr, "KEYS *credential-expiry*"); n != "*0" {
		t.Errorf("the credential expiry stayed in Redis after the login took it: %s", n)
	}

	// A restart: a new process would read the same storage.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := caddytest.Load(s.config); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections() // those went to the stopped server
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Errorf("after a restart: %d %s", resp.StatusCode, body)
	}

	// Key rotation: a new key first, the stored one after it, and the
	// login goes on; without the old key, it is over.
	stored, err := os.ReadFile(filepath.Join(s.scheme.Dir, "caddy", "caddy-irma", "session-cookie-keys"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 64)))
	withKeys := func(keys string) string {
		return strings.Replace(s.config, "cookie_lifetime 2400h", "cookie_lifetime 2400h\n\t\t\tcookie_keys "+keys, 1)
	}
	if err := caddytest.Load(withKeys(fresh + " " + strings.TrimSpace(string(stored)))); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections()
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Errorf("with a new key before the old one: %d %s", resp.StatusCode, body)
	}
	if err := caddytest.Load(withKeys(fresh)); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections()
	if resp, _ := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the key that sealed the cookie: %d, want 401", resp.StatusCode)
	}
}
