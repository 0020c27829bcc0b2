package caddyirma

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
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
	// irmaserver's other routes are not exposed.
	for _, p := range []string{"revocation/caddy-demo.gateway.person/updateevents", "session/AAAAAAAAAAAAAAAAAAAA/statusevents", "session/AAAAAAAAAAAAAAAAAAAA/frontend/statusevents"} {
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

	// A browser gets the page.
	code, body = get(t, g.base()+"/issue?name=Alice", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate", "Accept-Language": "nl"})
	if code != 200 || !strings.Contains(body, "<svg") || !strings.Contains(body, "Ontvang uw kaartjes") {
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

func TestLoadErrors(t *testing.T) {
	g := newGateway(t)
	good := g.caddyfile("")

	emptyDir := t.TempDir()
	tampered := t.TempDir()
	copyDir(t, g.scheme.SchemesPath, tampered)
	desc := filepath.Join(tampered, g.scheme.ID, "gateway", "Issues", "person", "description.xml")
	b, err := os.ReadFile(desc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(desc, bytes.Replace(b, []byte("fullname"), []byte("fulname"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	badSig := t.TempDir()
	copyDir(t, g.scheme.SchemesPath, badSig)
	sig := filepath.Join(badSig, g.scheme.ID, "index.sig")
	if b, err = os.ReadFile(sig); err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(sig, b, 0o644); err != nil {
		t.Fatal(err)
	}
	badKeys := t.TempDir()
	if err := os.WriteFile(filepath.Join(badKeys, "caddy-demo.gateway.0.xml"), []byte("<PrivateKey>nonsense</PrivateKey>"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A real private key, of another issuer's key pair.
	otherKeys := t.TempDir()
	irmago, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/privacybydesign/irmago").Output()
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(irmago)), "testdata", "privatekeys", "irma-demo.MijnOverheid.xml"))
	if err != nil {
		t.Fatal(err)
	}
	other = bytes.Replace(other, []byte("<Counter>1</Counter>"), []byte("<Counter>0</Counter>"), 1)
	if err := os.WriteFile(filepath.Join(otherKeys, "caddy-demo.gateway.0.xml"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	noKeys := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	dead := caddytest.RefusedAddr(t)

	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test config lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"no url", replace("url "+g.url(), ""), []string{"url is required"}},
		{"url not http", replace("url "+g.url(), "url ftp://example.com/irma/"), []string{`url "ftp://example.com/irma/"`}},
		{"url relative", replace("url "+g.url(), "url /irma/"), []string{`url "/irma/"`}},
		{"production without https", replace("schemes_update off", "schemes_update off\n\t\tproduction"), []string{"production", "https"}},
		{"no schemes_path", replace("schemes_path "+g.scheme.SchemesPath, ""), []string{"schemes_path is required"}},
		{"missing schemes_path", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path /nonexistent/schemes"), []string{`schemes_path "/nonexistent/schemes"`}},
		{"empty schemes_path", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+emptyDir), []string{emptyDir, "no schemes found"}},
		{"tampered scheme", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+tampered), []string{tampered, "caddy-demo", "does not match"}},
		{"bad scheme signature", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+badSig), []string{badSig, "caddy-demo"}},
		{"unreadable keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+badKeys), []string{`issuer_private_keys_path "` + badKeys + `"`}},
		{"mismatched keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+otherKeys), []string{`issuer_private_keys_path "` + otherKeys + `"`, "does not belong"}},
		{"keys inside the schemes", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+filepath.Join(g.scheme.SchemesPath, "caddy-demo")), []string{"inside schemes_path"}},
		{"redis db", replace("schemes_update off", "schemes_update off\n\t\tredis 127.0.0.1:1 {\n\t\t\tdb -1\n\t\t}"), []string{`db "-1"`}},
		{"redis ca file", replace("schemes_update off", "schemes_update off\n\t\tredis 127.0.0.1:1 {\n\t\t\ttls_ca_cert_file "+g.scheme.TimestampKeyFile+"\n\t\t}"), []string{"tls_ca_cert_file", "no PEM certificates"}},
		{"pairing", replace("irma_issue {", "irma_issue {\n\t\t\tpairing maybe"), []string{`pairing "maybe"`}},
		{"missing keys dir", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path /nonexistent/keys"), []string{`issuer_private_keys_path "/nonexistent/keys"`}},
		{"issue without keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+noKeys), []string{"irma_issue", "caddy-demo.gateway.person", "no private key"}},
		{"unknown credential", replace("credential caddy-demo.gateway.person", "credential caddy-demo.gateway.passport"), []string{"irma_issue", `"caddy-demo.gateway.passport"`, "unknown credential type"}},
		{"unknown attribute", replace("over18 yes", "over18 yes\n\t\t\t\tshoesize 42"), []string{`unknown attribute "shoesize"`}},
		{"missing attribute", replace("over18 yes", ""), []string{`attribute "over18" is required`}},
		{"missing timestamp key", replace("timestamp_key_file "+g.scheme.TimestampKeyFile, "timestamp_key_file /nonexistent/ts.key"), []string{`timestamp_key_file "/nonexistent/ts.key"`}},
		{"lifetime not whole minutes", replace("schemes_update off", "schemes_update off\n\t\tmax_session_lifetime 90s"), []string{"max_session_lifetime", "whole minutes"}},
		{"unreachable redis", replace("schemes_update off", fmt.Sprintf("schemes_update off\n\t\tredis %s {\n\t\t\tdisable_tls\n\t\t}", dead)), []string{fmt.Sprintf(`redis at %q`, dead)}},
		{"port in use", strings.ReplaceAll(strings.ReplaceAll(good, g.ln.Bind(), ""), fmt.Sprintf("127.0.0.1:%d {", g.port), fmt.Sprintf("127.0.0.1:%d {", busyPort)), []string{fmt.Sprint(busyPort), "address already in use"}},
		{"policy with an unknown attribute", replace("schemes_update off", "schemes_update off\n\t\tpolicy p {\n\t\t\trequire caddy-demo.gateway.person.shoesize\n\t\t}"), []string{`policy "p"`, "caddy-demo.gateway.person.shoesize"}},
		{"policy with an unknown credential", replace("schemes_update off", "schemes_update off\n\t\tpolicy p {\n\t\t\trequire caddy-demo.gateway.passport.number\n\t\t}"), []string{`policy "p"`, "passport"}},
		{"policy expression", replace("schemes_update off", "schemes_update off\n\t\tpolicy p {\n\t\t\trequire caddy-demo.gateway.person.email or\n\t\t}"), []string{"require", "caddy-demo.gateway.person.email or"}},
		{"irma_auth unknown policy", replace("respond \"next handler\"", "irma_auth /x/* nosuch\n\trespond \"next handler\""), []string{"irma_auth", `policy "nosuch"`}},
		{"irma_auth unknown attribute", replace("respond \"next handler\"", "irma_auth /x/* {\n\t\trequire caddy-demo.gateway.person.shoesize=42\n\t}\n\trespond \"next handler\""), []string{"irma_auth", "caddy-demo.gateway.person.shoesize"}},
		{"irma_auth header attribute", replace("respond \"next handler\"", "irma_auth /x/* {\n\t\trequire caddy-demo.gateway.person.email\n\t\theader caddy-demo.gateway.person.shoesize X-Shoe\n\t}\n\trespond \"next handler\""), []string{"irma_auth", "headers", "shoesize"}},
		{"login algorithm", replace("schemes_update off", "schemes_update off\n\t\tlogin {\n\t\t\talgorithm HS256\n\t\t}"), []string{"algorithm", "HS256"}},
		{"login cookie key", replace("schemes_update off", "schemes_update off\n\t\tlogin {\n\t\t\tcookie_keys c2hvcnQ=\n\t\t}"), []string{"cookie_keys", "key 1"}},
		{"login key file", replace("schemes_update off", "schemes_update off\n\t\tlogin {\n\t\t\tkey_file /nonexistent/jwt.pem\n\t\t}"), []string{"key_file", "/nonexistent/jwt.pem"}},
		{"irma_sign without message", replace("respond \"next handler\"", "irma_sign /s {\n\t\trequire caddy-demo.gateway.person.email\n\t}\n\trespond \"next handler\""), []string{"irma_sign", "exactly one of message"}},
		{"irma_sign unknown attribute", replace("respond \"next handler\"", "irma_sign /s {\n\t\tmessage hi\n\t\trequire caddy-demo.gateway.person.shoesize\n\t}\n\trespond \"next handler\""), []string{"irma_sign", "shoesize"}},
		{"irma_sign upstream", replace("respond \"next handler\"", "irma_sign /s {\n\t\tmessage hi\n\t\trequire caddy-demo.gateway.person.email\n\t\tupstream ftp://x\n\t}\n\trespond \"next handler\""), []string{"irma_sign", `upstream "ftp://x"`}},
		{"requestor api bad key", replace("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\trequestor a {\n\t\t\tauth hmac not-base64!\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", `"a"`}},
		{"requestor api permission", replace("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\trequestor a {\n\t\t\tauth token t\n\t\t\tdisclose caddy-demo.nosuch.*\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", "nosuch"}},
		{"unknown setting", replace("schemes_update off", "schemes_update off\n\t\tshemes_path /x"), []string{`unknown setting "shemes_path"`}},
		{"repeated setting", replace("schemes_update off", "schemes_update off\n\t\tschemes_update 1h"), []string{"schemes_update given twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := caddytest.Load(tc.config)
			if err == nil {
				_ = caddy.Stop()
				t.Fatalf("config loaded; want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			assertNoServers(t)
		})
	}
}

func TestReload(t *testing.T) {
	g := newGateway(t)
	app := g.start(t, "")
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	_, token, _, err := srv.StartSession(irma.NewDisclosureRequest(g.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)), nil, "")
	if err != nil {
		t.Fatal(err)
	}

	// Same settings: the running server stays, and with it the session.
	if err := caddytest.Load(g.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	app2 := caddytest.App[*App](t, "irma")
	srv2, err := app2.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv2 != srv {
		t.Error("a reload with the same settings replaced the IRMA server")
	}
	if res, err := srv2.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
		t.Errorf("session after reload: %+v, %v", res, err)
	}
	if _, err := app.Server(); err == nil {
		t.Error("the old app still hands out the server after it stopped")
	}

	// A reload that fails, in Provision or in the irma app's Start, leaves
	// the running server and its sessions alone.
	dead := caddytest.RefusedAddr(t)
	for _, bad := range []string{
		g.caddyfile("max_session_lifetime 30s"),
		g.caddyfile(fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", dead)),
	} {
		if err := caddytest.Load(bad); err == nil {
			t.Fatal("a bad config loaded")
		}
		if n := countServers(); n != 1 {
			t.Errorf("after a failed reload, %d IRMA servers run, want 1", n)
		}
		if res, err := srv2.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
			t.Errorf("session after a failed reload: %+v, %v", res, err)
		}
		if s, err := caddytest.App[*App](t, "irma").Server(); err != nil || s != srv2 {
			t.Errorf("after a failed reload the running app serves %p, %v; want the server from before", s, err)
		}
	}

	// Other settings: a new server, the old one stopped.
	if err := caddytest.Load(g.caddyfile("max_session_lifetime 10m")); err != nil {
		t.Fatal(err)
	}
	app3 := caddytest.App[*App](t, "irma")
	srv3, err := app3.Server()
	if err != nil {
		t.Fatal(err)
	}
	if srv3 == srv {
		t.Error("a reload with other settings kept the old server")
	}
	if n := countServers(); n != 1 {
		t.Errorf("%d IRMA servers running, want 1", n)
	}

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	assertNoServers(t)
	assertNoIRMAGoroutines(t)
}

func countServers() int {
	n := 0
	servers.Range(func(_, _ any) bool { n++; return true })
	return n
}

func assertNoServers(t *testing.T) {
	t.Helper()
	if n := countServers(); n != 0 {
		t.Errorf("%d IRMA servers left running", n)
	}
}

// assertNoIRMAGoroutines fails if goroutines of irmago or its schedulers
// outlive the servers.
func assertNoIRMAGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	for i := 0; i < 100; i++ {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "gocron") && !strings.Contains(stacks, "privacybydesign/irmago") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	var leaked []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "gocron") || strings.Contains(g, "privacybydesign/irmago") {
			leaked = append(leaked, g)
		}
	}
	t.Errorf("%d irmago goroutines outlived their server:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
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
