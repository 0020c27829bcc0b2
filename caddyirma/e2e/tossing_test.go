package e2e

import (
	"context"
	"net/http"
	"net/url"
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
	// The visitor's own cookie alone still works.
	if resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + session}); resp.StatusCode != http.StatusOK {
		t.Errorf("the visitor's cookie alone: %d %s", resp.StatusCode, body)
	}
}
