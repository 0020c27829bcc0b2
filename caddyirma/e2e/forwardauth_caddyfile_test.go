package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

// TestForwardAuthCaddyfile runs examples/forward-auth/Caddyfile as shipped,
// only its addresses replaced, in a Caddy of its own (the binary of
// cmd/caddy, as its own process) in front of a real gateway and the example
// upstream (examples/upstream), and logs in through it with the wallet.
// Everything the browser and the wallet send goes through that Caddy.
func TestForwardAuthCaddyfile(t *testing.T) {
	// The front Caddy's socket: the test listens and hands the socket to
	// Caddy, so no port can be taken in between. On 127.0.0.2, apart from the
	// gateway's 127.0.0.1, so that the browser holds cookies of the front's
	// host only, as a visitor would.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.2 (the loopback range): %v", err)
	}
	front := "http://" + ln.Addr().String()

	// The gateway, as examples/forward-auth/README.md sets it up: its url is
	// the front's address, and its site answers any host name (forward_auth
	// passes the visitor's Host on) with the IRMA endpoints and nothing else.
	// Bound to loopback here.
	gatewayLn := caddytest.Listen(t)
	gateway := gatewayLn.Addr()
	scheme := testscheme.New(t, front+"/irma/timestamp")
	caddytest.Start(t, fmt.Sprintf(`{
	admin off
	storage file_system %[1]s
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email
		}
	}
}

http://:%[5]d {
	%[6]s
	irma_endpoints
	respond 404
}
`, filepath.Join(scheme.Dir, "caddy"), front, scheme.SchemesPath, scheme.PrivateKeysPath, gatewayLn.Port, gatewayLn.Bind()))
	app := caddytest.App[*caddyirma.App](t, "irma")

	// The app trusts tokens for the front's site (the gateway's url), with
	// the gateway's keys, of the policy members on its route /app/.
	upstream := buildGo(t, "examples/upstream")
	appAddr, _ := startProcess(t, "examples/upstream", exec.Command(upstream,
		"--listen", "127.0.0.1:0", "--jwks-url", "http://"+gateway+"/irma/jwks.json", "--issuer", front,
		"--policy", "/app/=members"), listeningLine)

	startForwardAuthCaddy(t, ln, gateway, appAddr)

	const email = "alice@example.com"
	s := &authSite{base: front, scheme: scheme, app: app}
	alice := s.newWallet(t, email, "yes") // the issuance, too, goes through the front
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBrowser(t)

	// Forged identities, in the spellings a client might try.
	forgedNoneToken, forgedSigned := forgedIdentity(t, false), forgedIdentity(t, true)
	forged := http.Header{
		"X-Irma-Identity": {forgedNoneToken},
		"X-IRMA-IDENTITY": {forgedSigned},
		"x-irma-identity": {forgedNoneToken},
		"X_Irma_Identity": {forgedSigned},
	}
	withForged := func(h http.Header) http.Header {
		for k, v := range forged {
			h[k] = v
		}
		return h
	}

	const login = "/irma/login?policy=members&return=%2Fapp%2Fpage"
	t.Run("not logged in", func(t *testing.T) {
		resp, body := rawRequest(t, b, "GET", front+"/app/page", withForged(http.Header{"Accept": {"application/json"}}), "")
		var answer struct {
			Error    string `json:"error"`
			LoginURL string `json:"login_url"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusUnauthorized ||
			answer.Error != "login_required" || answer.LoginURL != login || resp.Header.Get("X-Irma-Login") != login {
			t.Errorf("a script: %d %q, X-Irma-Login %q (%v)", resp.StatusCode, body, resp.Header.Get("X-Irma-Login"), err)
		}
		resp, body = rawRequest(t, b, "GET", front+"/app/page", http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}}, "")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "/irma/login?policy=members") {
			t.Errorf("a page: %d %.300s", resp.StatusCode, body)
		}
		// The forward-auth endpoint is the front's own.
		if resp, body := rawRequest(t, b, "GET", front+"/irma/auth?policy=members", nil, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/irma/auth through the front: %d %q, want 404", resp.StatusCode, body)
		}
	})

	t.Run("login", func(t *testing.T) {
		b.login(ctx, alice, front+login)
		resp, body := rawRequest(t, b, "GET", front+login, http.Header{"Accept": {"text/html"}}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page" {
			t.Fatalf("finishing the login: %d to %q: %q", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if b.cookie(front, "irma_session") == nil {
			t.Fatal("no session cookie for the front's site")
		}
	})

	t.Run("logged in", func(t *testing.T) {
		// The app answers only to exactly one X-Irma-Identity that verifies:
		// had a forged one reached it, in place of the gateway's or beside
		// it, it would have answered 401.
		resp, body := rawRequest(t, b, "GET", front+"/app/page", withForged(http.Header{"Accept": {"application/json"}}), "")
		var answer struct {
			Policy     string            `json:"policy"`
			Attributes map[string]string `json:"attributes"`
			Path       string            `json:"path"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the app through the front: %d %q (%v)", resp.StatusCode, body, err)
		}
		if answer.Policy != "members" || answer.Path != "/app/page" ||
			!equalMaps(answer.Attributes, map[string]string{"caddy-demo.gateway.person.email": email}) {
			t.Errorf("the app saw %+v", answer)
		}
		// And the forged tokens are ones the app refuses.
		for _, token := range []string{forgedNoneToken, forgedSigned} {
			resp, body := rawRequest(t, b, "GET", "http://"+appAddr+"/app/page", http.Header{"X-Irma-Identity": {token}}, "")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the app took a forged token: %d %q", resp.StatusCode, body)
			}
		}
	})

	t.Run("logout", func(t *testing.T) {
		// The gateway's url is the front's: its Origin is the gateway's own.
		resp, _ := rawRequest(t, b, "POST", front+"/irma/logout?return=%2Fapp%2F", http.Header{"Origin": {front}}, "")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
			t.Errorf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		if resp, body := rawRequest(t, b, "GET", front+"/app/page", withForged(http.Header{"Accept": {"application/json"}}), ""); resp.StatusCode != http.StatusUnauthorized ||
			!strings.Contains(body, "login_required") {
			t.Errorf("after logout: %d %q, want the gateway's 401", resp.StatusCode, body)
		}
	})
}

