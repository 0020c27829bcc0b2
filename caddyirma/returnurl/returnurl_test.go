package returnurl

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/canonicalpath"
)

func TestCheckRejects(t *testing.T) {
	attacks := []string{
		// Another host, directly.
		"//evil.com",
		"///evil.com",
		"////evil.com",
		"/\\evil.com",
		"\\/\\/evil.com",
		"\\\\evil.com",
		"https://evil.com",
		"http:evil.com",
		"https:/evil.com",
		"//evil.com/%2F..",
		"evil.com",
		"javascript:alert(1)",
		"JaVaScRiPt:alert(1)",
		"data:text/html,<script>alert(1)</script>",
		"/@evil.com\\",
		// Encoded once, twice, thrice, in mixed case.
		"/%2F%2Fevil.com",
		"/%2f%2fevil.com",
		"/%2F%2fevil.com",
		"/%2Fevil.com",
		"/%5Cevil.com",
		"/%5cevil.com",
		"%2F%2Fevil.com",
		"%2f/evil.com",
		"/%252F%252Fevil.com",
		"/%252f%252Fevil.com",
		"/%25252F%25252Fevil.com",
		"/%255Cevil.com",
		"/%2525252F",
		"/a%2F%2F..%2F..%2F%2Fevil.com",
		// Whitespace and control characters, raw and encoded: browsers strip tabs and
		// line breaks, so "/\t/evil.com" is "//evil.com" to them.
		"/\t/evil.com",
		"/\n/evil.com",
		"/\r/evil.com",
		" //evil.com",
		"/ /evil.com",
		"/%09/evil.com",
		"/%0A/evil.com",
		"/%0d%0aLocation:x",
		"/%0D%0ASet-Cookie:x=y",
		"/%250d%250aLocation:x",
		"/%00",
		"/%7F",
		"/%C2%85/evil.com",    // NEL
		"/%E2%80%A8/evil.com", // line separator
		"/%E2%80%AE/moc.live", // right-to-left override
		"/%E2%80%8B/evil.com", // zero-width space
		"/%C2%A0/evil.com",    // no-break space
		"/a\x00",
		"/a\x7f",
		// Path normalization to "//host".
		"/..//evil.com",
		"/.//evil.com",
		"/a/..//evil.com",
		"/%2e%2e//evil.com",
		"/%2E%2E%2F%2Fevil.com",
		"/.%2e/%2fevil.com",
		"/a//b",
		"/a/./b",
		"/a/../b",
		"/%252e%252e/%252fevil.com",
		// Not ASCII, or not valid.
		"／／evil.com",
		"/／evil.com",
		"/\u3002evil.com",
		"/caf\u00e9",
		"/%FF",
		"/100%",
		"/%zz",
		"/%",
		"/a%2",
		// Characters browsers always encode.
		"/\"onmouseover=alert(1)",
		"/<script>",
		"/`",
		// Empty and long.
		"",
		"#",
		"#//evil.com",
		"?a=b",
		"/" + strings.Repeat("a", MaxLength),
	}
	for _, raw := range attacks {
		got, err := Check(raw)
		if err == nil {
			t.Errorf("Check(%q) = %q, want an error", raw, got)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q): %v does not wrap ErrInvalid", raw, err)
		}
		t.Logf("%q: %v", raw, err)
	}
}

