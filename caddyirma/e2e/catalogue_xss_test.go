package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// Markup that the cases put where the gateway may show it: in labels, in
// attribute values, in the message to sign, in return URLs and headers.
const (
	xssMessage = `<script>alert("message")</script>`
	// xssName also holds a line break and a header line after it.
	xssName = `<script>alert("fullname")</script><img src=x onerror=alert(1)>` + "\r\nX-Injected: yes"
	xssClub = `<img src=x onerror=alert("club")>`
	xssRaw  = `"><script>alert("raw")</script>`
	// xssEncoded passes as a return URL: its markup is percent-encoded.
	xssEncoded = `/x?a=%22%3E%3Cscript%3Ealert%281%29%3C/script%3E`
)

// yiviAppLines are the header lines with which the Yivi app reads a
// session request: the protocol versions it speaks, and the authorization
// it makes up for the session.
var yiviAppLines = []string{"X-IRMA-MinProtocolVersion: 2.4", "X-IRMA-MaxProtocolVersion: 2.8", "Authorization: catalogue-app-0123456789"}

// xssMarkers are what markup from a case looks like in a body that would
// run it: a tag opened by the case's text.
var xssMarkers = []string{"<script>alert(", "<img src=x"}

// xssKit holds what the cases share: the site, a login at /members/ and
// a signature of xssMessage, both made with a wallet whose fullname is
// xssName.
type xssKit struct {
	s          *catalogueSite
	login      string         // the Cookie line of the login
	signed     *http.Response // the page that ends the signature session
	signedPage string
	signature  string // the signature, as JSON
}

// xssCase is a request whose answer shows the case's markup, or would.
type xssCase struct {
	name   string
	do     func(t *testing.T, k *xssKit) (*http.Response, string)
	status int
	ctype  string // the Content-Type's media type; "": the upstream's answer
	// shown, if set, is the markup that the answer must show as text
	// (escaped for its content type): the reflection happened.
	shown string
}

// page asks for target as a browser's page navigation, with more header
// lines.
func (k *xssKit) page(t *testing.T, method, target, body string, lines ...string) (*http.Response, string) {
	t.Helper()
	return k.s.send(t, k.s.nextCase(), wireRequest{method: method, target: target, body: body,
		lines: append([]string{"Accept: text/html", "Sec-Fetch-Mode: navigate"}, lines...)})
}

// script asks for target as a script does.
func (k *xssKit) script(t *testing.T, method, target, body string, lines ...string) (*http.Response, string) {
	t.Helper()
	return k.s.send(t, k.s.nextCase(), wireRequest{method: method, target: target, body: body,
		lines: append([]string{"Accept: application/json"}, lines...)})
}

// sessionRequest is what the Yivi app reads at the session pointer of a
// JSON answer: the session request, with its labels and values.
func (k *xssKit) sessionRequest(t *testing.T, answer string) (*http.Response, string) {
	t.Helper()
	ptr := parseInfo(t, answer).SessionPtr.URL
	u, _ := url.Parse(ptr)
	return k.s.send(t, k.s.nextCase(), wireRequest{method: "GET", target: u.Path,
		lines: yiviAppLines})
}

func (k *xssKit) verifyForm(t *testing.T, signature, message string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"signature": {signature}, "message": {message}}.Encode()
	return k.s.send(t, k.s.nextCase(), wireRequest{method: "POST", target: "/irma/verify", body: form,
		lines: []string{"Accept: text/html", "Content-Type: application/x-www-form-urlencoded"}})
}

