package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// The gateway's header namespace, as the README defines it: every request
// header whose name, ignoring case and reading underscores and dots as
// dashes, starts with X-Irma-, is the identity header
// (login.identity_header), or is a plain attribute header of irma_auth
// (header <attr> <name>). No client may send one to an upstream, as a
// header or as a trailer; the tests below send them in many spellings, on
// protected and unprotected routes, and check what a real upstream
// receives.
//
// Caddy itself drops request headers whose names hold an underscore or a
// dot, unless the servers option expected_underscore_headers or
// expected_dot_headers lets them in, and then drops their dashed
// spellings. So the spellings with dashes are the gateway's to strip on a
// default server (TestHeaderNamespace), and those with underscores and dots
// on a server that lets them in (TestHeaderNamespaceIdentityHeader).

// headerSpellings are forged request headers of the namespace, in the
// spellings that reach an upstream as the same name (case; underscores and
// dots for dashes, which CGI and PHP fold together).
var headerSpellings = []string{
	// Attribute headers that no route sets: the whole prefix is the gateway's.
	"X-Irma-Attr-Fullname", "x-irma-attr-fullname", "X-IRMA-ATTR-FULLNAME", "X_Irma_Attr_Fullname",
	"x_irma_attr_fullname", "X-Irma_Attr-Fullname", "X_IRMA-ATTR_FULLNAME", "X.Irma.Attr.Fullname",
	"X-Irma-Admin", "X-Irma-Policy", "X-Irma-Login", "x_irma_role", "x.irma.role", "X-Irma.Admin", "X-Irma-X",
	// The attribute header that /members/ sets.
	"X-Irma-Attr-Email", "x_irma_attr_email", "X-IRMA-ATTR-EMAIL", "x.irma.attr.email",
	// The default identity header (in the prefix whatever identity_header says).
	"X-Irma-Identity", "x-irma-identity", "X_Irma_Identity", "X-IRMA_IDENTITY", "X.IRMA.IDENTITY",
	// A plain attribute header outside the prefix.
	"X-Member-Name", "x_member_name", "X-MEMBER-NAME", "x.member.name",
}

// openSpellings is the servers option that lets the underscore and dot
// spellings of headerSpellings (and of X-Auth-Identity) in. Exact names,
// not globs: Caddy drops the dashed spelling of each name it lets in, and a
// glob such as x_irma_* would drop every X-Irma- header, the Yivi app's
// X-IRMA-MinProtocolVersion to the IRMA endpoints included.
const openSpellings = `expected_underscore_headers X_Irma_Attr_Fullname X-Irma_Attr-Fullname X_IRMA-ATTR_FULLNAME x_irma_role x_irma_attr_email X_Irma_Identity X-IRMA_IDENTITY x_member_name x_auth_identity X-AUTH_IDENTITY
		expected_dot_headers X.Irma.Attr.Fullname x.irma.role X-Irma.Admin x.irma.attr.email X.IRMA.IDENTITY x.member.name x.auth.identity`

// headerSite is a gateway with a protected route that sets plain
// attribute headers (/members/), a route protected inside a handle block
// after the endpoints at the top of the site (/club/) and an unprotected
// route (/open/), all in front of an upstream that records every request,
// trailers included; and a browser logged in as Alice.
type headerSite struct {
	base     string
	identity string // the identity header
	upstream *trailerUpstream
	b        *browser
	keys     []publicJWK
}

const (
	headerSiteEmail = "alice@example.com"
	headerSiteName  = "Alice Demo"
)

