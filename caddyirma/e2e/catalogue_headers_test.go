package e2e

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// headerCase is a request with forged header lines (FORGED stands for the
// case's own forged value), sent to every route of headerRoutes.
type headerCase struct {
	name  string
	lines []string
	want  headerOutcome
	// passes, for a control, is the header that must reach the upstream
	// with the forged value.
	passes string
	// open says that the case runs on the server that lets the
	// underscore and dot spellings in only (a control that Caddy's default
	// server would drop).
	open bool
}

type headerOutcome int

const (
	// stripped: each route answers as it would without the lines, and
	// the upstream gets the gateway's own headers of the namespace, once
	// each, and the forged value nowhere.
	stripped headerOutcome = iota
	// malformed: Go's server refuses the request (400); nothing reaches
	// the upstream.
	malformed
	// passesThrough: a control outside the namespace; the upstream gets
	// the header named by passes with the forged value.
	passesThrough
)

// headerBases are header names of the gateway's namespace, one of each
// kind: the identity header; a plain attribute header in the X-Irma-
// prefix that /members/ sets; one that no route sets; and a plain
// attribute header outside the prefix.
var headerBases = []string{"X-Irma-Identity", "X-Irma-Attr-Email", "X-Irma-Attr-Fullname", "X-Member-Name"}

// headerSpellingsOf are the spellings under which a name reaches an
// upstream as the same header: case, and underscores and dots for dashes
// (which CGI and PHP fold together).
func headerSpellingsOf(name string) map[string]string {
	mixed := strings.Replace(name, "-", "_", 1)
	mixed = mixed[:strings.LastIndex(mixed, "-")] + "." + mixed[strings.LastIndex(mixed, "-")+1:]
	return map[string]string{
		"as is":                 name,
		"lower case":            strings.ToLower(name),
		"upper case":            strings.ToUpper(name),
		"underscores":           strings.ReplaceAll(name, "-", "_"),
		"dots":                  strings.ReplaceAll(strings.ToLower(name), "-", "."),
		"dash, underscore, dot": mixed,
	}
}

// catalogueHeaderCases: forged headers of the gateway's namespace in every
// spelling, alone, doubled and all at once, and header lines that Go's
// server refuses.
func catalogueHeaderCases() []headerCase {
	var all []headerCase
	for _, base := range headerBases {
		spellings := headerSpellingsOf(base)
		for _, how := range slices.Sorted(maps.Keys(spellings)) {
			all = append(all, headerCase{name: base + "/" + how, lines: []string{spellings[how] + ": FORGED"}})
		}
	}
	var every []string
	for _, c := range all {
		every = append(every, c.lines...)
	}
	return append(all,
		headerCase{name: "twice/one spelling", lines: []string{"X-Irma-Identity: FORGED", "X-Irma-Identity: FORGED"}},
		headerCase{name: "twice/dashes and underscores", lines: []string{"X-Irma-Attr-Email: FORGED", "x_irma_attr_email: FORGED"}},
		headerCase{name: "twice/the plain header and the identity header", lines: []string{"X-Member-Name: FORGED", "X-Irma-Identity: FORGED"}},
		headerCase{name: "every spelling at once", lines: every},
		headerCase{name: "a list value", lines: []string{"X-Irma-Attr-Email: alice@example.com, FORGED"}},
		headerCase{name: "the prefix alone", lines: []string{"X-Irma-: FORGED"}},
		headerCase{name: "the Yivi app's protocol header", lines: []string{"X-IRMA-MinProtocolVersion: FORGED"}},
		headerCase{name: "an empty value", lines: []string{"X-Irma-Identity:", "X-Member-Name: FORGED"}},
		headerCase{name: "refused by Go/a space before the colon", lines: []string{"X-Irma-Identity : FORGED"}, want: malformed},
		headerCase{name: "refused by Go/a tab before the colon", lines: []string{"X-Irma-Identity\t: FORGED"}, want: malformed},
		// Go folds the line into the header before it: a value, not a header.
		headerCase{name: "a folded line", lines: []string{"X-Other: a", " X-Irma-Identity: FORGED"}},
		// reverse_proxy removes the headers that Connection names, after
		// the gateway set its own.
		headerCase{name: "Connection/names the gateway's headers", lines: []string{"Connection: X-Irma-Identity, X-Irma-Attr-Email, X-Member-Name"}},
		headerCase{name: "Connection/names them in a second line", lines: []string{"Connection: keep-alive", "Connection: x-irma-identity"}},
		headerCase{name: "refused by Go/no colon", lines: []string{"X-Irma-Identity FORGED"}, want: malformed},
		headerCase{name: "refused by Go/NUL in the value", lines: []string{"X-Irma-Identity: FORGED\x00"}, want: malformed},
		headerCase{name: "refused by Go/a control character in the name", lines: []string{"X-Irma\x7fIdentity: FORGED"}, want: malformed},
		headerCase{name: "refused by Go/a name with a slash", lines: []string{"X-Irma/Identity: FORGED"}, want: malformed},
		// Controls: the upstream does get what a client sends outside the
		// namespace, so the refusals above are the gateway's.
		headerCase{name: "control/no forged header", lines: nil},
		headerCase{name: "control/a name that only starts like the prefix", lines: []string{"X-Irmaa-Identity: FORGED"}, want: passesThrough, passes: "X-Irmaa-Identity"},
		headerCase{name: "control/X-Irma without a dash", lines: []string{"X-Irma: FORGED"}, want: passesThrough, passes: "X-Irma"},
		headerCase{name: "control/an underscore header the server lets in", lines: []string{"x_app_flag: FORGED"}, want: passesThrough, passes: "X_app_flag", open: true},
	)
}

