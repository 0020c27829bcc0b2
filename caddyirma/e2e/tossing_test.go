package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCookieTossing: a cookie of the gateway's that another site planted
// beside the visitor's (a sibling subdomain or a plain-http page can set
// one for this host) does not decide the login: a request with two of one
// name is refused.
func TestCookieTossing(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/")
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(s.base)
	var session string
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "irma_session" {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}
	for name, cookie := range map[string]string{
		"the visitor's first": "irma_session=" + session + "; irma_session=planted",
		"the planted first":   "irma_session=planted; irma_session=" + session,
		"two pending cookies": "irma_session_pending_6c0e4a8f=a; irma_session_pending_6c0e4a8f=b",
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": cookie})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%d %s, want 400", resp.StatusCode, body)
			}
		})
	}
	// A logout with two cookies would end one login, perhaps the planted
	// one, and leave the other: refused, both logins as they were.
	t.Run("logout", func(t *testing.T) {
		resp, body := rawRequest(t, newBrowser(t), "POST", s.base+"/irma/logout",
			http.Header{"Origin": {s.base}, "Cookie": {"irma_session=" + session + "; irma_session=planted"}}, "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("logout with two cookies: %d %s, want 400", resp.StatusCode, body)
		}
	})
	// Nor does the gateway's cookie reach the upstream as a trailer.
	t.Run("cookie trailer", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /members/ HTTP/1.1\r\nHost: %s\r\nCookie: irma_session=%s\r\nTrailer: Cookie\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nCookie: irma_session=forged\r\n\r\n",
			strings.TrimPrefix(s.base, "http://"), session)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a Cookie trailer: %d, want 400", resp.StatusCode)
		}
	})
	// The visitor's own cookie alone still works.
	if resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + session}); resp.StatusCode != http.StatusOK {
		t.Errorf("the visitor's cookie alone: %d %s", resp.StatusCode, body)
	}
}
