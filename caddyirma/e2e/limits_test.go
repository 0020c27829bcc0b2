package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
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
	from := func(addr string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return d.DialContext(ctx, network, a) },
		}}
	}
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
