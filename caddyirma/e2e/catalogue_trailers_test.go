package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// trailerRow is a chunked POST with trailers (see trailerCase: FORGED
// stands for the case's forged value) and what must come of it.
type trailerRow struct {
	trailerCase
	want trailerOutcome
}

type trailerOutcome int

const (
	// declaredRefused: 400 before anything is passed on.
	declaredRefused trailerOutcome = iota
	// carriedRefused: 400 when the body has been read; the upstream may
	// have seen the start of the request, never the trailer.
	carriedRefused
	// dropped: Go's server keeps an undeclared trailer from every handler;
	// the request goes on without it.
	dropped
	// delivered: a control outside the namespace; the upstream gets the
	// trailer.
	delivered
)

// catalogueTrailerCases: request trailers that declare or carry a header
// of the gateway's namespace (in every spelling of headerSpellingsOf) or
// the gateway's cookies.
func catalogueTrailerCases() []trailerRow {
	var rows []trailerRow
	for _, base := range headerBases {
		spellings := headerSpellingsOf(base)
		for _, how := range slices.Sorted(maps.Keys(spellings)) {
			name := spellings[how]
			rows = append(rows, trailerRow{trailerCase{name: "declared/" + base + "/" + how,
				declare: []string{name}, send: [][2]string{{name, "FORGED"}}}, declaredRefused})
		}
	}
	return append(rows,
		trailerRow{trailerCase{name: "declared/Cookie", declare: []string{"Cookie"},
			send: [][2]string{{"Cookie", "irma_session=FORGED"}}}, declaredRefused},
		trailerRow{trailerCase{name: "declared/in a list", declare: []string{"X-Checksum, X-Irma-Identity"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Irma-Identity", "FORGED"}}}, declaredRefused},
		trailerRow{trailerCase{name: "declared/in a list without spaces", declare: []string{"X-Checksum,x_member_name"},
			send: [][2]string{{"x_member_name", "FORGED"}}}, declaredRefused},
		trailerRow{trailerCase{name: "declared/in a second Trailer line", declare: []string{"X-Checksum", "X-Irma-Attr-Email"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Irma-Attr-Email", "FORGED"}}}, declaredRefused},
		trailerRow{trailerCase{name: "declared/declared but not sent", declare: []string{"X-Irma-Identity"}}, declaredRefused},
		trailerRow{trailerCase{name: "declared/without chunking", declare: []string{"X-Irma-Identity"}, contentLength: true}, declaredRefused},
		trailerRow{trailerCase{name: "carried/beside a declared trailer", declare: []string{"X-Checksum"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Irma-Identity", "FORGED"}}}, carriedRefused},
		trailerRow{trailerCase{name: "carried/underscores, before the declared one", declare: []string{"X-Checksum"},
			send: [][2]string{{"x_irma_attr_email", "FORGED"}, {"X-Checksum", "1"}}}, carriedRefused},
		trailerRow{trailerCase{name: "carried/a plain attribute header", declare: []string{"X-Checksum"},
			send: [][2]string{{"X-Checksum", "1"}, {"X-Member-Name", "FORGED"}}}, carriedRefused},
		trailerRow{trailerCase{name: "carried/Cookie", declare: []string{"X-Checksum"},
			send: [][2]string{{"X-Checksum", "1"}, {"Cookie", "irma_session=FORGED"}}}, carriedRefused},
		trailerRow{trailerCase{name: "undeclared/no Trailer header",
			send: [][2]string{{"X-Irma-Identity", "FORGED"}, {"x_irma_attr_fullname", "FORGED"}}}, dropped},
		// The control: a trailer outside the namespace reaches the upstream.
		trailerRow{trailerCase{name: "control/another name", declare: []string{"X-Checksum"},
			send: [][2]string{{"X-Checksum", "FORGED"}}}, delivered},
	)
}

// TestCatalogueTrailers sends the trailers to a protected route as Alice
// and to an open route as nobody: none reaches the upstream, and a request
// that declares one is refused before anything is passed on.
func TestCatalogueTrailers(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	routes := []struct {
		path string
		b    *browser
	}{{"/members/x", s.alice(t)}, {"/open/x", newBrowser(t)}}
	for _, c := range catalogueTrailerCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range routes {
				id := s.nextCase()
				forged := "forged-" + id
				sender := &headerSite{base: s.base, b: r.b}
				status, body := sender.sendTrailers(t, fmt.Sprintf("%s?case=%s", r.path, id), c.trailerCase, forged)
				want := map[trailerOutcome]int{declaredRefused: http.StatusBadRequest, carriedRefused: http.StatusBadRequest,
					dropped: http.StatusOK, delivered: http.StatusOK}[c.want]
				if status != want {
					t.Errorf("%s: %d %.200q, want %d", r.path, status, body, want)
				}
				if strings.Contains(body, "goroutine") || strings.Contains(body, ".go:") {
					t.Errorf("%s: the refusal shows a stack trace: %.300q", r.path, body)
				}
				got := s.up.seen(id)
				switch c.want {
				case declaredRefused:
					s.up.nothing(t, id)
				case delivered:
					if len(got) != 1 || got[0].readErr != nil || got[0].trailer.Get("X-Checksum") != forged || got[0].body != "hello" {
						t.Errorf("%s: the upstream got %+v, want the body and the trailer: the test cannot tell a refusal", r.path, got)
					}
					continue
				}
				for _, req := range got {
					for _, h := range []http.Header{req.header, req.trailer} {
						for name, vv := range h {
							for _, v := range vv {
								if strings.Contains(v, forged) {
									t.Errorf("%s: the forged trailer reached the upstream as %s", r.path, name)
								}
							}
						}
					}
				}
			}
		})
	}
}
