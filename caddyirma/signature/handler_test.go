package signature

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
)

func checkPageHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'nonce-") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", w.Header())
	}
}

func TestHandlerWithoutSignatures(t *testing.T) {
	var conf *irma.Configuration
	h := Handler(func() *irma.Configuration { return conf })
	serve := func(method, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "/", strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	t.Run("form page", func(t *testing.T) {
		w := serve(http.MethodGet, "", "")
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(body, `<form method="post">`) || !strings.Contains(body, `name="signature"`) || !strings.Contains(body, `name="message"`) {
			t.Fatalf("%d %s", w.Code, body)
		}
		checkPageHeaders(t, w)
		nonce := strings.TrimSuffix(strings.SplitN(w.Header().Get("Content-Security-Policy"), "'nonce-", 2)[1], "'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		if !strings.Contains(body, `<style nonce="`+nonce+`">`) {
			t.Errorf("style nonce %q not on the page", nonce)
		}
		if w := serve(http.MethodHead, "", ""); w.Code != 200 || w.Body.Len() != 0 {
			t.Errorf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
		}
	})

	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		if w := serve(m, "application/json", "{}"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("%s: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	for _, ct := range []string{"", "text/plain", "multipart/form-data; boundary=x", "application/json; charset"} {
		if w := serve(http.MethodPost, ct, "{}"); w.Code != http.StatusUnsupportedMediaType {
			t.Errorf("content type %q: %d", ct, w.Code)
		}
	}
	if w := serve(http.MethodPost, "application/json", `{"signature": []}`); w.Code != http.StatusServiceUnavailable {
		t.Errorf("without configuration: %d %s", w.Code, w.Body)
	}
	if w := serve(http.MethodPost, "application/json", `nonsense`); w.Code != http.StatusBadRequest {
		t.Errorf("garbage without configuration: %d %s", w.Code, w.Body)
	}
}
