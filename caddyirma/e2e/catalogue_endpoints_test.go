package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// endpointCase is a request to the IRMA endpoints. In target and lines,
// {token} and {auth} stand for the client token and frontend authorization
// of a session that a 401 started, {other} and {otherauth} for another's,
// and {unknown} for a token of no session.
type endpointCase struct {
	name   string
	method string
	target string
	lines  []string
	body   string
	status int
	has    string // what the answer must say, if anything
}

const unknownToken = "AAAAAAAAAAAAAAAAAAAA"

// catalogueEndpointCases: the session protocol with tokens of no session
// and with methods it does not take; irmaserver's routes that the gateway
// does not expose (revocation, static sessions, server-sent events);
// garbage, oversized and unauthorized posts to a live session; and bad
// input to the gateway's own endpoints.
func catalogueEndpointCases() []endpointCase {
	var cases []endpointCase
	for _, r := range []struct{ method, path string }{
		{"GET", ""}, {"GET", "/"}, {"DELETE", ""}, {"GET", "/request"}, {"POST", "/commitments"}, {"POST", "/proofs"},
		{"GET", "/status"}, {"GET", "/frontend/status"}, {"POST", "/frontend/options"}, {"POST", "/frontend/pairingcompleted"},
		{"GET", "/statusevents"}, {"GET", "/frontend/statusevents"},
	} {
		cases = append(cases, endpointCase{name: "unknown session/" + r.method + " " + r.path, method: r.method,
			target: "/irma/session/{unknown}" + r.path, body: "{}", status: http.StatusBadRequest, has: "SESSION_UNKNOWN"})
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/proofs"}, {"GET", "/commitments"}, {"PUT", "/request"}, {"POST", "/status"}, {"POST", ""}, {"POST", "/"},
		{"PATCH", ""}, {"POST", "/frontend/status"}, {"GET", "/frontend/options"}, {"GET", "/frontend/pairingcompleted"},
		{"POST", "/statusevents"}, {"POST", "/frontend/statusevents"},
	} {
		cases = append(cases, endpointCase{name: "wrong method/" + r.method + " " + r.path, method: r.method,
			target: "/irma/session/{token}" + r.path, status: http.StatusNotFound})
	}
	for _, p := range []string{
		"/irma/revocation/caddy-demo.gateway.person/updateevents", "/irma/revocation/caddy-demo.gateway.person/events/0/0/1",
		"/irma/revocation/caddy-demo.gateway.person/update/1", "/irma/session/{token}/statusevents/x", "/irma/session/{token}/frontend/statusevents/x",
		"/irma/session/{token}/result", "/irma/session/{token}/getproof", "/irma/session/{token}/proofs/extra", "/irma/session/",
		"/irma/session", "/irma/session/{token}-x/status", "/irma/staticsessions/x", "/irma/publickey", "/irma/", "/irma/nope",
		"/irma/jwks.json/x", "/irma/login/x", "/irma/logout/x", "/irma/auth/x",
	} {
		cases = append(cases, endpointCase{name: "not exposed/" + p, method: "GET", target: p, status: http.StatusNotFound})
	}
	brackets := strings.Repeat("[", 1<<20)
	return append(cases,
		endpointCase{name: "ambiguous/an encoded slash", method: "GET", target: "/irma/session/{token}/..%2fstatus", status: http.StatusBadRequest, has: "ambiguous path"},
		endpointCase{name: "ambiguous/dot segments", method: "GET", target: "/irma/session/{token}/../../revocation/x", status: http.StatusBadRequest, has: "ambiguous path"},
		endpointCase{name: "another token/one character more", method: "GET", target: "/irma/session/{token}x/status", status: http.StatusBadRequest, has: "SESSION_UNKNOWN"},
		endpointCase{name: "another token/upper case", method: "GET", target: "/irma/session/{TOKEN}/status", status: http.StatusBadRequest, has: "SESSION_UNKNOWN"},
		endpointCase{name: "live session/garbage commitments", method: "POST", target: "/irma/session/{token}/commitments", body: "{garbage", status: http.StatusBadRequest},
		endpointCase{name: "live session/garbage proofs", method: "POST", target: "/irma/session/{token}/proofs", body: "{garbage", status: http.StatusBadRequest},
		endpointCase{name: "live session/1 MiB of brackets as proofs", method: "POST", target: "/irma/session/{token}/proofs", body: brackets, status: http.StatusBadRequest},
		endpointCase{name: "unknown session/1 MiB of brackets as proofs", method: "POST", target: "/irma/session/{unknown}/proofs", body: brackets,
			status: http.StatusBadRequest, has: "SESSION_UNKNOWN"},
		endpointCase{name: "frontend/status without authorization", method: "GET", target: "/irma/session/{token}/frontend/status", status: http.StatusForbidden},
		endpointCase{name: "frontend/status with another session's authorization", method: "GET", target: "/irma/session/{token}/frontend/status",
			lines: []string{"Authorization: {otherauth}"}, status: http.StatusForbidden},
		endpointCase{name: "frontend/statusevents without authorization", method: "GET", target: "/irma/session/{token}/frontend/statusevents", status: http.StatusForbidden},
		endpointCase{name: "frontend/statusevents with another session's authorization", method: "GET", target: "/irma/session/{token}/frontend/statusevents",
			lines: []string{"Authorization: {otherauth}"}, status: http.StatusForbidden},
		endpointCase{name: "frontend/pairing completed with another session's authorization", method: "POST", target: "/irma/session/{token}/frontend/pairingcompleted",
			lines: []string{"Authorization: {otherauth}"}, status: http.StatusForbidden},
		endpointCase{name: "frontend/options with a wrong authorization", method: "POST", target: "/irma/session/{token}/frontend/options",
			lines: []string{"Authorization: wrong"}, body: `{"pairingMethod":"none"}`, status: http.StatusForbidden},
		endpointCase{name: "frontend/options with garbage", method: "POST", target: "/irma/session/{token}/frontend/options",
			lines: []string{"Authorization: {auth}"}, body: "{garbage", status: http.StatusBadRequest},
		endpointCase{name: "verify/garbage JSON", method: "POST", target: "/irma/verify", lines: []string{"Content-Type: application/json"}, body: "{garbage",
			status: http.StatusBadRequest},
		endpointCase{name: "verify/an empty body", method: "POST", target: "/irma/verify", lines: []string{"Content-Type: application/json"}, status: http.StatusBadRequest},
		endpointCase{name: "verify/another content type", method: "POST", target: "/irma/verify", lines: []string{"Content-Type: text/plain"}, body: "{}",
			status: http.StatusUnsupportedMediaType},
		endpointCase{name: "verify/more than 1 MiB", method: "POST", target: "/irma/verify", lines: []string{"Content-Type: application/json"},
			body: brackets + strings.Repeat("[", 128<<10), status: http.StatusRequestEntityTooLarge},
		endpointCase{name: "timestamp/garbage", method: "POST", target: "/irma/timestamp", body: "{garbage", status: http.StatusBadRequest},
		endpointCase{name: "timestamp/no nonce", method: "POST", target: "/irma/timestamp", body: "{}", status: http.StatusBadRequest},
		endpointCase{name: "timestamp/1 MiB", method: "POST", target: "/irma/timestamp", body: brackets, status: http.StatusRequestEntityTooLarge},
		endpointCase{name: "policies/forward auth of no policy", method: "GET", target: "/irma/auth?policy=nope", status: http.StatusNotFound},
		endpointCase{name: "policies/forward auth without a policy", method: "GET", target: "/irma/auth", status: http.StatusNotFound},
		endpointCase{name: "policies/login of no policy", method: "GET", target: "/irma/login?policy=nope", status: http.StatusNotFound},
		endpointCase{name: "policies/login of a route's own policy", method: "GET", target: "/irma/login?policy=route:x", status: http.StatusNotFound},
		// Controls: the endpoints answer what they are for.
		endpointCase{name: "control/the JWKS", method: "GET", target: "/irma/jwks.json", status: http.StatusOK, has: `"keys"`},
		endpointCase{name: "control/the timestamp service", method: "GET", target: "/irma/timestamp", status: http.StatusOK},
		endpointCase{name: "control/the app reads another session's request", method: "GET", target: "/irma/session/{other}",
			lines: yiviAppLines, status: http.StatusOK, has: "disclose"},
		endpointCase{name: "control/the page follows its session, untouched by the cases above", method: "GET", target: "/irma/session/{token}/frontend/status",
			lines: []string{"Authorization: {auth}"}, status: http.StatusOK, has: `"INITIALIZED"`},
	)
}

