package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
)

func TestVerifyAlgorithms(t *testing.T) {
	for _, alg := range []assertion.Algorithm{assertion.EdDSA, assertion.ES256, assertion.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			kr := testRing(t, testKey(t, alg, 0))
			s := newJWKSServer(t, kr)
			v := newTestVerifier(s, nil)
			claims, err := v.Verify(context.Background(), mint(t, kr, testIssuer, testAudience, alice))
			if err != nil {
				t.Fatal(err)
			}
			if claims.Policy != "members" || claims.Subject != "alice@example.com" ||
				claims.Attributes["caddy-demo.gateway.person.fullname"] != "Alice <b>&</b> Co" {
				t.Errorf("claims = %+v", claims)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	valid := mint(t, kr, testIssuer, testAudience, alice)
	kid := kr.KeyID()
	esKey := testKey(t, assertion.ES256, 0)

	for _, tc := range []struct {
		name  string
		token string
		skew  time.Duration // of the verifier's clock
		want  error
	}{
		{"expired", valid, 2 * time.Minute, jwt.ErrTokenExpired},
		{"just within the leeway", valid, assertion.DefaultTTL + 2*time.Second, nil},
		{"not yet valid", valid, -time.Minute, jwt.ErrTokenNotValidYet},
		{"wrong audience", mint(t, kr, testIssuer, "another-app", alice), 0, jwt.ErrTokenInvalidAudience},
		{"wrong issuer", mint(t, kr, "http://evil.test", testAudience, alice), 0, jwt.ErrTokenInvalidIssuer},
		{"unknown kid", mint(t, testRing(t, testKey(t, assertion.EdDSA, 1)), testIssuer, testAudience, alice), 0, ErrUnknownKey},
		{"alg none", withHeader(t, valid, map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}, ""), 0, jwt.ErrTokenSignatureInvalid},
		{"alg HS256 keyed with the public key", hs256WithPublicKey(t, kr, valid), 0, jwt.ErrTokenSignatureInvalid},
		{"ES256 token naming the EdDSA key", resign(t, valid, jwt.SigningMethodES256, esKey, kid), 0, ErrWrongAlgorithm},
		{"no kid", resign(t, valid, jwt.SigningMethodEdDSA, testKey(t, assertion.EdDSA, 0), ""), 0, ErrUnknownKey},
		{"no exp", without(t, valid, "exp", kid), 0, jwt.ErrTokenRequiredClaimMissing},
		{"no nbf", without(t, valid, "nbf", kid), 0, jwt.ErrTokenRequiredClaimMissing},
		{"no iat", without(t, valid, "iat", kid), 0, jwt.ErrTokenRequiredClaimMissing},
		{"no iss", without(t, valid, "iss", kid), 0, jwt.ErrTokenRequiredClaimMissing},
		{"no aud", without(t, valid, "aud", kid), 0, jwt.ErrTokenRequiredClaimMissing},
		{"resigned as is (the helper works)", without(t, valid, "jti", kid), 0, nil},
		{"tampered attributes", tamper(t, valid), 0, jwt.ErrTokenSignatureInvalid},
		{"signature of another token", valid[:strings.LastIndexByte(valid, '.')] + mintSig(t, kr), 0, jwt.ErrTokenSignatureInvalid},
		{"garbage", "not.a.jwt", 0, jwt.ErrTokenMalformed},
		{"empty", "", 0, jwt.ErrTokenMalformed},
		{"huge", strings.Repeat("a", maxTokenLen+1), 0, jwt.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newJWKSServer(t, kr)
			c := &clock{offset: tc.skew}
			v := newTestVerifier(s, c)
			claims, err := v.Verify(context.Background(), tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", claims, err, tc.want)
			}
			if claims != nil {
				t.Errorf("claims %+v with an error", claims)
			}
			if errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("error %v says the keys are unavailable", err)
			}
		})
	}
}

