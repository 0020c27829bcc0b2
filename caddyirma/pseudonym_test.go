package caddyirma

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestLoginPseudonyms: one login is one subject to the upstreams of one
// audience, and unrelated subjects to those of others.
func TestLoginPseudonyms(t *testing.T) {
	s := newFlowSite(t, time.Hour, emailID)
	s.get(false)
	s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
	_, login, _ := s.get(false)
	if login == nil {
		t.Fatal("no login")
	}
	flow := func(audience string) *loginFlow {
		f := *s.flow
		f.audience = audience
		return &f
	}
	shop, shopAgain, blog := flow("shop").subject(login), flow("shop").subject(login), flow("blog").subject(login)
	if shop != shopAgain || shop == blog || shop == login.ID || blog == login.ID || len(shop) < 20 {
		t.Errorf("subjects: shop %q and %q, blog %q, login id %q", shop, shopAgain, blog, login.ID)
	}
	other := *login
	other.ID = "another login"
	if flow("shop").subject(&other) == shop {
		t.Error("two logins have one subject")
	}
	for _, aud := range []string{"shop", "blog"} {
		token, err := flow(aud).token(login)
		if err != nil {
			t.Fatal(err)
		}
		claims := jwtClaims(t, token)
		if claims["aud"] != aud || claims["sub"] != flow(aud).subject(login) {
			t.Errorf("audience %s: claims %v", aud, claims)
		}
	}
}

// jwtClaims returns the claims of a JWT, unverified.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}
