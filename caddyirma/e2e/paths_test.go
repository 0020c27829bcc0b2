package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawUpstream is an app behind the gateway that records the request
// target of every request exactly as it arrived (r.RequestURI, which Go
// leaves as the request line had it), and the identity JWT, by the value
// of the test's X-Case header.
type rawUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]rawSeen
}

type rawSeen struct {
	target   string // the request target of the request line
	identity string // X-Irma-Identity
}

func newRawUpstream(t *testing.T) *rawUpstream {
	u := &rawUpstream{seen: map[string]rawSeen{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen[r.Header.Get("X-Case")] = rawSeen{target: r.RequestURI, identity: r.Header.Get("X-Irma-Identity")}
		u.mu.Unlock()
		fmt.Fprint(w, "upstream")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *rawUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

func (u *rawUpstream) got(id string) (rawSeen, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.seen[id]
	return s, ok
}

// sendRaw sends "GET target" over a TCP connection of its own, so that no
// client cleans or re-encodes the path, with the cookies that jar holds for
// base and the given headers, and returns the status and body.
func sendRaw(t *testing.T, base, target string, cookies []*http.Cookie, header map[string]string) (int, string) {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nConnection: close\r\n", target, host)
	if len(cookies) > 0 {
		pairs := make([]string, len(cookies))
		for i, c := range cookies {
			pairs[i] = c.Name + "=" + c.Value
		}
		fmt.Fprintf(&req, "Cookie: %s\r\n", strings.Join(pairs, "; "))
	}
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	resp, body := exchangeRaw(t, host, req.String())
	return resp.StatusCode, body
}

// exchangeRaw writes request, as it is, on a connection of its own to
// host, and reads the answer.
func exchangeRaw(t *testing.T, host, request string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatalf("dialing %s: %v", host, err)
	}
	defer conn.Close()
	// A bound on the wait, not an assertion: a gateway that hangs fails.
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Sent while the answer is read: a gateway that refuses a large body
	// answers, and closes, before it has all of it; the rest of the write
	// then meets a reset, which is no failure if the answer came.
	sent := make(chan error, 1)
	go func() {
		_, err := io.WriteString(conn, request)
		sent <- err
	}()
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		select {
		case werr := <-sent:
			if werr != nil {
				t.Fatalf("sending %.60q: %v (and no answer: %v)", request, werr, err)
			}
		default:
		}
		t.Fatalf("the answer to %.60q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestPaths checks that no path means one route to the gateway and another
// to the upstream (issue 8, item 4). Caddy's matchers see a cleaned,
// decoded path, and reverse_proxy forwards the path as sent: a request
// whose path reads differently to another server (dot segments, literal or
// encoded; encoded slashes and backslashes; ";" path parameters; "//";
// trailing dots; double encodings; Unicode look-alikes) is refused with
// 400 on every route of the site, protected or not, and under /irma/. What
// passes reaches the upstream as exactly the path whose policy was
// checked. The forward-auth endpoint refuses (403) to authorize such a
// path as its X-Forwarded-Uri or X-Original-URI.
func TestPaths(t *testing.T) {
	up := newRawUpstream(t)
	g := newGateway(t)
	base := g.base
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}
		policy adults {
			require caddy-demo.gateway.person.over18=yes
		}
		policy club {
			require caddy-demo.gateway.membership.level
		}`, fmt.Sprintf(`irma_auth /members/* members
	irma_auth /adults/* adults
	handle /club/* {
		irma_auth club
		@gold expression {irma.attr.caddy-demo.gateway.membership.level} == "gold"
		reverse_proxy @gold %[1]s
		respond "not gold" 403
	}
	handle_path /app/* {
		irma_auth members
		reverse_proxy %[1]s
	}
	# A catch-all, as in the README: what irma_auth does not protect goes
	# to the same upstream.
	reverse_proxy %[1]s`, up.addr()))

	// A login for members only: alice is not over 18, so /adults/ is not
	// hers.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := (&authSite{base: base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "no")
	member := newBrowser(t)
	member.login(ctx, alice, base+"/members/")
	if resp, body := member.get(base+"/members/", nil); resp.StatusCode != http.StatusOK || member.cookie(base, "irma_session") == nil {
		t.Fatalf("after the login: %d %q, and no session cookie", resp.StatusCode, body)
	}
	u, _ := url.Parse(base)
	memberCookies := member.jar.Cookies(u)
	keys := fetchJWKS(t, member, base)

	const (
		refused   = http.StatusBadRequest // the site's answer to an ambiguous path
		forbidden = http.StatusForbidden  // the forward-auth endpoint's
	)
	type want struct {
		status int
		path   string // the request target the upstream must get; "" if none
		policy string // the policy of the identity JWT the upstream must get
	}
	forwarded := func(path, policy string) want { return want{status: http.StatusOK, path: path, policy: policy} }
	for _, c := range []struct {
		name   string
		login  bool // as alice, logged in for members
		target string
		header map[string]string
		want   want
		// byGo: Go's HTTP server refuses the request line before Caddy
		// sees it, with its own message.
		byGo bool
	}{
		// What must keep working.
		{name: "legitimate/plain", login: true, target: "/members/page", want: forwarded("/members/page", "members")},
		{name: "legitimate/trailing slash", login: true, target: "/members/", want: forwarded("/members/", "members")},
		{name: "legitimate/%20", login: true, target: "/members/a%20b", want: forwarded("/members/a%20b", "members")},
		{name: "legitimate/%C3%A9", login: true, target: "/members/caf%C3%A9", want: forwarded("/members/caf%C3%A9", "members")},
		{name: "legitimate/%25", login: true, target: "/members/100%25", want: forwarded("/members/100%25", "members")},
		{name: "legitimate/%2520 (an encoded %20 in a name)", login: true, target: "/members/a%2520b", want: forwarded("/members/a%2520b", "members")},
		{name: "legitimate/dots inside names", login: true, target: "/members/.well-known/a.b.tar.gz", want: forwarded("/members/.well-known/a.b.tar.gz", "members")},
		{name: "legitimate/query with anything", login: true, target: "/members/x?next=/../adults/%2e%2e%2f&b=..%5c;x//y",
			want: forwarded("/members/x?next=/../adults/%2e%2e%2f&b=..%5c;x//y", "members")},
		{name: "legitimate/handle_path", login: true, target: "/app/x?y=1", want: forwarded("/x?y=1", "members")},
		{name: "legitimate/public", target: "/open/x", want: forwarded("/open/x", "")},
		{name: "legitimate/not logged in", target: "/members/page", want: want{status: http.StatusUnauthorized}},
		{name: "legitimate/IRMA endpoint", target: "/irma/jwks.json", want: want{status: http.StatusOK}},
		{name: "legitimate/forward auth", login: true, target: "/irma/auth?policy=members",
			header: map[string]string{"X-Forwarded-Uri": "/members/caf%C3%A9?q=..%2f"}, want: want{status: http.StatusOK}},

		// The reproductions: a members login reaching /adults/ and
		// /club/ content, and no login reaching /members/ content.
		{name: "path confusion/%2e%2e", login: true, target: "/adults/%2e%2e/members/", want: want{status: refused}},
		{name: "path confusion/%2e%2e into club", login: true, target: "/club/%2e%2e/members/", want: want{status: refused}},
		{name: "path confusion/.. (curl --path-as-is)", login: true, target: "/adults/../members/", want: want{status: refused}},
		{name: "path confusion/..%2f", target: "/members/..%2fx", want: want{status: refused}},
		{name: "path confusion/%2e%2e%2f", target: "/members/%2e%2e%2fx", want: want{status: refused}},
		{name: "path confusion/..%2f..%2f", target: "/members/x/..%2f..%2fother", want: want{status: refused}},
		{name: "path confusion/..%2F mixed case", target: "/Members/..%2F", want: want{status: refused}},
		{name: "path confusion/..;/ (Tomcat)", target: "/members/..;/adults/", want: want{status: refused}},
		{name: "path confusion/..%5c (IIS)", target: "/members/..%5cadults/", want: want{status: refused}},
		{name: "path confusion/..%2f into members", login: true, target: "/adults/..%2fmembers/", want: want{status: refused}},
		{name: "path confusion/..%2f past the club's expression", login: true, target: "/club/..%2fmembers/x", want: want{status: refused}},

		// The classes around them.
		{name: "path confusion/%2E%2e mixed case", login: true, target: "/adults/%2E%2e/members/", want: want{status: refused}},
		{name: "path confusion/.%2e", login: true, target: "/adults/.%2e/members/", want: want{status: refused}},
		{name: "path confusion/. segment", target: "/adults/.", want: want{status: refused}},
		{name: "path confusion/.. at the end", target: "/adults/..", want: want{status: refused}},
		{name: "path confusion/%2e in the middle", login: true, target: "/members/%2e/x", want: want{status: refused}},
		{name: "path confusion/%2f", target: "/adults%2fx", want: want{status: refused}},
		{name: "path confusion/%5c", target: "/adults%5cx", want: want{status: refused}},
		{name: "path confusion/backslash", target: `/members\..\adults/`, want: want{status: refused}},
		{name: "path confusion/double encoding %252e", login: true, target: "/members/%252e%252e/adults/", want: want{status: refused}},
		{name: "path confusion/double encoding %252f", target: "/members/..%252fadults/", want: want{status: refused}},
		{name: "path confusion/triple encoding %25252e", login: true, target: "/members/%25252e%25252e/adults/", want: want{status: refused}},
		{name: "path confusion/;param (Tomcat drops it)", target: "/adults;x/secret", want: want{status: refused}},
		{name: "path confusion/;jsessionid after ..", login: true, target: "/members/..;jsessionid=1/adults/", want: want{status: refused}},
		{name: "path confusion/%3b", target: "/adults%3bx/secret", want: want{status: refused}},
		{name: "path confusion/// leading (another host to some parsers)", target: "//evil.example/adults/", want: want{status: refused}},
		{name: "path confusion/// inside", login: true, target: "/members//x", want: want{status: refused}},
		{name: "path confusion/trailing dot (Windows)", target: "/adults./x", want: want{status: refused}},
		{name: "path confusion/trailing dots", target: "/adults.../x", want: want{status: refused}},
		{name: "path confusion/trailing %2e", target: "/adults%2e/x", want: want{status: refused}},
		{name: "path confusion/trailing space (Windows)", target: "/adults%20/x", want: want{status: refused}},
		{name: "path confusion/NUL", target: "/adults%00/x", want: want{status: refused}},
		{name: "path confusion/overlong UTF-8 dot", target: "/members/%c0%ae%c0%ae/adults/", want: want{status: refused}},
		{name: "path confusion/fullwidth dots", target: "/members/%EF%BC%8E%EF%BC%8E/adults/", want: want{status: refused}},
		{name: "path confusion/fullwidth solidus", target: "/members/..%EF%BC%8Fadults/", want: want{status: refused}},
		{name: "path confusion/IIS %u encoding", target: "/members/%u002e%u002e/adults/", want: want{status: refused}, byGo: true},
		{name: "path confusion/IIS %u, percent-encoded", target: "/members/%25u002e%25u002e/adults/", want: want{status: refused}},
		{name: "path confusion/under the IRMA prefix", target: "/irma/session/x/..%2f..%2f..%2fmembers/", want: want{status: refused}},
		{name: "path confusion/into the IRMA prefix", target: "/members/..%2f..%2firma/jwks.json", want: want{status: refused}},

		// Forward auth: the proxy in front names the original URI.
		{name: "forward auth/X-Forwarded-Uri ..%2f", login: true, target: "/irma/auth?policy=members",
			header: map[string]string{"X-Forwarded-Uri": "/members/..%2fadults/"}, want: want{status: forbidden}},
		{name: "forward auth/X-Original-URI %2e%2e", login: true, target: "/irma/auth?policy=members",
			header: map[string]string{"X-Original-URI": "/adults/%2e%2e/members/"}, want: want{status: forbidden}},
		{name: "forward auth/X-Forwarded-Uri // not logged in", target: "/irma/auth?policy=members",
			header: map[string]string{"X-Forwarded-Uri": "//evil.example/members/"}, want: want{status: forbidden}},
		{name: "forward auth/a clean X-Forwarded-Uri beside an ambiguous X-Original-URI", login: true, target: "/irma/auth?policy=members",
			header: map[string]string{"X-Forwarded-Uri": "/members/ok", "X-Original-URI": "/adults/..%2fmembers/"}, want: want{status: forbidden}},
		{name: "path confusion/fullwidth letter (NFKC makes it m)", target: "/%EF%BD%8Dembers/x", want: want{status: refused}},
		{name: "path confusion/zero-width space", target: "/members%E2%80%8B/x", want: want{status: refused}},
		{name: "path confusion/soft hyphen", target: "/mem%C2%ADbers/x", want: want{status: refused}},
	} {
		t.Run(c.name, func(t *testing.T) {
			header := map[string]string{"X-Case": c.name}
			for k, v := range c.header {
				header[k] = v
			}
			var cookies []*http.Cookie
			if c.login {
				cookies = memberCookies
			}
			status, body := sendRaw(t, base, c.target, cookies, header)
			got, reached := up.got(c.name)
			var policy string
			if reached && got.identity != "" {
				policy = verifyWithJWKS(t, got.identity, keys, base).Policy
			}
			if reached && (c.want.path == "" || got.target != c.want.path || policy != c.want.policy) {
				t.Errorf("GET %s: the upstream got %s with policy %q; want %s", c.target, got.target, policy,
					map[bool]string{true: "nothing", false: fmt.Sprintf("%s with policy %q", c.want.path, c.want.policy)}[c.want.path == ""])
			}
			if !reached && c.want.path != "" {
				t.Errorf("GET %s: the upstream got nothing, want %s", c.target, c.want.path)
			}
			if status != c.want.status {
				t.Errorf("GET %s: %d %.200q, want %d", c.target, status, body, c.want.status)
			}
			if (c.want.status == refused || c.want.status == forbidden) && !c.byGo && !strings.Contains(body, "ambiguous path") {
				t.Errorf("GET %s: the refusal says %.200q, not why", c.target, body)
			}
		})
	}
}
