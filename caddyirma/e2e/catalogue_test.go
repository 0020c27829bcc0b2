package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// The security catalogue: one table-driven test per class of attack that the
// black-box probe and the code review of issue 8 tried, in
// catalogue_<class>_test.go. Every case asserts the refusal itself (the
// status, what the upstream received, where a redirect goes, which cookies
// were set), and every table has a control that passes, so that no test
// passes for want of a request that could get through. The tables are
// functions of no site, so that TestCatalogueSize can count them.
//
// Refusals are asserted by status, upstream and headers, never by the login
// page's QR code or the session it embeds: how a page navigation is
// answered may change.
//
// This file holds what the catalogue shares: the site, its upstream, a raw
// HTTP/1.1 sender, and the count.

// catalogueSite is the gateway that the catalogue attacks: the routes of
// the README's examples in front of a caseUpstream, as a catch-all
// reverse_proxy does it (what no route protects reaches the same upstream).
//
//	/members/  policy members: email, fullname and over18; plain headers
//	           X-Irma-Attr-Email and X-Member-Name
//	/adults/   policy adults: over18=yes
//	/club/     policy club: a platinum membership, which nobody here holds
//	/app/      handle_path, the members policy's attributes
//	/labels/   email, with labels that hold markup
//	/sign/body irma_sign of the POSTed body; /sign/form of a form field
//	/issue     irma_issue of a membership whose club is the query's
//	/open/     and everything else: the upstream, unprotected
type catalogueSite struct {
	*authSite // base, scheme and app: for wallets and cookie keys
	up        *caseUpstream
	cases     atomic.Int64
}

// catalogueLabel is the label of /labels/, markup that a page would run.
const catalogueLabel = `</script><script>alert("label")</script><img src=x onerror=alert(1)>`

// newCatalogueSite starts the site; globals are more global options, and
// site more directives at the top of the site ("" for none).
func newCatalogueSite(t *testing.T, globals, site string) *catalogueSite {
	t.Helper()
	return newCatalogueSiteWith(t, "", globals, site)
}

// newCatalogueSiteWith is newCatalogueSite with more options of the irma
// app, irmaOptions.
func newCatalogueSiteWith(t *testing.T, irmaOptions, globals, site string) *catalogueSite {
	t.Helper()
	up := newCaseUpstream(t)
	g := newGateway(t)
	config := g.config(irmaOptions+`
		session_limits {
			per_client 100000
		}
		policy members {
			require caddy-demo.gateway.person.email and caddy-demo.gateway.person.fullname and caddy-demo.gateway.person.over18
		}
		policy adults {
			require caddy-demo.gateway.person.over18=yes
		}
		policy club {
			require caddy-demo.gateway.membership.level=platinum
		}`, fmt.Sprintf(`%[3]s
	irma_auth /members/* members {
		header caddy-demo.gateway.person.email X-Irma-Attr-Email
		header caddy-demo.gateway.person.fullname X-Member-Name
	}
	irma_auth /adults/* adults
	irma_auth /club/* club
	irma_auth /labels/* {
		require caddy-demo.gateway.person.email {
			label en %[2]s
		}
	}
	handle_path /app/* {
		irma_auth members
		reverse_proxy %[1]s
	}
	handle /sign/body {
		irma_sign {
			message_body
			require caddy-demo.gateway.person.fullname
			pairing off
		}
	}
	handle /sign/form {
		irma_sign {
			message_field message
			require caddy-demo.gateway.person.fullname
			pairing off
		}
	}
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.membership {
				club {http.request.uri.query.club}
				level bronze
			}
			pairing off
		}
	}
	reverse_proxy %[1]s`, up.addr(), "`"+catalogueLabel+"`", site))
	if globals != "" {
		config = withGlobalOptions(t, config, globals)
	}
	caddytest.Start(t, config)
	app := caddytest.App[*caddyirma.App](t, "irma")
	return &catalogueSite{authSite: &authSite{config: config, base: g.base, scheme: g.scheme, app: app}, up: up}
}

// alice logs a new browser in at /members/ with a wallet of Alice Demo
// (alice@example.com, over 18, a gold member): one issuance and one login.
func (s *catalogueSite) alice(t *testing.T) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return loggedIn(ctx, t, s.authSite, s.newWalletLevel(t, headerSiteName, headerSiteEmail, "gold"))
}

// nextCase returns a new case id for the upstream's records.
func (s *catalogueSite) nextCase() string { return fmt.Sprintf("c%d", s.cases.Add(1)) }