func TestVerifyRotation(t *testing.T) {
	oldKey, newKey := testKey(t, assertion.EdDSA, 0), testKey(t, assertion.ES256, 1)
	oldRing := testRing(t, oldKey)
	s := newJWKSServer(t, oldRing)
	c := &clock{}
	v := newTestVerifier(s, c)
	ctx := context.Background()

	if _, err := v.Verify(ctx, mint(t, oldRing, testIssuer, testAudience, alice)); err != nil {
		t.Fatal(err)
	}
	if n := s.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// The gateway rotates: the new key signs, the old one is still published.
	newRing := testRing(t, newKey, oldKey)
	s.ring.Store(newRing)
	if _, err := v.Verify(ctx, mint(t, newRing, testIssuer, testAudience, alice)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("within a minute of the last fetch: Verify = %v, want ErrUnknownKey", err)
	}
	c.advance(DefaultRefetchInterval)
	if _, err := v.Verify(ctx, mint(t, newRing, testIssuer, testAudience, alice)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if n := s.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: the unknown kid should refetch", n)
	}
	if _, err := v.Verify(ctx, mint(t, oldRing, testIssuer, testAudience, alice)); err != nil {
		t.Fatalf("token of the old key after the rotation: %v", err)
	}

	// Made-up kids refetch at most once per RefetchInterval.
	stranger := testRing(t, testKey(t, assertion.EdDSA, 2))
	forged := mint(t, stranger, testIssuer, testAudience, alice)
	for range 10 {
		if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Verify = %v, want ErrUnknownKey", err)
		}
	}
	if n := s.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: a refetch within a minute of the last", n)
	}
	c.advance(DefaultRefetchInterval)
	if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Verify = %v, want ErrUnknownKey", err)
	}
	if n := s.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3: a refetch a minute later", n)
	}

	// Keys expire with the response's max-age (300 s) and are fetched again.
	c.advance(5 * time.Minute)
	// The clock is now minutes ahead of the token, which has expired: what counts is the fetch.
	if _, err := v.Verify(ctx, mint(t, newRing, testIssuer, testAudience, alice)); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("Verify = %v, want ErrTokenExpired", err)
	}
	if n := s.fetches.Load(); n != 4 {
		t.Fatalf("%d fetches, want 4: keys past their max-age", n)
	}
}

func TestVerifyConcurrentColdStart(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.ES256, 0))
	s := newJWKSServer(t, kr)
	v := newTestVerifier(s, nil)
	token := mint(t, kr, testIssuer, testAudience, alice)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), token)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := s.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func TestVerifyKeysUnavailable(t *testing.T) {
	kr := testRing(t, testKey(t, assertion.EdDSA, 0))
	token := mint(t, kr, testIssuer, testAudience, alice)
	ctx := context.Background()

	t.Run("down from the start", func(t *testing.T) {
		s := newJWKSServer(t, kr)
		s.broken.Store(true)
		c := &clock{}
		v := newTestVerifier(s, c)
		for range 3 {
			if _, err := v.Verify(ctx, token); !errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("Verify = %v, want ErrKeysUnavailable", err)
			}
		}
		if n := s.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1: retries wait %s", n, retryInterval)
		}
		s.broken.Store(false)
		c.advance(retryInterval)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("after the JWKS is back: %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		s := newJWKSServer(t, kr)
		v := newTestVerifier(s, nil)
		s.Close()
		if _, err := v.Verify(ctx, token); !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Verify = %v, want ErrKeysUnavailable", err)
		}
	})

	t.Run("stale keys serve while down", func(t *testing.T) {
		s := newJWKSServer(t, kr)
		c := &clock{}
		v := newTestVerifier(s, c)
		v.Leeway = time.Hour // so that the old token still passes on the advanced clock
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatal(err)
		}
		s.broken.Store(true)
		c.advance(10 * time.Minute)
		if _, err := v.Verify(ctx, token); err != nil {
			t.Fatalf("with stale keys: %v", err)
		}
		if n := s.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
	})

	t.Run("not a JWK set", func(t *testing.T) {
		s := newJWKSServer(t, kr)
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>a login page</html>"))
		})
		v := newTestVerifier(s, nil)
		if _, err := v.Verify(ctx, token); !errors.Is(err, ErrKeysUnavailable) {
			t.Fatalf("Verify = %v, want ErrKeysUnavailable", err)
		}
	})

	t.Run("caller gives up while a fetch is under way", func(t *testing.T) {
		s := newJWKSServer(t, kr)
		v := newTestVerifier(s, nil)
		v.init()
		v.fetching <- struct{}{} // a fetch is under way
		defer func() { <-v.fetching }()
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if _, err := v.Verify(ctx, token); !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Verify = %v, want ErrKeysUnavailable and context.DeadlineExceeded", err)
		}
	})
}