// newHeaderSite starts the site; identityHeader is login.identity_header
// ("" for the default), servers holds options of the global servers block.
func newHeaderSite(t *testing.T, identityHeader, servers string) *headerSite {
	t.Helper()
	up := newTrailerUpstream(t)
	g := newGateway(t)
	login := ""
	s := &headerSite{base: g.base, identity: "X-Irma-Identity", upstream: up}
	if identityHeader != "" {
		login = "login {\n\t\t\tidentity_header " + identityHeader + "\n\t\t}"
		s.identity = identityHeader
	}
	caddytest.Start(t, fmt.Sprintf(`{
	admin off
	storage file_system %[5]s
	servers {
		%[9]s
	}
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[6]s
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email and caddy-demo.gateway.person.fullname
		}
		%[8]s
	}
}
http://127.0.0.1:%[1]d {
	%[10]s
	irma_auth /members/* members {
		header caddy-demo.gateway.person.email X-Irma-Attr-Email
		header caddy-demo.gateway.person.fullname X-Member-Name
	}
	handle /members/* {
		reverse_proxy %[7]s
	}
	handle /club/* {
		irma_auth {
			require caddy-demo.gateway.person.email
		}
		reverse_proxy %[7]s
	}
	handle /open/* {
		reverse_proxy %[7]s
	}
	respond 404
}
`, g.port, g.base, g.scheme.SchemesPath, g.scheme.PrivateKeysPath, filepath.Join(g.scheme.Dir, "caddy"),
		g.scheme.TimestampKeyFile, up.addr(), login, servers, g.ln.Bind()))
	app := caddytest.App[*caddyirma.App](t, "irma")

	site := &authSite{base: g.base, scheme: g.scheme, app: app}
	alice := site.newWalletLevel(t, headerSiteName, headerSiteEmail, "gold")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.b = newBrowser(t)
	s.b.login(ctx, alice, g.base+"/members/")
	if resp, body := s.b.get(g.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the login: %d %q", resp.StatusCode, body)
	}
	s.keys = fetchJWKS(t, s.b, g.base)
	return s
}

// routes are the site's routes, each with the namespace headers that the
// gateway itself sets there (normalized name -> value; the identity
// header's value is checked as a JWT).
func (s *headerSite) routes() []struct {
	path string
	want map[string]string
} {
	id := normalizedHeader(s.identity)
	return []struct {
		path string
		want map[string]string
	}{
		{"/members/page", map[string]string{id: "", "x-irma-attr-email": headerSiteEmail, "x-member-name": headerSiteName}},
		{"/club/page", map[string]string{id: ""}},
		{"/open/page", map[string]string{}},
	}
}

// inNamespace says whether a header of this name is the gateway's.
func (s *headerSite) inNamespace(name string) bool {
	n := normalizedHeader(name)
	return strings.HasPrefix(n, "x-irma-") || n == normalizedHeader(s.identity) || n == "x-member-name"
}

func normalizedHeader(name string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
}

// checkNamespace checks that the upstream got, of the namespace, exactly
// the headers in want, each once, with the gateway's value, and nowhere
// the value forged.
func (s *headerSite) checkNamespace(t *testing.T, got http.Header, want map[string]string, forged string) {
	t.Helper()
	values := map[string][]string{}
	for name, vv := range got {
		for _, v := range vv {
			if v == forged {
				t.Errorf("the forged value reached the upstream in %s", name)
			}
		}
		if s.inNamespace(name) {
			values[normalizedHeader(name)] = append(values[normalizedHeader(name)], vv...)
		}
	}
	for n, vv := range values {
		w, ok := want[n]
		switch {
		case !ok:
			t.Errorf("the upstream got %s %q, which the gateway does not set on this route", n, vv)
		case len(vv) != 1:
			t.Errorf("the upstream got %d values of %s, want the gateway's alone: %q", len(vv), n, vv)
		case n == normalizedHeader(s.identity):
			if c := verifyWithJWKS(t, vv[0], s.keys, s.base); c.Attributes["caddy-demo.gateway.person.email"] != headerSiteEmail {
				t.Errorf("the identity JWT holds %v", c.Attributes)
			}
		case vv[0] != w:
			t.Errorf("the upstream got %s %q, want %q", n, vv[0], w)
		}
	}
	for n := range want {
		if _, ok := values[n]; !ok {
			t.Errorf("the gateway's own %s did not reach the upstream", n)
		}
	}
}

