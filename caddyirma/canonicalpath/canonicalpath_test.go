package canonicalpath

import (
	"errors"
	"path"
	"strings"
	"testing"
)

// cases are paths and whether Check accepts them; they seed FuzzCheck too.
var cases = []struct {
	name string
	path string
	ok   bool
}{
	{"root", "/", true},
	{"plain", "/members/page", true},
	{"trailing slash", "/members/", true},
	{"%20", "/members/a%20b", true},
	{"%C3%A9", "/members/caf%C3%A9", true},
	{"%c3%a9 lower case", "/members/caf%c3%a9", true},
	{"%25", "/members/100%25", true},
	{"%25 at the end, twice", "/members/%2525", true},
	{"%2520", "/members/a%2520b", true},
	{"stray %", "/members/100%", true},
	{"dots inside names", "/members/.well-known/a.b.tar.gz", true},
	{"..name", "/members/..x", true},
	{"encoded ?", "/members/a%3Fb", true},
	{"non-ASCII letters", "/members/%E6%97%A5%E6%9C%AC", true},
	{"colon and at", "/members/a:b@c", true},
	{"IRMA session", "/irma/session/gpQ7Vw7lhSod1Zn9Ou3w/frontend/status", true},

	{"no leading slash", "members/", false},
	{"empty", "", false},
	{"..", "/adults/../members/", false},
	{".", "/adults/./x", false},
	{". at the end", "/adults/.", false},
	{".. at the end", "/adults/..", false},
	{"%2e%2e", "/adults/%2e%2e/members/", false},
	{"%2E%2e", "/adults/%2E%2e/members/", false},
	{".%2e", "/adults/.%2e/members/", false},
	{"%2e", "/members/%2e/x", false},
	{"..%2f", "/members/..%2fx", false},
	{"..%2F", "/Members/..%2F", false},
	{"%2e%2e%2f", "/members/%2e%2e%2fx", false},
	{"..%2f..%2f", "/members/x/..%2f..%2fother", false},
	{"%2f alone", "/adults%2fx", false},
	{"..%5c", "/members/..%5cadults/", false},
	{"%5C", "/adults%5Cx", false},
	{"backslash", `/members\..\adults/`, false},
	{"..;/", "/members/..;/adults/", false},
	{";param", "/adults;x/secret", false},
	{"%3b", "/adults%3bx/secret", false},
	{"leading //", "//evil.example/adults/", false},
	{"// inside", "/members//x", false},
	{"trailing dot", "/adults./x", false},
	{"trailing dots", "/adults.../x", false},
	{"trailing %2e", "/adults%2e/x", false},
	{"trailing dot at the end", "/members/x.", false},
	{"trailing space", "/adults%20/x", false},
	{"::$DATA", "/members/page::$DATA", false},
	{":$DATA encoded", "/members/page%3A%3A%24DATA", false},
	{":$i30 stream of a folder", "/adults:$i30:$INDEX_ALLOCATION/x", false},
	{"8.3 short name", "/ADULTS~1/x", false},
	{"8.3 short name with extension", "/members/SECRET~1.HTM", false},
	{"8.3 short name lower case", "/adult~12/", false},
	{"tilde user dir", "/~alice/page", true},
	{"tilde without digits", "/members/a~b", true},
	{"tilde in a long name", "/members/backup-2026~1", true},
	{"colon without $", "/members/a:b", true},
	{"fullwidth letter", "/%EF%BD%8Dembers/x", false},
	{"script capital M", "/%E2%84%B3embers/x", false},
	{"ligature fi", "/pro%EF%AC%81le/x", false},
	{"zero-width space", "/members%E2%80%8B/x", false},
	{"soft hyphen", "/mem%C2%ADbers/x", false},
	{"Japanese", "/%E6%97%A5%E6%9C%AC/x", true},
	{"e acute, precomposed", "/caf%C3%A9/x", true},
	{"NUL", "/adults%00/x", false},
	{"tab", "/adults%09/x", false},
	{"C1 control", "/adults%C2%85/x", false},
	{"%252e%252e", "/members/%252e%252e/adults/", false},
	{"%252f", "/members/..%252fadults/", false},
	{"%25252e", "/members/%25252e%25252e/adults/", false},
	{"four times", "/members/%2525252541", false},
	{"%u002e", "/members/%u002e%u002e/adults/", false},
	{"%25u002e", "/members/%25u002e%25u002e/adults/", false},
	{"overlong dot", "/members/%c0%ae%c0%ae/adults/", false},
	{"latin-1 byte", "/members/caf%E9", false},
	{"fullwidth dots", "/members/%EF%BC%8E%EF%BC%8E/adults/", false},
	{"fullwidth solidus", "/members/..%EF%BC%8Fadults/", false},
	{"fullwidth reverse solidus", "/members/a%EF%BC%BCb", false},
	{"one dot leader", "/members/%E2%80%A4%E2%80%A4/adults/", false},
	{"fullwidth percent", "/members/%EF%BC%852e", false},
	{"raw fullwidth dots", "/members/．．/adults/", false},
}

func TestCheck(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.path)
			if (err == nil) != c.ok {
				t.Fatalf("Check(%q) = %v, want ok %v", c.path, err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrAmbiguous) {
				t.Errorf("Check(%q) = %v, not ErrAmbiguous", c.path, err)
			}
			if err != nil && strings.Contains(err.Error(), c.path) && len(c.path) > 1 {
				t.Errorf("the error quotes the path: %v", err)
			}
		})
	}
}

// TestCheckSays checks that the errors name the reason.
func TestCheckSays(t *testing.T) {
	for p, want := range map[string]string{
		"/a/../b":       "ambiguous path: dot segment",
		"/a/%2e%2e/b":   "ambiguous path: percent-decoded once: dot segment",
		"/a/%252e%252e": "ambiguous path: percent-decoded twice: dot segment",
		"/a/..%2fb":     "encoded slash",
		"/a;b":          "semicolon",
		"/a//b":         "empty segment",
	} {
		if err := Check(p); err == nil || !strings.HasPrefix(err.Error(), want) && !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want %q", p, err, want)
		}
	}
}

// FuzzCheck feeds Check arbitrary paths. It must never panic, and every path it accepts must
// be canonical in each of its decoded forms: cleaned (as Caddy's matchers clean it) it stays
// the same, and no form holds a separator that another server would see.
func FuzzCheck(f *testing.F) {
	for _, c := range cases {
		f.Add(c.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Check(p) != nil {
			return
		}
		form := p
		for round := 0; round <= maxDecodes+1; round++ {
			if cleaned := cleanPath(form); cleaned != form {
				t.Fatalf("Check(%q) accepted a path whose form %q cleans to %q", p, form, cleaned)
			}
			lower := strings.ToLower(form)
			for _, bad := range []string{`\`, ";", "%2f", "%5c", "\x00"} {
				if strings.Contains(lower, bad) {
					t.Fatalf("Check(%q) accepted a path whose form %q holds %q", p, form, bad)
				}
			}
			next := Unescape(form)
			if next == form {
				return
			}
			form = next
		}
		t.Fatalf("Check(%q) accepted a path that decodes more than %d times", p, maxDecodes)
	})
}

// cleanPath is path.Clean that keeps a trailing slash, as Caddy's path matcher cleans.
func cleanPath(p string) string {
	cleaned := path.Clean(p)
	if strings.HasSuffix(p, "/") && cleaned != "/" {
		cleaned += "/"
	}
	return cleaned
}
