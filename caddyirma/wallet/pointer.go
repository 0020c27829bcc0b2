//go:build cgo

package wallet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/privacybydesign/irmago/irma"
)

// MaxPointerSize bounds what ParsePointer and FetchPointer read: the input string, a universal link's fragment and
// an HTTP response body. Session pointers are a few hundred bytes.
const MaxPointerSize = 64 << 10

// universalLinkHosts are the hosts of the Yivi (and older IRMA) universal links that carry a session pointer in
// their fragment: https://open.yivi.app/-/session#<url-encoded pointer JSON>.
var universalLinkHosts = map[string]bool{
	"open.yivi.app": true,
	"irma.app":      true,
}

// universalLinkPaths are the paths of those links: "-pilot" is what the apps' test builds open.
var universalLinkPaths = map[string]bool{
	"/-/session":      true,
	"/-pilot/session": true,
}

// ParsePointer parses a session pointer given as:
//   - the pointer's JSON, {"u": "https://.../session/<token>", "irmaqr": "disclosing"};
//   - a JSON object holding a pointer under "sessionPtr": what `irma server` answers to POST /session, and what the
//     gateway answers to a browser that asks for JSON;
//   - a Yivi or IRMA universal link, https://open.yivi.app/-/session#<url-encoded pointer JSON> (also irma.app).
//
// Parsing is strict: one JSON object and nothing after it, "u" an absolute http(s) URL without credentials,
// "irmaqr" one of disclosing, signing, issuing or redirect. Other members of the pointer object are ignored. It
// never touches the network: FetchPointer also accepts the URL of a page that answers with a pointer.
func ParsePointer(s string) (*irma.Qr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty session pointer")
	}
	if len(s) > MaxPointerSize {
		return nil, fmt.Errorf("session pointer too long (%d bytes, at most %d)", len(s), MaxPointerSize)
	}
	if s[0] == '{' {
		return parsePointerJSON([]byte(s), true)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("not a session pointer: want pointer JSON, a JSON object with a sessionPtr, a universal link or an http(s) URL")
	}
	if !isUniversalLink(u) {
		return nil, fmt.Errorf("%s is a URL, not a session pointer: fetch it (FetchPointer) to get one", redactURL(u))
	}
	return parseUniversalLink(u)
}

// FetchPointer returns the session pointer s stands for: FetchSession without the pairing.
func FetchPointer(ctx context.Context, client *http.Client, s string) (*irma.Qr, error) {
	sess, err := FetchSession(ctx, client, s)
	if err != nil {
		return nil, err
	}
	return sess.Pointer, nil
}

// Session is a session to run: its pointer and, when the wallet itself fetched it from a page that asks for
// pairing, what the page's frontend would do to pair.
type Session struct {
	Pointer *irma.Qr
	// Pairing is set when the page answered with a pairing code: the wallet, having started the session as the
	// page's client, also plays the browser's part and confirms the code its own app shows.
	Pairing *Pairing
}

// Pairing is how a frontend confirms pairing: when the app shows Code, POST CompletedURL with the Authorization.
type Pairing struct {
	Code          string
	CompletedURL  string
	Authorization string
}

