package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jwtv4 "github.com/golang-jwt/jwt/v4"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
)

// TestIRMAServerMigration runs examples/irma-server-migration as its guide
// has it: irmaserver.yml in irma server (irmago v1.3.0's yivi) and the
// Caddyfile beside it in the gateway, each with only its addresses, paths
// and upstream replaced, on the real pbdf scheme, and sends both the same
// requestor requests: both answer alike (the global permissions of the yml
// are in each requestor of the Caddyfile). Neither serves the requestor API
// on its public address. The guide shows both files as they are.
func TestIRMAServerMigration(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "examples", "irma-server-migration")
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	yml, caddyfile, guide := read("irmaserver.yml"), read("Caddyfile"), read("README.md")
	for name, content := range map[string]string{"irmaserver.yml": "```yaml\n" + yml + "```\n", "Caddyfile": "```caddyfile\n" + caddyfile + "```\n"} {
		if !strings.Contains(guide, content) {
			t.Errorf("examples/irma-server-migration/README.md does not show %s as it is", name)
		}
	}
	m := regexp.MustCompile(`(?m)^  myapp:\n    auth_method: token\n    key: "([^"]+)"$`).FindStringSubmatch(yml)
	if m == nil {
		t.Fatal("irmaserver.yml: no token for the requestor myapp")
	}
	token := m[1]

	// What both read: the schemes, the key that signs result JWTs, the
	// public key of the requestor backoffice, a certificate for the app's
	// address.
	files := t.TempDir()
	schemeserver.Copy(t, schemeserver.Yivi(t), filepath.Join(files, "schemes"))
	jwtKey := writeRSAKey(t, filepath.Join(files, "jwt.pem"))
	backoffice := writeRSAKey(t, filepath.Join(files, "backoffice.key"))
	pubDER, err := x509.MarshalPKIXPublicKey(&backoffice.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(files, "requestors"), 0o755); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(files, "requestors"), "backoffice.pem", "PUBLIC KEY", pubDER)
	pki := newTestPKI(t)

	// irma server, from irmaserver.yml.
	apiPort, appPort := caddytest.PortToTry(t), caddytest.PortToTry(t)
	irmaYml := replaceEach(t, "irmaserver.yml", yml, []replacement{
		{"/etc/irmaserver/tls/example.com.crt", pki.serverCert},
		{"/etc/irmaserver/tls/example.com.key", pki.serverKey},
		{"/etc/irmaserver/", files + "/"},
		{"/var/lib/irmaserver/schemes", filepath.Join(files, "schemes")},
		{"listen_addr: 10.0.0.5", "listen_addr: 127.0.0.1"},
		{"client_port: 443", fmt.Sprintf("client_port: %d", appPort)},
		{"port: 8088", fmt.Sprintf("port: %d", apiPort)},
		{"schemes_update: 60", "schemes_update: 0"}, // offline
	})
	ymlFile := filepath.Join(t.TempDir(), "irmaserver.yml")
	if err := os.WriteFile(ymlFile, []byte(irmaYml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(yiviBinary(t), "irma", "server", "--config", ymlFile)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	startProcess(t, "irma server", cmd, regexp.MustCompile(`Client server listening at (\S+)`))
	irmaServer := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	caddytest.WaitHTTP(t, irmaServer+"/health")

	// The gateway, from the Caddyfile: its data directory holds the default
	// schemes, as `caddy irma schemes` leaves them.
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	schemeserver.Copy(t, schemeserver.Yivi(t), filepath.Join(data, "caddy", "irma", "schemes"))
	t.Setenv("MYAPP_TOKEN", token)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the site's own app", http.StatusNotFound)
	}))
	defer app.Close()
	public, internal := caddytest.Listen(t), caddytest.Listen(t)
	conf := replaceEach(t, "Caddyfile", caddyfile, []replacement{
		{"{\n\tirma {", fmt.Sprintf("{\n\tadmin off\n\tstorage file_system %s\n\tirma {", filepath.Join(data, "storage"))},
		{"/etc/caddy/irma/requestors/backoffice.pem", filepath.Join(files, "requestors", "backoffice.pem")},
		{"/etc/caddy/irma/jwt.pem", filepath.Join(files, "jwt.pem")},
		{"schemes_update 1h", "schemes_update off"}, // offline
		{"\nexample.com {", fmt.Sprintf("\nhttp://127.0.0.1:%d {\n\t%s", public.Port, public.Bind())},
		{"localhost:3000", strings.TrimPrefix(app.URL, "http://")},
		{"http://10.0.0.5:8088 {", fmt.Sprintf("http://127.0.0.1:%d {", internal.Port)},
		{"bind 10.0.0.5", internal.Bind()},
	})
	caddytest.Start(t, conf)
	gateway := "http://" + internal.Addr()

	// The same requests to both, the same answers.
	disclose := func(attr string) string {
		return `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["` + attr + `"]]]}`
	}
	sign := func(attr string) string {
		return `{"@context":"https://irma.app/ld/request/signature/v2","message":"I agree.","disclose":[[["` + attr + `"]]]}`
	}
	asBackoffice := func(req irma.SessionRequest) string {
		t.Helper()
		j, err := irma.SignSessionRequest(req, jwtv4.SigningMethodRS256, backoffice, "backoffice")
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	cases := []struct {
		name, body, auth string
		jwt              func() string // a requestor JWT, made anew for each server
		status           int
		errType          string // or the session pointer's irmaqr
	}{
		{name: "a global permission", body: disclose("pbdf.sidn-pbdf.email.email"), auth: token, status: 200, errType: "disclosing"},
		{name: "the requestor's own permission", body: disclose("pbdf.gemeente.personalData.over18"), auth: token, status: 200, errType: "disclosing"},
		{name: "no permission", body: disclose("pbdf.gemeente.personalData.bsn"), auth: token, status: 403, errType: "UNAUTHORIZED"},
		{name: "a signature", body: sign("pbdf.sidn-pbdf.email.email"), auth: token, status: 200, errType: "signing"},
		{name: "a signature without permission (global sign_perms empty)", body: sign("pbdf.sidn-pbdf.email.domain"), auth: token, status: 403, errType: "UNAUTHORIZED"},
		{name: "a wrong token", body: disclose("pbdf.sidn-pbdf.email.email"), auth: "wrong", status: 403, errType: "UNAUTHORIZED"},
		{name: "no authentication", body: disclose("pbdf.sidn-pbdf.email.email"), status: 400, errType: "INVALID_REQUEST"},
		{name: "a public-key JWT", jwt: func() string {
			return asBackoffice(irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("pbdf.gemeente.personalData.bsn")))
		}, status: 200, errType: "disclosing"},
		{name: "a public-key JWT without permission", jwt: func() string {
			return asBackoffice(irma.NewSignatureRequest("I agree.", irma.NewAttributeTypeIdentifier("pbdf.sidn-pbdf.email.email")))
		}, status: 403, errType: "UNAUTHORIZED"},
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustPKIX(t, &jwtKey.PublicKey)})
	for _, srv := range []struct{ name, api string }{{"irma server", irmaServer}, {"gateway", gateway}} {
		t.Run(srv.name, func(t *testing.T) {
			for _, c := range cases {
				body, ctype := c.body, "application/json"
				if c.jwt != nil {
					body, ctype = c.jwt(), "text/plain"
				}
				code, answer := postSession(t, srv.api, body, ctype, c.auth)
				var got struct {
					SessionPtr *irma.Qr `json:"sessionPtr"`
					Error      string   `json:"error"`
				}
				_ = json.Unmarshal(answer, &got)
				what := got.Error
				if got.SessionPtr != nil {
					what = string(got.SessionPtr.Type)
					if !strings.HasPrefix(got.SessionPtr.URL, "https://example.com/irma/session/") {
						t.Errorf("%s: the session pointer names %s, want the url https://example.com/irma/", c.name, got.SessionPtr.URL)
					}
				}
				if code != c.status || what != c.errType {
					t.Errorf("%s: %d %s, want %d %s", c.name, code, answer, c.status, c.errType)
				}
			}
			if code, body := get(t, srv.api+"/health"); code != 200 || string(body) != "OK" {
				t.Errorf("GET /health: %d %q", code, body)
			}
			if code, body := get(t, srv.api+"/publickey"); code != 200 || strings.TrimSpace(string(body)) != strings.TrimSpace(string(pubPEM)) {
				t.Errorf("GET /publickey: %d %q, want the public key of jwt_privkey_file", code, body)
			}
		})
	}

	// The public addresses serve the Yivi app, not requestors.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	for _, c := range []struct{ name, url string }{
		{"irma server's client_port", fmt.Sprintf("https://127.0.0.1:%d/session", appPort)},
		{"the gateway's public site", fmt.Sprintf("http://127.0.0.1:%d/session", public.Port)},
	} {
		req, _ := http.NewRequest("POST", c.url, strings.NewReader(disclose("pbdf.sidn-pbdf.email.email")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", token)
		resp, err := insecure.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "sessionPtr") {
			t.Errorf("POST /session at %s: %d %q, want 404", c.name, resp.StatusCode, b)
		}
	}
	// And the gateway's internal site serves requestors only.
	if code, body := get(t, gateway+"/irma/session/AAAAAAAAAAAAAAAAAAAA/status"); code != http.StatusNotFound {
		t.Errorf("the internal site answers the Yivi app's path: %d %q", code, body)
	}
}

// writeRSAKey writes a new RSA private key (PKCS #1 PEM) to file.
func writeRSAKey(t *testing.T, file string) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Dir(file), filepath.Base(file), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	return key
}

func mustPKIX(t *testing.T, pub *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