// cookieLine is the Cookie header line of what b holds for the site, or "".
func (s *catalogueSite) cookieLine(b *browser) string {
	u, _ := url.Parse(s.base)
	var pairs []string
	for _, c := range b.jar.Cookies(u) {
		pairs = append(pairs, c.Name+"="+c.Value)
	}
	if len(pairs) == 0 {
		return ""
	}
	return "Cookie: " + strings.Join(pairs, "; ")
}

// wireRequest is a request as it goes on the wire: no client cleans its
// target or fixes its header lines.
type wireRequest struct {
	method, target string
	lines          []string // header lines, "Name: value", as sent
	body           string
}

// send sends r with the header lines X-Case: id and, if body is not
// empty, its Content-Length, and returns the answer.
func (s *catalogueSite) send(t *testing.T, id string, r wireRequest) (*http.Response, string) {
	t.Helper()
	host := strings.TrimPrefix(s.base, "http://")
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nX-Case: %s\r\n", r.method, r.target, host, id)
	for _, line := range r.lines {
		req.WriteString(line + "\r\n")
	}
	if r.body != "" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(r.body))
	}
	req.WriteString("\r\n" + r.body)
	return exchangeRaw(t, host, req.String())
}

// caseUpstream is the app behind the catalogue's gateway. It records every
// request by the case it belongs to (its X-Case header, or else its query
// parameter case): method, request target as it arrived, headers, trailers
// and body.
type caseUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]caseRequest
}

type caseRequest struct {
	method, target, body string
	header, trailer      http.Header
	readErr              error
}

func newCaseUpstream(t *testing.T) *caseUpstream {
	u := &caseUpstream{got: map[string][]caseRequest{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		id := r.Header.Get("X-Case")
		if id == "" {
			id = r.URL.Query().Get("case")
		}
		u.mu.Lock()
		u.got[id] = append(u.got[id], caseRequest{method: r.Method, target: r.RequestURI, body: string(body),
			header: r.Header.Clone(), trailer: r.Trailer.Clone(), readErr: err})
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream %s", r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *caseUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// seen returns the requests of case id.
func (u *caseUpstream) seen(id string) []caseRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got[id]
}

// nothing fails t if any request of case id reached the upstream.
func (u *caseUpstream) nothing(t *testing.T, id string) {
	t.Helper()
	for _, r := range u.seen(id) {
		t.Errorf("the upstream got %s %s", r.method, r.target)
	}
}

// one returns the one request of case id, or fails t.
func (u *caseUpstream) one(t *testing.T, id string) caseRequest {
	t.Helper()
	got := u.seen(id)
	if len(got) != 1 {
		t.Fatalf("the upstream got %d requests, want 1", len(got))
	}
	return got[0]
}

// catalogueTables are the catalogue's tests and the number of cases in
// each table, as SECURITY.md lists them.
func catalogueTables() []struct {
	test  string
	cases int
} {
	return []struct {
		test  string
		cases int
	}{
		{"TestCatalogueHeaderSpoofing", len(catalogueHeaderCases())},
		{"TestCatalogueTrailers", len(catalogueTrailerCases())},
		{"TestCataloguePaths", len(cataloguePathCases())},
		{"TestCatalogueMethods", len(catalogueMethodCases())},
		{"TestCatalogueOpenRedirects", len(catalogueRedirectCases())},
		{"TestCatalogueCookieTampering", len(catalogueCookieCases())},
		{"TestCatalogueCrossSite", len(catalogueCrossSiteCases())},
		{"TestCatalogueXSS", len(catalogueXSSCases())},
		{"TestCatalogueIRMAEndpoints", len(catalogueEndpointCases())},
		{"TestCatalogueForgedJWT", len(catalogueJWTCases())},
		{"TestCatalogueSecretsInLogs", len(catalogueLogCases())},
	}
}

// TestCatalogueSize: the catalogue holds at least 100 cases, and
// SECURITY.md names each test with the number of its cases, and the total.
func TestCatalogueSize(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range catalogueTables() {
		total += c.cases
		if want := fmt.Sprintf("`%s` (%d)", c.test, c.cases); !strings.Contains(string(doc), want) {
			t.Errorf("SECURITY.md does not say %s", want)
		}
	}
	if total < 100 {
		t.Errorf("the catalogue holds %d cases, want at least 100", total)
	}
	if want := fmt.Sprintf("%d cases in all", total); !strings.Contains(string(doc), want) {
		t.Errorf("SECURITY.md does not say %q", want)
	}
}
