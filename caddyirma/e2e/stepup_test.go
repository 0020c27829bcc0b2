package e2e

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestStepUpOneHolder: a step-up session made by another wallet than the
// login's does not add its attributes to the login (issue 8, item 8: a
// login with one wallet's email and another wallet's membership opened
// /club/). The step-up asks the login's attributes again: IRMA binds what
// one session discloses to one holder, and the gateway checks that the
// values are the login's.
func TestStepUpOneHolder(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	bob := s.newWalletLevel(t, "Bob", "bob@example.com", "platinum")

	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/")
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's login: %d %s", resp.StatusCode, body)
	}
	res := b.login(ctx, bob, s.base+"/club/")
	var asked []string
	for _, d := range res.Disclosed {
		asked = append(asked, d.Type.Name())
	}
	sort.Strings(asked)
	if len(asked) != 2 || asked[0] != "email" {
		t.Errorf("the step-up disclosed %v, want the membership and the login's email", asked)
	}
	if resp, body := b.get(s.base+"/club/", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("after bob's step-up on alice's login: %d %s, want 403", resp.StatusCode, body)
	}
	// Alice's login is still hers alone.
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice@example.com") {
		t.Errorf("alice's login after the refused step-up: %d %s", resp.StatusCode, body)
	}
	// And her own step-up works.
	b.login(ctx, alice, s.base+"/club/")
	if resp, body := b.get(s.base+"/club/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("alice's own step-up: %d %s", resp.StatusCode, body)
	}
}