// FetchSession returns the session s stands for. s is anything ParsePointer accepts, or an http(s) URL which
// FetchPointer GETs with "Accept: application/json" and whose body it parses as a pointer or as a JSON object with a
// sessionPtr. The server may answer 200 or 401 (a protected page telling the browser to log in); anything else is an
// error that carries the server's IRMA-style error message if it sent one. Bodies are read up to MaxPointerSize.
//
// If the answer also holds a frontend with a pairing code (as the gateway's pages answer), the Session carries it.
//
// client may be nil: FetchSession then uses a client with a 30 s timeout. ctx bounds the request.
func FetchSession(ctx context.Context, client *http.Client, s string) (*Session, error) {
	pointer := func(qr *irma.Qr, err error) (*Session, error) {
		if err != nil {
			return nil, err
		}
		return &Session{Pointer: qr}, nil
	}
	s = strings.TrimSpace(s)
	if len(s) > MaxPointerSize {
		return nil, fmt.Errorf("session pointer too long (%d bytes, at most %d)", len(s), MaxPointerSize)
	}
	if s == "" || s[0] == '{' {
		return pointer(ParsePointer(s))
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return pointer(ParsePointer(s)) // for its error message
	}
	if isUniversalLink(u) {
		return pointer(parseUniversalLink(u))
	}
	if u.User != nil {
		return nil, errors.New("refusing to fetch a URL with credentials in it")
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	u.Fragment, u.RawFragment = "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetching session pointer: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching session pointer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPointerSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetching session pointer from %s: reading the response: %w", redactURL(u), err)
	}
	if len(body) > MaxPointerSize {
		return nil, fmt.Errorf("fetching session pointer from %s: response larger than %d bytes", redactURL(u), MaxPointerSize)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		msg := fmt.Sprintf("fetching session pointer from %s: server answered %s", redactURL(u), resp.Status)
		if detail := remoteErrorDetail(body); detail != "" {
			msg += ": " + detail
		}
		return nil, errors.New(msg)
	}
	qr, err := parsePointerJSON(bytes.TrimSpace(body), true)
	if err != nil {
		ct := resp.Header.Get("Content-Type")
		if mt, _, perr := mime.ParseMediaType(ct); perr != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, fmt.Errorf("fetching session pointer from %s: server answered %s with %q, not a session pointer (is this a page protected by IRMA?)", redactURL(u), resp.Status, ct)
		}
		return nil, fmt.Errorf("fetching session pointer from %s: %w", redactURL(u), err)
	}
	sess := &Session{Pointer: qr}
	if sess.Pairing, err = parsePairing(body, u); err != nil {
		return nil, fmt.Errorf("fetching session pointer from %s: %w", redactURL(u), err)
	}
	return sess, nil
}

// ParseSession reads a page's JSON answer (as FetchSession does) that a caller fetched itself, for instance with
// a POST: the session pointer and, if the page pairs, its pairing. page is the URL that answered, against which the
// pairing URL is resolved.
func ParseSession(body []byte, page string) (*Session, error) {
	if len(body) > MaxPointerSize {
		return nil, fmt.Errorf("session answer larger than %d bytes", MaxPointerSize)
	}
	u, err := url.Parse(page)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("page %q: want an absolute http or https URL", page)
	}
	qr, err := parsePointerJSON(bytes.TrimSpace(body), true)
	if err != nil {
		return nil, err
	}
	sess := &Session{Pointer: qr}
	if sess.Pairing, err = parsePairing(body, u); err != nil {
		return nil, err
	}
	return sess, nil
}

