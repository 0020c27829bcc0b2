package caddyirma

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestCORSOrigins: cors_origins takes origins exactly as browsers send
// them, and refuses anything else with an error that names the setting
// and the value.
func TestCORSOrigins(t *testing.T) {
	for _, ok := range []string{"https://app.example.com", "http://localhost:8080", "http://127.0.0.1:5173", "https://[2001:db8::1]", "http://[::1]:8080", "https://xn--bcher-kva.example"} {
		if _, err := newCORSPolicy([]string{ok}); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"*":                           "no wildcards",
		"https://*.example.com":       "no wildcards",
		"null":                        "null origin",
		"app.example.com":             "http or https origin",
		"ftp://app.example.com":       "http or https origin",
		"https://":                    "http or https origin",
		"mailto:a@example.com":        "http or https origin",
		"https://app.example.com/":    "without user, path",
		"https://app.example.com/x":   "without user, path",
		"https://app.example.com?x":   "without user, path",
		"https://app.example.com#x":   "without user, path",
		"https://u:p@app.example.com": "without user, path",
		"https://App.Example.com":     "write it as browsers send it: https://app.example.com",
		"HTTPS://app.example.com":     "write it as browsers send it: https://app.example.com",
		"https://app.example.com:443": "write it as browsers send it: https://app.example.com",
		"http://app.example.com:80":   "write it as browsers send it: http://app.example.com",
		"https://app.example.com:":    "write it as browsers send it: https://app.example.com",
		"https://bücher.example":      "ASCII form",
		"http://localhost:09000":      `port "09000"`,
		"http://localhost:0":          `port "0"`,
		"http://localhost:99999":      `port "99999"`,
		"http://127.1:8080":           `host "127.1"`,
		"http://2130706433":           `host "2130706433"`,
		"http://0x7f.0.0.1":           `host "0x7f.0.0.1"`,
		"http://[::ffff:127.0.0.1]":   "write the address as browsers do, such as 127.0.0.1",
		"http://[2001:db8:0::1]":      "write the address as browsers do, such as 2001:db8::1",
		"https://under_score.example": `host "under_score.example"`,
		"https://[::1":                "missing ']'",
	} {
		_, err := newCORSPolicy([]string{"https://ok.example", bad})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `irma_endpoints: cors_origins "`+bad+`"`) {
			t.Errorf("%q: %v, want an error naming irma_endpoints: cors_origins and %q", bad, err, want)
		}
	}
	if _, err := newCORSPolicy([]string{"https://a.example", "https://a.example"}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("an origin given twice: %v", err)
	}
	if p, err := newCORSPolicy(nil); p != nil || err != nil {
		t.Errorf("no origins: %v, %v; want no policy", p, err)
	}
}

// TestCORSOriginsJSON: in JSON config too, a bad origin stops the config
// from loading, naming the setting and the value, and starts nothing.
func TestCORSOriginsJSON(t *testing.T) {
	g := newGateway(t)
	cfg, err := caddytest.Adapt(g.caddyfile(""))
	if err != nil {
		t.Fatal(err)
	}
	const handler = `"handler":"irma_endpoints"`
	if !bytes.Contains(cfg, []byte(handler)) {
		t.Fatalf("no irma_endpoints in %s", cfg)
	}
	var c caddy.Config
	if err := json.Unmarshal(bytes.Replace(cfg, []byte(handler), []byte(handler+`,"cors_origins":["https://app.example","*"]`), 1), &c); err != nil {
		t.Fatal(err)
	}
	persist := false
	c.Admin = &caddy.AdminConfig{Disabled: true, Config: &caddy.ConfigSettings{Persist: &persist}}
	if cfg, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	err = caddy.Load(cfg, true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("a config with cors_origins * loaded")
	}
	if !strings.Contains(err.Error(), `irma_endpoints: cors_origins "*": no wildcards`) {
		t.Errorf("error %q does not name the setting and its value", err)
	}
	assertNoServers(t)
}

