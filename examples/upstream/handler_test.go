package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
)

// serve sends a GET for path to a Handler, with the given headers, and returns the response
// and its body.
func serve(t *testing.T, h *Handler, path string, headers ...[2]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, kv := range headers {
		req.Header.Add(kv[0], kv[1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// testHandler serves the route /hello/ for the policy members (alice's).
func testHandler(t *testing.T, s *jwksServer) *Handler {
	return &Handler{Verifier: newTestVerifier(s, nil), Policies: map[string]string{"/hello/": "members"}, Logger: log.New(io.Discard, "", 0)}
}

func TestHandlerJSON(t *testing.T) {
	for _, alg := range []assertion.Algorithm{assertion.EdDSA, assertion.ES256, assertion.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			kr := testRing(t, testKey(t, alg, 0))
			h := testHandler(t, newJWKSServer(t, kr))
			token := mint(t, kr, testIssuer, testAudience, alice)
			resp, body := serve(t, h, "/hello/there",
				[2]string{"X-Irma-Identity", token}, [2]string{"Accept", "application/json"})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			var got Answer
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Policy != "members" || got.Subject != "alice@example.com" || got.Path != "/hello/there" ||
				len(got.Attributes) != 2 || got.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" ||
				got.LegacyHeaders != nil {
				t.Errorf("answer %+v", got)
			}
			// The field names are the contract; check them literally.
			for _, field := range []string{`"policy":`, `"subject":`, `"attributes":`, `"path":`} {
				if !strings.Contains(body, field) {
					t.Errorf("no %s in %s", field, body)
				}
			}
		})
	}
}

func TestHandlerPage(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	h := testHandler(t, newJWKSServer(t, kr))
	h.Header = "X-Custom-Identity"
	token := mint(t, kr, testIssuer, testAudience, alice)
	resp, body := serve(t, h, "/hello/",
		[2]string{"X-Custom-Identity", token},
		[2]string{"Accept", "text/html,application/xhtml+xml"},
		[2]string{"X-Irma-Attr-Email", "<script>alert(1)</script>"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		"Hello from the example upstream",
		"<code>/hello/</code>",
		"<code>members</code>",
		"<td><code>caddy-demo.gateway.person.email</code></td><td>alice@example.com</td>",
		"Alice &lt;b&gt;&amp;&lt;/b&gt; Co",
		"X-Irma-Attr-Email",
		"&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	for _, bad := range []string{"<script>", "<b>&</b>", token} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestHandlerRejects(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	s := newJWKSServer(t, kr)
	valid := mint(t, kr, testIssuer, testAudience, alice)
	for _, tc := range []struct {
		name    string
		headers [][2]string
		reason  string
	}{
		{"missing header", nil, "no identity token in the X-Irma-Identity header: log in through the gateway"},
		{"empty header", [][2]string{{"X-Irma-Identity", ""}}, "malformed identity token"},
		{"two tokens", [][2]string{{"X-Irma-Identity", valid}, {"X-Irma-Identity", valid}}, "more than one X-Irma-Identity header"},
		{"plain attribute headers alone", [][2]string{{"X-Irma-Attr-Email", "admin@example.com"}}, "no identity token"},
		{"wrong audience", [][2]string{{"X-Irma-Identity", mint(t, kr, testIssuer, "other", alice)}}, "identity token is for another audience"},
		{"wrong issuer", [][2]string{{"X-Irma-Identity", mint(t, kr, "http://evil.test", testAudience, alice)}}, "identity token is from another issuer"},
		{"tampered", [][2]string{{"X-Irma-Identity", tamper(t, valid)}}, "identity token has an invalid signature"},
		{"alg none", [][2]string{{"X-Irma-Identity", withHeader(t, valid, map[string]any{"alg": "none", "kid": kr.KeyID()}, "")}}, "invalid signature or a forbidden alg"},
		{"unknown key", [][2]string{{"X-Irma-Identity", mint(t, testRing(t, testKey(t, assertion.EdDSA, 3)), testIssuer, testAudience, alice)}}, "identity token signed by an unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := serve(t, testHandler(t, s), "/hello/", append(tc.headers, [2]string{"Accept", "application/json"})...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
			}
			if !strings.Contains(body, tc.reason) {
				t.Errorf("body %q, want %q", body, tc.reason)
			}
			if strings.Contains(body, "eyJ") || strings.Contains(body, "alice") || strings.Contains(body, "goroutine") {
				t.Errorf("body %q tells too much", body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestHandlerKeysUnavailable(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	s := newJWKSServer(t, kr)
	s.Close()
	resp, body := serve(t, testHandler(t, s), "/hello/", [2]string{"X-Irma-Identity", mint(t, kr, testIssuer, testAudience, alice)})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "cannot fetch the gateway's keys") {
		t.Errorf("Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
	}
	if strings.Contains(body, "127.0.0.1") {
		t.Errorf("body %q names the JWKS address", body)
	}
}

func TestAcceptsJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                    false,
		"application/json":                    true,
		"text/html, application/json;q=0.9":   true,
		"text/html,application/xhtml+xml,*/*": false,
		"application/jsonx":                   false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", accept)
		if got := acceptsJSON(r); got != want {
			t.Errorf("acceptsJSON(%q) = %v", accept, got)
		}
	}
}

// TestHandlerRoutePolicy: called directly, the app takes a token only on the paths of the policy
// that the token was minted for (by default the demo's: /members/, /adults/, /club/), and only on
// canonical paths, so that a login for members does not open /adults/.
func TestHandlerRoutePolicy(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	s := newJWKSServer(t, kr)
	members := mint(t, kr, testIssuer, testAudience, alice)
	adult := alice
	adult.Policy = "adults"
	adults := mint(t, kr, testIssuer, testAudience, adult)
	for _, tc := range []struct {
		path   string
		token  string
		status int
		reason string
	}{
		{"/members/", members, http.StatusOK, ""},
		{"/members/deep/page", members, http.StatusOK, ""},
		{"/adults/", adults, http.StatusOK, ""},
		{"/adults/", members, http.StatusForbidden, `identity token is for the policy "members", not "adults" that this path requires`},
		{"/adults/page", members, http.StatusForbidden, `not "adults"`},
		{"/club/", members, http.StatusForbidden, `not "club"`},
		{"/members/", adults, http.StatusForbidden, `not "members"`},
		{"/", members, http.StatusForbidden, "no policy is configured for this path"},
		{"/membersonly/", members, http.StatusForbidden, "no policy is configured for this path"},
		{"/ADULTS/", members, http.StatusForbidden, "no policy is configured for this path"},
		{"/members", members, http.StatusForbidden, "no policy is configured for this path"},
		{"/members/../adults/", members, http.StatusBadRequest, "path is not canonical"},
		{"/members/%2e%2e/adults/", members, http.StatusBadRequest, "path is not canonical"},
		{"/members/..%2Fadults/", members, http.StatusBadRequest, "path is not canonical"},
		{"/members//x", members, http.StatusBadRequest, "path is not canonical"},
		{"/members/./x", members, http.StatusBadRequest, "path is not canonical"},
		{"/adults/", "", http.StatusUnauthorized, "no identity token"},
	} {
		t.Run(tc.path+" "+tc.reason, func(t *testing.T) {
			headers := [][2]string{{"Accept", "application/json"}}
			if tc.token != "" {
				headers = append(headers, [2]string{"X-Irma-Identity", tc.token})
			}
			h := testHandler(t, s)
			h.Policies = nil // the demo's
			resp, body := serve(t, h, tc.path, headers...)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.reason) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.reason)
			}
			if tc.status != http.StatusOK && (strings.Contains(body, "alice") || strings.Contains(body, "eyJ")) {
				t.Errorf("the refusal tells too much: %q", body)
			}
		})
	}
}

// TestHandlerPolicies: the longest prefix decides, so an app can serve one policy everywhere but
// a stronger one under a prefix.
func TestHandlerPolicies(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	s := newJWKSServer(t, kr)
	members := mint(t, kr, testIssuer, testAudience, alice)
	adult := alice
	adult.Policy = "adults"
	adults := mint(t, kr, testIssuer, testAudience, adult)
	h := testHandler(t, s)
	h.Policies = map[string]string{"/": "members", "/adults/": "adults"}
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/", members, http.StatusOK},
		{"/anything/else", members, http.StatusOK},
		{"/adults", members, http.StatusOK}, // not under the directory /adults/
		{"/adults/", members, http.StatusForbidden},
		{"/adults/x", members, http.StatusForbidden},
		{"/adults/x", adults, http.StatusOK},
		{"/x", adults, http.StatusForbidden},
	} {
		resp, body := serve(t, h, tc.path, [2]string{"X-Irma-Identity", tc.token}, [2]string{"Accept", "application/json"})
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.path, resp.StatusCode, body, tc.status)
		}
	}
}

func TestAddPolicy(t *testing.T) {
	policies := map[string]string{}
	for _, v := range []string{"/members/=members", "/=open", "/a/b=x=y"} {
		if err := addPolicy(policies, v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	if policies["/members/"] != "members" || policies["/"] != "open" || policies["/a/b"] != "x=y" {
		t.Errorf("policies %v", policies)
	}
	for _, v := range []string{"members", "/members/", "/members/=", "members=members", "=members", "/a/../b/=x", "//x=y", "/members/=again"} {
		if err := addPolicy(policies, v); err == nil {
			t.Errorf("%q: no error", v)
		}
	}
}
