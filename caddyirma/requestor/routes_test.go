package requestor

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// startSession starts a session through the API and returns its requestor token.
func startSession(t *testing.T, url, request string) string {
	t.Helper()
	r := do(t, http.MethodPost, url+"/session", jsonHeaders(testToken), request)
	if r.status != 200 {
		t.Fatalf("start session: %d %s", r.status, r.body)
	}
	var pkg server.SessionPackage
	if err := json.Unmarshal([]byte(r.body), &pkg); err != nil {
		t.Fatal(err)
	}
	return string(pkg.Token)
}

func TestSessionRoutes(t *testing.T) {
	ts, _ := setup(t, nil)
	nokey, _ := setup(t, func(c *Config) { c.JWTKey = nil })
	disclosure := startSession(t, ts.URL, discloseFullname)
	issuance := startSession(t, ts.URL, issueMembership)
	signature := startSession(t, ts.URL, signEmail)
	nokeySession := startSession(t, nokey.URL, discloseFullname)
	const unknown = "AAAAAAAAAAAAAAAAAAAA"

	t.Run("status", func(t *testing.T) {
		r := do(t, http.MethodGet, ts.URL+"/session/"+disclosure+"/status", nil, "")
		if r.status != 200 || r.body != `"INITIALIZED"` || !strings.HasPrefix(r.ctype, "application/json") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("result before completion", func(t *testing.T) {
		r := do(t, http.MethodGet, ts.URL+"/session/"+disclosure+"/result", nil, "")
		var res server.SessionResult
		if r.status != 200 || json.Unmarshal([]byte(r.body), &res) != nil {
			t.Fatalf("%+v", r)
		}
		if res.Status != irma.ServerStatusInitialized || res.Type != irma.ActionDisclosing || string(res.Token) != disclosure || res.ProofStatus != "" {
			t.Fatalf("result %s", r.body)
		}
	})
	t.Run("issuance result", func(t *testing.T) {
		r := do(t, http.MethodGet, ts.URL+"/session/"+issuance+"/result", nil, "")
		var res server.SessionResult
		if r.status != 200 || json.Unmarshal([]byte(r.body), &res) != nil || res.Type != irma.ActionIssuing || res.Status != irma.ServerStatusInitialized {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("statusevents without SSE", func(t *testing.T) {
		rerr := checkError(t, do(t, http.MethodGet, ts.URL+"/session/"+disclosure+"/statusevents", nil, ""), 500, "SSE_DISABLED")
		if rerr.Description != "Server sent events disabled" {
			t.Fatal(rerr)
		}
		checkError(t, do(t, http.MethodGet, ts.URL+"/session/"+unknown+"/statusevents", nil, ""), 501, "UNSUPPORTED")
	})
	t.Run("publickey", func(t *testing.T) {
		r := do(t, http.MethodGet, ts.URL+"/publickey", nil, "")
		if r.status != 200 || !strings.HasPrefix(r.ctype, "text/plain") {
			t.Fatalf("%+v", r)
		}
		if _, err := jwt.ParseRSAPublicKeyFromPEM([]byte(r.body)); err != nil {
			t.Fatal(err)
		}
		checkError(t, do(t, http.MethodGet, nokey.URL+"/publickey", nil, ""), 501, "UNSUPPORTED")
	})
	pub, err := jwt.ParseRSAPublicKeyFromPEM([]byte(do(t, http.MethodGet, ts.URL+"/publickey", nil, "").body))
	if err != nil {
		t.Fatal(err)
	}
	for token, sub := range map[string]string{disclosure: "disclosing_result", issuance: "issuing_result", signature: "signing_result"} {
		t.Run("result-jwt "+sub, func(t *testing.T) {
			r := do(t, http.MethodGet, ts.URL+"/session/"+token+"/result-jwt", nil, "")
			if r.status != 200 || !strings.HasPrefix(r.ctype, "text/plain") {
				t.Fatalf("%+v", r)
			}
			claims := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(r.body, claims, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
				t.Fatal(err)
			}
			if claims["sub"] != sub || claims["iss"] != "test-gateway" || claims["token"] != token || claims["status"] != "INITIALIZED" {
				t.Fatalf("claims %v", claims)
			}
		})
	}
	t.Run("getproof", func(t *testing.T) {
		r := do(t, http.MethodGet, ts.URL+"/session/"+disclosure+"/getproof", nil, "")
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(r.body, claims, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if claims["sub"] != "disclosure_result" || claims["iss"] != "test-gateway" {
			t.Fatalf("claims %v", claims)
		}
	})
	t.Run("result-jwt without key", func(t *testing.T) {
		for _, route := range []string{"result-jwt", "getproof"} {
			rerr := checkError(t, do(t, http.MethodGet, nokey.URL+"/session/"+nokeySession+"/"+route, nil, ""), 500, "EXCEPTION")
			if rerr.Message != "JWT signing not supported" {
				t.Fatal(rerr)
			}
		}
	})
	t.Run("unknown session", func(t *testing.T) {
		for _, route := range []string{"status", "result", "result-jwt", "getproof"} {
			checkError(t, do(t, http.MethodGet, ts.URL+"/session/"+unknown+"/"+route, nil, ""), 400, "SESSION_UNKNOWN")
		}
		checkError(t, do(t, http.MethodDelete, ts.URL+"/session/"+unknown, nil, ""), 400, "SESSION_UNKNOWN")
	})
	t.Run("malformed token", func(t *testing.T) {
		rerr := checkError(t, do(t, http.MethodGet, ts.URL+"/session/short/status", nil, ""), 400, "INVALID_REQUEST")
		if !strings.Contains(rerr.Message, "requestorToken") {
			t.Fatal(rerr)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodGet, "/session"},
			{http.MethodPut, "/session"},
			{http.MethodPost, "/session/" + disclosure + "/status"},
			{http.MethodGet, "/session/" + disclosure},
			{http.MethodPost, "/publickey"},
			{http.MethodDelete, "/session/" + disclosure + "/result"},
		} {
			r := do(t, c.method, ts.URL+c.path, nil, "")
			if r.status != 405 || r.body != "" {
				t.Fatalf("%s %s: %+v", c.method, c.path, r)
			}
		}
	})
	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/", "/sessions", "/session/" + disclosure + "/nope", "/irma/session"} {
			if r := do(t, http.MethodGet, ts.URL+p, nil, ""); r.status != 404 {
				t.Fatalf("%s: %+v", p, r)
			}
		}
		// POST /revocation is served (revocation_test.go); nothing below it.
		if r := do(t, http.MethodPost, ts.URL+"/revocation/x", jsonHeaders(testToken), "{}"); r.status != 404 {
			t.Fatalf("POST /revocation/x: %+v", r)
		}
	})
	t.Run("health", func(t *testing.T) {
		// As irma server: text/plain "OK", without authentication; GET only
		// (HEAD too is 405, chi routes no HEAD to GET); no trailing slash.
		if r := do(t, http.MethodGet, ts.URL+"/health?x=1", nil, ""); r.status != 200 || r.body != "OK" || r.ctype != "text/plain" {
			t.Fatalf("%+v", r)
		}
		for _, m := range []string{http.MethodPost, http.MethodHead, http.MethodDelete} {
			if r := do(t, m, ts.URL+"/health", nil, ""); r.status != 405 || r.body != "" {
				t.Fatalf("%s: %+v", m, r)
			}
		}
		if r := do(t, http.MethodGet, ts.URL+"/health/", nil, ""); r.status != 404 {
			t.Fatalf("trailing slash: %+v", r)
		}
	})
	t.Run("delete", func(t *testing.T) {
		r := do(t, http.MethodDelete, ts.URL+"/session/"+signature, nil, "")
		if r.status != 200 || r.body != "" {
			t.Fatalf("%+v", r)
		}
		r = do(t, http.MethodGet, ts.URL+"/session/"+signature+"/status", nil, "")
		if r.status != 200 || r.body != `"CANCELLED"` {
			t.Fatalf("after delete: %+v", r)
		}
	})
}

func TestBodyLimit(t *testing.T) {
	ts, _ := setup(t, func(c *Config) { c.MaxBodySize = 1024 })
	big := `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.fullname"]]],"x":"` + strings.Repeat("a", 2048) + `"}`
	rerr := checkError(t, do(t, http.MethodPost, ts.URL+"/session", jsonHeaders(testToken), big), 400, "INVALID_REQUEST")
	if !strings.Contains(rerr.Message, "too large") {
		t.Fatal(rerr)
	}
	// Just under the limit still works.
	if r := do(t, http.MethodPost, ts.URL+"/session", jsonHeaders(testToken), discloseFullname); r.status != 200 {
		t.Fatalf("%+v", r)
	}
}