// TestCORSHeaders runs a gateway whose irma_endpoints allow one other
// origin, with a real session, and checks which requests get CORS: the
// frontend's routes with their own methods and headers, for that origin
// only; never the Yivi app's protocol, login, logout or auth; preflights
// answered by the gateway without touching the session. Then the same
// site without cors_origins: no CORS headers anywhere.
func TestCORSHeaders(t *testing.T) {
	const app = "http://app.example:8080"
	g := newGateway(t)
	config := strings.Replace(g.caddyfile(""), "\tirma_endpoints\n", "\tirma_endpoints {\n\t\tcors_origins https://other.example "+app+"\n\t}\n", 1)
	caddytest.Start(t, config)
	srv, err := caddytest.App[*App](t, "irma").Server()
	if err != nil {
		t.Fatal(err)
	}
	qr, token, frontend, err := srv.StartSession(irma.NewDisclosureRequest(g.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(qr.URL)
	if err != nil {
		t.Fatal(err)
	}
	session := g.base() + u.Path // .../irma/session/{client token}
	auth := string(frontend.Authorization)
	preflight := func(method, headers string) map[string]string {
		h := map[string]string{"Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	withAuth := map[string]string{"Authorization": auth}

	type want struct {
		status  int
		allowed bool // Access-Control-Allow-Origin is the origin
		vary    bool // Vary: Origin
	}
	allowedPreflight := want{http.StatusNoContent, true, true}
	refusedPreflight := want{http.StatusForbidden, false, true}
	cases := []struct {
		name, method, url, origin string
		header                    map[string]string
		want                      want
	}{
		{"preflight statusevents", "OPTIONS", session + "/frontend/statusevents", app, preflight("GET", "authorization,cache-control"), allowedPreflight},
		{"preflight status", "OPTIONS", session + "/frontend/status", app, preflight("GET", "authorization"), allowedPreflight},
		{"preflight options", "OPTIONS", session + "/frontend/options", app, preflight("POST", "authorization,content-type"), allowedPreflight},
		{"preflight pairingcompleted", "OPTIONS", session + "/frontend/pairingcompleted", app, preflight("POST", "Authorization"), allowedPreflight},
		{"preflight legacy statusevents", "OPTIONS", session + "/statusevents", app, preflight("GET", "cache-control"), allowedPreflight},
		{"preflight cancel", "OPTIONS", session, app, preflight("DELETE", ""), allowedPreflight},
		{"preflight another origin", "OPTIONS", session + "/frontend/status", "http://evil.example", preflight("GET", "authorization"), refusedPreflight},
		{"preflight another port", "OPTIONS", session + "/frontend/status", "http://app.example:8081", preflight("GET", "authorization"), refusedPreflight},
		{"preflight another scheme", "OPTIONS", session + "/frontend/status", "https://app.example:8080", preflight("GET", "authorization"), refusedPreflight},
		{"preflight a subdomain", "OPTIONS", session + "/frontend/status", "http://x.app.example:8080", preflight("GET", "authorization"), refusedPreflight},
		{"preflight null origin", "OPTIONS", session + "/frontend/status", "null", preflight("GET", "authorization"), refusedPreflight},
		{"preflight no origin", "OPTIONS", session + "/frontend/status", "", preflight("GET", "authorization"), refusedPreflight},
		{"preflight cancel another origin", "OPTIONS", session, "http://evil.example", preflight("DELETE", ""), refusedPreflight},
		{"preflight another method", "OPTIONS", session + "/frontend/status", app, preflight("POST", "authorization"), refusedPreflight},
		{"preflight delete options", "OPTIONS", session + "/frontend/options", app, preflight("DELETE", ""), refusedPreflight},
		{"preflight another header", "OPTIONS", session + "/frontend/options", app, preflight("POST", "authorization,x-irma-identity"), refusedPreflight},
		{"preflight cookie header", "OPTIONS", session + "/frontend/options", app, preflight("POST", "cookie"), refusedPreflight},
		{"preflight the app's session request", "OPTIONS", session, app, preflight("GET", ""), refusedPreflight},
		{"preflight a static session's start", "OPTIONS", g.base() + "/irma/session/ticket", app, preflight("POST", "content-type"), refusedPreflight},
		{"preflight proofs", "OPTIONS", session + "/proofs", app, preflight("POST", "content-type"), want{http.StatusNotFound, false, false}},
		{"preflight commitments", "OPTIONS", session + "/commitments", app, preflight("POST", "content-type"), want{http.StatusNotFound, false, false}},
		{"preflight request", "OPTIONS", session + "/request", app, preflight("GET", ""), want{http.StatusNotFound, false, false}},
		{"preflight logout", "OPTIONS", g.base() + "/irma/logout", app, preflight("POST", ""), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight login", "OPTIONS", g.base() + "/irma/login?policy=x", app, preflight("GET", ""), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight auth", "OPTIONS", g.base() + "/irma/auth?policy=x", app, preflight("GET", ""), want{http.StatusNotFound, false, false}},
		{"preflight jwks", "OPTIONS", g.base() + "/irma/jwks.json", app, preflight("GET", ""), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight verify", "OPTIONS", g.base() + "/irma/verify", app, preflight("POST", "content-type"), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight health", "OPTIONS", g.base() + "/irma/health", app, preflight("GET", ""), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight timestamp", "OPTIONS", g.base() + "/irma/timestamp/", app, preflight("POST", "content-type"), want{http.StatusMethodNotAllowed, false, false}},
		{"preflight revocation", "OPTIONS", g.base() + "/irma/revocation/caddy-demo.gateway.person/events/0/0/1", app, preflight("GET", ""), want{http.StatusNotFound, false, false}},
		{"preflight outside the prefix", "OPTIONS", g.base() + "/page", app, preflight("GET", ""), want{http.StatusOK, false, false}},
		{"status", "GET", session + "/frontend/status", app, withAuth, want{http.StatusOK, true, true}},
		{"legacy status", "GET", session + "/status", app, nil, want{http.StatusOK, true, true}},
		{"status another origin", "GET", session + "/frontend/status", "http://evil.example", withAuth, want{http.StatusOK, false, true}},
		{"status no origin", "GET", session + "/frontend/status", "", withAuth, want{http.StatusOK, false, true}},
		{"status wrong authorization", "GET", session + "/frontend/status", app, map[string]string{"Authorization": "x"}, want{http.StatusForbidden, true, true}},
		{"the app's session request", "GET", session, app, nil, want{http.StatusBadRequest, false, true}},
		{"proofs", "POST", session + "/proofs", app, nil, want{http.StatusBadRequest, false, false}},
		{"jwks", "GET", g.base() + "/irma/jwks.json", app, nil, want{http.StatusOK, false, false}},
		{"health", "GET", g.base() + "/irma/health", app, nil, want{http.StatusOK, false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := corsRequest(t, tc.method, tc.url, tc.origin, tc.header)
			h := resp.Header
			if resp.StatusCode != tc.want.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want.status)
			}
			if got := h.Get("Access-Control-Allow-Origin"); (got == tc.origin && got != "") != tc.want.allowed || (!tc.want.allowed && got != "") {
				t.Errorf("Access-Control-Allow-Origin %q (allowed: %v)", got, tc.want.allowed)
			}
			if varies := strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin"); varies != tc.want.vary {
				t.Errorf("Vary %q, want Origin: %v", h.Values("Vary"), tc.want.vary)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Error("Access-Control-Allow-Credentials is set")
			}
			if tc.want == allowedPreflight {
				if got, want := h.Get("Access-Control-Allow-Methods"), tc.header["Access-Control-Request-Method"]; got != want {
					t.Errorf("Access-Control-Allow-Methods %q, want %q alone", got, want)
				}
				if got := h.Get("Access-Control-Allow-Headers"); got != "Accept, Authorization, Cache-Control, Content-Type" {
					t.Errorf("Access-Control-Allow-Headers %q", got)
				}
			} else if h.Get("Access-Control-Allow-Methods")+h.Get("Access-Control-Allow-Headers")+h.Get("Access-Control-Max-Age") != "" {
				t.Errorf("CORS headers on a refusal: %v", h)
			}
		})
	}
	// None of those preflights, the DELETE ones included, touched the session.
	if res, err := srv.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
		t.Fatalf("the session after the preflights: %+v, %v", res, err)
	}

	// Two Origin headers are no origin.
	req, _ := http.NewRequest("GET", session+"/frontend/status", nil)
	req.Header["Origin"] = []string{app, app}
	req.Header.Set("Authorization", auth)
	if resp := doCORS(t, req); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("two Origin headers got Access-Control-Allow-Origin")
	}

	// The status stream carries it too, from its first byte.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	req, _ = http.NewRequestWithContext(ctx, "GET", session+"/frontend/statusevents", nil)
	req.Header.Set("Origin", app)
	req.Header.Set("Authorization", auth)
	if resp := doCORS(t, req); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != app || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("statusevents: %d %v", resp.StatusCode, resp.Header)
	}
	cancel()

	// The page's cancel button: its DELETE ends the session, and says so to the page.
	if resp := corsRequest(t, "DELETE", session, app, nil); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("DELETE: %d %v", resp.StatusCode, resp.Header)
	}
	if res, err := srv.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusCancelled {
		t.Errorf("the session after the DELETE: %+v, %v", res, err)
	}

	// Without cors_origins: no CORS header at all, and preflights are no route.
	if err := caddytest.Load(g.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		resp := corsRequest(t, tc.method, tc.url, tc.origin, tc.header)
		for name := range resp.Header {
			if strings.HasPrefix(name, "Access-Control-") || (name == "Vary" && strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin")) {
				t.Errorf("%s without cors_origins: %s: %v", tc.name, name, resp.Header.Values(name))
			}
		}
		if tc.method == "OPTIONS" && strings.HasPrefix(tc.url, session) && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s without cors_origins: %d, want 404", tc.name, resp.StatusCode)
		}
	}
	// Nor the status stream (irmaserver's own would say *).
	if srv, err = caddytest.App[*App](t, "irma").Server(); err != nil {
		t.Fatal(err)
	}
	if qr, _, frontend, err = srv.StartSession(irma.NewDisclosureRequest(g.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)), nil, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", qr.URL+"/frontend/statusevents", nil)
	req.Header.Set("Origin", app)
	req.Header.Set("Authorization", string(frontend.Authorization))
	if resp := doCORS(t, req); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("statusevents without cors_origins: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestCORSNotRunning: while the IRMA server is not running, a preflight is
// answered all the same, and the 503 that the frontend then gets carries
// Access-Control-Allow-Origin, so that its page can read it.
func TestCORSNotRunning(t *testing.T) {
	const app = "https://app.example"
	cors, err := newCORSPolicy([]string{app})
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoints{app: &App{prefix: "/irma/", started: make(chan struct{}), logger: zap.NewNop()}, cors: cors}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the wait for the start ends at once
	r := httptest.NewRequest("OPTIONS", "/irma/session/abc/frontend/status", nil).WithContext(ctx)
	r.Header.Set("Origin", app)
	r.Header.Set("Access-Control-Request-Method", "GET")
	r.Header.Set("Access-Control-Request-Headers", "authorization")
	w := httptest.NewRecorder()
	if err := e.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != app {
		t.Errorf("preflight: %v %d %v", err, w.Code, w.Header())
	}
	r = httptest.NewRequest("GET", "/irma/session/abc/frontend/status", nil).WithContext(ctx)
	r.Header.Set("Origin", app)
	w = httptest.NewRecorder()
	if err := e.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusServiceUnavailable || w.Header().Get("Access-Control-Allow-Origin") != app {
		t.Errorf("GET: %v %d %v", err, w.Code, w.Header())
	}
}

func corsRequest(t *testing.T, method, url, origin string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return doCORS(t, req)
}

// doCORS sends req and returns its response with the body closed.
func doCORS(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	resp.Body.Close()
	return resp
}
