package main

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
)

// The tests mint tokens with the gateway's own package, so that they check this example
// against what the gateway really sends; the example itself does not import it.

const (
	testIssuer   = "http://gateway.test"
	testAudience = "caddy-irma"
)

var alice = assertion.Identity{
	Subject: "alice@example.com",
	Attributes: map[string]string{
		"caddy-demo.gateway.person.email":    "alice@example.com",
		"caddy-demo.gateway.person.fullname": "Alice <b>&</b> Co",
	},
	Policy:  "members",
	LoginID: "login-1",
}

// testKeys caches generated keys: RSA keys take a while.
var testKeys = struct {
	sync.Mutex
	m map[assertion.Algorithm][]crypto.Signer
}{m: map[assertion.Algorithm][]crypto.Signer{}}

// testKey returns the n-th test key of alg, the same one for every test.
func testKey(tb testing.TB, alg assertion.Algorithm, n int) crypto.Signer {
	tb.Helper()
	testKeys.Lock()
	defer testKeys.Unlock()
	for len(testKeys.m[alg]) <= n {
		k, err := assertion.GenerateKey(alg)
		if err != nil {
			tb.Fatal(err)
		}
		testKeys.m[alg] = append(testKeys.m[alg], k)
	}
	return testKeys.m[alg][n]
}

func testRing(tb testing.TB, keys ...crypto.Signer) *assertion.KeyRing {
	tb.Helper()
	kr, err := assertion.NewKeyRing(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// mint signs id with the newest key of kr, as the gateway would, for iss and aud.
func mint(tb testing.TB, kr *assertion.KeyRing, iss, aud string, id assertion.Identity) string {
	tb.Helper()
	i := &assertion.Issuer{Issuer: iss, Audience: aud, Keys: kr}
	token, _, err := i.Sign(id)
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// jwksServer serves the JWK set of a key ring that the test may swap, the way the gateway
// serves it, and counts the fetches.
type jwksServer struct {
	*httptest.Server
	ring    atomic.Pointer[assertion.KeyRing]
	fetches atomic.Int32
	broken  atomic.Bool // answer 500
}

func newJWKSServer(tb testing.TB, kr *assertion.KeyRing) *jwksServer {
	tb.Helper()
	s := &jwksServer{}
	s.ring.Store(kr)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.broken.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		s.ring.Load().JWKSHandler().ServeHTTP(w, r)
	}))
	tb.Cleanup(s.Close)
	return s
}

// clock is a settable clock for a Verifier, starting at the real time (the tokens are minted
// at the real time).
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// newTestVerifier returns a verifier of the tokens of s, on clock c (nil: the real time).
func newTestVerifier(s *jwksServer, c *clock) *Verifier {
	v := NewVerifier(s.URL+"/irma/jwks.json", testIssuer, testAudience)
	v.Client = s.Client()
	if c != nil {
		v.Now = c.now
	}
	return v
}
