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
//   - and stay so when percent-decoded, up to three times: no decoded form may start with "//"
//     or "/\", contain "\", control characters, whitespace or invisible formatting characters,
//     or invalid UTF-8, or have empty ("//"), "." or ".." segments in its path, which path
//     normalization could turn into "//host".
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
	if clean[0] != '/' {
		return "", fmt.Errorf("%w: not a path starting with /", ErrInvalid)
	}

	form := clean
	for round := 0; ; round++ {
		if err := checkForm(form); err != nil {
			if round == 0 {
				return "", fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			return "", fmt.Errorf("%w: percent-decoded %d times: %w", ErrInvalid, round, err)
		}
		if round == maxDecodes || !strings.Contains(form, "%") {
			if strings.Contains(form, "%") && canDecode(form) {
				return "", fmt.Errorf("%w: percent-encoded more than %d times", ErrInvalid, maxDecodes)
			}
			break
		}
		decoded, err := url.PathUnescape(form)
		if err != nil {
			if round == 0 {
				// The URL itself is malformed: servers answer such paths with 400.
				return "", fmt.Errorf("%w: bad percent-encoding", ErrInvalid)
			}
			// A literal "%" that was encoded once ("%25"): nothing further to decode.
			break
		}
		if decoded == form {
			break
		}
		form = decoded
	}

	// Belt and braces: whatever the checks above missed, the standard parser must see a path.
	u, err := url.Parse(clean)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("%w: not a plain path", ErrInvalid)
	}
	return clean, nil
}

// canDecode reports whether form would change if percent-decoded once more.
func canDecode(form string) bool {
	decoded, err := url.PathUnescape(form)
	return err == nil && decoded != form
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
		case unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("control, space or formatting character %U at %d", r, i)
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
			// Browsers treat these as "." and ".." without decoding anything else.
			return fmt.Errorf("%q path segment", seg)
		}
	}
	return nil
}

// CheckUnder is Check, and also requires the path to be prefix or below it: prefix itself,
// or prefix followed by "/" and more if prefix does not end in "/". The comparison is on the
// path decoded once, as a server routes it, so an encoded character cannot step out of
// prefix. Use it to keep a return URL within the site a login was for.
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
	if !under(decoded, prefix) {
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
