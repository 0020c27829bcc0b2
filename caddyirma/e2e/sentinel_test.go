package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRedisSentinelFailover: two gateways, this test's Caddy and the Caddy
// binary as a process of its own, keep their sessions in Redis Sentinel
// over TLS, with passwords (a master, two replicas, three sentinels, all
// real processes; and a sentinel that is down, first in the list).
// A wrong sentinel password or master name stops the config with an error
// that says so. The master is killed during a login. Until the sentinels
// have failed over, what needs Redis gets 503 with Retry-After, a page or
// JSON: the health check, the login page's status poll, the Yivi app's
// requests, a logged-in page, a new login. After the failover, without a restart of either
// gateway, the login that was under way completes, a login of before the
// failover still opens, and new logins (which count sessions in Redis) and
// a logout work on both. Last, what accept_inconsistency_risk accepts: a
// logout lost in a failover.
func TestRedisSentinelFailover(t *testing.T) {
	pki := newTestPKI(t)
	set := testredis.StartSentinel(t, testredis.SentinelOptions{Replicas: 2, Password: "redis-s3cret", SentinelPassword: "sentinel-s3cret",
		TLS: &testredis.TLSFiles{CACert: pki.caCert, ServerCert: pki.serverCert, ServerKey: pki.serverKey}})
	t.Setenv("CADDY_IRMA_TEST_REDIS_PASSWORD", "redis-s3cret")
	t.Setenv("CADDY_IRMA_TEST_SENTINEL_PASSWORD", "sentinel-s3cret")
	// A sentinel that is down comes first: any that answers is enough.
	sentinels := append([]string{caddytest.RefusedAddr(t)}, set.Addrs()...)
	redisBlock := func(masterName, sentinelPassword string) string {
		return fmt.Sprintf(`redis {
			sentinel_addresses %s
			sentinel_master_name %s
			sentinel_password %s
			accept_inconsistency_risk
			password {env.CADDY_IRMA_TEST_REDIS_PASSWORD}
			tls_ca_cert_file %s
		}`, strings.Join(sentinels, " "), masterName, sentinelPassword, pki.caCert)
	}
	t.Run("a wrong sentinel password or master name is a config error that says so", func(t *testing.T) {
		g := newGateway(t)
		for _, c := range []struct{ master, password, want string }{
			{testredis.MasterName, "wrong", "WRONGPASS invalid username-password pair or user is disabled. (sentinel_username, sentinel_password)"},
			{"nosuch", "{env.CADDY_IRMA_TEST_SENTINEL_PASSWORD}", `it monitors no master named "nosuch" (sentinel_master_name)`},
		} {
			err := caddytest.Load(g.config(redisBlock(c.master, c.password), `respond "ok"`))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sentinel "+set.Addrs()[0]) {
				t.Errorf("%v; want an error that names each sentinel and says %q", err, c.want)
			}
		}
	})
	s := newAuthSiteStore(t, nil, redisBlock(testredis.MasterName, "{env.CADDY_IRMA_TEST_SENTINEL_PASSWORD}"))
	other := startInstance(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	earlier := loggedIn(ctx, t, s, alice) // a login of before the failover
	b := newBrowser(t)
	pending := startLogin(t, b, other+"/members/page")
	poll := func(base string) func() (*http.Response, string) {
		return func() (*http.Response, string) {
			return b.get(base+pending.Frontend.StatusURL, map[string]string{"Authorization": pending.Frontend.Authorization})
		}
	}
	page := map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
	set.Replicated() // the login is on the replicas too: nothing is lost that the master acknowledged
	set.Master.Stop()

	t.Run("until the failover, 503", func(t *testing.T) {
		for _, base := range []string{s.base, other} {
			assertRetryLater(t, "the health check at "+base, func() (*http.Response, string) { return newBrowser(t).get(base+"/irma/health", nil) })
			assertRetryLater(t, "the status poll at "+base, poll(base))
			assertRetryLater(t, "a new login at "+base, func() (*http.Response, string) { return newBrowser(t).get(base+"/members/page", nil) })
			resp, body := earlier.get(base+"/members/page", page)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" || !strings.Contains(body, "Temporarily unavailable") {
				t.Errorf("a logged-in page at %s: %d, Retry-After %q: %.300q", base, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
		}
		// The Yivi app cannot go on now; it can scan the same QR code again.
		if res, err := alice.Run(ctx, &pending.SessionPtr, wallet.Accept); err == nil {
			t.Errorf("the Yivi app's session without Redis: %+v, want an error", res)
		}
	})

	set.DownAfter(time.Second)
	set.WaitFailover()
	// Each gateway asks the sentinels for the master when it connects
	// again; until then a request may still get 503, and nothing else.
	for _, base := range []string{s.base, other} {
		waitServed(t, "the health check at "+base, func() (*http.Response, string) { return newBrowser(t).get(base+"/irma/health", nil) })
		waitServed(t, "the status poll at "+base, poll(base))
	}

	t.Run("the login under way completes", func(t *testing.T) {
		if res, err := alice.Run(ctx, &pending.SessionPtr, wallet.Accept); err != nil {
			t.Fatalf("the Yivi app's session after the failover: %+v, %v", res, err)
		}
		if resp, body := poll(s.base)(); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"DONE"`) {
			t.Errorf("the status poll: %d %.300q", resp.StatusCode, body)
		}
		if resp, body := b.get(other+"/members/page", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("the login's page: %d %.300q", resp.StatusCode, body)
		}
	})
	t.Run("a login of before the failover opens on both", func(t *testing.T) {
		for _, base := range []string{s.base, other} {
			if resp, body := earlier.get(base+"/members/page", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("at %s: %d %.300q", base, resp.StatusCode, body)
			}
		}
	})
	t.Run("new logins and a logout on both", func(t *testing.T) {
		for _, c := range []struct{ on, then string }{{s.base, other}, {other, s.base}} {
			nb := newBrowser(t)
			nb.login(ctx, alice, c.on+"/members/page")
			if resp, body := nb.get(c.on+"/members/page", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("a new login at %s: %d %.300q", c.on, resp.StatusCode, body)
			}
			copied := nb.cookie(c.on, "irma_session")
			if got := statusWith(t, c.then, "/members/page", copied); got != http.StatusOK {
				t.Errorf("a login made at %s, at %s: %d", c.on, c.then, got)
			}
			if resp, _ := nb.send("POST", c.on+"/irma/logout", map[string]string{"Origin": c.on}, ""); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout at %s: %d", c.on, resp.StatusCode)
			}
			if got := statusWith(t, c.then, "/members/page", copied); got != http.StatusUnauthorized {
				t.Errorf("the copy at %s after the logout at %s: %d, want 401", c.then, c.on, got)
			}
		}
	})
	t.Run("the inconsistency risk: a logout that the master did not pass on is lost", func(t *testing.T) {
		sentinelRisk(ctx, t, set, s, other, alice)
	})
}

// TestRedisSentinelFailover, continued: what accept_inconsistency_risk
// accepts. Replication is asynchronous: a write that the master
// acknowledged but had not passed on when it failed is not on the replica
// that takes over. Here a logout: the login's cookie opens again.
func sentinelRisk(ctx context.Context, t *testing.T, set *testredis.Sentinel, s *authSite, other string, w *wallet.Wallet) {
	lb := loggedIn(ctx, t, s, w)
	copied := lb.cookie(s.base, "irma_session")
	set.Replicated() // the login is on the replica
	replica := set.Replicas[0]
	replica.Pause()
	// The master drops the replica's link, which the paused replica cannot
	// make again: what the master takes from now on stays on it alone.
	if out, err := set.Master.Query("CLIENT KILL TYPE replica"); err != nil || len(out) != 1 || out[0] != ":1" {
		t.Fatalf("CLIENT KILL TYPE replica: %q %v", out, err)
	}
	if resp, _ := lb.send("POST", s.base+"/irma/logout", map[string]string{"Origin": s.base}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if got := statusWith(t, other, "/members/page", copied); got != http.StatusUnauthorized {
		t.Fatalf("the copy after the logout: %d, want 401", got)
	}
	set.Master.Stop()
	replica.Resume()
	set.DownAfter(time.Second)
	set.WaitFailover()
	waitServed(t, "a new login", func() (*http.Response, string) {
		resp, body := newBrowser(t).get(s.base+"/members/page", nil)
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(body, "sessionPtr") {
			resp.StatusCode = http.StatusOK // a session: Redis answers
		}
		return resp, body
	})
	for _, base := range []string{s.base, other} {
		if got := statusWith(t, base, "/members/page", copied); got != http.StatusOK {
			t.Errorf("the copy after the failover, at %s: %d; want 200, the logout lost with the master", base, got)
		}
	}
}

// assertRetryLater checks that get is answered 503, Retry-After 5, with the
// JSON of a store that does not answer.
func assertRetryLater(t *testing.T, what string, get func() (*http.Response, string)) {
	t.Helper()
	resp, body := get()
	var answer struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
		json.Unmarshal([]byte(body), &answer) != nil || answer.Error != "store_unavailable" || answer.RetryAfter != 5 {
		t.Errorf("%s: %d, Retry-After %q: %.300q; want 503, 5 and store_unavailable", what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// waitServed asks get until it is answered 200, for up to half a minute;
// meanwhile every answer must be a 503 that says to try again.
func waitServed(t *testing.T, what string, get func() (*http.Response, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := get()
		if resp.StatusCode == http.StatusOK {
			return
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %.300q; want 200, or 503 with Retry-After until then", what, resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still 503 after 30s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
