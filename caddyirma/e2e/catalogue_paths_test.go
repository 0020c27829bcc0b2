package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// pathCase is a GET of a request target as sent, by Alice (logged in for
// members, not for club) or by nobody.
type pathCase struct {
	name   string
	target string // {host} stands for the site's host:port
	alice  bool
	status int
	// forwarded is the request target the upstream must get; "": none.
	forwarded string
	// byGo: Go's HTTP server refuses the request line before Caddy sees
	// it, with its own message.
	byGo bool
}

const ambiguous = http.StatusBadRequest // the site's answer to an ambiguous path

// pathDots are spellings of a ".." segment, and pathSlashes of a
// separator, that some server reads as such and Caddy's matchers may not.
var (
	pathDots = []string{"..", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "%25252e%25252e",
		"%c0%ae%c0%ae", "%EF%BC%8E%EF%BC%8E", "..;", "..;jsessionid=1", "%2e%2e%3b"}
	pathSlashes = []string{"/", "%2f", "%5c", `\`}
)

// cataloguePathCases: from the open route into /members/ as nobody, and
// from /members/ into /club/ as Alice, through every dot segment and
// separator; the other path tricks of canonicalpath; and paths that a
// route protects in other spellings.
func cataloguePathCases() []pathCase {
	var cases []pathCase
	for _, dots := range pathDots {
		for _, slash := range pathSlashes {
			cases = append(cases,
				pathCase{name: "open to members/" + dots + " " + slash, target: "/open/" + dots + slash + "members/x", status: ambiguous})
		}
		cases = append(cases,
			pathCase{name: "members to club/" + dots, target: "/members/" + dots + "/club/x", alice: true, status: ambiguous})
	}
	return append(cases,
		pathCase{name: "tricks/leading //", target: "//members/x", status: ambiguous},
		pathCase{name: "tricks/// inside", target: "/open//members/x", status: ambiguous},
		pathCase{name: "tricks/%2f at the start", target: "/%2fmembers/x", status: ambiguous},
		pathCase{name: "tricks/. segment", target: "/open/./x", status: ambiguous},
		pathCase{name: "tricks/.. at the end", target: "/members/x/..", status: ambiguous},
		pathCase{name: "tricks/%2e%2e at the end", target: "/open/%2e%2e", status: ambiguous},
		pathCase{name: "tricks/trailing dot", target: "/members./x", status: ambiguous},
		pathCase{name: "tricks/trailing %2e", target: "/members%2e/x", status: ambiguous},
		pathCase{name: "tricks/trailing space", target: "/members%20/x", status: ambiguous},
		pathCase{name: "tricks/;param", target: "/members;x/page", status: ambiguous},
		pathCase{name: "tricks/%3b", target: "/members%3bx/page", status: ambiguous},
		pathCase{name: "tricks/NUL", target: "/members%00/x", status: ambiguous},
		pathCase{name: "tricks/tab", target: "/members%09/x", status: ambiguous},
		pathCase{name: "tricks/IIS %u, percent-encoded", target: "/open/%25u002e%25u002e/members/x", status: ambiguous},
		pathCase{name: "tricks/fullwidth solidus", target: "/open/..%EF%BC%8Fmembers/x", status: ambiguous},
		pathCase{name: "tricks/under the IRMA prefix", target: "/irma/..%2fmembers/x", status: ambiguous},
		pathCase{name: "tricks/under handle_path", target: "/app/..%2f..%2fmembers/x", alice: true, status: ambiguous},
		pathCase{name: "tricks/IIS %u", target: "/open/%u002e%u002e/members/x", status: ambiguous, byGo: true},
		pathCase{name: "tricks/no leading slash", target: "members/x", status: ambiguous, byGo: true},
		// Other spellings of a protected path are that path to the matchers.
		pathCase{name: "spellings/upper case", target: "/MEMBERS/x", status: http.StatusUnauthorized},
		pathCase{name: "spellings/mixed case", target: "/Members/x", status: http.StatusUnauthorized},
		pathCase{name: "spellings/an encoded letter", target: "/%6dembers/x", status: http.StatusUnauthorized},
		pathCase{name: "spellings/absolute form", target: "http://{host}/members/x", status: http.StatusUnauthorized},
		pathCase{name: "spellings/club as Alice", target: "/club/x", alice: true, status: http.StatusUnauthorized},
		// Controls: what must keep working reaches the upstream as sent.
		pathCase{name: "control/members as Alice", target: "/members/x", alice: true, status: http.StatusOK, forwarded: "/members/x"},
		pathCase{name: "control/%20 and UTF-8", target: "/members/a%20b/caf%C3%A9", alice: true, status: http.StatusOK, forwarded: "/members/a%20b/caf%C3%A9"},
		pathCase{name: "control/dots inside names", target: "/open/.well-known/a.b.tar.gz", status: http.StatusOK, forwarded: "/open/.well-known/a.b.tar.gz"},
		pathCase{name: "control/anything in the query", target: "/open/x?next=/../members/%2e%2e%2f&b=..%5c;x//y", status: http.StatusOK,
			forwarded: "/open/x?next=/../members/%2e%2e%2f&b=..%5c;x//y"},
		pathCase{name: "control/handle_path", target: "/app/x?y=1", alice: true, status: http.StatusOK, forwarded: "/x?y=1"},
	)
}

// TestCataloguePaths: no path means one route to the gateway and another
// to the upstream. An ambiguous path gets 400 on every route, protected or
// not; another spelling of a protected path is protected; what passes
// reaches the upstream exactly as the route whose policy was checked.
func TestCataloguePaths(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	alice := s.cookieLine(s.alice(t))
	host := strings.TrimPrefix(s.base, "http://")
	for _, c := range cataloguePathCases() {
		t.Run(c.name, func(t *testing.T) {
			id := s.nextCase()
			lines := []string{"Accept: application/json"}
			if c.alice {
				lines = append(lines, alice)
			}
			target := strings.ReplaceAll(c.target, "{host}", host)
			resp, body := s.send(t, id, wireRequest{method: "GET", target: target, lines: lines})
			if resp.StatusCode != c.status {
				t.Errorf("GET %s: %d %.200q, want %d", target, resp.StatusCode, body, c.status)
			}
			if c.status == ambiguous && !c.byGo && !strings.Contains(body, "ambiguous path") {
				t.Errorf("GET %s: the refusal says %.200q, not why", target, body)
			}
			if c.forwarded == "" {
				s.up.nothing(t, id)
				return
			}
			got := s.up.one(t, id)
			if got.target != c.forwarded {
				t.Errorf("GET %s: the upstream got %s, want %s", target, got.target, c.forwarded)
			}
			if hasIdentity := got.header.Get("X-Irma-Identity") != ""; hasIdentity != c.alice {
				t.Errorf("GET %s: the upstream got an identity: %v, want %v", target, hasIdentity, c.alice)
			}
		})
	}
}
