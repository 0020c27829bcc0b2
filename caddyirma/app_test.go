package caddyirma

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// gateway is a test site: a port, the scheme it trusts, and its Caddyfile.
type gateway struct {
	ln     *caddytest.Listener
	port   int
	scheme *demoscheme.Scheme
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	ln := caddytest.Listen(t)
	g := &gateway{ln: ln, port: ln.Port}
	g.scheme = testscheme.New(t, g.url()+"timestamp")
	return g
}

func (g *gateway) url() string { return fmt.Sprintf("http://127.0.0.1:%d/irma/", g.port) }

func (g *gateway) base() string { return fmt.Sprintf("http://127.0.0.1:%d", g.port) }

// caddyfile returns the site with the given lines added to the irma option.
func (g *gateway) caddyfile(irmaExtra string) string {
	return fmt.Sprintf(`{
	admin off
	storage file_system %[5]s
	log {
		output file %[5]s/caddy.log
		format json
		level INFO
	}
	irma {
		url %[2]s
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[6]s
		schemes_update off
		%[7]s
	}
}

http://127.0.0.1:%[1]d {
	%[8]s
	irma_endpoints
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname {http.request.uri.query.name}
				email alice@example.com
				over18 yes
			}
		}
	}
	respond "next handler"
}
`, g.port, g.url(), g.scheme.SchemesPath, g.scheme.PrivateKeysPath, filepath.Join(g.scheme.Dir, "caddy"), g.scheme.TimestampKeyFile, irmaExtra, g.ln.Bind())
}

// logs returns what Caddy logged so far.
func (g *gateway) logs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.scheme.Dir, "caddy", "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (g *gateway) start(t *testing.T, irmaExtra string) *App {
	t.Helper()
	caddytest.Start(t, g.caddyfile(irmaExtra))
	return caddytest.App[*App](t, "irma")
}

func get(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpointsAndIssuePage(t *testing.T) {
	g := newGateway(t)
	g.start(t, "")

	// Paths outside the prefix go on to the next handler.
	for _, p := range []string{"/", "/irma", "/irmax/session/x", "/other"} {
		if code, body := get(t, g.base()+p, nil); code != 200 || body != "next handler" {
			t.Errorf("GET %s = %d %q, want the next handler", p, code, body)
		}
	}
	// Inside it, irmaserver answers.
	code, body := get(t, g.url()+"session/AAAAAAAAAAAAAAAAAAAA/frontend/status", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "SESSION_UNKNOWN") {
		t.Errorf("unknown session: %d %s", code, body)
	}
	// So do the status streams, the gateway's own, of an unknown session.
	for _, p := range []string{"session/AAAAAAAAAAAAAAAAAAAA/statusevents", "session/AAAAAAAAAAAAAAAAAAAA/frontend/statusevents"} {
		if code, body := get(t, g.url()+p, nil); code != http.StatusBadRequest || !strings.Contains(body, "SESSION_UNKNOWN") {
			t.Errorf("GET %s = %d %s, want 400 SESSION_UNKNOWN", p, code, body)
		}
	}
	// irmaserver's other routes are not exposed.
	for _, p := range []string{"revocation/caddy-demo.gateway.person/updateevents", "session/AAAAAAAAAAAAAAAAAAAA/statusevents/x"} {
		if code, _ := get(t, g.url()+p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	resp, err := http.Post(g.url()+"session/static", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST to a static session: %d, want 404", resp.StatusCode)
	}
	// The timestamp service.
	code, body = get(t, g.url()+"timestamp", nil)
	if code != 200 || !strings.Contains(body, "ed25519") {
		t.Errorf("timestamp server info: %d %s", code, body)
	}

	// The issuance endpoint answers JSON to a client that runs the session.
	code, body = get(t, g.base()+"/issue?name=Alice", map[string]string{"Accept": "application/json"})
	if code != 200 {
		t.Fatalf("issue JSON: %d %s", code, body)
	}
	var info sessionpage.Info
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("issue JSON: %v: %s", err, body)
	}
	if info.SessionPtr == nil || info.SessionPtr.Type != irma.ActionIssuing || !strings.HasPrefix(info.SessionPtr.URL, g.url()+"session/") {
		t.Fatalf("session pointer %+v", info.SessionPtr)
	}
	// The frontend status endpoint follows it, with the frontend authorization only.
	code, body = get(t, g.base()+info.Frontend.StatusURL, map[string]string{"Authorization": string(info.Frontend.Authorization)})
	if code != 200 || !strings.Contains(body, `"INITIALIZED"`) {
		t.Errorf("frontend status: %d %s", code, body)
	}
	if code, _ = get(t, g.base()+info.Frontend.StatusURL, map[string]string{"Authorization": "wrong"}); code < 400 || code > 499 {
		t.Errorf("frontend status with a wrong authorization: %d", code)
	}
	// irmago logs failed requests with their URL; the log must not hold
	// the client token, which lets whoever has it answer the session.
	clientToken := strings.TrimPrefix(info.SessionPtr.URL, g.url()+"session/")
	if logs := g.logs(t); strings.Contains(logs, clientToken) || !strings.Contains(logs, "irma.irmago") {
		t.Errorf("the log holds the client token, or irmago logged nothing:\n%s", logs)
	}

	// A browser gets the page, whose script starts the session; a button
	// posts for it without script.
	code, body = get(t, g.base()+"/issue?name=Alice", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Accept-Language": "nl"})
	if code != 200 || !strings.Contains(body, `"start":"1"`) || strings.Contains(body, "data:image") || !strings.Contains(body, "Ontvang uw kaartjes") {
		t.Errorf("issue page: %d %.200s", code, body)
	}

	// A placeholder that comes out empty is never issued empty.
	code, body = get(t, g.base()+"/issue", map[string]string{"Accept": "application/json"})
	if code != http.StatusBadRequest {
		t.Errorf("issue without a name: %d %s", code, body)
	}
	code, _ = get(t, g.base()+"/issue?name=%20", map[string]string{"Accept": "application/json"})
	if code != http.StatusBadRequest {
		t.Errorf("issue with a blank name: %d", code)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
