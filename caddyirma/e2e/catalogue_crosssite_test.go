package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// crossSiteCase is a request that another site's page could make the
// visitor's browser send; {own} stands for the gateway's origin and {port}
// for its port.
type crossSiteCase struct {
	name   string
	target string // logout or sign
	lines  []string
	status int
	get    bool // a GET, not a POST
}

const (
	logoutTarget = "/irma/logout?return=%2F"
	signTarget   = "/sign/body"
)

// catalogueCrossSiteCases: logouts and signature starts that the browser
// says come from another origin: by Sec-Fetch-Site, by Origin (another
// scheme, host, port, a suffix host, user info, a path, null, two of
// them), and by neither (a logout must say where it comes from).
func catalogueCrossSiteCases() []crossSiteCase {
	var cases []crossSiteCase
	for _, site := range []string{"cross-site", "same-site", "same-origin, cross-site", "SAME-ORIGIN", "", "same-origin\r\nSec-Fetch-Site: cross-site"} {
		line := "Sec-Fetch-Site: " + site
		cases = append(cases, crossSiteCase{"logout/Sec-Fetch-Site " + strings.ReplaceAll(site, "\r\n", " "), logoutTarget, []string{line}, http.StatusForbidden, false})
	}
	for _, origin := range []string{"https://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}", "http://localhost:{port}",
		"http://127.0.0.1:{port}.evil.example", "http://evil.example@127.0.0.1:{port}", "{own}/irma/", "http://127.0.0.1", "{own}\r\nOrigin: https://evil.example"} {
		line := "Origin: " + origin
		cases = append(cases, crossSiteCase{"logout/Origin " + strings.ReplaceAll(origin, "\r\n", " and "), logoutTarget, []string{line}, http.StatusForbidden, false})
	}
	cases = append(cases,
		crossSiteCase{"logout/cross-site with the gateway's Origin", logoutTarget, []string{"Sec-Fetch-Site: cross-site", "Origin: {own}"}, http.StatusForbidden, false},
		crossSiteCase{"logout/neither Sec-Fetch-Site nor Origin", logoutTarget, nil, http.StatusForbidden, false},
		crossSiteCase{"logout/a form of another site", logoutTarget, []string{"Content-Type: application/x-www-form-urlencoded", "Origin: https://evil.example"}, http.StatusForbidden, false},
		crossSiteCase{"logout/a link on another site", logoutTarget, []string{"Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: navigate"}, http.StatusForbidden, true},
	)
	for _, line := range []string{"Sec-Fetch-Site: cross-site", "Sec-Fetch-Site: same-site", "Origin: https://evil.example", "Origin: http://127.0.0.1:1",
		"Origin: http://localhost:{port}", "Origin: http://127.0.0.1:{port}.evil.example", "Origin: null"} {
		cases = append(cases, crossSiteCase{"sign/" + line, signTarget, []string{line}, http.StatusForbidden, false})
	}
	return append(cases,
		crossSiteCase{"sign/cross-site with the gateway's Origin", signTarget, []string{"Sec-Fetch-Site: cross-site", "Origin: {own}"}, http.StatusForbidden, false},
		crossSiteCase{"sign/a form of another site", "/sign/form", []string{"Content-Type: application/x-www-form-urlencoded", "Origin: https://evil.example"}, http.StatusForbidden, false},
		// Controls: the gateway's own pages, and clients that are no browser.
		crossSiteCase{"control/logout from the gateway's page", logoutTarget, []string{"Sec-Fetch-Site: same-origin"}, http.StatusSeeOther, false},
		crossSiteCase{"control/logout with the gateway's Origin", logoutTarget, []string{"Origin: {own}"}, http.StatusSeeOther, false},
		crossSiteCase{"control/sign from the gateway's page", signTarget, []string{"Sec-Fetch-Site: same-origin", "Origin: {own}"}, http.StatusOK, false},
		crossSiteCase{"control/sign by a client that is no browser", signTarget, nil, http.StatusOK, false},
	)
}

// TestCatalogueCrossSite: a request that another site makes the browser
// send neither logs the visitor out nor starts a signature session in the
// visitor's name; the refusal sets no cookie. Each refused logout is
// Alice's; she is still logged in after it.
func TestCatalogueCrossSite(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	alice := s.cookieLine(s.alice(t))
	replacer := strings.NewReplacer("{own}", s.base, "{port}", s.base[strings.LastIndex(s.base, ":")+1:])
	for _, c := range catalogueCrossSiteCases() {
		t.Run(c.name, func(t *testing.T) {
			id := s.nextCase()
			req := wireRequest{method: "POST", target: c.target, lines: []string{"Accept: application/json"}}
			switch {
			case c.get:
				req.method = "GET"
			case c.target == signTarget:
				req.lines, req.body = append(req.lines, "Content-Type: text/plain; charset=utf-8"), "I owe you."
			case c.target == "/sign/form":
				req.body = "message=I+owe+you."
			}
			for _, l := range c.lines {
				req.lines = append(req.lines, replacer.Replace(l))
			}
			refused := c.status == http.StatusForbidden
			if c.target == logoutTarget && refused {
				req.lines = append(req.lines, alice)
			}
			resp, body := s.send(t, id, req)
			if resp.StatusCode != c.status {
				t.Errorf("%s %s: %d %.200q, want %d", req.method, c.target, resp.StatusCode, body, c.status)
			}
			s.up.nothing(t, id)
			if !refused {
				if c.target != logoutTarget && len(resp.Cookies()) != 1 {
					t.Errorf("a signature start set the cookies %q, want its pending cookie", resp.Header.Values("Set-Cookie"))
				}
				return
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("the refusal set cookies: %q", sc)
			}
			if c.target == logoutTarget {
				resp, _ := s.send(t, s.nextCase(), wireRequest{method: "GET", target: "/members/x", lines: []string{"Accept: application/json", alice}})
				if resp.StatusCode != http.StatusOK {
					t.Errorf("Alice is logged out: /members/x answers %d", resp.StatusCode)
				}
			}
		})
	}
}
