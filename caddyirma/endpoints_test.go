package caddyirma

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestAllowedIRMAPath(t *testing.T) {
	for path, want := range map[string]bool{
		"GET /session/abc123":                            true,
		"GET /session/abc123/":                           true,
		"GET /session/abc123/request":                    true,
		"POST /session/abc123/commitments":               true,
		"POST /session/abc123/proofs":                    true,
		"GET /session/abc123/status":                     true,
		"GET /session/abc123/frontend/status":            true,
		"POST /session/abc123/frontend/options":          true,
		"POST /session/abc123/frontend/pairingcompleted": true,
		"GET /session/abc123/statusevents":               true,
		"GET /session/abc123/frontend/statusevents":      true,
		"POST /session/abc123/statusevents":              false,
		"GET /session/abc123/statusevents/x":             false,
		"GET /session/":                                  false,
		"GET /session/abc/../../revocation/x":            false,
		"GET /session/a%2Fb":                             false,
		"GET /revocation/x/events/0/0/1":                 false,
		"GET /session/x/proofs/extra":                    false,
		"GET /":                                          false,
		"GET ":                                           false,
	} {
		method, path, _ := strings.Cut(path, " ")
		if got := allowedIRMAPath(method, path); got != want {
			t.Errorf("allowedIRMAPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// FuzzAllowedIRMAPath checks that every path the gateway passes to
// irmaserver is a session path that stays one after cleaning.
func FuzzAllowedIRMAPath(f *testing.F) {
	for _, s := range []string{"/session/abc/proofs", "/session/abc/../x", "/revocation/a", "/session//x", "/session/a/frontend/status"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !allowedIRMAPath("GET", p) && !allowedIRMAPath("POST", p) {
			return
		}
		if path.Clean(p) != strings.TrimSuffix(p, "/") || !strings.HasPrefix(p, "/session/") {
			t.Errorf("allowed %q, which is not a clean session path", p)
		}
	})
}

// TestEndpointsNotRunning: while the IRMA server is not running (a start
// or a reload under way), the Yivi app's requests get 503 with a body and
// Retry-After, and the log holds no client token of their URLs.
func TestEndpointsNotRunning(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	e := &Endpoints{app: &App{prefix: "/irma/", started: make(chan struct{}), logger: zap.New(core)}}
	const token = "AbCdEfGhIjKlMnOpQrSt"
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the wait for the start ends at once
	r := httptest.NewRequest("GET", "/irma/session/"+token+"/status", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	if err := e.ServeHTTP(w, r, nil); err != nil {
		t.Fatalf("an error for Caddy to log: %v", err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"unavailable"`) {
		t.Errorf("%d %v %q", w.Code, w.Header(), w.Body)
	}
	for _, entry := range logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		if strings.Contains(line, token) {
			t.Errorf("the log holds the client token: %s", line)
		}
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged")
	}
}
