package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// listeningLine is what each example upstream prints once it listens: the
// address it got (they are started on port 0).
var listeningLine = regexp.MustCompile(`upstream: listening on http://([^\s,]+)`)

// exampleUpstream starts one of the example upstream apps as its own
// process, verifying tokens of the gateway at gateway (its JWKS and its
// iss), with more flags (such as --policy), and returns the address it
// listens on.
type exampleUpstream struct {
	name  string
	start func(t *testing.T, gateway string, flags ...string) string
}

var exampleUpstreams = []exampleUpstream{
	{"go", startGoExample},
	{"python", startPythonExample},
	{"node", startNodeExample},
	{"django", startDjangoExample},
	{"express", startExpressExample},
}

// TestExampleUpstreams runs the example upstream apps (examples/upstream in
// Go, examples/python with Debian's PyJWT, examples/node with jose from npm,
// the middlewares of examples/django with Debian's Django and PyJWT and of
// examples/express with Express and jose from npm) as their own processes
// behind a real gateway, logs in with the wallet, and checks that each app
// verifies the gateway's identity JWT against the gateway's JWKS with its
// own JWT library and shows what was disclosed, and that each refuses a
// missing, doubled, tampered or forged token sent to it directly; a token
// signed with the gateway's own key (its key_file) that has expired, is not
// valid yet, or is for another audience, issuer or policy; and a good token
// on a path that requires another policy, on a path under no route, or on a
// path that is not canonical.
func TestExampleUpstreams(t *testing.T) {
	g := newGateway(t)
	gatewayKey, gatewayKeyFile := writeEd25519Key(t)
	addrs := map[string]string{}
	var site strings.Builder
	for _, ex := range exampleUpstreams {
		// The app's route /<name>/ is for members, as the gateway's; /adults/
		// is for adults (a route of the gateway that this test does not
		// serve), so a members token must not open it.
		addrs[ex.name] = ex.start(t, g.base, "--policy", "/"+ex.name+"/=members", "--policy", "/adults/=adults")
		fmt.Fprintf(&site, `irma_auth /%[1]s/* members {
		header caddy-demo.gateway.person.email X-Irma-Attr-Email
	}
	handle /%[1]s/* {
		reverse_proxy %[2]s
	}
	`, ex.name, addrs[ex.name])
	}
	// Two routes with requirements of their own, which echo the identity
	// JWT: its policy claim is a generated name.
	for _, r := range []struct{ path, attr string }{{"/inline-email/", "email"}, {"/inline-name/", "fullname"}, {"/inline-email2/", "email"}} {
		fmt.Fprintf(&site, `irma_auth %[1]s* {
		require caddy-demo.gateway.person.%[2]s
	}
	handle %[1]s* {
		respond "{http.request.header.X-Irma-Identity} {irma.policy}"
	}
	`, r.path, r.attr)
	}
	site.WriteString("respond 404")
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email and caddy-demo.gateway.person.fullname
		}
		login {
			key_file `+gatewayKeyFile+`
		}`, site.String())

	// A name that HTML must escape.
	const email, name = "alice@example.com", `Alice "<Demo>" & Co`
	s := &authSite{base: g.base, scheme: g.scheme, app: app}
	alice := s.newWalletLevel(t, name, email, "gold")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBrowser(t)
	b.login(ctx, alice, g.base+"/go/")
	// The login ends when the browser comes back with its pending cookie.
	if resp, body := b.get(g.base+"/go/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the login: %d %q", resp.StatusCode, body)
	}
	wantAttrs := map[string]string{"caddy-demo.gateway.person.email": email, "caddy-demo.gateway.person.fullname": name}
	checkInlinePolicyNames(t, b, g.base, "/inline-email/", "/inline-name/", "/inline-email2/")

	for _, ex := range exampleUpstreams {
		t.Run(ex.name, func(t *testing.T) {
			t.Run("through the gateway", func(t *testing.T) {
				// The gateway replaces the client's token with its own; the app
				// verifies that one and shows the attributes.
				path := "/" + ex.name + "/page"
				resp, body := rawRequest(t, b, "GET", g.base+path+"?q=1", http.Header{
					"Accept": {"application/json"}, "X-Irma-Identity": {forgedNone(t, gatewayToken(t, b, g.base))},
				}, "")
				var answer struct {
					Policy     string            `json:"policy"`
					Subject    string            `json:"subject"`
					Attributes map[string]string `json:"attributes"`
					Path       string            `json:"path"`
					Legacy     map[string]string `json:"legacy_headers"`
				}
				if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %q (%v)", path, resp.StatusCode, body, err)
				}
				if answer.Policy != "members" || answer.Subject == "" || answer.Path != path || !equalMaps(answer.Attributes, wantAttrs) {
					t.Errorf("the app saw %+v, want policy members, a subject, path %s and attributes %v", answer, path, wantAttrs)
				}
				if legacy := lowerKeys(answer.Legacy); len(legacy) != 1 || legacy["x-irma-attr-email"] != email {
					t.Errorf("the app saw the plain headers %v, want X-Irma-Attr-Email: %s", answer.Legacy, email)
				}

				resp, body = rawRequest(t, b, "GET", g.base+path, http.Header{"Accept": {"text/html"}}, "")
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
					!strings.Contains(body, "Hello from the example upstream") || !strings.Contains(body, email) ||
					!strings.Contains(body, "&lt;Demo&gt;") || strings.Contains(body, "<Demo>") {
					t.Errorf("the page (%d, %s): %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
			})

			t.Run("directly", func(t *testing.T) {
				// Whoever reaches the app without the gateway may send it anything.
				// The gateway's own token passes (so that the refusals below are
				// the app's judgment of the token, not of the request); nothing
				// else does.
				token := gatewayToken(t, b, g.base)
				page := "/" + ex.name + "/page"
				now := time.Now().Unix()
				for _, c := range []struct {
					name   string
					path   string
					tokens []string
					status int
					reason string // in the answer; the apps word the rest differently
				}{
					{"the gateway's token", page, []string{token}, http.StatusOK, email},
					{"no token", page, nil, http.StatusUnauthorized, "no identity token"},
					{"two tokens", page, []string{token, token}, http.StatusUnauthorized, "more than one"},
					{"tampered payload", page, []string{tamperedPayload(t, token, "caddy-demo.gateway.person.email", "mallory@example.com")}, http.StatusUnauthorized, "invalid signature"},
					{"signed by another key", page, []string{signedByAnotherKey(t, token)}, http.StatusUnauthorized, "invalid signature"},
					{"alg none", page, []string{forgedNone(t, token)}, http.StatusUnauthorized, "alg"},
					{"not a JWT", page, []string{"not-a-jwt"}, http.StatusUnauthorized, "malformed"},
					// The token is good, but for members: not for a route of adults.
					// Signed with the gateway's key, published at its JWKS endpoint.
					{"expired", page, []string{resigned(t, gatewayKey, token, map[string]any{"iat": now - 120, "nbf": now - 120, "exp": now - 60})}, http.StatusUnauthorized, "has expired"},
					{"not valid yet", page, []string{resigned(t, gatewayKey, token, map[string]any{"nbf": now + 120, "exp": now + 180})}, http.StatusUnauthorized, "not valid yet"},
					{"another audience", page, []string{resigned(t, gatewayKey, token, map[string]any{"aud": "other-app"})}, http.StatusUnauthorized, "another audience"},
					{"another issuer", page, []string{resigned(t, gatewayKey, token, map[string]any{"iss": "https://elsewhere.example"})}, http.StatusUnauthorized, "another issuer"},
					{"another policy", page, []string{resigned(t, gatewayKey, token, map[string]any{"policy": "adults"})}, http.StatusForbidden, `not "members"`},
					{"the gateway's own token, resigned", page, []string{resigned(t, gatewayKey, token, nil)}, http.StatusOK, email},
					{"an unknown kid", page, []string{signedByNewKeyAs(t, token, "no-such-kid")}, http.StatusUnauthorized, "unknown key"},
					// As WSGI servers and Node.js join a header sent twice.
					{"two tokens in one header", page, []string{token + "," + token}, http.StatusUnauthorized, ""},
					{"a members token on /adults/", "/adults/page", []string{token}, http.StatusForbidden, `not "adults"`},
					{"a members token on a path under no route", "/club/page", []string{token}, http.StatusForbidden, "no policy"},
					{"dot segments", "/" + ex.name + "/../adults/page", []string{token}, http.StatusBadRequest, "not canonical"},
					{"encoded dot segments", "/" + ex.name + "/%2e%2e/adults/page", []string{token}, http.StatusBadRequest, "not canonical"},
					{"an encoded slash", "/" + ex.name + "/..%2Fadults/page", []string{token}, http.StatusBadRequest, "not canonical"},
				} {
					header := http.Header{"Accept": {"application/json"}}
					if c.tokens != nil {
						header["X-Irma-Identity"] = c.tokens
					}
					resp, body := rawRequest(t, b, "GET", "http://"+addrs[ex.name]+c.path, header, "")
					if resp.StatusCode != c.status || !strings.Contains(body, c.reason) {
						t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, body, c.status, c.reason)
					}
					if resp.StatusCode != http.StatusOK && (strings.Contains(body, "example.com") || strings.Contains(body, token)) {
						t.Errorf("%s: the refusal shows the token or its attributes: %q", c.name, body)
					}
				}
			})
		})
	}
}

// gatewayToken returns an identity JWT of the gateway for the browser's
// login, from the forward-auth endpoint.
func gatewayToken(t *testing.T, b *browser, gateway string) string {
	t.Helper()
	resp, body := b.get(gateway+"/irma/auth?policy=members", nil)
	token := resp.Header.Get("X-Irma-Identity")
	if resp.StatusCode != http.StatusOK || strings.Count(token, ".") != 2 {
		t.Fatalf("/irma/auth: %d %q, token %q", resp.StatusCode, body, token)
	}
	return token
}

// jwtParts splits a compact JWT into its decoded header and payload, and
// its signature as sent.
func jwtParts(t *testing.T, token string) (header, payload map[string]any, sig string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWT: %q", token)
	}
	for i, into := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload, parts[2]
}

func jwtSegment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// tamperedPayload is token with one attribute changed and the gateway's
// signature kept.
func tamperedPayload(t *testing.T, token, attr, value string) string {
	t.Helper()
	header, payload, sig := jwtParts(t, token)
	attrs, _ := payload["attributes"].(map[string]any)
	if attrs == nil {
		t.Fatalf("the token has no attributes: %v", payload)
	}
	attrs[attr] = value
	return jwtSegment(t, header) + "." + jwtSegment(t, payload) + "." + sig
}

// signedByAnotherKey is token's header and payload, signed with an Ed25519
// key that is not the gateway's, under the gateway's kid.
func signedByAnotherKey(t *testing.T, token string) string {
	t.Helper()
	header, payload, _ := jwtParts(t, token)
	header["alg"] = "EdDSA"
	return signedByNewKey(t, jwtSegment(t, header)+"."+jwtSegment(t, payload))
}

// signedByNewKey is the JWT of the signing input (header.payload), signed
// with a fresh Ed25519 key (EdDSA).
func signedByNewKey(t *testing.T, input string) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(input)))
}

// forgedNone is token's header and payload with alg none and no signature.
func forgedNone(t *testing.T, token string) string {
	t.Helper()
	header, payload, _ := jwtParts(t, token)
	header["alg"] = "none"
	return jwtSegment(t, header) + "." + jwtSegment(t, payload) + "."
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// startGoExample builds and runs examples/upstream.
func startGoExample(t *testing.T, gateway string, flags ...string) string {
	t.Helper()
	return startGoExampleEnv(t, gateway, nil, flags...)
}

// startGoExampleEnv is startGoExample with env added to the example's
// environment.
func startGoExampleEnv(t *testing.T, gateway string, env []string, flags ...string) string {
	t.Helper()
	bin := buildGo(t, "examples/upstream")
	cmd := exec.Command(bin, append(exampleFlags(gateway), flags...)...)
	cmd.Env = append(os.Environ(), env...)
	addr, _ := startProcess(t, "examples/upstream", cmd, listeningLine)
	return addr
}

// debianPython is the Python that Debian's python3-jwt and
// python3-cryptography are installed for. Not "python3" from the PATH: that
// may be another Python (pyenv's, on our machines) that does not see
// Debian's dist-packages.
const debianPython = "/usr/bin/python3"

// startPythonExample runs examples/python/app.py on Debian's Python, PyJWT
// and cryptography (which .ci/run installs).
func startPythonExample(t *testing.T, gateway string, flags ...string) string {
	t.Helper()
	return startDebianPythonScript(t, "examples/python", "app.py",
		"import jwt, cryptography; print('PyJWT', jwt.__version__, 'cryptography', cryptography.__version__)",
		"python3-jwt python3-cryptography", gateway, flags...)
}

// startDebianPythonScript runs script of the example in dir on Debian's
// Python, once probe (Python that prints the versions of what the script
// imports) has found the Debian packages apt that .ci/run installs.
func startDebianPythonScript(t *testing.T, dir, script, probe, apt, gateway string, flags ...string) string {
	t.Helper()
	check := exec.Command(debianPython, "-c", probe)
	check.Env = debianPythonEnv()
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("%s needs Debian's %s with its packages (apt-get install %s; .ci/run does): %v\n%s", dir, debianPython, apt, err, out)
	}
	t.Logf("%s on %s", dir, strings.TrimSpace(string(out)))
	path := filepath.Join(repoRoot(t), filepath.FromSlash(dir), script)
	cmd := exec.Command(debianPython, append(append([]string{path}, exampleFlags(gateway)...), flags...)...)
	cmd.Env = debianPythonEnv()
	addr, _ := startProcess(t, dir, cmd, listeningLine)
	return addr
}

// debianPythonEnv is the environment without what would point Debian's
// Python at other packages than Debian's: the user's site-packages,
// PYTHONPATH, PYTHONHOME.
func debianPythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") && !strings.HasPrefix(kv, "PYTHONHOME=") {
			env = append(env, kv)
		}
	}
	// PYTHONDONTWRITEBYTECODE: no __pycache__ of examples/django's package
	// in the repository.
	return append(env, "PYTHONNOUSERSITE=1", "PYTHONDONTWRITEBYTECODE=1")
}

// startNodeExample installs examples/node's dependencies (jose) with npm
// into a directory of the test's, next to a copy of server.js, and runs it
// with Node.js (which .ci/run installs). Nothing is installed into the
// repository.
func startNodeExample(t *testing.T, gateway string, flags ...string) string {
	t.Helper()
	return startNpmExample(t, "examples/node", []string{"package.json", "server.js"}, "server.js", gateway, flags...)
}

// startNpmExample copies files of the example in dir into a directory of
// the test's, installs its dependencies there with npm, and runs main with
// Node.js (which .ci/run installs). Nothing is installed into the
// repository.
func startNpmExample(t *testing.T, dir string, files []string, main, gateway string, flags ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("%s needs Node.js (apt-get install nodejs npm; .ci/run does): %v", dir, err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("%s needs npm to install its packages (apt-get install npm; .ci/run does): %v", dir, err)
	}
	tmp := t.TempDir()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(dir), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund")
	install.Dir = tmp
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install in a copy of %s failed (the npm registry must be reachable): %v\n%s", dir, err, out)
	}
	version, _ := exec.Command(node, "--version").Output()
	t.Logf("%s on Node.js %s", dir, strings.TrimSpace(string(version)))
	cmd := exec.Command(node, append(append([]string{main}, exampleFlags(gateway)...), flags...)...)
	cmd.Dir = tmp
	addr, _ := startProcess(t, dir, cmd, listeningLine)
	return addr
}

// exampleFlags are the flags that the example upstreams share: listen on a
// free loopback port, trust tokens of the gateway at gateway.
func exampleFlags(gateway string) []string {
	return []string{"--listen", "127.0.0.1:0", "--jwks-url", gateway + "/irma/jwks.json", "--issuer", gateway}
}
