package caddyirma

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// disclosure is a static session request of the email address, with the
// given members before its request.
func disclosure(members string) string {
	return "`{" + members + `"request": {"@context": "https://irma.app/ld/request/disclosure/v2", "disclose": [[["caddy-demo.gateway.person.email"]]]}}` + "`"
}

// TestStaticSessionLoadErrors: a static session that irma server would
// refuse, or that the gateway cannot run, stops the config from loading,
// with an error that names static_sessions, the name and what is wrong.
func TestStaticSessionLoadErrors(t *testing.T) {
	g := newGateway(t)
	callback := `"callbackUrl": "http://127.0.0.1:1/cb", `
	for _, tc := range []struct {
		name, lines string
		want        []string
	}{
		{"name", "allow_unsigned_callbacks\n\t\tstatic_session door-1 " + disclosure(callback), []string{`static_sessions "door-1"`, "not a valid name"}},
		{"no callback", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(""), []string{`static_sessions "door"`, "no callbackUrl and no nextSession URL"}},
		{"empty next session URL", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(`"nextSession": {"url": ""}, `), []string{`static_sessions "door"`, "no callbackUrl and no nextSession URL"}},
		{"next session URL", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(`"nextSession": {"url": "/next"}, `), []string{`static_sessions "door"`, `nextSession "/next"`, "absolute http or https URL"}},
		{"next session without result key", "static_session door " + disclosure(`"nextSession": {"url": "http://127.0.0.1:1/next"}, `), []string{`static_sessions "door"`, "jwt_privkey_file", "allow_unsigned_callbacks"}},
		{"callback URL", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(`"callbackUrl": "ftp://example.com/cb", `), []string{`static_sessions "door"`, `callbackUrl "ftp://example.com/cb"`}},
		{"fragment", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(`"callbackUrl": "http://localhost:2019/stop#", `), []string{`static_sessions "door"`, `callbackUrl "http://localhost:2019/stop#"`, "fragment"}},
		{"query", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(`"nextSession": {"url": "http://localhost:2019/stop?x"}, `), []string{`static_sessions "door"`, `nextSession "http://localhost:2019/stop?x"`, "query"}},
		{"no result key", "static_session door " + disclosure(callback), []string{`static_sessions "door"`, "jwt_privkey_file", "allow_unsigned_callbacks"}},
		{"timeout", "allow_unsigned_callbacks\n\t\tstatic_session door " + disclosure(callback+`"timeout": 3600, `), []string{`static_sessions "door"`, "timeout 3600 s", "max_session_lifetime (15m0s)"}},
		{"issuance", "allow_unsigned_callbacks\n\t\tstatic_session door `{" + callback + `"request": {"@context": "https://irma.app/ld/request/issuance/v2", "credentials": [{"credential": "caddy-demo.gateway.person", "attributes": {"email": "a@example.com"}}]}}` + "`",
			[]string{`static_sessions "door"`, "issuing session", "disclosure or a signature"}},
		{"unknown attribute", "allow_unsigned_callbacks\n\t\tstatic_session door " + strings.Replace(disclosure(callback), "person.email", "person.shoesize", 1), []string{`static_sessions "door"`, "caddy-demo.gateway.person.shoesize", "not in the schemes"}},
		{"unknown credential", "allow_unsigned_callbacks\n\t\tstatic_session door " + strings.Replace(disclosure(callback), "person.email", "passport", 1), []string{`static_sessions "door"`, "caddy-demo.gateway.passport", "not in the schemes"}},
		{"not a request", "allow_unsigned_callbacks\n\t\tstatic_session door `{\"callbackUrl\": \"http://127.0.0.1:1/cb\"}`", []string{`static_sessions "door"`, "not a session request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, g.caddyfile(tc.lines), tc.want...)
		})
	}
}

// TestStaticSessionRoutes: POST session/<name> starts a session of a
// configured name only, and answers with its pointer; every other name
// and method stays not found, and another site's page cannot start one.
func TestStaticSessionRoutes(t *testing.T) {
	g := newGateway(t)
	g.start(t, "allow_unsigned_callbacks\n\t\tstatic_session door "+disclosure(`"callbackUrl": "http://127.0.0.1:1/cb", `))
	post := func(path string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", g.url()+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, resp.Header.Get("Cache-Control"), " ")
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	code, body := post("session/door", nil)
	if code != 200 || !strings.HasPrefix(body, "no-store ") || !strings.Contains(body, `"irmaqr":"disclosing"`) || !strings.Contains(body, `"u":"`+g.url()+"session/") {
		t.Errorf("POST session/door: %d %s", code, body)
	}
	for _, path := range []string{"session/Door", "session/window", "session/door/", "session/door/status", "session/"} {
		if code, body := post(path, nil); code != 404 {
			t.Errorf("POST %s: %d %s", path, code, body)
		}
	}
	if code, _ := get(t, g.url()+"session/door", nil); code == 200 {
		t.Errorf("GET session/door: %d", code)
	}
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		if code, body := post("session/door", h); code != 403 || !strings.Contains(body, "cross_site") {
			t.Errorf("POST session/door with %v: %d %s", h, code, body)
		}
	}
	if code, body := post("session/door", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Errorf("POST session/door from the gateway's own page: %d %s", code, body)
	}
}

// TestStaticSessionCallbackIsTheGateways: irmaserver never learns a static
// session's callbackUrl (it would post a failing receiver the result
// again at every sweep); the gateway keeps it, and posts once.
func TestStaticSessionCallbackIsTheGateways(t *testing.T) {
	a := &App{AllowUnsignedCallbacks: true, ScanTimeout: caddy.Duration(time.Minute), MaxSessionLifetime: caddy.Duration(time.Hour)}
	raw := strings.Trim(disclosure(`"callbackUrl": "https://app.example/cb", "nextSession": {"url": "https://app.example/next"}, `), "`")
	s, err := a.checkStaticSession("door", json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	if s.callback != "https://app.example/cb" || strings.Contains(string(s.request), "app.example/cb") || !strings.Contains(string(s.request), "app.example/next") {
		t.Errorf("callback %q, the server's request %s", s.callback, s.request)
	}
}