func TestCheckAccepts(t *testing.T) {
	good := map[string]string{
		"/":                                    "/",
		"/members/":                            "/members/",
		"/members":                             "/members",
		"/a?b=c&d=e":                           "/a?b=c&d=e",
		"/a%20b":                               "/a%20b",
		"/caf%C3%A9":                           "/caf%C3%A9",
		"/a?next=//evil.com":                   "/a?next=//evil.com", // a query is not a path
		"/a?next=https://evil.com":             "/a?next=https://evil.com",
		"/a#frag":                              "/a",
		"/a?b=c#//evil.com":                    "/a?b=c",
		"/#":                                   "/",
		"/search?q=100%25":                     "/search?q=100%25",
		"/search?q=a+b":                        "/search?q=a+b",
		"/a:b":                                 "/a:b",
		"/javascript:alert(1)":                 "/javascript:alert(1)", // a path on this site
		"/a/b/c.html":                          "/a/b/c.html",
		"/a/.well-known/x":                     "/a/.well-known/x",
		"/...":                                 "/...",
		"/%EF%BC%8F%EF%BC%8Fevil.com":          "/%EF%BC%8F%EF%BC%8Fevil.com", // fullwidth solidi, encoded: an odd path here
		"/%2525":                               "/%2525",
		"/" + strings.Repeat("a", MaxLength-1): "/" + strings.Repeat("a", MaxLength-1),
	}
	for raw, want := range good {
		got, err := Check(raw)
		if err != nil || got != want {
			t.Errorf("Check(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

func TestCheckUnder(t *testing.T) {
	cases := []struct {
		raw, prefix string
		ok          bool
	}{
		{"/members/", "/members/", true},
		{"/members", "/members/", true},
		{"/members/a?b=c", "/members/", true},
		{"/members/a", "/members", true},
		{"/members", "/members", true},
		{"/membership", "/members", false},
		{"/membership", "/members/", false},
		{"/other/", "/members/", false},
		{"/", "/members/", false},
		{"/memb%65rs/x", "/members/", false}, // under only once decoded
		{"/members/%41", "/members/", true},
		{"/members%2Fx", "/members/", false},
		{"/members/%2e%2e/admin", "/members/", false},
		{"/anything", "/", true},
		{"//evil.com", "/", false},
	}
	for _, c := range cases {
		_, err := CheckUnder(c.raw, c.prefix)
		if (err == nil) != c.ok {
			t.Errorf("CheckUnder(%q, %q): %v, want ok %v", c.raw, c.prefix, err, c.ok)
		}
	}
}

func TestCheckErrors(t *testing.T) {
	for raw, want := range map[string]string{
		"//evil.com":          "starts with // or /\\",
		"/%252F%252Fevil.com": "percent-decoded twice",
		"/%0d%0aLocation:x":   "control",
		"/a\tb":               "control character or space at 2",
		"https://evil.com":    "not a path",
		"/100%":               "invalid URL escape",
	} {
		_, err := Check(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q): %v, want an error mentioning %q", raw, err, want)
		}
	}
}

var site = &url.URL{Scheme: "https", Host: "site.example", Path: "/"}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"/", "/members/", "/a?b=c&d=e", "/a%20b", "//evil.com", "/\\evil.com", "/%2F%2Fevil.com",
		"/%5Cevil.com", "%2F%2Fevil.com", "https://evil.com", "javascript:alert(1)",
		"/%0d%0aLocation:x", "/\t/evil.com", "/%252F%252Fevil.com", "\\/\\/evil.com",
		"/%2f%2Fevil.com", "／／evil.com", "/%EF%BC%8F%EF%BC%8Fevil.com", "/..//evil.com",
		"/%2e%2e/%2fevil.com", "/a#//evil.com", "/a?x=//evil.com", "/@evil.com", "/:@evil.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := Check(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(raw, got) {
			t.Fatalf("Check(%q) = %q: not the input less its fragment", raw, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			t.Fatalf("Check(%q) = %q: parses as %#v, %v", raw, got, u, err)
		}
		if r := site.ResolveReference(u); r.Scheme != "https" || r.Host != "site.example" {
			t.Fatalf("Check(%q) = %q: resolves to %s", raw, got, r)
		}
		// What a browser (WHATWG URL) does before resolving: drop tabs and line breaks, read
		// "\" as "/". Neither the result nor any decoding of it may then start with "//".
		form := got
		for range maxDecodes + 1 {
			b := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(form)
			if !strings.HasPrefix(b, "/") || strings.HasPrefix(b, "//") {
				t.Fatalf("Check(%q) = %q: a browser might read %q as another host", raw, got, form)
			}
			form = canonicalpath.Unescape(form)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	for b.Loop() {
		if _, err := Check("/members/some/page?with=query&and=%2Fencoded%20parts"); err != nil {
			b.Fatal(err)
		}
	}
}