// catalogueXSSCases: markup in labels, attribute values, messages, query
// values, return URLs and headers, wherever the gateway shows them: its
// pages escape it, its JSON encodes it, its plain-text refusals say
// nosniff.
func catalogueXSSCases() []xssCase {
	return []xssCase{
		{"label/in the session request", func(t *testing.T, k *xssKit) (*http.Response, string) {
			_, answer := k.script(t, "GET", "/labels/x", "")
			return k.sessionRequest(t, answer)
		}, http.StatusOK, "application/json", catalogueLabel},
		{"label/in the 401", func(t *testing.T, k *xssKit) (*http.Response, string) { return k.script(t, "GET", "/labels/x", "") },
			http.StatusUnauthorized, "application/json", ""},
		{"label/on the login page", func(t *testing.T, k *xssKit) (*http.Response, string) { return k.page(t, "GET", "/labels/x", "") },
			http.StatusUnauthorized, "text/html", ""},
		{"query/raw, on the login page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/members/x?q="+xssRaw, "")
		}, http.StatusUnauthorized, "text/html", ""},
		{"query/encoded, on the login page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/members"+xssEncoded, "")
		}, http.StatusUnauthorized, "text/html", ""},
		{"return/raw, on the logout page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/irma/logout?return=/x?a="+xssRaw, "")
		}, http.StatusOK, "text/html", ""},
		{"return/encoded, on the logout page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/irma/logout?return="+url.QueryEscape(xssEncoded), "")
		}, http.StatusOK, "text/html", xssEncoded},
		{"return/X-Forwarded-Uri, on forward auth's page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/irma/auth?policy=members", "", "X-Forwarded-Uri: "+xssEncoded)
		}, http.StatusUnauthorized, "text/html", "return=" + url.QueryEscape(xssEncoded)},
		{"header/Accept-Language, on the logout page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/irma/logout", "", "Accept-Language: "+xssRaw)
		}, http.StatusOK, "text/html", ""},
		{"header/Origin, in the logout's JSON refusal", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.script(t, "POST", "/irma/logout", "", "Origin: "+xssRaw)
		}, http.StatusForbidden, "application/json", `<script>alert(`},
		{"header/Origin, on the logout's refusal page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "POST", "/irma/logout", "", "Origin: "+xssRaw)
		}, http.StatusForbidden, "text/html", ""},
		{"header/a trailer's name, in its refusal", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.script(t, "POST", "/open/x", "hello", "Trailer: X-Irma-"+xssRaw)
		}, http.StatusBadRequest, "text/plain", `<script>alert(`},
		{"path/in the ambiguous-path refusal", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/members/%2e%2e/"+url.PathEscape(xssRaw), "")
		}, http.StatusBadRequest, "text/plain", ""},
		{"message/on the signing page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "POST", "/sign/body", xssMessage, "Content-Type: text/plain")
		}, http.StatusOK, "text/html", ""},
		{"message and values/on the signed page", func(_ *testing.T, k *xssKit) (*http.Response, string) { return k.signed, k.signedPage },
			http.StatusOK, "text/html", xssMessage},
		{"message and values/in /irma/verify's JSON", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.script(t, "POST", "/irma/verify", k.signature, "Content-Type: application/json")
		}, http.StatusOK, "application/json", xssName},
		{"message and values/on /irma/verify's page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.verifyForm(t, k.signature, xssMessage)
		}, http.StatusOK, "text/html", xssName},
		{"form/echoed by /irma/verify's page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.verifyForm(t, "</textarea>"+xssRaw, "</textarea>"+xssRaw)
		}, http.StatusBadRequest, "text/html", "</textarea>" + xssRaw},
		{"value from the query/in the issuance request", func(t *testing.T, k *xssKit) (*http.Response, string) {
			_, answer := k.script(t, "GET", "/issue?club="+url.QueryEscape(xssClub), "")
			return k.sessionRequest(t, answer)
		}, http.StatusOK, "application/json", xssClub},
		{"value from the query/on the issuance page", func(t *testing.T, k *xssKit) (*http.Response, string) {
			return k.page(t, "GET", "/issue?club="+url.QueryEscape(xssClub), "")
		}, http.StatusOK, "text/html", ""},
		{"value/a line break, for the upstream", func(t *testing.T, k *xssKit) (*http.Response, string) {
			// The JWT carries the value as it is; a plain header cannot hold
			// it, so the gateway does not set one, and splits none.
			id := k.s.nextCase()
			resp, body := k.s.send(t, id, wireRequest{method: "GET", target: "/members/x", lines: []string{"Accept: application/json", k.login}})
			got := k.s.up.one(t, id)
			claims := verifyWithJWKS(t, got.header.Get("X-Irma-Identity"), fetchJWKS(t, newBrowser(t), k.s.base), k.s.base)
			if v := claims.Attributes["caddy-demo.gateway.person.fullname"]; v != xssName {
				t.Errorf("the JWT holds the fullname %q, want %q", v, xssName)
			}
			if got.header.Get("X-Irma-Attr-Email") != headerSiteEmail || len(got.header.Values("X-Member-Name")) != 0 || len(got.header.Values("X-Injected")) != 0 {
				t.Errorf("the upstream got the headers %q", got.header)
			}
			return resp, body
		}, http.StatusOK, "", ""},
	}
}

