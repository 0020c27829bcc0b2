package assertion

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
)

func TestTokenReuse(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0)
	iss := testIssuer(kr, c)

	first := mustToken(t, iss, alice)
	c.Advance(DefaultTTL/2 - time.Second)
	if got := mustToken(t, iss, alice); got != first {
		t.Error("a token with more than half its TTL left was not reused")
	}
	c.Advance(time.Second)
	second := mustToken(t, iss, alice)
	if second == first {
		t.Error("a token with half its TTL left was reused")
	}
	if _, err := Verify(second, kr.JWKS(), testIss, testAud, c.Now()); err != nil {
		t.Errorf("re-signed token: %v", err)
	}
	if got := mustToken(t, iss, alice); got != second {
		t.Error("the re-signed token was not reused")
	}

	// Anything that goes into the token gets its own.
	variants := map[string]func(*Identity){
		"login":     func(id *Identity) { id.LoginID = "login-2" },
		"policy":    func(id *Identity) { id.Policy = "admins" },
		"subject":   func(id *Identity) { id.Subject = "bob@example.com" },
		"attribute": func(id *Identity) { id.Attributes["pbdf.pbdf.ageLimits.over18"] = "no" },
		"extra":     func(id *Identity) { id.Attributes["x"] = "" },
		"expires":   func(id *Identity) { id.Expires = id.Expires.Add(time.Second) },
		// Lengths are encoded: moving a character from one field to the next differs too.
		"boundary": func(id *Identity) { id.LoginID, id.Policy = alice.LoginID+"m", alice.Policy[1:] },
	}
	for name, change := range variants {
		id := alice
		id.Attributes = maps.Clone(alice.Attributes)
		change(&id)
		token := mustToken(t, iss, id)
		if token == second {
			t.Errorf("%s changed, same token", name)
		}
		claims, err := Verify(token, kr.JWKS(), testIss, testAud, c.Now())
		if err != nil || claims.Subject != id.Subject || claims.Policy != id.Policy || !maps.Equal(claims.Attributes, id.Attributes) {
			t.Errorf("%s: token asserts %+v, %v; want %+v", name, claims, err, id)
		}
	}
}

func TestTokenKeyRotation(t *testing.T) {
	c := testclock.New(t0)
	a := testIssuer(testRing(t, testKey(t, EdDSA, 0)), c)
	b := testIssuer(testRing(t, testKey(t, EdDSA, 1), testKey(t, EdDSA, 0)), c)
	if a.cacheKey(alice) == b.cacheKey(alice) {
		t.Error("tokens of different signing keys share a cache key")
	}
}

func TestTokenNearLoginEnd(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0)
	iss := testIssuer(kr, c)
	id := alice
	id.Expires = t0.Add(20 * time.Second)

	first := mustToken(t, iss, id)
	c.Advance(15 * time.Second)
	if got := mustToken(t, iss, id); got != first {
		t.Error("re-signed although a new token would expire at the same time")
	}
	c.Advance(5 * time.Second)
	if _, err := iss.Token(id); err == nil {
		t.Error("token for an ended login")
	}
}

// TokenUntil's deadline is never later than Token's own reuse: a caller that keeps the token
// until then hands out what Token would.
func TestTokenUntil(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0)
	iss := testIssuer(kr, c)
	first, until, err := iss.TokenUntil(alice)
	if err != nil || !until.Equal(t0.Add(DefaultTTL/2)) {
		t.Fatalf("until %s, %v; want half the TTL", until.Sub(t0), err)
	}
	c.Advance(until.Sub(c.Now()) - time.Nanosecond)
	if got := mustToken(t, iss, alice); got != first {
		t.Error("Token re-signed before TokenUntil's deadline")
	}

	id := alice
	id.Expires = c.Now().Add(20 * time.Second)
	token, until, err := iss.TokenUntil(id)
	if err != nil || until.Unix() != id.Expires.Unix() {
		t.Fatalf("near the login's end: until %s, %v; want the login's end", until, err)
	}
	c.Advance(until.Sub(c.Now()) - time.Nanosecond)
	if got := mustToken(t, iss, id); got != token {
		t.Error("Token re-signed before TokenUntil's deadline at the login's end")
	}

	iss.CacheSize = -1
	if _, until, err := iss.TokenUntil(alice); err != nil || !until.IsZero() {
		t.Errorf("reuse off: until %s, %v; want zero", until, err)
	}
}

func TestTokenCacheBounded(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0)
	iss := testIssuer(kr, c)
	iss.CacheSize = 3

	identity := func(n int) Identity {
		id := alice
		id.LoginID = fmt.Sprint("login-", n)
		return id
	}
	tokens := make([]string, 5)
	for n := range tokens {
		tokens[n] = mustToken(t, iss, identity(n))
	}
	if len(iss.cache) != 3 || iss.order.Len() != 3 {
		t.Fatalf("cache holds %d (%d in order), want 3", len(iss.cache), iss.order.Len())
	}
	if mustToken(t, iss, identity(4)) != tokens[4] {
		t.Error("newest token evicted")
	}
	if mustToken(t, iss, identity(0)) == tokens[0] {
		t.Error("oldest token kept beyond the cache size")
	}

	// Stale tokens go first.
	c.Advance(DefaultTTL)
	mustToken(t, iss, identity(9))
	if len(iss.cache) != 1 {
		t.Errorf("cache holds %d after everything went stale, want 1", len(iss.cache))
	}

	off := testIssuer(kr, c)
	off.CacheSize = -1
	if first := mustToken(t, off, alice); first == mustToken(t, off, alice) {
		t.Error("reused with the cache off")
	}
}

func TestTokenConcurrent(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0)
	iss := testIssuer(kr, c)
	iss.CacheSize = 50
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				id := alice
				id.LoginID = fmt.Sprint("login-", (g*200+n)%97)
				token, err := iss.Token(id)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := Verify(token, kr.JWKS(), testIss, testAud, c.Now()); err != nil {
					t.Error(err)
					return
				}
				if n%25 == 0 {
					// Small steps, so that other goroutines cannot age a token past its
					// exp between Token and Verify, yet past half the TTL in all.
					c.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if len(iss.cache) > 50 || len(iss.cache) != iss.order.Len() {
		t.Errorf("cache %d, order %d, bound 50", len(iss.cache), iss.order.Len())
	}
}

func mustToken(t *testing.T, iss *Issuer, id Identity) string {
	t.Helper()
	token, err := iss.Token(id)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(string(alg), func(b *testing.B) {
			iss := &Issuer{Issuer: testIss, Audience: testAud, Keys: testRing(b, testKey(b, alg, 0))}
			id := alice
			id.Expires = time.Now().Add(time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := iss.Sign(id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTokenCached(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(string(alg), func(b *testing.B) {
			iss := &Issuer{Issuer: testIss, Audience: testAud, Keys: testRing(b, testKey(b, alg, 0))}
			id := alice
			id.Expires = time.Now().Add(time.Hour)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := iss.Token(id); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(string(alg), func(b *testing.B) {
			kr := testRing(b, testKey(b, alg, 0))
			iss := &Issuer{Issuer: testIss, Audience: testAud, Keys: kr}
			token, _, err := iss.Sign(alice)
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Verify(token, kr.JWKS(), testIss, testAud, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