// TestCatalogueIRMAEndpoints: the IRMA endpoints answer the session
// protocol's routes and methods only, refuse tokens of no session and bad
// input before anything else, and no one without a session's frontend
// authorization follows or steers it.
func TestCatalogueIRMAEndpoints(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	session := func() (token, auth string) {
		_, body := newBrowser(t).get(s.base+"/members/x", nil)
		info := parseInfo(t, body)
		u, _ := url.Parse(info.SessionPtr.URL)
		return u.Path[strings.LastIndex(u.Path, "/")+1:], string(info.Frontend.Authorization)
	}
	token, auth := session()
	other, otherAuth := session()
	replacer := strings.NewReplacer("{token}", token, "{auth}", auth, "{other}", other, "{otherauth}", otherAuth,
		"{unknown}", unknownToken, "{TOKEN}", strings.ToUpper(token))
	if strings.ToUpper(token) == token {
		t.Fatalf("the client token %q has no lower-case letter", token)
	}
	for _, c := range catalogueEndpointCases() {
		t.Run(c.name, func(t *testing.T) {
			id := s.nextCase()
			req := wireRequest{method: c.method, target: replacer.Replace(c.target), body: c.body, lines: []string{"Content-Type: application/json"}}
			if len(c.lines) > 0 && strings.HasPrefix(c.lines[0], "Content-Type:") {
				req.lines = nil
			}
			for _, l := range c.lines {
				req.lines = append(req.lines, replacer.Replace(l))
			}
			resp, body := s.send(t, id, req)
			if resp.StatusCode != c.status || !strings.Contains(body, c.has) {
				t.Errorf("%s %s: %d %.300q, want %d with %q", c.method, c.target, resp.StatusCode, body, c.status, c.has)
			}
			s.up.nothing(t, id)
		})
	}
}
