package assertion

import (
	"crypto"
	"sync"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
)

var algorithms = []Algorithm{EdDSA, ES256, RS256}

// testKeys caches generated keys: RSA keys take a while.
var testKeys = struct {
	sync.Mutex
	m map[Algorithm][]crypto.Signer
}{m: map[Algorithm][]crypto.Signer{}}

// testKey returns the n-th test key of alg, the same one for every test.
func testKey(tb testing.TB, alg Algorithm, n int) crypto.Signer {
	tb.Helper()
	testKeys.Lock()
	defer testKeys.Unlock()
	for len(testKeys.m[alg]) <= n {
		k, err := GenerateKey(alg)
		if err != nil {
			tb.Fatal(err)
		}
		testKeys.m[alg] = append(testKeys.m[alg], k)
	}
	return testKeys.m[alg][n]
}

func testRing(tb testing.TB, keys ...crypto.Signer) *KeyRing {
	tb.Helper()
	kr, err := NewKeyRing(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// t0 is the time at which the tests sign, a whole second.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testIssuer(kr *KeyRing, c *testclock.Clock) *Issuer {
	return &Issuer{Issuer: "https://gateway.example/", Audience: "upstream", Keys: kr, now: c.Now}
}

var alice = Identity{
	Subject: "alice@example.com",
	Attributes: map[string]string{
		"pbdf.sidn-pbdf.email.email":      "alice@example.com",
		"pbdf.pbdf.ageLimits.over18":      "yes",
		"irma-demo.MijnOverheid.root.bsn": "12345",
	},
	Policy:  "members",
	LoginID: "login-1",
	Expires: t0.Add(time.Hour),
}