// spoofing sends each spelling of headerSpellings (and extra) as a forged
// header to every route, then all of them at once.
func (s *headerSite) spoofing(t *testing.T, extra ...string) {
	spellings := append(append([]string{}, headerSpellings...), extra...)
	n := 0
	send := func(t *testing.T, names []string) {
		t.Helper()
		for _, r := range s.routes() {
			n++
			forged := fmt.Sprintf("forged-%d", n)
			header := http.Header{"Accept": {"application/json"}}
			for _, name := range names {
				header[name] = []string{forged}
			}
			target := fmt.Sprintf("%s%s?case=%d", s.base, r.path, n)
			resp, body := rawRequest(t, s.b, "GET", target, header, "")
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %q", r.path, resp.StatusCode, body)
				continue
			}
			got, ok := s.upstream.find(fmt.Sprintf("case=%d", n))
			if !ok {
				t.Errorf("%s: the request did not reach the upstream", r.path)
				continue
			}
			s.checkNamespace(t, got.header, r.want, forged)
		}
	}
	for _, name := range spellings {
		t.Run(name, func(t *testing.T) { send(t, []string{name}) })
	}
	t.Run("all at once", func(t *testing.T) { send(t, spellings) })
}

// trailerCase is a chunked request (unless contentLength) that declares
// the trailers in declare (one Trailer header each) and sends those in
// send.
type trailerCase struct {
	name          string
	declare       []string
	send          [][2]string
	contentLength bool
}

