package sessionpage

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
	"rsc.io/qr"
)

func testSession() Session {
	return Session{
		Pointer:      &irma.Qr{URL: "https://example.com/irma/session/abc123", Type: irma.ActionIssuing},
		FrontendAuth: "frontend-auth",
		PathPrefix:   "/irma/",
	}
}

func TestWantsPage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		want    bool
	}{
		{"navigation", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, true},
		{"fetch with html accept", "GET", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "text/html"}, false},
		{"old browser", "GET", map[string]string{"Accept": "text/html,application/xhtml+xml"}, true},
		{"json", "GET", map[string]string{"Accept": "application/json"}, false},
		{"xhr", "GET", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, false},
		{"no accept", "GET", nil, false},
		{"form post", "POST", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, true},
		{"put", "PUT", map[string]string{"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := WantsPage(r); got != tc.want {
				t.Errorf("WantsPage = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                       "en",
		"nl":                     "nl",
		"nl-NL,nl;q=0.9,en;q=.8": "nl",
		"en-GB,nl;q=0.5":         "en",
		"de-DE,nl;q=0.5":         "nl",
		"fr":                     "en",
		"NL-be":                  "nl",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", header)
		if got := Language(r); got != want {
			t.Errorf("Language(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestNewInfo(t *testing.T) {
	info, err := NewInfo(testSession())
	if err != nil {
		t.Fatal(err)
	}
	if info.Frontend.StatusURL != "/irma/session/abc123/frontend/status" {
		t.Errorf("status url %q", info.Frontend.StatusURL)
	}
	if !strings.HasPrefix(info.Link, "https://open.yivi.app/-/session#") {
		t.Fatalf("link %q", info.Link)
	}
	frag, err := url.QueryUnescape(strings.TrimPrefix(info.Link, "https://open.yivi.app/-/session#"))
	if err != nil {
		t.Fatal(err)
	}
	var ptr irma.Qr
	if err := json.Unmarshal([]byte(frag), &ptr); err != nil || ptr.URL != "https://example.com/irma/session/abc123" {
		t.Errorf("link does not carry the pointer: %q (%v)", frag, err)
	}

	// The QR code is the pointer's.
	svg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(info.QR, "data:image/svg+xml;base64,"))
	ptrJSON, _ := json.Marshal(testSession().Pointer)
	if want, _ := QRSVG(string(ptrJSON)); err != nil || string(svg) != string(want) {
		t.Errorf("qr %.80q is not the pointer's QR code (%v)", info.QR, err)
	}

	bad := testSession()
	bad.Pointer = &irma.Qr{URL: "https://example.com/"}
	if _, err := NewInfo(bad); err == nil {
		t.Error("a pointer without client token was accepted")
	}
}

func TestQRSVG(t *testing.T) {
	text := `{"u":"https://example.com/irma/session/abc123","irmaqr":"issuing"}`
	svg, err := QRSVG(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(svg), new(any)); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	// Every dark module of the code is painted exactly once.
	code, _ := qr.Encode(text, qr.M)
	dark := 0
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if code.Black(x, y) {
				dark++
			}
		}
	}
	painted := 0
	for _, m := range regexp.MustCompile(`M\d+ \d+h(\d+)`).FindAllStringSubmatch(string(svg), -1) {
		n := 0
		for _, c := range m[1] {
			n = n*10 + int(c-'0')
		}
		painted += n
	}
	if painted != dark {
		t.Errorf("painted %d modules, code has %d dark", painted, dark)
	}
}

func TestRender(t *testing.T) {
	w := httptest.NewRecorder()
	p := Page{Kind: KindIssue, Lang: "nl", Session: testSession(), DoneURL: `/done?x=</script><b>`}
	if err := Render(w, p); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	csp := w.Header().Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([^']+)'`).FindStringSubmatch(csp)
	if m == nil {
		t.Fatalf("no script nonce in CSP %q", csp)
	}
	if strings.Count(body, `nonce="`+m[1]+`"`) != 4 {
		t.Errorf("every script and style element should carry the nonce")
	}
	if strings.Contains(body, "</script><b>") {
		t.Error("done URL not escaped inside the script element")
	}
	for _, want := range []string{`lang="nl"`, "Ontvang uw kaartjes", `src="data:image/svg`, "https://open.yivi.app/-/session#", "/irma/session/abc123/frontend/status", `role="status"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
}

// TestRenderStart: a page without a session holds nothing of one, and
// its script starts one; without script, a button posts for it.
func TestRenderStart(t *testing.T) {
	w := httptest.NewRecorder()
	if err := RenderStart(w, http.StatusUnauthorized, Page{Kind: KindLogin, Lang: "en", DoneURL: "/members/"}); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	if w.Code != http.StatusUnauthorized {
		t.Errorf("status %d", w.Code)
	}
	for _, want := range []string{"Log in with Yivi", "Preparing the QR code", `"start":"1"`, `<form method="post">`, "Show the QR code", `"doneUrl":"/members/"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, unwanted := range []string{"data:image", "open.yivi.app", "/frontend/", `"statusUrl":`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("a page without session has %q", unwanted)
		}
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "connect-src 'self'") {
		t.Errorf("headers %v", w.Header())
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusUnauthorized, map[string]string{"a": "b"})
	if w.Code != 401 || w.Header().Get("Content-Type") != "application/json" || strings.TrimSpace(w.Body.String()) != `{"a":"b"}` {
		t.Errorf("got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body.String())
	}
}

func TestRenderLogout(t *testing.T) {
	w := httptest.NewRecorder()
	if err := RenderLogout(w, "nl", `/irma/logout?return=%2F"><script>x</script>`, `/back"><b>`); err != nil {
		t.Fatal(err)
	}
	body, h := w.Body.String(), w.Header()
	if w.Code != http.StatusOK || !strings.Contains(body, `<form method="post" action="/irma/logout?return=%2F%22%3e%3cscript%3ex%3c/script%3e">`) ||
		!strings.Contains(body, `lang="nl"`) || !strings.Contains(body, ">Uitloggen</button>") || strings.Contains(body, "<script") || strings.Contains(body, "<b>") {
		t.Errorf("%d %s", w.Code, body)
	}
	for name, want := range map[string]string{
		"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// The other pages keep no-referrer.
	w = httptest.NewRecorder()
	if err := RenderMessage(w, http.StatusForbidden, "en", "logoutrefused", "/irma/logout"); err != nil {
		t.Fatal(err)
	}
	if got := w.Header().Get("Referrer-Policy"); got != "no-referrer" || !strings.Contains(w.Body.String(), "Not logged out") {
		t.Errorf("Referrer-Policy %q: %s", got, w.Body)
	}
}

// BenchmarkQRDataURL: every JSON answer that starts a session carries one.
func BenchmarkQRDataURL(b *testing.B) {
	ptr := `{"u":"https://gateway.example.com/irma/session/sXjkvhxZt9ltVpQx1CYO","irmaqr":"disclosing"}`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := QRDataURL(ptr); err != nil {
			b.Fatal(err)
		}
	}
}