// TestCatalogueXSS: no page of the gateway shows markup that it did not
// write itself, whatever a label, an attribute value, a message or a
// request holds; JSON encodes it, and plain text is not sniffed.
func TestCatalogueXSS(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	k := &xssKit{s: s}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := s.newWalletLevel(t, xssName, headerSiteEmail, "gold")
	k.login = s.cookieLine(loggedIn(ctx, t, s.authSite, w))

	// Alice signs xssMessage; the signed page ends the session.
	b := newBrowser(t)
	resp, answer := b.send("POST", s.base+"/sign/body", map[string]string{"Content-Type": "text/plain"}, xssMessage)
	sess, err := wallet.ParseSession([]byte(answer), s.base+"/sign/body")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("starting the signature: %d %v %.300s", resp.StatusCode, err, answer)
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("signing: %+v, %v", res, err)
	}
	k.signed, k.signedPage = b.get(s.base+"/sign/body", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
	if m := regexp.MustCompile(`href="data:application/json;base64,([^"]+)"`).FindStringSubmatch(k.signedPage); m != nil {
		sig, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		k.signature = string(sig)
	}
	if k.signed.StatusCode != http.StatusOK || k.signature == "" {
		t.Fatalf("the signed page: %d, no signature in %.500s", k.signed.StatusCode, k.signedPage)
	}

	for _, c := range catalogueXSSCases() {
		t.Run(c.name, func(t *testing.T) {
			resp, body := c.do(t, k)
			ctype := resp.Header.Get("Content-Type")
			if resp.StatusCode != c.status || !strings.HasPrefix(ctype, c.ctype) {
				t.Errorf("%d %s, want %d %s: %.300q", resp.StatusCode, ctype, c.status, c.ctype, body)
			}
			switch c.ctype {
			case "":
			case "text/plain":
				// Plain text may say what it refused, as long as no browser
				// sniffs it for markup.
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("a plain-text answer without X-Content-Type-Options nosniff")
				}
			default:
				for _, m := range xssMarkers {
					if strings.Contains(body, m) {
						t.Errorf("the %s answer holds the markup %q: %.500q", ctype, m, body)
					}
				}
			}
			if c.ctype == "text/html" {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "script-src 'nonce-") && !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("a page with the Content-Security-Policy %q", csp)
				}
			}
			if c.shown != "" && !strings.Contains(asText(t, ctype, body), c.shown) {
				t.Errorf("the answer does not show %q as text: the test cannot tell an escape from an omission: %.500q", c.shown, body)
			}
		})
	}
}

// asText is what a body says, as a person reads it: HTML unescaped, the
// strings of JSON decoded, one a line, plain text as it is.
func asText(t *testing.T, ctype, body string) string {
	t.Helper()
	switch {
	case strings.HasPrefix(ctype, "text/html"):
		return html.UnescapeString(body)
	case strings.HasPrefix(ctype, "application/json"):
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("not JSON: %v: %.300q", err, body)
		}
		var text strings.Builder
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case string:
				text.WriteString(v + "\n")
			case []any:
				for _, e := range v {
					walk(e)
				}
			case map[string]any:
				for _, e := range v {
					walk(e)
				}
			}
		}
		walk(v)
		return text.String()
	}
	return body
}
