package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// redirectCase is a return URL that a visitor is sent back to after a
// login or a logout; {host} stands for the site's host:port.
type redirectCase struct {
	name, ret string
	// want is where the browser goes: the return URL if it is a path on
	// this site, else /.
	want string
}

// catalogueRedirectCases: return URLs that leave the site (another host,
// a scheme, a protocol-relative path, backslashes, encodings of those,
// whitespace and control characters, user info), and same-site paths
// that look like them but stay.
func catalogueRedirectCases() []redirectCase {
	var cases []redirectCase
	for _, ret := range []string{
		"//evil.example", "///evil.example", "////evil.example/x", `/\evil.example`, `\\evil.example`, `/\/evil.example`, `\/evil.example`,
		"https://evil.example", "http://evil.example/members/", "HTTPS://evil.example", "https:evil.example", "https:/evil.example",
		"javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
		"%2f%2fevil.example", "/%2f%2fevil.example", "/%2F%2Fevil.example", "/%252f%252fevil.example", "/%25252f%25252fevil.example",
		"/%5cevil.example", "/%5C%5Cevil.example", "/%255cevil.example",
		"/\t/evil.example", "/%09/evil.example", "/\n/evil.example", "/%0a/evil.example", "/%0d%0a/evil.example", " //evil.example",
		"https://{host}@evil.example/", "//{host}@evil.example", "http://{host}/members/",
		"/..", "/members/../../evil.example", "/%2e%2e/evil.example", "/./evil.example",
		"", "members/", "?next=//evil.example", "#//evil.example", "/\u3002evil.example", "/\uff0f\uff0fevil.example",
		"/" + strings.Repeat("a", 3000),
	} {
		cases = append(cases, redirectCase{name: "leaves/" + ret, ret: ret, want: "/"})
	}
	return append(cases,
		// Controls: same-site paths, however odd, are where the visitor goes.
		redirectCase{name: "stays/a page with a query", ret: "/members/page?x=1&y=%2F%2F", want: "/members/page?x=1&y=%2F%2F"},
		redirectCase{name: "stays/the root", ret: "/", want: "/"},
		redirectCase{name: "stays/an @ in a path", ret: "/members/@evil.example", want: "/members/@evil.example"},
		redirectCase{name: "stays/an encoded space segment", ret: "/%20/evil.example", want: "/%20/evil.example"},
		redirectCase{name: "stays/encoded fullwidth solidi", ret: "/%EF%BC%8F%EF%BC%8Fevil.example", want: "/%EF%BC%8F%EF%BC%8Fevil.example"},
		redirectCase{name: "stays/a fragment is dropped", ret: "/members/page#//evil.example", want: "/members/page"},
	)
}

// TestCatalogueOpenRedirects gives each return URL to the three places
// that take one: the logout (POST, the return parameter), the login
// endpoint of forward-auth setups (as Alice, who is logged in: it
// redirects at once), and the forward-auth endpoint (X-Forwarded-Uri,
// which becomes the return parameter of the login URL it answers).
func TestCatalogueOpenRedirects(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	alice := s.alice(t)
	host := strings.TrimPrefix(s.base, "http://")
	for _, c := range catalogueRedirectCases() {
		t.Run(c.name, func(t *testing.T) {
			ret := strings.ReplaceAll(c.ret, "{host}", host)
			q := url.QueryEscape(ret)
			t.Run("logout", func(t *testing.T) {
				resp, _ := newBrowser(t).send("POST", s.base+"/irma/logout?return="+q, map[string]string{"Sec-Fetch-Site": "same-origin"}, "")
				s.checkRedirect(t, resp, http.StatusSeeOther, resp.Header.Get("Location"), c.want)
			})
			t.Run("login", func(t *testing.T) {
				resp, _ := alice.get(s.base+"/irma/login?policy=members&return="+q, nil)
				s.checkRedirect(t, resp, http.StatusSeeOther, resp.Header.Get("Location"), c.want)
			})
			if strings.ContainsAny(ret, "\r\n") {
				return // no proxy sends a header value with a line break
			}
			t.Run("forward auth", func(t *testing.T) {
				resp, body := newBrowser(t).get(s.base+"/irma/auth?policy=members", map[string]string{"X-Forwarded-Uri": ret})
				if resp.StatusCode == http.StatusForbidden {
					// An original URI that the proxy would pass on ambiguously
					// is refused outright.
					if !strings.Contains(body, "ambiguous path") || resp.Header.Get("X-Irma-Login") != "" {
						t.Errorf("403 %.200q, X-Irma-Login %q", body, resp.Header.Get("X-Irma-Login"))
					}
					return
				}
				login, err := url.Parse(resp.Header.Get("X-Irma-Login"))
				if err != nil || login.Path != "/irma/login" {
					t.Fatalf("X-Irma-Login %q: %v", resp.Header.Get("X-Irma-Login"), err)
				}
				s.checkRedirect(t, resp, http.StatusUnauthorized, login.Query().Get("return"), c.want)
			})
		})
	}
}

// checkRedirect checks the status of resp, and that the browser goes to
// want, which stays on the site.
func (s *catalogueSite) checkRedirect(t *testing.T, resp *http.Response, status int, location, want string) {
	t.Helper()
	if resp.StatusCode != status || location != want {
		t.Errorf("%d to %q, want %d to %q", resp.StatusCode, location, status, want)
	}
	base, _ := url.Parse(s.base)
	to, err := base.Parse(location)
	if err != nil || to.Host != base.Host || to.Scheme != base.Scheme || strings.ContainsAny(location, "\\\t\r\n") {
		t.Errorf("the browser would go to %q, off the site", location)
	}
}
