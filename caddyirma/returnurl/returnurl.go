// Package returnurl checks the URLs that a login sends the visitor back to, so that the login
// page cannot be used to redirect anyone to another site (an open redirect): only a path on the
// same site passes, and nothing that any browser or server might read as another host.
package returnurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-irma/caddy-irma/caddyirma/canonicalpath"
)

// MaxLength is the longest return URL accepted, in bytes.
const MaxLength = 2048

// maxDecodes is how many rounds of percent-decoding Check looks through. Each decoded form
// must be harmless, for a server or proxy somewhere may decode once more; three rounds cover
// every double and triple encoding seen in attacks.
const maxDecodes = 3

// ErrInvalid is wrapped by every error of Check and CheckUnder.
var ErrInvalid = errors.New("invalid return URL")

// Check returns raw if it is a safe return URL: a path on this site, with an optional query,
// such as "/members/?page=2". Its fragment, if any, is dropped: browsers never send fragments,
// so a return URL with one was made up rather than taken from a request, and a fragment is
// where script-driven pages read redirect targets from.
//
// Accepted are only URLs that
//   - start with exactly one "/", followed by anything but "/" or "\" (or are just "/");
//   - are printable ASCII (non-ASCII must be percent-encoded, as browsers send it), without
//     spaces, backslashes, or the characters " < > ` that browsers always encode;
//   - are at most MaxLength bytes long;
//   - have valid percent-encoding;
//   - and stay harmless when percent-decoded, up to three times, as a careless server or proxy
//     might: no decoded form may start with "//" or "/\", contain "\", control characters,
//     whitespace other than a plain space, invisible formatting characters or invalid UTF-8,
//     or have empty ("//"), "." or ".." segments in its path, which path normalization could
//     turn into "//host". Decoded spaces pass, so "/a%20b" does.
//
// Unicode look-alikes such as the fullwidth solidus "／" (U+FF0F), percent-encoded, pass: no
// browser reads them as "/" in a path, so they stay on the site as an odd path. Raw, they fail
// as non-ASCII.
func Check(raw string) (string, error) {
	if len(raw) > MaxLength {
		return "", fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(raw), MaxLength)
	}
	if raw == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalid)
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= utf8.RuneSelf:
			return "", fmt.Errorf("%w: non-ASCII byte at %d: percent-encode it", ErrInvalid, i)
		case c <= ' ' || c == 0x7f:
			return "", fmt.Errorf("%w: control character or space at %d", ErrInvalid, i)
		case c == '\\':
			return "", fmt.Errorf("%w: backslash at %d", ErrInvalid, i)
		case c == '"' || c == '<' || c == '>' || c == '`':
			return "", fmt.Errorf("%w: %q at %d", ErrInvalid, c, i)
		}
	}
	clean, _, _ := strings.Cut(raw, "#")
	if clean == "" || clean[0] != '/' {
		return "", fmt.Errorf("%w: not a path starting with /", ErrInvalid)
	}

	// Decode as a lenient server would, leaving malformed escapes as they are, until nothing
	// changes; every form on the way must be harmless.
	form := clean
	for round := 0; ; round++ {
		if err := checkForm(form); err != nil {
			if round == 0 {
				return "", fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			return "", fmt.Errorf("%w: percent-decoded %s: %w", ErrInvalid, times(round), err)
		}
		decoded := canonicalpath.Unescape(form)
		if decoded == form {
			break
		}
		if round == maxDecodes {
			return "", fmt.Errorf("%w: percent-encoded more than %d times", ErrInvalid, maxDecodes)
		}
		form = decoded
	}

	// Belt and braces: whatever the checks above missed, the standard parser must see a path.
	u, err := url.Parse(clean)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the input is in the caller's hands already
		}
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%w: not a plain path", ErrInvalid)
	}
	return clean, nil
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

// checkForm checks one form (raw or decoded) of a return URL without its fragment.
func checkForm(form string) error {
	if !utf8.ValidString(form) {
		return errors.New("invalid UTF-8")
	}
	if !strings.HasPrefix(form, "/") {
		return errors.New("not a path starting with /")
	}
	if len(form) > 1 && (form[1] == '/' || form[1] == '\\') {
		return errors.New("starts with // or /\\, which browsers read as another host")
	}
	for i, r := range form {
		switch {
		case r == '\\':
			return fmt.Errorf("backslash at %d", i)
		case r == ' ':
			// A space in a path ("/a%20b") is just a character: browsers strip only tabs and
			// line breaks inside URLs, and spaces only at the ends, where a path never
			// starts.
		case unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("control, whitespace or formatting character %U at %d", r, i)
		}
	}
	path, _, _ := strings.Cut(form, "?")
	segments := strings.Split(path[1:], "/")
	for i, seg := range segments {
		switch {
		case seg == "" && i < len(segments)-1:
			return errors.New("empty path segment (//)")
		case seg == "." || seg == "..":
			return fmt.Errorf("%q path segment", seg)
		case strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") || strings.EqualFold(seg, ".%2e") || strings.EqualFold(seg, "%2e."):
			// Browsers read these as "." and "..", whatever else is encoded.
			return fmt.Errorf("%q path segment", seg)
		}
	}
	return nil
}

// CheckUnder is Check, and also requires the path to be prefix or below it: prefix itself,
// or prefix followed by "/" and more if prefix does not end in "/". The path must be under
// prefix both as written and decoded once (as a server routes it), so no encoding can step
// out of prefix, nor into it by a way that a browser reads differently. Use it to keep a
// return URL within the site a login was for.
func CheckUnder(raw, prefix string) (string, error) {
	clean, err := Check(raw)
	if err != nil {
		return "", err
	}
	path, _, _ := strings.Cut(clean, "?")
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return "", fmt.Errorf("%w: bad percent-encoding", ErrInvalid)
	}
	if !under(path, prefix) || !under(decoded, prefix) {
		return "", fmt.Errorf("%w: not under %s", ErrInvalid, prefix)
	}
	return clean, nil
}

func under(path, prefix string) bool {
	if prefix == "" || prefix == "/" || path == prefix {
		return true
	}
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix) || path == strings.TrimSuffix(prefix, "/")
	}
	return strings.HasPrefix(path, prefix+"/")
}
