package caddyirma

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// TestServeStoreAware: of what irmaserver answers at its session routes
// with the sessions in Redis, the internal error (its store failed)
// becomes a 503 that says to try again; everything else passes unchanged.
func TestServeStoreAware(t *testing.T) {
	for _, c := range []struct {
		name     string
		answer   func(w http.ResponseWriter)
		code     int
		contains string
	}{
		{"the store failed", func(w http.ResponseWriter) { server.WriteError(w, server.ErrorInternal, "") }, http.StatusServiceUnavailable, "store_unavailable"},
		{"an unknown session", func(w http.ResponseWriter) { server.WriteError(w, server.ErrorSessionUnknown, "") }, http.StatusBadRequest, "SESSION_UNKNOWN"},
		{"another 500", func(w http.ResponseWriter) { http.Error(w, "broken", http.StatusInternalServerError) }, http.StatusInternalServerError, "broken"},
		{"a status", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`"DONE"`)) }, http.StatusOK, `"DONE"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/irma/session/x/status", nil)
			err := serveStoreAware(rec, r, zap.NewNop(), func(w http.ResponseWriter) error { c.answer(w); return nil })
			if err != nil || rec.Code != c.code || !strings.Contains(rec.Body.String(), c.contains) {
				t.Errorf("%d %q, %v; want %d with %q", rec.Code, rec.Body.String(), err, c.code, c.contains)
			}
			if c.code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
}