func TestParseJWKS(t *testing.T) {
	ed := string(testRing(t, testKey(t, assertion.EdDSA, 0)).JWKS())
	edKey := ed[strings.Index(ed, "[")+1 : strings.LastIndex(ed, "]")]
	for _, tc := range []struct {
		name, jwks string
		keys       int
		ok         bool
	}{
		{"gateway EdDSA", ed, 1, true},
		{"gateway ES256 and RS256", string(testRing(t, testKey(t, assertion.ES256, 0), testKey(t, assertion.RS256, 0)).JWKS()), 2, true},
		{"unknown type skipped", `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"},` + edKey + `]}`, 1, true},
		{"encryption key skipped", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"e","use":"enc"},` + edKey + `]}`, 1, true},
		{"key without kid skipped", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},` + edKey + `]}`, 1, true},
		{"no usable key", `{"keys":[]}`, 0, false},
		{"not JSON", `<html>`, 0, false},
		{"short Ed25519 key", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`, 0, false},
		{"alg disagrees with the key", `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"a","alg":"RS256"}]}`, 0, false},
		{"point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","kid":"a"}]}`, 0, false},
		{"small RSA key", `{"keys":[{"kty":"RSA","n":"` + strings.Repeat("A", 342) + `","e":"AQAB","kid":"a"}]}`, 0, false},
		{"duplicate kid", `{"keys":[` + edKey + `,` + edKey + `]}`, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tc.jwks))
			if (err == nil) != tc.ok || len(keys) != tc.keys {
				t.Fatalf("parseJWKS = %d keys, %v; want %d keys, ok %v", len(keys), err, tc.keys, tc.ok)
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", defaultMaxAge},
		{"public, max-age=300", 5 * time.Minute},
		{"max-age=5", minMaxAge},
		{"max-age=999999999999", maxMaxAge},
		{"max-age=nope", defaultMaxAge},
		{"no-store", minMaxAge},
		{"public, MAX-AGE=\"600\"", 10 * time.Minute},
	} {
		if got := maxAge(tc.header); got != tc.want {
			t.Errorf("maxAge(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

// withHeader returns token with its JOSE header replaced by header and its signature by sig.
func withHeader(t *testing.T, token string, header map[string]any, sig string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "." + sig
}

// claimsOf returns the claims of token, unverified.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// resign signs the claims of token anew with key and method, naming kid.
func resign(t *testing.T, token string, method jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claimsOf(t, token))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// without re-signs token with the EdDSA test key 0 (kid), leaving out one claim.
func without(t *testing.T, token, claim, kid string) string {
	t.Helper()
	claims := claimsOf(t, token)
	delete(claims, claim)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(testKey(t, assertion.EdDSA, 0))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256WithPublicKey forges the classic confusion attack: HS256 keyed with the public key that
// anyone can read from the JWK set.
func hs256WithPublicKey(t *testing.T, kr *assertion.KeyRing, token string) string {
	t.Helper()
	var set struct {
		Keys []struct{ X string } `json:"keys"`
	}
	if err := json.Unmarshal(kr.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	pub, err := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	if err != nil {
		t.Fatal(err)
	}
	return resign(t, token, jwt.SigningMethodHS256, pub, kr.KeyID())
}

// tamper changes an attribute value in token's payload and keeps the signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(payload), "alice@example.com", "admin@example.com", -1)
	if changed == string(payload) {
		t.Fatal("nothing to tamper with")
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(changed)) + "." + parts[2]
}

// mintSig returns the signature part (with its dot) of another valid token of kr.
func mintSig(t *testing.T, kr *assertion.KeyRing) string {
	t.Helper()
	other := alice
	other.Policy = "admins"
	token := mint(t, kr, testIssuer, testAudience, other)
	return token[strings.LastIndexByte(token, '.'):]
}