// trailers sends requests with trailers over a raw connection: those that
// declare or carry a trailer of the namespace are refused, and no such
// trailer reaches the upstream; other trailers pass.
func (s *headerSite) trailers(t *testing.T, extra ...string) {
	var refused []trailerCase
	for _, name := range append([]string{
		"X-Irma-Identity", "x-irma-identity", "X_Irma_Identity", "X-IRMA-IDENTITY",
		"X-Irma-Attr-Fullname", "x_irma_attr_fullname", "X-IRMA-ATTR-EMAIL", "X-Irma-Anything",
		"X-Member-Name", "x_member_name", "X.Irma.Identity", "x.member.name",
	}, extra...) {
		refused = append(refused, trailerCase{name: "declared/" + name, declare: []string{name}, send: [][2]string{{name, "FORGED"}}})
	}
	refused = append(refused,
		trailerCase{name: "declared/in a list", declare: []string{"X-Checksum, X-Irma-Identity"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Irma-Identity", "FORGED"}}},
		trailerCase{name: "declared/in a second Trailer header", declare: []string{"X-Checksum", "x_irma_attr_email"},
			send: [][2]string{{"X-Checksum", "1"}, {"x_irma_attr_email", "FORGED"}}},
		trailerCase{name: "declared/declared only", declare: []string{"X-Irma-Identity"}},
		trailerCase{name: "declared/without chunking", declare: []string{"X-Irma-Identity"}, contentLength: true},
		trailerCase{name: "carried/beside a declared trailer", declare: []string{"X-Checksum"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Irma-Identity", "FORGED"}}},
		trailerCase{name: "carried/beside a declared trailer, underscores", declare: []string{"X-Checksum"},
			send: [][2]string{{"x_irma_attr_fullname", "FORGED"}, {"X-Checksum", "1"}}},
	)
	n := 0
	for _, r := range s.routes() {
		t.Run(strings.Trim(r.path, "/"), func(t *testing.T) {
			for _, c := range refused {
				t.Run(c.name, func(t *testing.T) {
					n++
					forged := fmt.Sprintf("forged-trailer-%d", n)
					status, body := s.sendTrailers(t, fmt.Sprintf("%s?case=t%d", r.path, n), c, forged)
					if status != http.StatusBadRequest {
						t.Errorf("%d %q, want 400", status, body)
					}
					if strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") {
						t.Errorf("the refusal shows a stack trace: %q", body)
					}
					if !strings.HasPrefix(c.name, "carried/") {
						// A declaration is refused before anything is passed on.
						if got, ok := s.upstream.find(fmt.Sprintf("case=t%d", n)); ok {
							t.Errorf("the refused request reached the upstream: %+v", got)
						}
					}
					s.upstream.checkNoTrailer(t, forged)
				})
			}
			t.Run("undeclared", func(t *testing.T) {
				// A trailer that was not declared reaches no handler: Go's server
				// keeps it apart from the request that Caddy's handlers see.
				n++
				forged := fmt.Sprintf("forged-trailer-%d", n)
				status, body := s.sendTrailers(t, fmt.Sprintf("%s?case=t%d", r.path, n),
					trailerCase{send: [][2]string{{"X-Irma-Identity", "FORGED"}, {"x_irma_attr_fullname", "FORGED"}}}, forged)
				if status != http.StatusOK {
					t.Errorf("%d %q, want 200", status, body)
				}
				s.upstream.checkNoTrailer(t, forged)
			})
			t.Run("another name passes", func(t *testing.T) {
				// Trailers outside the namespace reach the upstream: the refusals
				// above are about the names.
				n++
				status, body := s.sendTrailers(t, fmt.Sprintf("%s?case=t%d", r.path, n),
					trailerCase{declare: []string{"X-Checksum"}, send: [][2]string{{"X-Checksum", "FORGED"}}}, "sum")
				if status != http.StatusOK {
					t.Fatalf("%d %q, want 200", status, body)
				}
				got, ok := s.upstream.find(fmt.Sprintf("case=t%d", n))
				if !ok || got.readErr != nil || got.trailer.Get("X-Checksum") != "sum" || got.body != "hello" {
					t.Errorf("the upstream got %+v", got)
				}
			})
		})
	}
}

// sendTrailers sends c as a POST to path with the browser's cookies, over
// a connection of its own, with forged in place of each trailer's value
// FORGED, and returns the status and body of the answer.
func (s *headerSite) sendTrailers(t *testing.T, path string, c trailerCase, forged string) (int, string) {
	t.Helper()
	u, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	var cookies []string
	for _, ck := range s.b.jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	var req strings.Builder
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nConnection: close\r\n", path, u.Host)
	if len(cookies) > 0 {
		fmt.Fprintf(&req, "Cookie: %s\r\n", strings.Join(cookies, "; "))
	}
	for _, d := range c.declare {
		fmt.Fprintf(&req, "Trailer: %s\r\n", d)
	}
	if c.contentLength {
		req.WriteString("Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	} else {
		req.WriteString("Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
		for _, tr := range c.send {
			fmt.Fprintf(&req, "%s: %s\r\n", tr[0], strings.ReplaceAll(tr[1], "FORGED", forged))
		}
		req.WriteString("\r\n")
	}
	resp, body := exchangeRaw(t, u.Host, req.String())
	return resp.StatusCode, body
}

// trailerUpstream is an app behind the gateway that reads each request's
// body to the end and records it with its headers and trailers.
type trailerUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []upstreamRequest
}

type upstreamRequest struct {
	query   string
	header  http.Header
	trailer http.Header
	body    string
	readErr error
}

func newTrailerUpstream(t *testing.T) *trailerUpstream {
	u := &trailerUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, upstreamRequest{query: r.URL.RawQuery, header: r.Header.Clone(), trailer: r.Trailer.Clone(), body: string(body), readErr: err})
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream %s", r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *trailerUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// find returns the request with the given query.
func (u *trailerUpstream) find(query string) (upstreamRequest, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.got {
		if r.query == query {
			return r, true
		}
	}
	return upstreamRequest{}, false
}

// checkNoTrailer checks that no request reached the upstream with forged
// as the value of a header or trailer.
func (u *trailerUpstream) checkNoTrailer(t *testing.T, forged string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.got {
		for _, h := range []http.Header{r.header, r.trailer} {
			for name, vv := range h {
				for _, v := range vv {
					if v == forged {
						t.Errorf("the forged trailer reached the upstream as %s (request %s)", name, r.query)
					}
				}
			}
		}
	}
}

// TestHeaderNamespace sends forged headers and trailers of the gateway's
// namespace, with the default identity header, to protected and
// unprotected routes.
func TestHeaderNamespace(t *testing.T) {
	s := newHeaderSite(t, "", "")
	t.Run("header spoofing", func(t *testing.T) { s.spoofing(t) })
	t.Run("request trailers", func(t *testing.T) { s.trailers(t) })
}

// TestHeaderNamespaceIdentityHeader does the same with an identity header
// outside the X-Irma- prefix, on a server that lets headers with
// underscores and dots in.
func TestHeaderNamespaceIdentityHeader(t *testing.T) {
	s := newHeaderSite(t, "X-Auth-Identity", openSpellings)
	t.Run("header spoofing", func(t *testing.T) {
		s.spoofing(t, "X-Auth-Identity", "x-auth-identity", "x_auth_identity", "X-AUTH_IDENTITY", "x.auth.identity")
	})
	t.Run("request trailers", func(t *testing.T) { s.trailers(t, "X-Auth-Identity", "x_auth_identity", "X.AUTH.IDENTITY") })
}
