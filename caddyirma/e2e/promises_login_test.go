package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestPromisesLoginSettings asserts the README's promises about the
// settings of the login block: cookie_name, cookie_domain, identity_header
// and token_lifetime, each seen in what the browser and the upstream get.
func TestPromisesLoginSettings(t *testing.T) {
	up := newRecordingUpstream(t)
	g := newGateway(t)
	base := g.base
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}
		login {
			cookie_name     gw_login
			cookie_domain   example.test
			identity_header X-Auth-Jwt
			token_lifetime  5m
		}`, fmt.Sprintf(`irma_auth /members/* members
	reverse_proxy %s`, up.addr()))
	alice := (&authSite{base: base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, jar := newRecordingBrowser(t, nil)

	t.Run("cookie_name prefixes the pending cookie (name_pending_)", func(t *testing.T) {
		resp, body := b.get(base+"/members/x", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		cookies := resp.Cookies()
		if len(cookies) != 1 || !regexp.MustCompile(`^gw_login_pending_[0-9a-f]{8}$`).MatchString(cookies[0].Name) {
			t.Fatalf("the 401 set %q, want one gw_login_pending_<8 hex digits> cookie", resp.Header.Values("Set-Cookie"))
		}
	})

	var token string
	t.Run("cookie_name names the session cookie", func(t *testing.T) {
		b.login(ctx, alice, base+"/members/x")
		resp, body := b.get(base+"/members/x", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("after the login: %d %s", resp.StatusCode, body)
		}
		if setCookies(resp)["gw_login"] == nil || !jar.has("gw_login") {
			t.Fatalf("the login set %q, want gw_login", resp.Header.Values("Set-Cookie"))
		}
		for _, c := range jar.all() {
			if strings.HasPrefix(c.Name, caddyirma.DefaultCookieName) {
				t.Errorf("a cookie with the default name: %s", describeCookie(c))
			}
		}
		token = up.headers().Get("X-Auth-Jwt")
	})

	t.Run("identity_header carries the JWT to the upstream", func(t *testing.T) {
		h := up.headers()
		if token == "" || len(h.Values("X-Auth-Jwt")) != 1 {
			t.Fatalf("the upstream got X-Auth-Jwt %q", h.Values("X-Auth-Jwt"))
		}
		if h.Get(caddyirma.DefaultIdentityHeader) != "" {
			t.Errorf("the upstream got the JWT in %s too", caddyirma.DefaultIdentityHeader)
		}
		claims := verifyWithJWKS(t, token, fetchJWKS(t, b, base), base)
		if claims.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" || claims.Policy != "members" {
			t.Errorf("claims %+v", claims)
		}
	})

	t.Run("identity_header: a client's copy never reaches the upstream", func(t *testing.T) {
		forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
		check := func(what string) {
			t.Helper()
			for name, vals := range up.headers() {
				for _, v := range vals {
					if v == forged {
						t.Errorf("%s: the forged %s reached the upstream", what, name)
					}
				}
			}
		}
		for _, spelling := range []string{"X-Auth-Jwt", "X-AUTH-JWT", "x_auth_jwt", "X-Auth_Jwt"} {
			resp, _ := b.get(base+"/members/x", map[string]string{spelling: forged})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", spelling, resp.StatusCode)
			}
			check("logged in, " + spelling)
			if got := up.headers().Values("X-Auth-Jwt"); len(got) != 1 || got[0] == forged {
				t.Errorf("logged in, %s: the upstream got X-Auth-Jwt %q", spelling, got)
			}
			// Unprotected routes of the site too.
			if resp, _ := newBrowser(t).get(base+"/open/x", map[string]string{spelling: forged}); resp.StatusCode != http.StatusOK {
				t.Fatalf("open route: %d", resp.StatusCode)
			}
			check("open route, " + spelling)
		}
	})

	t.Run("token_lifetime is exp minus iat", func(t *testing.T) {
		claims := verifyWithJWKS(t, token, fetchJWKS(t, b, base), base)
		if claims.IssuedAt == nil || claims.ExpiresAt == nil || claims.NotBefore == nil {
			t.Fatalf("claims without iat, nbf or exp: %+v", claims)
		}
		if d := claims.ExpiresAt.Sub(claims.IssuedAt.Time); d != 5*time.Minute {
			t.Errorf("exp - iat = %s, want the token_lifetime 5m", d)
		}
		if !claims.NotBefore.Equal(claims.IssuedAt.Time) {
			t.Errorf("nbf %s, iat %s", claims.NotBefore, claims.IssuedAt)
		}
	})

	t.Run("identity_header is what forward auth answers with", func(t *testing.T) {
		resp, _ := b.get(base+"/irma/auth?policy=members", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Jwt") == "" || resp.Header.Get(caddyirma.DefaultIdentityHeader) != "" {
			t.Fatalf("forward auth: %d, X-Auth-Jwt %q, %s %q", resp.StatusCode, resp.Header.Get("X-Auth-Jwt"),
				caddyirma.DefaultIdentityHeader, resp.Header.Get(caddyirma.DefaultIdentityHeader))
		}
		verifyWithJWKS(t, resp.Header.Get("X-Auth-Jwt"), fetchJWKS(t, b, base), base)
	})

	t.Run("cookie_domain is the Domain of every cookie the gateway sets", func(t *testing.T) {
		if resp, _ := b.send("POST", base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if jar.has("gw_login") {
			t.Error("the logout left gw_login")
		}
		names := map[string]bool{}
		for _, c := range jar.all() {
			names[c.Name] = true
			if c.Domain != "example.test" {
				t.Errorf("cookie %s: Domain %q, want example.test", describeCookie(c), c.Domain)
			}
		}
		// The pending cookie, the session cookie and their removals.
		if len(names) < 2 || !names["gw_login"] {
			t.Errorf("cookies seen: %v", names)
		}
	})
}

// TestPromisesUnderscoreHeaders asserts that a client's copy of the
// identity header is removed "reading underscores ... as dashes" where it
// matters: Caddy drops every header with an underscore unless the server
// expects it, so here the server lets X_Auth_Jwt through, as a site with a
// CGI backend that needs such headers might, and only the gateway stands
// between the forged header and the upstream.
func TestPromisesUnderscoreHeaders(t *testing.T) {
	up := newRecordingUpstream(t)
	g := newGateway(t)
	config := g.config(`login {
			identity_header X-Auth-Jwt
		}`, fmt.Sprintf(`irma_auth /members/* {
		require caddy-demo.gateway.person.email
	}
	reverse_proxy %s`, up.addr()))
	caddytest.Start(t, withGlobalOptions(t, config, "servers {\n\t\texpected_underscore_headers X_Auth_Jwt x_app_flag\n\t}"))
	forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
	for _, spelling := range []string{"X_Auth_Jwt", "x_auth_jwt"} {
		resp, _ := newBrowser(t).get(g.base+"/open/x", map[string]string{spelling: forged})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("open route: %d", resp.StatusCode)
		}
		for name, vals := range up.headers() {
			for _, v := range vals {
				if v == forged {
					t.Errorf("%s: the forged %s reached the upstream", spelling, name)
				}
			}
		}
	}
	// The server does let an expected underscore header through: the
	// test would prove nothing otherwise. (X_App_Flag is outside the
	// gateway's header namespace: the gateway leaves it alone.)
	newBrowser(t).get(g.base+"/open/x", map[string]string{"X_App_Flag": forged})
	if got := up.headers().Get("X_app_flag"); got != forged {
		t.Fatalf("an expected underscore header does not reach the upstream (%q): the test proves nothing", got)
	}
}

// TestPromisesAlgorithms asserts "algorithm ES256 | RS256" with "key_file":
// the JWT is signed with the newest key of the file, its header names the
// algorithm and the key, every key of the file is published, and an
// upstream verifies it with golang-jwt and the public key from the file.
func TestPromisesAlgorithms(t *testing.T) {
	for _, tc := range []struct {
		alg  string
		keys func(t *testing.T) (pemData []byte, newest, older crypto.Signer)
	}{
		{"ES256", func(t *testing.T) ([]byte, crypto.Signer, crypto.Signer) {
			newest, older := newKey(t), newKey(t)
			sec1, err := x509.MarshalECPrivateKey(newest)
			if err != nil {
				t.Fatal(err)
			}
			return append(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), pkcs8PEM(t, older)...), newest, older
		}},
		{"RS256", func(t *testing.T) ([]byte, crypto.Signer, crypto.Signer) {
			newest, older := newRSAKey(t), newRSAKey(t)
			pkcs1 := x509.MarshalPKCS1PrivateKey(newest)
			return append(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1}), pkcs8PEM(t, older)...), newest, older
		}},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			pemData, newest, older := tc.keys(t)
			keyFile := filepath.Join(t.TempDir(), "jwt.pem")
			if err := os.WriteFile(keyFile, pemData, 0o600); err != nil {
				t.Fatal(err)
			}
			up := newRecordingUpstream(t)
			g := newGateway(t)
			app := g.start(t, fmt.Sprintf(`login {
			algorithm %s
			key_file  %s
		}`, tc.alg, keyFile), fmt.Sprintf(`irma_auth /members/* {
		require caddy-demo.gateway.person.email
	}
	reverse_proxy %s`, up.addr()))
			alice := (&authSite{base: g.base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "yes")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b, _ := newRecordingBrowser(t, nil)
			b.login(ctx, alice, g.base+"/members/x")
			if resp, body := b.get(g.base+"/members/x", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("after the login: %d %s", resp.StatusCode, body)
			}
			token := up.headers().Get(caddyirma.DefaultIdentityHeader)

			head := jwtHeader(t, token)
			if head["alg"] != tc.alg {
				t.Errorf("JWT header alg %v, want %s", head["alg"], tc.alg)
			}
			// Every key of the file is published; the JWT names the newest.
			jwks := fetchJWKS(t, b, g.base)
			if len(jwks) != 2 {
				t.Fatalf("the JWKS has %d keys, the key file 2", len(jwks))
			}
			for i, want := range []crypto.Signer{newest, older} {
				var found *publicJWK
				for j := range jwks {
					if pub, err := jwks[j].publicKey(); err == nil && pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want.Public()) {
						found = &jwks[j]
					}
				}
				if found == nil {
					t.Errorf("key %d of the file is not in the JWKS", i+1)
					continue
				}
				if found.Alg != tc.alg || found.Use != "sig" || found.Kid == "" {
					t.Errorf("JWKS entry of key %d: %+v", i+1, *found)
				}
				if i == 0 && head["kid"] != found.Kid {
					t.Errorf("the JWT's kid %v is not the newest key's %q", head["kid"], found.Kid)
				}
			}
			// An upstream with the public key from the file, and golang-jwt.
			claims, err := verifyJWT(token, newest.Public(), tc.alg, g.base)
			if err != nil {
				t.Fatalf("the JWT does not verify with the newest key of the file: %v", err)
			}
			if claims.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" || claims.Subject == "" || claims.ID == "" {
				t.Errorf("claims %+v", claims)
			}
			if _, err := verifyJWT(token, older.Public(), tc.alg, g.base); err == nil {
				t.Error("the JWT verifies with the older key of the file too")
			}
			verifyWithJWKS(t, token, jwks, g.base)
		})
	}
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func pkcs8PEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TestPromisesHTTPS asserts "Secure whenever url is https": a gateway on
// https (Caddy's tls internal) sets its pending and session cookies Secure,
// through a real login by the wallet over https. (On http they are not:
// see TestPromisesResponses.)
func TestPromisesHTTPS(t *testing.T) {
	g := newGateway(t)
	app, base, roots := g.startHTTPS(t, "", `irma_auth /members/* {
		require caddy-demo.gateway.person.email
	}
	respond "members {irma.attr.caddy-demo.gateway.person.email}"`)
	trustInProcess(t, roots)
	alice := (&authSite{base: base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, jar := newRecordingBrowser(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}})

	resp, body := b.get(base+"/members/x", nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.TLS == nil {
		t.Fatalf("anonymous: %d (TLS %v) %s", resp.StatusCode, resp.TLS != nil, body)
	}
	if info := parseInfo(t, body); !strings.HasPrefix(info.SessionPtr.URL, base+"/irma/session/") {
		t.Fatalf("the session is not on the https URL: %s", info.SessionPtr.URL)
	}
	// On https without cookie_domain the names start with __Host-: no
	// sibling subdomain or plain-http page can plant such a cookie.
	t.Run("the pending cookie is Secure", func(t *testing.T) {
		c := cookieWithPrefix(resp, "__Host-"+caddyirma.DefaultCookieName+"_pending_")
		if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("pending cookie %s", describeCookie(c))
		}
	})
	t.Run("the session cookie is Secure", func(t *testing.T) {
		b.login(ctx, alice, base+"/members/x")
		resp, body := b.get(base+"/members/x", nil)
		if resp.StatusCode != http.StatusOK || body != "members alice@example.com" {
			t.Fatalf("after the login over https: %d %q", resp.StatusCode, body)
		}
		c := setCookies(resp)["__Host-"+caddyirma.DefaultCookieName]
		if c == nil || c.Domain != "" || c.Path != "/" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("session cookie %s", describeCookie(c))
		}
	})
	t.Run("every cookie the gateway sets is Secure, removals included", func(t *testing.T) {
		if resp, _ := b.send("POST", base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		all := jar.all()
		if len(all) < 3 {
			t.Fatalf("cookies seen: %d", len(all))
		}
		for _, c := range all {
			if !c.Secure {
				t.Errorf("cookie %s is not Secure", describeCookie(c))
			}
		}
	})
}

// startHTTPS runs the gateway's config on https instead of http, with a
// certificate from Caddy's local CA (tls internal), and returns its irma
// app, its base URL and the CA's root.
func (g *gateway) startHTTPS(t *testing.T, irmaExtra, site string) (*caddyirma.App, string, *x509.CertPool) {
	t.Helper()
	base := strings.Replace(g.base, "http://", "https://", 1)
	config := g.config(irmaExtra, "tls internal\n\t"+site)
	if n := strings.Count(config, g.base); n != 2 {
		t.Fatalf("the gateway's config names %s %d times, want 2 (url and site): its shape changed", g.base, n)
	}
	config = strings.ReplaceAll(config, g.base, base)
	// Nothing outside the test: no trust store, no port 80; and no HTTP/3,
	// which needs a UDP socket beside the TCP one the test holds.
	caddytest.Start(t, withGlobalOptions(t, config, "skip_install_trust\n\tauto_https disable_redirects\n\tservers {\n\t\tprotocols h1 h2\n\t}"))
	app := caddytest.App[*caddyirma.App](t, "irma")
	return app, base, localCA(t, filepath.Join(g.scheme.Dir, "caddy"), base)
}

// localCARoot is the file of the root certificate of Caddy's local CA (tls
// internal) in the Caddy storage directory storage.
func localCARoot(storage string) string {
	return filepath.Join(storage, "pki", "authorities", "local", "root.crt")
}

// localCA returns the root of Caddy's local CA in the Caddy storage
// directory storage, once the gateway at base answers over TLS with a
// certificate from it.
func localCA(t testing.TB, storage, base string) *x509.CertPool {
	t.Helper()
	rootFile := localCARoot(storage)
	root, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatalf("Caddy's local CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatalf("no certificate in %s", rootFile)
	}
	// Caddy may still be getting the site's certificate from its CA.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/irma/jwks.json")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer over TLS: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return roots
}

// withGlobalOptions adds options to the global block of a gateway's config.
func withGlobalOptions(t *testing.T, config, options string) string {
	t.Helper()
	const head = "{\n\tadmin off\n"
	if !strings.HasPrefix(config, head) {
		t.Fatalf("the gateway's config does not start with %q: its shape changed", head)
	}
	return head + "\t" + options + "\n" + strings.TrimPrefix(config, head)
}
