package caddyirma

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// TestDeferredStart: a browser's page navigation gets the login page
// without a session, and the JSON request of its script starts one; so a
// client that runs no script starts none. A POST navigation from the site
// itself (the page's button without script) starts one at once, one from
// another site does not. Every session waits for a scan for scanTimeout.
func TestDeferredStart(t *testing.T) {
	nav := []string{"Accept", "text/html", "Sec-Fetch-Mode", "navigate"}
	for _, tc := range []struct {
		name    string
		method  string
		header  []string
		started bool
		page    bool // an HTML answer, else JSON
	}{
		{"GET navigation", http.MethodGet, nav, false, true},
		{"HEAD navigation", http.MethodHead, nav, false, true},
		{"GET without Sec-Fetch, accepting HTML (a crawler)", http.MethodGet, []string{"Accept", "text/html,*/*"}, false, true},
		{"the page's script", http.MethodGet, []string{"Accept", "application/json", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-origin"}, true, false},
		{"a program asking for JSON", http.MethodGet, []string{"Accept", "application/json"}, true, false},
		{"a client accepting anything (a link preview)", http.MethodGet, []string{"Accept", "*/*"}, false, true},
		{"another site's script", http.MethodGet, []string{"Accept", "application/json", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "cross-site"}, false, true},
		{"a sibling subdomain's script", http.MethodGet, []string{"Accept", "application/json", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-site"}, false, true},
		{"another site's image", http.MethodGet, []string{"Accept", "image/avif,image/webp,*/*", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Dest", "image"}, false, true},
		{"the site's own image", http.MethodGet, []string{"Accept", "image/*,application/json", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Dest", "image"}, false, true},
		{"a prefetch", http.MethodGet, []string{"Accept", "application/json", "Sec-Purpose", "prefetch"}, false, true},
		{"a preflight", http.MethodOptions, []string{"Accept", "application/json", "Access-Control-Request-Method", "GET"}, false, true},
		{"a script with another Origin", http.MethodPost, []string{"Accept", "application/json", "Origin", "https://evil.example"}, false, true},
		{"a script with the site's Origin", http.MethodPost, []string{"Accept", "application/json", "Origin", "https://gw.example"}, true, false},
		{"POST navigation from a sibling subdomain", http.MethodPost, append([]string{"Sec-Fetch-Site", "same-site"}, nav...), false, true},
		{"POST navigation from the site", http.MethodPost, append([]string{"Sec-Fetch-Site", "same-origin"}, nav...), true, true},
		{"POST navigation without Sec-Fetch-Site", http.MethodPost, []string{"Accept", "text/html"}, true, true},
		{"POST navigation from another site", http.MethodPost, append([]string{"Sec-Fetch-Site", "cross-site"}, nav...), false, true},
		{"POST navigation with another Origin", http.MethodPost, []string{"Accept", "text/html", "Origin", "https://evil.example"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFlowSite(t, 12*time.Hour, emailID)
			w, login, err := s.do(tc.method, tc.header...)
			if login != nil || err != nil || w.Code != http.StatusUnauthorized || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%v %v %d %v", login, err, w.Code, w.Header())
			}
			if started := s.srv.n == 1; started != tc.started || s.pending() != tc.started {
				t.Fatalf("%d sessions started, pending cookie %v; want started %v", s.srv.n, s.pending(), tc.started)
			}
			if isPage := strings.HasPrefix(w.Header().Get("Content-Type"), "text/html"); isPage != tc.page {
				t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			body := w.Body.String()
			switch {
			case !tc.started && tc.method != http.MethodHead && tc.method != http.MethodOptions && !strings.Contains(body, `"start":"1"`):
				t.Errorf("the page does not start the session itself: %.300s", body)
			case tc.started && tc.page && !strings.Contains(body, "data:image/svg"):
				t.Errorf("the page does not show the session's QR code")
			case tc.started && !tc.page:
				var info sessionpage.Info
				if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || info.SessionPtr == nil || !strings.HasPrefix(info.QR, "data:image/svg+xml;base64,") {
					t.Errorf("JSON %v: %.300s", err, body)
				}
			}
			if tc.started && s.srv.timeouts[0] != 120 {
				t.Errorf("the session waits %d s for a scan, want 120", s.srv.timeouts[0])
			}
		})
	}
}
