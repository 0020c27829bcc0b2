package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
)

// TestSessionLimits: a client gets no more sessions than session_limits
// allows it; other clients still get theirs.
func TestSessionLimits(t *testing.T) {
	g := newGateway(t)
	g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}
		session_limits {
			per_client 3 10m
		}`, `irma_auth /members/* members
	respond "members"`)
	from := clientFrom
	get := func(c *http.Client, accept string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", g.base+"/members/", nil)
		req.Header.Set("Accept", accept)
		if accept == "text/html" {
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	one := from("127.0.0.1")
	for i := range 3 {
		if resp := get(one, "application/json"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("session %d of 3: %d, want a 401 with a session", i+1, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", g.base+"/members/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := one.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Error      string `json:"error"`
		RetryAfter int    `json:"retry_after"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	// Three in the last 10 minutes: the next when the first is 10 minutes
	// old.
	if resp.StatusCode != http.StatusTooManyRequests || answer.Error != "too_many_sessions" || retry < 598 || retry > 600 || answer.RetryAfter != retry {
		t.Errorf("the fourth session: %d %+v, Retry-After %q", resp.StatusCode, answer, resp.Header.Get("Retry-After"))
	}
	// A page navigation starts no session (its script does), so it is not
	// held back; the page's button without script is.
	if resp := get(one, "text/html"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("a page navigation over the bound: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	req, _ = http.NewRequest("POST", g.base+"/members/", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp, err = one.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("the page's button over the bound: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Another client (on another loopback address) is not held back.
	if resp := get(from("127.0.0.2"), "application/json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another client: %d, want a 401 with a session", resp.StatusCode)
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address addr: a client of its own, as the gateway sees it.
func clientFrom(addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return d.DialContext(ctx, network, a) },
	}}
}

// TestSessionLimitsTwoInstances: two gateways that share a Redis, this
// test's Caddy and the Caddy binary as a process of its own, count a
// client's sessions together. With per_client 3, requests that alternate
// between them start 3 sessions in all, and the next is refused on either;
// once Redis is gone, neither starts a session.
func TestSessionLimitsTwoInstances(t *testing.T) {
	redis := testredis.StartServer(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}\n\t\tsession_limits {\n\t\t\tper_client 3\n\t\t}", redis.Addr))
	other := startInstance(t, s)
	// try asks base for a protected page as a script would, from the
	// client at the loopback address from.
	try := func(from, base string) (code int, answer map[string]any, retryAfter string) {
		t.Helper()
		c := clientFrom(from)
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest("GET", base+"/members/", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		return resp.StatusCode, answer, resp.Header.Get("Retry-After")
	}

	for i, base := range []string{s.base, other, s.base, other, s.base} {
		code, answer, retry := try("127.0.0.1", base)
		if i < 3 {
			if code != http.StatusUnauthorized || answer["sessionPtr"] == nil {
				t.Fatalf("session %d of 3, at %s: %d %v; want a 401 with a session", i+1, base, code, answer)
			}
			continue
		}
		// The first start was moments ago: the wait is most of the
		// window of 10 minutes.
		secs, _ := strconv.Atoi(retry)
		if code != http.StatusTooManyRequests || answer["error"] != "too_many_sessions" || secs < 1 || secs > 600 || answer["retry_after"] != float64(secs) {
			t.Errorf("try %d, at %s: %d %v, Retry-After %q; want 429, too_many_sessions and a wait of at most 10m", i+1, base, code, answer, retry)
		}
	}
	// The counts are in Redis: the client's (under a hash) and the total.
	if keys := redisCommand(t, redis.Addr, "EVAL \"return #redis.call('KEYS', '*session-limits:*')\" 0"); keys != ":2" {
		t.Errorf("session limit keys in Redis: %s, want 2", keys)
	}
	if code, answer, _ := try("127.0.0.2", other); code != http.StatusUnauthorized || answer["sessionPtr"] == nil {
		t.Errorf("another client: %d %v; want a 401 with a session", code, answer)
	}

	// Redis that cannot count (its scripts refused) but would keep a
	// session: the limits refuse, so no session starts on either instance.
	// Then Redis gone: the same answer, as for any request that needs it.
	if got := redisCommand(t, redis.Addr, "ACL SETUSER default -@scripting"); got != "+OK" {
		t.Fatalf("ACL SETUSER: %s", got)
	}
	for _, down := range []struct {
		name string
		stop func()
	}{{"cannot count", func() {}}, {"gone", redis.Stop}} {
		down.stop()
		for _, base := range []string{s.base, other} {
			if code, answer, retry := try("127.0.0.3", base); code != http.StatusServiceUnavailable || answer["error"] != "store_unavailable" || retry != "5" {
				t.Errorf("Redis %s, at %s: %d %v, Retry-After %q; want 503, store_unavailable and 5", down.name, base, code, answer, retry)
			}
		}
	}
}