// parsePairing reads the pairing a page's answer asks for, if any: {"frontend": {"authorization": ...,
// "pairingCode": ..., "pairingCompletedUrl": ...}}, the URL relative to the page's. It must stay on the page's
// origin: the frontend authorization goes there.
func parsePairing(body []byte, page *url.URL) (*Pairing, error) {
	var answer struct {
		Frontend struct {
			Authorization       string `json:"authorization"`
			PairingCode         string `json:"pairingCode"`
			PairingCompletedURL string `json:"pairingCompletedUrl"`
		} `json:"frontend"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Frontend.PairingCode == "" {
		return nil, nil
	}
	f := answer.Frontend
	if f.Authorization == "" || f.PairingCompletedURL == "" {
		return nil, errors.New("frontend asks for pairing without an authorization or a pairing completion URL")
	}
	done, err := page.Parse(f.PairingCompletedURL)
	if err != nil || done.Scheme != page.Scheme || done.Host != page.Host {
		return nil, errors.New("frontend pairing completion URL is not on the page's site")
	}
	return &Pairing{Code: f.PairingCode, CompletedURL: done.String(), Authorization: f.Authorization}, nil
}

func isUniversalLink(u *url.URL) bool {
	return universalLinkHosts[strings.ToLower(u.Hostname())] && universalLinkPaths[u.Path]
}

func parseUniversalLink(u *url.URL) (*irma.Qr, error) {
	if u.Scheme != "https" {
		return nil, errors.New("universal link: want https")
	}
	frag := strings.TrimSpace(u.Fragment)
	if frag == "" {
		return nil, errors.New("universal link without a session pointer after '#'")
	}
	if frag[0] != '{' {
		return nil, errors.New("universal link: the part after '#' is not a session pointer JSON object")
	}
	qr, err := parsePointerJSON([]byte(frag), false)
	if err != nil {
		return nil, fmt.Errorf("universal link: %w", err)
	}
	return qr, nil
}

// parsePointerJSON parses one JSON object that is a session pointer or, if wrapped is true, holds one under
// "sessionPtr".
func parsePointerJSON(data []byte, wrapped bool) (*irma.Qr, error) {
	obj, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	_, hasU := obj["u"]
	_, hasType := obj["irmaqr"]
	inner, hasPtr := obj["sessionPtr"]
	switch {
	case hasPtr && (hasU || hasType):
		return nil, errors.New("ambiguous JSON: both a session pointer and a sessionPtr")
	case hasPtr && !wrapped:
		return nil, errors.New("want a session pointer, got an object with a sessionPtr")
	case hasPtr:
		innerObj, err := decodeObject(inner)
		if err != nil {
			return nil, fmt.Errorf("sessionPtr: %w", err)
		}
		if _, nested := innerObj["sessionPtr"]; nested {
			return nil, errors.New("sessionPtr: nested sessionPtr")
		}
		qr, err := pointerFromObject(innerObj)
		if err != nil {
			return nil, fmt.Errorf("sessionPtr: %w", err)
		}
		return qr, nil
	case hasU || hasType:
		return pointerFromObject(obj)
	}
	if detail := remoteErrorDetail(data); detail != "" {
		return nil, fmt.Errorf("no session pointer, the server reports an error: %s", detail)
	}
	if wrapped {
		return nil, errors.New(`no session pointer in JSON: want "u" and "irmaqr", or a "sessionPtr" holding them`)
	}
	return nil, errors.New(`no session pointer in JSON: want "u" and "irmaqr"`)
}

// decodeObject decodes exactly one JSON object, members by exact (case-sensitive) name.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("want a JSON object, got %s", typeErr.Value)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if obj == nil {
		return nil, errors.New("invalid JSON: want an object, got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the object")
	}
	return obj, nil
}

func pointerFromObject(obj map[string]json.RawMessage) (*irma.Qr, error) {
	var rawURL, typ string
	if err := stringMember(obj, "u", &rawURL); err != nil {
		return nil, err
	}
	if err := stringMember(obj, "irmaqr", &typ); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New(`session pointer: "u" is not a URL`)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New(`session pointer: "u" must be an absolute http(s) URL`)
	}
	if u.User != nil {
		return nil, errors.New(`session pointer: "u" must not contain credentials`)
	}
	if u.Fragment != "" || u.RawQuery != "" || u.ForceQuery {
		return nil, errors.New(`session pointer: "u" must not have a query or fragment`)
	}
	switch irma.Action(typ) {
	case irma.ActionDisclosing, irma.ActionSigning, irma.ActionIssuing, irma.ActionRedirect:
	default:
		return nil, fmt.Errorf(`session pointer: unknown session type %q (want disclosing, signing, issuing or redirect)`, typ)
	}
	qr := &irma.Qr{URL: rawURL, Type: irma.Action(typ)}
	if err := qr.Validate(); err != nil {
		return nil, fmt.Errorf("session pointer: %w", err)
	}
	return qr, nil
}

func stringMember(obj map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := obj[name]
	if !ok {
		return fmt.Errorf("session pointer: missing %q", name)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("session pointer: %q must be a string", name)
	}
	if *dst == "" {
		return fmt.Errorf("session pointer: %q is empty", name)
	}
	return nil
}

// remoteErrorDetail renders an IRMA-style error body ({"error", "description", "message", "status"}), or returns ""
// if body is not one. Only short printable strings are shown: the body came from the network.
func remoteErrorDetail(body []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"description"`
		Message     string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return ""
	}
	parts := []string{clip(e.Error)}
	if e.Description != "" {
		parts = append(parts, clip(e.Description))
	}
	if e.Message != "" && e.Message != e.Description {
		parts = append(parts, clip(e.Message))
	}
	return strings.Join(parts, ": ")
}

// clip shortens s and drops control characters, so that text from a server cannot mess up a terminal.
func clip(s string) string {
	const max = 400
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// redactURL prints u for a message: without query and fragment, which may hold tokens.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}
