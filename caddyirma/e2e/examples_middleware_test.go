package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// startDjangoExample runs examples/django/example_site.py, a Django site
// with the irma_gateway middleware, on Debian's Python, Django and PyJWT
// (which .ci/run installs).
func startDjangoExample(t *testing.T, gateway string, flags ...string) string {
	t.Helper()
	return startDebianPythonScript(t, "examples/django", "example_site.py",
		"import django, jwt; print('Django', django.get_version(), 'PyJWT', jwt.__version__)",
		"python3-django python3-jwt python3-cryptography", gateway, flags...)
}

// startExpressExample installs Express and jose with npm into a directory
// of the test's, next to copies of examples/express's middleware and
// example app, and runs the app.
func startExpressExample(t *testing.T, gateway string, flags ...string) string {
	t.Helper()
	return startNpmExample(t, "examples/express", []string{"package.json", "irma-gateway.js", "example.js"}, "example.js", gateway, flags...)
}

// writeEd25519Key writes a new Ed25519 private key (PKCS#8 PEM) for the
// gateway's login key_file, and returns it and the file.
func writeEd25519Key(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

// resigned is token with the claims of changes set (nil removes one), signed
// with key under the token's own header: with the gateway's key, a token
// that the gateway could have minted.
func resigned(t *testing.T, key ed25519.PrivateKey, token string, changes map[string]any) string {
	t.Helper()
	header, payload, _ := jwtParts(t, token)
	for k, v := range changes {
		if v == nil {
			delete(payload, k)
		} else {
			payload[k] = v
		}
	}
	input := jwtSegment(t, header) + "." + jwtSegment(t, payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input)))
}

// signedByNewKeyAs is token's header and payload, signed with a new Ed25519
// key under kid.
func signedByNewKeyAs(t *testing.T, token, kid string) string {
	t.Helper()
	header, payload, _ := jwtParts(t, token)
	header["kid"] = kid
	return signedByNewKey(t, jwtSegment(t, header)+"."+jwtSegment(t, payload))
}

// inlinePolicyName is the policy claim of a route with require lines of its
// own, as the README describes it.
var inlinePolicyName = regexp.MustCompile(`^route:[0-9a-f]{24}$`)

// checkInlinePolicyNames asks each of paths, routes of the gateway at base
// with require lines of their own that echo the identity JWT and
// {irma.policy}, and checks that the policy claim is route: and 24 hex
// digits, that {irma.policy} is the same, and that routes with the same
// requirements (paths[0] and paths[2]) get one name, other requirements
// (paths[1]) another.
func checkInlinePolicyNames(t *testing.T, b *browser, base string, paths ...string) {
	t.Helper()
	var names []string
	for _, path := range paths {
		resp, body := b.get(base+path+"x", nil)
		token, placeholder, ok := strings.Cut(body, " ")
		if resp.StatusCode != http.StatusOK || !ok {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
		_, payload, _ := jwtParts(t, token)
		name, _ := payload["policy"].(string)
		if !inlinePolicyName.MatchString(name) || name != placeholder {
			t.Errorf("%s: policy claim %q, {irma.policy} %q; want one name route:<24 hex digits>", path, name, placeholder)
		}
		names = append(names, name)
	}
	if names[0] != names[2] || names[0] == names[1] {
		t.Errorf("policy names %q: want the same for the same requirements, another for others", names)
	}
}