// headerRoute is a route of the catalogue's site, who asks, and what the
// gateway itself puts in the namespace there (normalized name -> value;
// the identity header's value is checked as a JWT).
type headerRoute struct {
	path  string
	alice bool
	// status is the answer without forged headers; 401: nothing reaches
	// the upstream.
	status int
	want   map[string]string
}

var headerRoutes = []headerRoute{
	{"/members/x", true, http.StatusOK, map[string]string{"x-irma-identity": "", "x-irma-attr-email": headerSiteEmail, "x-member-name": headerSiteName}},
	{"/app/x", true, http.StatusOK, map[string]string{"x-irma-identity": ""}},
	{"/open/x", false, http.StatusOK, map[string]string{}},
	{"/members/x", false, http.StatusUnauthorized, nil},
}

// TestCatalogueHeaderSpoofing sends forged headers of the gateway's
// namespace to protected routes (as Alice, and as nobody) and to an open
// route, on Caddy's default server and on one that lets the underscore and
// dot spellings in (so that the gateway, not Caddy, must strip them).
func TestCatalogueHeaderSpoofing(t *testing.T) {
	cases := catalogueHeaderCases()
	var underscores, dots []string
	for _, c := range cases {
		for _, line := range c.lines {
			name, _, _ := strings.Cut(line, ":")
			switch {
			case strings.Contains(name, "_"):
				underscores = append(underscores, name)
			case strings.Contains(name, "."):
				dots = append(dots, name)
			}
		}
	}
	servers := map[string]string{
		"default server": "",
		"underscores and dots let in": "servers {\n\t\texpected_underscore_headers " + strings.Join(underscores, " ") +
			"\n\t\texpected_dot_headers " + strings.Join(dots, " ") + "\n\t}",
	}
	for _, server := range []string{"default server", "underscores and dots let in"} {
		t.Run(server, func(t *testing.T) {
			s := newCatalogueSite(t, servers[server], "")
			alice := s.alice(t)
			check := &headerSite{base: s.base, identity: "X-Irma-Identity", keys: fetchJWKS(t, alice, s.base)}
			for _, c := range cases {
				if c.open && servers[server] == "" {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					for _, r := range headerRoutes {
						s.spoof(t, check, c, r, alice)
					}
				})
			}
		})
	}
}

// spoof sends c to route r and checks what the route answered and what
// the upstream got.
func (s *catalogueSite) spoof(t *testing.T, check *headerSite, c headerCase, r headerRoute, alice *browser) {
	t.Helper()
	id := s.nextCase()
	forged := "forged-" + id
	lines := []string{"Accept: application/json"}
	if r.alice {
		lines = append(lines, s.cookieLine(alice))
	}
	for _, l := range c.lines {
		lines = append(lines, strings.ReplaceAll(l, "FORGED", forged))
	}
	resp, body := s.send(t, id, wireRequest{method: "GET", target: r.path, lines: lines})
	want := r.status
	if c.want == malformed {
		want = http.StatusBadRequest
	}
	if resp.StatusCode != want {
		t.Errorf("%s (alice %v): %d %.200q, want %d", r.path, r.alice, resp.StatusCode, body, want)
	}
	if want != http.StatusOK {
		s.up.nothing(t, id)
		return
	}
	got := s.up.one(t, id)
	switch c.want {
	case stripped:
		check.checkNamespace(t, got.header, r.want, forged)
	case passesThrough:
		if v := got.header.Values(c.passes); len(v) != 1 || v[0] != forged {
			t.Errorf("%s: the upstream got %s %q, want the client's %q: the test cannot tell a refusal", r.path, c.passes, v, forged)
		}
	}
}
