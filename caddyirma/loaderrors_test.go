package caddyirma

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testkeys"
)

// TestLoadErrors: every bad setting stops the config from loading, with an
// error that names the setting and its value, and starts nothing.
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
	resultKey, otherResultKey := testkeys.WriteRSA(t), testkeys.WriteRSA(t)
	withResultKey := func() string {
		return replace("schemes_update off", "schemes_update off\n\t\tjwt_privkey_file "+resultKey+"\n\t\tjwt_issuer gw")
	}
	api := func(config, settings string) string {
		return strings.Replace(config, "respond \"next handler\"", "irma_requestor_api /api/* {\n\t\t"+settings+"\n\t}\n\trespond \"next handler\"", 1)
	}
	// Production mode: an https url, as it requires.
	production := strings.Replace(replace("schemes_update off", "schemes_update off\n\t\tproduction"), "url http://", "url https://", 1)
	inProduction := func(old, new string) string {
		if !strings.Contains(production, old) {
			t.Fatalf("test config lacks %q", old)
		}
		return strings.Replace(production, old, new, 1)
	}
	// sentinels is a redis block that opens with open, names a sentinel
	// (that does not answer) and its master, and has the lines of more.
	sentinels := func(open, more string) string {
		return "schemes_update off\n\t\t" + open + "\n\t\t\tsentinel_addresses 127.0.0.1:1\n\t\t\tsentinel_master_name irma\n\t\t\t" + more + "\n\t\t}"
	}
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"production: redis without TLS", inProduction("schemes_update off", "schemes_update off\n\t\tredis redis.example:6379 {\n\t\t\tdisable_tls\n\t\t}"), []string{`redis "redis.example:6379"`, "production", "TLS"}},
		{"production: irma_sign upstream over http", inProduction("respond \"next handler\"", "irma_sign /s {\n\t\tmessage hi\n\t\trequire caddy-demo.gateway.person.email\n\t\tupstream http://app.example/signed\n\t}\n\trespond \"next handler\""), []string{"irma_sign", `upstream "http://app.example/signed"`, "production"}},
		{"production: unauthenticated issuance", inProduction("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\tallow_unauthenticated {\n\t\t\tissue *\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", "allow_unauthenticated", "production"}},
		{"no url", replace("url "+g.url(), ""), []string{"url is required"}},
		{"url not http", replace("url "+g.url(), "url ftp://example.com/irma/"), []string{`url "ftp://example.com/irma/"`}},
		{"url relative", replace("url "+g.url(), "url /irma/"), []string{`url "/irma/"`}},
		{"production without https", replace("schemes_update off", "schemes_update off\n\t\tproduction"), []string{"production", "https"}},
		{"no schemes_path, and no network for the default schemes", replace("schemes_path "+g.scheme.SchemesPath, "default_schemes_path "+emptyDir), []string{"no copy of scheme", emptyDir, "caddy irma schemes"}},
		{"no schemes at all", replace("schemes_path "+g.scheme.SchemesPath, "default_schemes off"), []string{"default_schemes off", "no schemes_path"}},
		{"missing schemes_path", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path /nonexistent/schemes"), []string{`schemes_path "/nonexistent/schemes"`}},
		// The hint fits the mode: the demo scheme is for development only.
		{"empty schemes_path", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+emptyDir), []string{emptyDir, "no schemes found", "'caddy irma demo-scheme --dir <dir>'", "<dir>/schemes"}},
		{"production: empty schemes_path", inProduction("schemes_path "+g.scheme.SchemesPath, "schemes_path "+emptyDir), []string{emptyDir, "no schemes found", "pk.pem", "'caddy irma schemes'", "!demo"}},
		{"tampered scheme", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+tampered), []string{tampered, "caddy-demo", "does not match"}},
		{"bad scheme signature", replace("schemes_path "+g.scheme.SchemesPath, "schemes_path "+badSig), []string{badSig, "caddy-demo"}},
		{"unreadable keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+badKeys), []string{`issuer_private_keys_path "` + badKeys + `"`}},
		{"mismatched keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+otherKeys), []string{`issuer_private_keys_path "` + otherKeys + `"`, "does not belong"}},
		{"keys inside the schemes", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+filepath.Join(g.scheme.SchemesPath, "caddy-demo")), []string{"inside schemes_path"}},
		{"scan_timeout too short", replace("schemes_update off", "schemes_update off\n\t\tscan_timeout 5s"), []string{"scan_timeout 5s", "at least 10s"}},
		{"scan_timeout beyond the session", replace("schemes_update off", "schemes_update off\n\t\tmax_session_lifetime 5m\n\t\tscan_timeout 6m"), []string{"scan_timeout 6m0s", "max_session_lifetime (5m0s)"}},
		{"redis db", replace("schemes_update off", "schemes_update off\n\t\tredis 127.0.0.1:1 {\n\t\t\tdb -1\n\t\t}"), []string{`db "-1"`}},
		{"redis without a server", replace("schemes_update off", "schemes_update off\n\t\tredis {\n\t\t\tdisable_tls\n\t\t}"), []string{"redis", "an address, or sentinel_addresses, is required"}},
		{"redis address and sentinels", replace("schemes_update off", sentinels("redis 127.0.0.1:1 {", "accept_inconsistency_risk")), []string{`redis "127.0.0.1:1"`, "sentinel_addresses given too"}},
		{"redis sentinel setting with an address", replace("schemes_update off", "schemes_update off\n\t\tredis 127.0.0.1:1 {\n\t\t\tsentinel_master_name irma\n\t\t}"), []string{`redis "127.0.0.1:1"`, "sentinel_master_name goes with sentinel_addresses"}},
		{"redis sentinel address", replace("schemes_update off", "schemes_update off\n\t\tredis {\n\t\t\tsentinel_addresses sentinel.example\n\t\t\tsentinel_master_name irma\n\t\t\taccept_inconsistency_risk\n\t\t}"), []string{`sentinel_addresses "sentinel.example"`, "host:port"}},
		{"redis sentinels without a master name", replace("schemes_update off", "schemes_update off\n\t\tredis {\n\t\t\tsentinel_addresses 127.0.0.1:1\n\t\t\taccept_inconsistency_risk\n\t\t}"), []string{`sentinel_addresses ["127.0.0.1:1"]`, "sentinel_master_name is required"}},
		{"redis sentinels without the risk accepted", replace("schemes_update off", sentinels("redis {", "")), []string{`sentinel_addresses ["127.0.0.1:1"]`, "add accept_inconsistency_risk"}},
		{"production: redis sentinels without TLS", inProduction("schemes_update off", "schemes_update off\n\t\tredis {\n\t\t\tsentinel_addresses 127.0.0.1:1 sentinel.example:26379\n\t\t\tsentinel_master_name irma\n\t\t\taccept_inconsistency_risk\n\t\t\tdisable_tls\n\t\t}"), []string{`redis "sentinel.example:26379"`, "production", "TLS"}},
		{"unreachable redis sentinels", replace("schemes_update off", sentinels("redis {", "accept_inconsistency_risk\n\t\t\tdisable_tls")), []string{`redis sentinels ["127.0.0.1:1"] (master "irma")`}},
		{"redis ca file", replace("schemes_update off", "schemes_update off\n\t\tredis 127.0.0.1:1 {\n\t\t\ttls_ca_cert_file "+g.scheme.TimestampKeyFile+"\n\t\t}"), []string{"tls_ca_cert_file", "no PEM certificates"}},
		{"pairing", replace("irma_issue {", "irma_issue {\n\t\t\tpairing maybe"), []string{`pairing "maybe"`}},
		{"missing keys dir", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path /nonexistent/keys"), []string{`issuer_private_keys_path "/nonexistent/keys"`}},
		{"issue without keys", replace("issuer_private_keys_path "+g.scheme.PrivateKeysPath, "issuer_private_keys_path "+noKeys), []string{"irma_issue", "caddy-demo.gateway.person", "no private key"}},
		{"unknown credential", replace("credential caddy-demo.gateway.person", "credential caddy-demo.gateway.passport"), []string{"irma_issue", `"caddy-demo.gateway.passport"`, "unknown credential type"}},
		{"match of an attribute not issued", replace("over18 yes", "over18 yes\n\t\t\t\tmatch shoesize [0-9]+"), []string{"irma_issue", `match "shoesize"`}},
		{"match pattern", replace("over18 yes", "over18 yes\n\t\t\t\tmatch over18 (yes"), []string{"irma_issue", `match "over18"`, "missing closing )"}},
		{"unknown attribute", replace("over18 yes", "over18 yes\n\t\t\t\tshoesize 42"), []string{`unknown attribute "shoesize"`}},
		{"missing attribute", replace("over18 yes", ""), []string{`attribute "over18" is required`}},
		{"missing timestamp key", replace("timestamp_key_file "+g.scheme.TimestampKeyFile, "timestamp_key_file /nonexistent/ts.key"), []string{`timestamp_key_file "/nonexistent/ts.key"`}},
		{"missing jwt_privkey_file", replace("schemes_update off", "schemes_update off\n\t\tjwt_privkey_file /nonexistent/result.pem"), []string{`jwt_privkey_file "/nonexistent/result.pem"`}},
		{"jwt_privkey_file not RSA", replace("schemes_update off", "schemes_update off\n\t\tjwt_privkey_file "+g.scheme.TimestampKeyFile), []string{`jwt_privkey_file "` + g.scheme.TimestampKeyFile + `"`, "not an RSA private key"}},
		{"requestor api key not the app's", api(withResultKey(), "jwt_key_file "+otherResultKey), []string{"irma_requestor_api", `jwt_key_file "` + otherResultKey + `"`, `jwt_privkey_file "` + resultKey + `"`, "deprecated"}},
		{"requestor api issuer not the app's", api(withResultKey(), "jwt_issuer other"), []string{"irma_requestor_api", `jwt_issuer "other"`, `jwt_issuer "gw"`}},
		{"requestor api missing key file", api(good, "jwt_key_file /nonexistent/result.pem"), []string{"irma_requestor_api", `jwt_key_file "/nonexistent/result.pem"`}},
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
		{"requestor api host pattern", replace("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\trequestor a {\n\t\t\tauth token t\n\t\t\thost [x\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", `requestor "a"`, `host permission "[x"`}},
		{"requestor api unauthenticated host pattern", replace("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\tallow_unauthenticated {\n\t\t\thost a[\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", `requestor ""`, `host permission "a["`}},
		{"requestor api permission", replace("respond \"next handler\"", "irma_requestor_api /api/* {\n\t\trequestor a {\n\t\t\tauth token t\n\t\t\tdisclose caddy-demo.nosuch.*\n\t\t}\n\t}\n\trespond \"next handler\""), []string{"irma_requestor_api", "nosuch"}},
		{"unknown setting", replace("schemes_update off", "schemes_update off\n\t\tshemes_path /x"), []string{`unknown setting "shemes_path"`}},
		{"repeated setting", replace("schemes_update off", "schemes_update off\n\t\tschemes_update 1h"), []string{"schemes_update given twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, tc.config, tc.want...)
		})
	}
}

// loadFails asserts that config does not load, with an error that names
// each of want (and not those of want that start with "!"), and that it
// leaves no IRMA server running.
func loadFails(t *testing.T, config string, want ...string) {
	t.Helper()
	err := caddytest.Load(config)
	if err == nil {
		_ = caddy.Stop()
		t.Fatalf("config loaded; want an error with %q", want)
	}
	for _, w := range want {
		if absent, ok := strings.CutPrefix(w, "!"); ok {
			if strings.Contains(err.Error(), absent) {
				t.Errorf("error %q names %q", err, absent)
			}
		} else if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	assertNoServers(t)
}
