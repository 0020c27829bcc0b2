package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
)

// TestRedisOutage: with the sessions in Redis, a Redis that goes down
// turns every request that needs it into a 503 with Retry-After and a
// body (a page for a browser, JSON for a script) and one log line that
// names Redis, never an empty 500; a page that needs no store still shows,
// and the health check for a load balancer says 503.
// Once Redis is back, the very next request works, without a restart.
func TestRedisOutage(t *testing.T) {
	redis := testredis.StartServer(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	var metricsURL string
	s := newAuthSiteStore(t, metricsServer(t, &metricsURL), fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", redis.Addr),
		fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logFile))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := loggedIn(ctx, t, s, s.newWallet(t, "alice@example.com", "yes"))
	anonymous := newBrowser(t)
	page := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
	script := map[string]string{"Accept": "application/json"}

	health := func() int {
		t.Helper()
		resp, _ := anonymous.get(s.base+"/irma/health", nil)
		return resp.StatusCode
	}
	if got := health(); got != http.StatusOK {
		t.Fatalf("health before the outage: %d", got)
	}
	// A full Redis answers reads but refuses writes, which every login and
	// logout makes: the health check says 503 too.
	redisCommand(t, redis.Addr, "CONFIG SET maxmemory-policy noeviction")
	redisCommand(t, redis.Addr, "CONFIG SET maxmemory 1")
	if got := health(); got != http.StatusServiceUnavailable {
		t.Errorf("health with a full Redis: %d, want 503", got)
	}
	redisCommand(t, redis.Addr, "CONFIG SET maxmemory 0")
	if got := health(); got != http.StatusOK {
		t.Fatalf("health with room again: %d", got)
	}

	before := scrape(t, metricsURL)
	redis.Stop()
	refused := 1 // the health check of the full Redis
	for _, c := range []struct {
		name   string
		b      *browser
		method string
		path   string
		header map[string]string
	}{
		{"a login's page", b, "GET", "/members/page", page},
		{"a login's script", b, "GET", "/members/page", script},
		{"an anonymous script", anonymous, "GET", "/members/page", script},
		{"forward auth", b, "GET", "/irma/auth?policy=members", script},
		{"the login endpoint", anonymous, "GET", "/irma/login?policy=members", script},
		{"logout", b, "POST", "/irma/logout", map[string]string{"Origin": s.base}},
		{"the health check", anonymous, "GET", "/irma/health", nil},
	} {
		resp, body := c.b.send(c.method, s.base+c.path, c.header, "")
		refused++
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
			t.Errorf("%s: %d, Retry-After %q, want 503 and 5: %.200q", c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			continue
		}
		if c.header["Accept"] == "text/html" {
			if !strings.Contains(body, "Temporarily unavailable") {
				t.Errorf("%s: the page says %.300q", c.name, body)
			}
			continue
		}
		var answer struct {
			Error      string `json:"error"`
			RetryAfter int    `json:"retry_after"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Error != "store_unavailable" || answer.RetryAfter != 5 {
			t.Errorf("%s: JSON %q (%v)", c.name, body, err)
		}
	}
	// A visitor's page navigation needs no store: its page starts the
	// session later.
	if resp, body := anonymous.get(s.base+"/members/page", page); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"start":"1"`) {
		t.Errorf("an anonymous page during the outage: %d %.200q", resp.StatusCode, body)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logs), "the session store (Redis) failed"); n != refused {
		t.Errorf("%d log lines name Redis for %d refused requests:\n%s", n, refused, logs)
	}
	if strings.Contains(string(logs), `"status":500`) {
		t.Errorf("a 500 during the outage:\n%s", logs)
	}
	// The login's page and the logout failed on the store of one-use marks.
	const marksErrors = `caddy_irma_store_errors_total{store="marks"}`
	if got := scrape(t, metricsURL).value(marksErrors) - before.value(marksErrors); got < 2 {
		t.Errorf("%s went up by %v during the outage, want at least 2", marksErrors, got)
	}

	redis.Restart()
	if got := health(); got != http.StatusOK {
		t.Errorf("health after the outage: %d", got)
	}
	if resp, body := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the login's first request after the outage: %d %.200q", resp.StatusCode, body)
	}
	if resp, body := anonymous.get(s.base+"/members/page", script); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "sessionPtr") {
		t.Errorf("a new session after the outage: %d %.200q", resp.StatusCode, body)
	}
}

// TestRedisOutageIRMAEndpoints: during an outage of Redis, the IRMA
// endpoints of a login under way (its page's status poll, the Yivi app's
// requests) answer 503 with Retry-After and JSON too, where irmaserver
// answers a failure of its store with a bare 500; when Redis is back, the
// login goes on.
func TestRedisOutageIRMAEndpoints(t *testing.T) {
	redis := testredis.StartServer(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", redis.Addr))
	b := newBrowser(t)
	pending := startLogin(t, b, s.base+"/members/page")
	poll := func() (*http.Response, string) {
		return b.get(s.base+pending.Frontend.StatusURL, map[string]string{"Authorization": pending.Frontend.Authorization})
	}
	app := newBrowser(t) // the Yivi app asks for the session
	session := func() (*http.Response, string) { return app.get(pending.SessionPtr.URL+"/", nil) }

	redis.Stop()
	assertRetryLater(t, "the status poll during the outage", poll)
	assertRetryLater(t, "the Yivi app's request during the outage", session)
	redis.Restart() // empty: the session is gone, as a fresh Redis would have it
	if resp, body := poll(); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "SESSION_UNKNOWN") {
		t.Errorf("the status poll after the outage: %d %.300q", resp.StatusCode, body)
	}
}

// pendingLogin is what a protected route answers a script that is not
// logged in: the session for the Yivi app, and the page's frontend.
type pendingLogin struct {
	SessionPtr irma.Qr `json:"sessionPtr"`
	Frontend   struct {
		Authorization string `json:"authorization"`
		StatusURL     string `json:"statusUrl"`
	} `json:"frontend"`
}

// startLogin starts a login at url as b's script, and returns the session.
func startLogin(t *testing.T, b *browser, url string) *pendingLogin {
	t.Helper()
	var p pendingLogin
	resp, body := b.get(url, nil)
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &p) != nil || p.SessionPtr.URL == "" {
		t.Fatalf("starting a login at %s: %d %.300q", url, resp.StatusCode, body)
	}
	return &p
}
