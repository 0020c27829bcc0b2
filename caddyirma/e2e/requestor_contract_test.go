package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRequestorContract checks, through Caddy in the README's layout (the
// API at the site root, /health in its matcher), the rest of irma server's
// requestor contract: GET /health, and a session request's "host" under
// `host` permissions, which the Yivi app must then use.
func TestRequestorContract(t *testing.T) {
	g := newGateway(t)
	other := fmt.Sprintf("localhost:%d", g.port)
	site := fmt.Sprintf(`irma_endpoints
	@irma_requestor path /session /session/* /publickey /health
	handle @irma_requestor {
		irma_requestor_api {
			requestor hosted {
				auth token hosted-token
				issue caddy-demo.gateway.person
				host %s
			}
			requestor plain {
				auth token plain-token
				issue caddy-demo.gateway.person
			}
			allow_unauthenticated {
				disclose caddy-demo.gateway.person.email
			}
		}
	}
	respond "the app" 200`, other)
	// The site answers at both hosts, as a gateway with two names does.
	config := strings.Replace(g.config("session_limits {\n\t\t\tper_client 1 10m\n\t\t}", site), fmt.Sprintf("http://127.0.0.1:%d {", g.port),
		fmt.Sprintf("http://127.0.0.1:%d, http://%s {", g.port, other), 1)
	caddytest.Start(t, config)

	t.Run("health", func(t *testing.T) {
		for _, tc := range []struct {
			method, ctype, body string
			status              int
		}{
			{http.MethodGet, "text/plain", "OK", 200},
			{http.MethodPost, "", "", 405},
			{http.MethodHead, "", "", 405},
		} {
			status, ctype, body := fetch(t, tc.method, g.base+"/health", "")
			if status != tc.status || body != tc.body || (tc.ctype != "" && ctype != tc.ctype) {
				t.Errorf("%s /health: %d %q %q, want %d %q %q", tc.method, status, ctype, body, tc.status, tc.ctype, tc.body)
			}
		}
	})

	t.Run("differences", func(t *testing.T) { requestorDifferences(t, g.base) })

	issuance := func(host string) string {
		h := ""
		if host != "" {
			h = `"host":"` + host + `",`
		}
		return `{"@context":"https://irma.app/ld/request/issuance/v2",` + h + `"credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Alice","email":"alice@example.com","over18":"yes"}}]}`
	}
	const refused = "requestor not allowed to use the requested host"
	for _, tc := range []struct{ name, auth, host string }{
		{"a host without host permissions", "plain-token", other},
		{"the url's host, left out of host permissions", "hosted-token", g.ln.Addr()},
		{"no host (the url's), left out of host permissions", "hosted-token", ""},
	} {
		code, body := postSession(t, g.base, issuance(tc.host), "application/json", tc.auth)
		var e irma.RemoteError
		if err := json.Unmarshal(body, &e); err != nil || code != 403 || e.ErrorName != "UNAUTHORIZED" || e.Message != refused {
			t.Errorf("%s: %d %s, want 403 UNAUTHORIZED %q", tc.name, code, body, refused)
		}
	}
	if code, body := postSession(t, g.base, issuance(""), "application/json", "plain-token"); code != 200 {
		t.Errorf("no host, no host permissions: %d %s", code, body)
	}

	code, body := postSession(t, g.base, issuance(other), "application/json", "hosted-token")
	var s struct {
		SessionPtr *irma.Qr `json:"sessionPtr"`
	}
	if err := json.Unmarshal(body, &s); err != nil || code != 200 || s.SessionPtr == nil {
		t.Fatalf("permitted host: %d %s", code, body)
	}
	ptr, err := url.Parse(s.SessionPtr.URL)
	if err != nil || ptr.Host != other {
		t.Fatalf("session pointer %s, want host %s", s.SessionPtr.URL, other)
	}
	// The app must use that host: the same session at the url's host is refused.
	at127 := *ptr
	at127.Host = g.ln.Addr()
	if status, _, body := fetch(t, http.MethodGet, at127.String(), ""); status != 403 || !strings.Contains(body, "Host mismatch") {
		t.Errorf("session at the url's host: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if res, err := w.Run(ctx, s.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("wallet at %s: %+v, %v", other, res, err)
	}
}

// fetch does one request and returns its status, content type and body.
func fetch(t *testing.T, method, u, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// requestorDifferences checks rows of the README's table of differences
// from irma server at the API at base: no CORS headers; no timeout beyond
// max_session_lifetime (15m); unauthenticated sessions count against the
// session_limits (here 1 per client); a requestor's do not.
func requestorDifferences(t *testing.T, base string) {
	email := `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/session", strings.NewReader(email))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://elsewhere.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("cross-origin POST /session: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if status, _, _ := fetch(t, http.MethodOptions, base+"/session", ""); status != 405 {
		t.Errorf("OPTIONS /session: %d, want 405", status)
	}
	if code, body := postSession(t, base, email, "application/json", ""); code != 429 {
		t.Errorf("a second unauthenticated session: %d %s, want 429", code, body)
	}
	issuance := `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Bob","email":"bob@example.com","over18":"yes"}}]}`
	for _, timeout := range []int{900, 901} {
		code, body := postSession(t, base, fmt.Sprintf(`{"timeout":%d,"request":%s}`, timeout, issuance), "application/json", "plain-token")
		var e irma.RemoteError
		if timeout == 900 && code != 200 {
			t.Errorf("a requestor's session, timeout 900 s: %d %s", code, body)
		}
		if timeout == 901 && (json.Unmarshal(body, &e) != nil || code != 400 || !strings.Contains(e.Message, "at most 900 s")) {
			t.Errorf("timeout beyond max_session_lifetime: %d %s", code, body)
		}
	}
}
