// Package canonicalpath decides whether a request path means one path only, to every server
// that may read it. A gateway that authorizes a request by its path and passes the request on
// must read the path as the upstream will; but servers disagree about dot segments, encoded
// slashes, backslashes, path parameters, doubled slashes, trailing dots and Unicode look-alikes,
// and about how often to percent-decode. A path free of all of these reads the same everywhere.
//
// The package knows nothing of Caddy or HTTP handlers: it checks a string.
package canonicalpath

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxDecodes is how many rounds of percent-decoding Check looks through: a server or proxy
// may decode once more than the one before it.
const maxDecodes = 3

// ErrAmbiguous is wrapped by every error of Check.
var ErrAmbiguous = errors.New("ambiguous path")

// Check returns nil if escaped, the path of a request as it goes on the wire (percent-encoded,
// without the query), reads as the same path to every server. Otherwise its error says why,
// without quoting the path.
//
// The path must start with "/", and neither it nor any of its percent-decoded forms (decoded
// up to three times, as a careless server or proxy might, leaving malformed escapes as they
// are) may have:
//   - a "." or ".." segment, which servers resolve or not (browsers never send one: they
//     resolve them, "%2e" included, before they send a URL);
//   - an empty segment ("//") but at the end: servers merge slashes or not, and some parsers
//     read a path that starts with "//" as another host;
//   - a segment that ends in a dot or a space, which Windows servers drop ("/adults./" is
//     "/adults/" to IIS), or that names an NTFS stream ("x::$DATA") or has the shape of a
//     Windows 8.3 short name ("ADULTS~1"), which Windows servers read as the file itself;
//   - an encoded slash or backslash ("%2F", "%5C"), which some servers decode into a separator
//     and others do not (Apache refuses them by default);
//   - a backslash, a separator to Windows servers;
//   - a semicolon: Tomcat and Jetty drop path parameters ("/adults;x/" is "/adults/" there);
//   - a control character (NUL ends a path in C);
//   - an IIS "%uXXXX" escape;
//   - invalid UTF-8 (old decoders read the overlong "%C0%AE" as a dot);
//   - a character that Unicode compatibility normalization (NFKC) turns into one of / \ . ; %
//     (the fullwidth "．" and "／", the one-dot leader, ...) or into other ASCII characters
//     (the fullwidth "ｍ", the script "ℳ", the ligature "ﬁ"), as some servers normalize paths;
//   - an invisible format character (the zero-width space, the soft hyphen), which a server
//     may drop;
//
// A path that still changes when decoded a fourth time is refused as well. Percent-encoded
// ordinary characters ("%20", "%C3%A9", "%25") pass; so do dots inside segment names
// (".well-known", "a.tar.gz").
func Check(escaped string) error {
	if !strings.HasPrefix(escaped, "/") {
		return fmt.Errorf("%w: does not start with /", ErrAmbiguous)
	}
	form := escaped
	for round := 0; ; round++ {
		if err := checkForm(form); err != nil {
			if round == 0 {
				return fmt.Errorf("%w: %w", ErrAmbiguous, err)
			}
			return fmt.Errorf("%w: percent-decoded %s: %w", ErrAmbiguous, times(round), err)
		}
		decoded := Unescape(form)
		if decoded == form {
			return nil
		}
		if round == maxDecodes {
			return fmt.Errorf("%w: percent-encoded more than %d times", ErrAmbiguous, maxDecodes)
		}
		form = decoded
	}
}

func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return fmt.Sprintf("%d times", n)
}

// checkForm checks one form, as sent or decoded, of a path that starts with "/".
func checkForm(form string) error {
	if !utf8.ValidString(form) {
		return errors.New("invalid UTF-8 (an overlong encoding may read as a dot or a slash)")
	}
	for i, r := range form {
		switch {
		case r == '\\':
			return errors.New("backslash (a separator to Windows servers)")
		case r == ';':
			return errors.New("semicolon (servers such as Tomcat drop path parameters)")
		case r < 0x20 || r == 0x7f || unicode.IsControl(r):
			return fmt.Errorf("control character %U", r)
		case r == '%' && hasEscapeOf(form[i:], '/'):
			return errors.New("encoded slash (%2F)")
		case r == '%' && hasEscapeOf(form[i:], '\\'):
			return errors.New("encoded backslash (%5C)")
		case r == '%' && isIISEscape(form[i:]):
			return errors.New("IIS %u escape")
		case r >= utf8.RuneSelf && unicode.Is(unicode.Cf, r):
			return fmt.Errorf("invisible format character %U (a server may drop it)", r)
		case r >= utf8.RuneSelf:
			if nfkc := norm.NFKC.String(string(r)); strings.ContainsAny(nfkc, `/\.;%`) || nfkc != string(r) && hasASCII(nfkc) {
				return fmt.Errorf("character %U, which Unicode normalization makes %q", r, nfkc)
			}
		}
	}
	// The segments one by one, not split into a slice: this runs for every request.
	for rest, more := form[1:], true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		switch {
		case seg == "" && more:
			return errors.New("empty segment (//)")
		case seg == "." || seg == "..":
			return errors.New("dot segment (. or ..)")
		case strings.HasSuffix(seg, "."):
			return errors.New("segment that ends in a dot (Windows drops it)")
		case strings.HasSuffix(seg, " "):
			return errors.New("segment that ends in a space (Windows drops it)")
		case strings.Contains(seg, ":$"):
			return errors.New(`NTFS stream name (":$", as in "::$DATA": Windows serves the file)`)
		case windowsShortName(seg):
			return errors.New(`8.3 short name ("~1", as in "MEMBER~1": Windows serves the long name)`)
		}
	}
	return nil
}

// windowsShortName says whether seg has the shape of an 8.3 alias that Windows file systems
// give a long name: up to eight characters that end in "~" and digits, and an optional
// extension of up to three ("MEMBER~1", "PROGRA~2.HTM").
func windowsShortName(seg string) bool {
	base, ext := seg, ""
	if i := strings.LastIndexByte(seg, '.'); i >= 0 {
		base, ext = seg[:i], seg[i+1:]
	}
	tilde := strings.LastIndexByte(base, '~')
	if tilde < 1 || tilde == len(base)-1 || utf8.RuneCountInString(base) > 8 || utf8.RuneCountInString(ext) > 3 {
		return false
	}
	for _, c := range base[tilde+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// hasASCII says whether s holds an ASCII character.
func hasASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			return true
		}
	}
	return false
}

// hasEscapeOf says whether s starts with the percent-encoding of the ASCII character c, in
// either case.
func hasEscapeOf(s string, c byte) bool {
	return len(s) >= 3 && s[0] == '%' && ishex(s[1]) && ishex(s[2]) && unhex(s[1])<<4|unhex(s[2]) == c
}

// isIISEscape says whether s starts with "%u" and four hex digits.
func isIISEscape(s string) bool {
	if len(s) < 6 || s[0] != '%' || s[1] != 'u' && s[1] != 'U' {
		return false
	}
	for i := 2; i < 6; i++ {
		if !ishex(s[i]) {
			return false
		}
	}
	return true
}

// Unescape decodes every valid %XX escape of s and leaves anything else, including a "%" not
// followed by two hex digits, as it is: the most any server or proxy might decode. Package
// returnurl decodes return paths with it too.
func Unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
