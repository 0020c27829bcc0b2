package caddyirma

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis/v8"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
)

// TestAdmitSession: what a request gets from the session limits, whichever
// limiter counts: a session, 429 with Retry-After over a bound, and 503
// (no session) as when the store does not answer, when the limiter cannot
// tell.
func TestAdmitSession(t *testing.T) {
	bounds := sessionlimit.Bounds{PerClient: 1, Window: time.Minute, Total: 10, TotalWindow: time.Minute}
	full := &sessionlimit.Memory{Bounds: bounds, MaxClients: 10}
	if ok, _, _ := full.Allow(t.Context(), "192.0.2.1"); !ok {
		t.Fatal("the first session was refused")
	}
	down := redis.NewClient(&redis.Options{Addr: caddytest.RefusedAddr(t), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { down.Close() })
	unavailable := &sessionlimit.Redis{Bounds: bounds, Client: down}
	notRunning := sharedLimiter{app: new(App), bounds: bounds}
	script, page := "application/json", "text/html"
	for _, c := range []struct {
		name    string
		limiter sessionlimit.Limiter
		accept  string
		code    int    // 0: admitted, nothing written
		body    string // in the answer
		errLog  string // in the log, at error level; "": a refusal at debug
		gone    bool   // the client went away: the request's context is done
	}{
		{"no limiter", nil, script, 0, "", "", false},
		{"under the bound", &sessionlimit.Memory{Bounds: bounds, MaxClients: 10}, script, 0, "", "", false},
		{"over the bound", full, script, http.StatusTooManyRequests, `"error":"too_many_sessions"`, "", false},
		{"over the bound, a page", full, page, http.StatusTooManyRequests, "<html", "", false},
		{"redis down", unavailable, script, http.StatusServiceUnavailable, `"error":"store_unavailable"`, "irma: session limits: sessionlimit: redis: ", false},
		{"redis down, a page", unavailable, page, http.StatusServiceUnavailable, "Temporarily unavailable", "sessionlimit: redis: ", false},
		{"the server not running", notRunning, script, http.StatusServiceUnavailable, "store_unavailable", "irma: session limits: the IRMA server is not running", false},
		{"the client gone", unavailable, script, http.StatusServiceUnavailable, "store_unavailable", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs, logged := observer.New(zapcore.DebugLevel)
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/members/", nil)
			if c.gone {
				ctx, cancel := context.WithCancel(r.Context())
				cancel()
				r = r.WithContext(ctx)
			}
			r.RemoteAddr = "192.0.2.1:4711"
			r.Header.Set("Accept", c.accept)
			admitted := admitSession(w, r, c.limiter, zap.New(logs))
			if admitted != (c.code == 0) {
				t.Fatalf("admitted %v, want %v", admitted, c.code == 0)
			}
			if c.code == 0 {
				if w.Code != http.StatusOK || w.Body.Len() != 0 {
					t.Errorf("an admitted request was answered: %d %q", w.Code, w.Body)
				}
				return
			}
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%d, Cache-Control %q: %q; want %d with %s", w.Code, w.Header().Get("Cache-Control"), w.Body, c.code, c.body)
			}
			// Over the bound, until the start leaves the window; the store
			// down, a moment.
			want := map[int]string{http.StatusTooManyRequests: "60", http.StatusServiceUnavailable: "5"}[c.code]
			if retry := w.Header().Get("Retry-After"); retry != want {
				t.Errorf("Retry-After %q, want %q", retry, want)
			}
			checkRefusalLog(t, logged, c.errLog)
		})
	}
}

// checkRefusalLog checks that a refusal was logged once, at error level
// with errLog in the error if it is not empty (the limiter failed), else
// at debug; and never with the client's address.
func checkRefusalLog(t *testing.T, logged *observer.ObservedLogs, errLog string) {
	t.Helper()
	entries := logged.All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries, want 1", len(entries))
	}
	e := entries[0]
	want := zapcore.DebugLevel
	if errLog != "" {
		want = zapcore.ErrorLevel
	}
	b, _ := json.Marshal(e.ContextMap())
	if e.Level != want || !strings.Contains(string(b), errLog) || strings.Contains(string(b)+e.Message, "192.0.2") {
		t.Errorf("logged at %s: %s %s; want %s with %q", e.Level, e.Message, b, want, errLog)
	}
}
