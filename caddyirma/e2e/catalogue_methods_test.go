package e2e

import (
	"net/http"
	"testing"
)

// methodCase is a request of some method, by Alice or by nobody.
type methodCase struct {
	name          string
	method        string
	target        string
	lines         []string
	body          string
	alice         bool
	status        int
	reachesMethod string // the method the upstream must get; "": nothing reaches it
}

// catalogueMethodCases: every method on the protected routes, method
// overrides, and the methods that the gateway's own endpoints do not take.
func catalogueMethodCases() []methodCase {
	var cases []methodCase
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "get", "FOO"} {
		cases = append(cases, methodCase{name: "anonymous/" + m, method: m, target: "/members/x", status: http.StatusUnauthorized})
	}
	cases = append(cases,
		methodCase{name: "anonymous/POST with a body", method: "POST", target: "/adults/x", body: "a=1", lines: []string{"Content-Type: application/x-www-form-urlencoded"},
			status: http.StatusUnauthorized},
		methodCase{name: "anonymous/X-HTTP-Method-Override", method: "POST", target: "/members/x", lines: []string{"X-HTTP-Method-Override: GET"}, status: http.StatusUnauthorized},
		methodCase{name: "anonymous/X-Method-Override", method: "POST", target: "/members/x", lines: []string{"X-Method-Override: GET"}, status: http.StatusUnauthorized},
		methodCase{name: "anonymous/_method in the query", method: "POST", target: "/members/x?_method=GET", status: http.StatusUnauthorized},
		methodCase{name: "anonymous/OPTIONS preflight", method: "OPTIONS", target: "/members/x",
			lines: []string{"Origin: https://evil.example", "Access-Control-Request-Method: GET"}, status: http.StatusUnauthorized},
		methodCase{name: "Alice/PUT beyond her login", method: "PUT", target: "/club/x", body: "x", alice: true, status: http.StatusUnauthorized},
		methodCase{name: "Alice/DELETE beyond her login", method: "DELETE", target: "/club/x", alice: true, status: http.StatusUnauthorized},
		// The gateway's endpoints take their own methods only.
		methodCase{name: "logout/PUT", method: "PUT", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin"}, alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "logout/DELETE", method: "DELETE", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin"}, alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "logout/PATCH", method: "PATCH", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin"}, alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "logout/HEAD", method: "HEAD", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin"}, alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "logout/lower-case post", method: "post", target: "/irma/logout", lines: []string{"Sec-Fetch-Site: same-origin"}, alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "login/POST", method: "POST", target: "/irma/login?policy=members", alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "login/DELETE", method: "DELETE", target: "/irma/login?policy=members", alice: true, status: http.StatusMethodNotAllowed},
		methodCase{name: "verify/PUT", method: "PUT", target: "/irma/verify", body: "{}", status: http.StatusMethodNotAllowed},
		methodCase{name: "verify/DELETE", method: "DELETE", target: "/irma/verify", status: http.StatusMethodNotAllowed},
		methodCase{name: "timestamp/PUT", method: "PUT", target: "/irma/timestamp", body: "{}", status: http.StatusMethodNotAllowed},
		methodCase{name: "jwks/POST", method: "POST", target: "/irma/jwks.json", body: "{}", status: http.StatusMethodNotAllowed},
		methodCase{name: "sign/GET of a POSTed message", method: "GET", target: "/sign/body", status: http.StatusMethodNotAllowed},
		methodCase{name: "sign/PUT of a message", method: "PUT", target: "/sign/body", body: "I owe you.", status: http.StatusMethodNotAllowed},
		methodCase{name: "sign/GET of a form field", method: "GET", target: "/sign/form?message=I+owe+you.", status: http.StatusMethodNotAllowed},
		methodCase{name: "issue/PUT", method: "PUT", target: "/issue?club=x", status: http.StatusMethodNotAllowed},
		methodCase{name: "issue/DELETE", method: "DELETE", target: "/issue?club=x", status: http.StatusMethodNotAllowed},
		// Controls: a login opens a protected route to every method.
		methodCase{name: "control/GET as Alice", method: "GET", target: "/members/x", alice: true, status: http.StatusOK, reachesMethod: "GET"},
		methodCase{name: "control/PUT as Alice", method: "PUT", target: "/members/x", body: "data", alice: true, status: http.StatusOK, reachesMethod: "PUT"},
		methodCase{name: "control/DELETE as Alice", method: "DELETE", target: "/adults/x", alice: true, status: http.StatusOK, reachesMethod: "DELETE"},
		methodCase{name: "control/OPTIONS on an open route", method: "OPTIONS", target: "/open/x", status: http.StatusOK, reachesMethod: "OPTIONS"},
	)
	return cases
}

// TestCatalogueMethods: a protected route refuses a visitor without the
// login it asks whatever the method, and the gateway's endpoints answer
// 405 to methods they do not take, without touching the login.
func TestCatalogueMethods(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	b := s.alice(t)
	alice := s.cookieLine(b)
	for _, c := range catalogueMethodCases() {
		t.Run(c.name, func(t *testing.T) {
			id := s.nextCase()
			lines := append([]string{"Accept: application/json"}, c.lines...)
			if c.alice {
				lines = append(lines, alice)
			}
			resp, body := s.send(t, id, wireRequest{method: c.method, target: c.target, lines: lines, body: c.body})
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: %d %.200q, want %d", c.method, c.target, resp.StatusCode, body, c.status)
			}
			if c.reachesMethod == "" {
				s.up.nothing(t, id)
				for _, ck := range resp.Cookies() {
					if ck.Name == "irma_session" {
						t.Errorf("%s %s: the refusal set the session cookie %s", c.method, c.target, describeCookie(ck))
					}
				}
				return
			}
			got := s.up.one(t, id)
			if got.method != c.reachesMethod || got.body != c.body || (got.header.Get("X-Irma-Identity") != "") != c.alice {
				t.Errorf("%s %s: the upstream got %s with body %q, identity %v", c.method, c.target, got.method, got.body, got.header.Get("X-Irma-Identity") != "")
			}
		})
	}
	// None of the refused logouts logged Alice out.
	if resp, _ := b.get(s.base+"/members/x", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after the refused logouts, Alice's login answers %d", resp.StatusCode)
	}
}