// startForwardAuthCaddy runs examples/forward-auth/Caddyfile in the Caddy
// binary on the socket of ln, with the gateway at gateway and the app at
// app (host:port each), until the test ends. The file runs as shipped: only
// its site address and the two upstream addresses are replaced, and a
// global options block is put before it that keeps Caddy's admin endpoint
// off (other tests and other Caddys share this machine), its state in a
// directory of the test's, and its listener on the socket handed to it.
func startForwardAuthCaddy(t *testing.T, ln net.Listener, gateway, app string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "forward-auth", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{"example.com", "http://" + ln.Addr().String(), 1},
		{"gateway:8080", gateway, 2},
		{"app:9090", app, 1},
	} {
		if n := strings.Count(conf, r.old); n != r.n {
			t.Fatalf("examples/forward-auth/Caddyfile has %q %d times, want %d: update the test with the example", r.old, n, r.n)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	global := "{\n\tadmin off\n\tpersist_config off\n\tdefault_bind fd/3\n}\n\n"
	startCaddyOn(t, "the forward-auth Caddy", ln, global+conf)
}

// forgedIdentity is an identity JWT for mallory that the gateway did not
// sign: with alg none and no signature, or signed (EdDSA) by a key of its
// own.
func forgedIdentity(t *testing.T, signed bool) string {
	t.Helper()
	now := time.Now().Unix()
	payload := jwtSegment(t, map[string]any{
		"iss": "http://127.0.0.2", "aud": "caddy-irma", "sub": "mallory", "policy": "members",
		"iat": now, "nbf": now, "exp": now + 60,
		"attributes": map[string]string{"caddy-demo.gateway.person.email": "mallory@example.com"},
	})
	if !signed {
		return jwtSegment(t, map[string]string{"alg": "none", "typ": "JWT"}) + "." + payload + "."
	}
	return signedByNewKey(t, jwtSegment(t, map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": "forged"})+"."+payload)
}
