package assertion

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
)

const (
	testIss = "https://gateway.example/"
	testAud = "upstream"
)

func TestSignVerify(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			kr := testRing(t, testKey(t, alg, 0))
			c := testclock.New(t0)
			token, exp, err := testIssuer(kr, c).Sign(alice)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(DefaultTTL)) {
				t.Errorf("exp %s, want %s", exp, t0.Add(DefaultTTL))
			}

			var header map[string]any
			parts := strings.Split(token, ".")
			raw, _ := b64.DecodeString(parts[0])
			if err := json.Unmarshal(raw, &header); err != nil {
				t.Fatal(err)
			}
			if want := map[string]any{"alg": string(alg), "kid": kr.KeyID(), "typ": "JWT"}; !maps.Equal(header, want) {
				t.Errorf("header %v, want %v", header, want)
			}

			claims, err := Verify(token, kr.JWKS(), testIss, testAud, t0.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if claims.Subject != alice.Subject || claims.Policy != alice.Policy || !maps.Equal(claims.Attributes, alice.Attributes) {
				t.Errorf("claims %+v", claims)
			}
			if !claims.IssuedAt.Equal(t0) || !claims.NotBefore.Equal(t0) || !claims.ExpiresAt.Equal(exp) {
				t.Errorf("iat %v nbf %v exp %v", claims.IssuedAt, claims.NotBefore, claims.ExpiresAt)
			}
			if id, err := b64.Strict().DecodeString(claims.ID); err != nil || len(id) != 16 {
				t.Errorf("jti %q: want 128 random bits", claims.ID)
			}
			if claims.Issuer != testIss || len(claims.Audience) != 1 || claims.Audience[0] != testAud {
				t.Errorf("iss %q aud %q", claims.Issuer, claims.Audience)
			}

			// Within the leeway after exp, and not after.
			if _, err := Verify(token, kr.JWKS(), testIss, testAud, exp.Add(Leeway-time.Second)); err != nil {
				t.Errorf("within leeway: %v", err)
			}
			if _, err := Verify(token, kr.JWKS(), testIss, testAud, exp.Add(Leeway+time.Second)); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("after exp: %v", err)
			}
		})
	}
}

func TestSignExpiry(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	c := testclock.New(t0.Add(500 * time.Millisecond))
	iss := testIssuer(kr, c)

	id := alice
	id.Expires = t0.Add(20*time.Second + 700*time.Millisecond)
	_, exp, err := iss.Sign(id)
	if err != nil || !exp.Equal(t0.Add(20*time.Second)) {
		t.Errorf("login ending in 20s: exp %s, %v; want the login's end, in whole seconds", exp, err)
	}

	id.Expires = time.Time{}
	if _, exp, _ = iss.Sign(id); !exp.Equal(t0.Add(DefaultTTL)) {
		t.Errorf("no login end: exp %s, want now + TTL", exp)
	}

	id.Expires = t0.Add(-time.Second)
	if _, _, err := iss.Sign(id); err == nil || strings.Contains(err.Error(), id.LoginID) {
		t.Errorf("ended login: %v; want an error that does not reveal the login id", err)
	}

	noAud := &Issuer{Issuer: testIss, Keys: kr}
	if _, _, err := noAud.Sign(alice); err == nil {
		t.Error("signed without an audience")
	}
	if _, _, err := (&Issuer{Issuer: testIss, Audience: testAud}).Sign(alice); err == nil {
		t.Error("signed without keys")
	}
}

func TestSignEmptyAttributes(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	token, _, err := testIssuer(kr, testclock.New(t0)).Sign(Identity{LoginID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := b64.DecodeString(strings.Split(token, ".")[1])
	if !strings.Contains(string(payload), `"attributes":{}`) || strings.Contains(string(payload), `"sub"`) {
		t.Errorf("payload %s: want an empty attributes object and no sub", payload)
	}
}

func TestVerifyRejects(t *testing.T) {
	key := testKey(t, EdDSA, 0)
	kr := testRing(t, key)
	jwks := kr.JWKS()
	c := testclock.New(t0)
	good, _, err := testIssuer(kr, c).Sign(alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(good, jwks, testIss, testAud, t0); err != nil {
		t.Fatalf("the good token does not verify: %v", err)
	}

	validClaims := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": testIss, "aud": testAud, "sub": "mallory",
			"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Minute).Unix(),
			"attributes": map[string]string{"pbdf.pbdf.ageLimits.over18": "yes"},
		}
	}
	// signOwn signs claims with the real key, for tokens the gateway would never issue.
	signOwn := func(claims jwt.MapClaims) string {
		payload, err := json.Marshal(claims)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := kr.keys[0].sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	withKid := func(tok *jwt.Token, kid string) *jwt.Token {
		tok.Header["kid"] = kid
		return tok
	}
	pub := key.Public().(ed25519.PublicKey)
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})

	parts := strings.Split(good, ".")
	var payload map[string]any
	raw, _ := b64.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &payload)
	payload["attributes"].(map[string]any)["pbdf.pbdf.ageLimits.over18"] = "no"
	tampered, _ := json.Marshal(payload)

	other := testRing(t, testKey(t, EdDSA, 1))
	otherToken, _, _ := testIssuer(other, c).Sign(alice)

	cases := []struct {
		name     string
		token    string
		iss, aud string
		now      time.Time
	}{
		{name: "wrong audience", token: good, aud: "other-upstream"},
		{name: "wrong issuer", token: good, iss: "https://evil.example/"},
		{name: "expired", token: good, now: t0.Add(DefaultTTL + Leeway + time.Second)},
		{name: "not yet valid", token: good, now: t0.Add(-Leeway - time.Second)},
		{name: "unknown kid", token: otherToken},
		{name: "tampered payload", token: parts[0] + "." + b64.EncodeToString(tampered) + "." + parts[2]},
		{name: "tampered signature", token: parts[0] + "." + parts[1] + "." + flipLast(parts[2])},
		{name: "signature removed", token: parts[0] + "." + parts[1] + "."},
		{name: "padded signature", token: good + "=="},
		{name: "empty", token: ""},
		{name: "garbage", token: "a.b.c"},
		{name: "alg none", token: mustSigned(t, withKid(jwt.NewWithClaims(jwt.SigningMethodNone, validClaims()), kr.KeyID()), jwt.UnsafeAllowNoneSignatureType)},
		{name: "HS256 keyed with the raw public key", token: mustSigned(t, withKid(jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims()), kr.KeyID()), []byte(pub))},
		{name: "HS256 keyed with the PEM public key", token: mustSigned(t, withKid(jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims()), kr.KeyID()), pubPEM)},
		{name: "HS256 keyed with the JWK set", token: mustSigned(t, withKid(jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims()), kr.KeyID()), jwks)},
		{name: "no kid", token: mustSigned(t, jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims()), key)},
		{name: "ES256 header on an EdDSA key", token: mustSigned(t, withKid(jwt.NewWithClaims(jwt.SigningMethodES256, validClaims()), kr.KeyID()), testKey(t, ES256, 0))},
		{name: "no exp", token: signOwn(without(validClaims(), "exp"))},
		{name: "no nbf", token: signOwn(without(validClaims(), "nbf"))},
		{name: "no iss", token: signOwn(without(validClaims(), "iss"))},
		{name: "no aud", token: signOwn(without(validClaims(), "aud"))},
		{name: "issued in the future", token: signOwn(with(validClaims(), "iat", t0.Add(time.Hour).Unix()))},
		{name: "aud list without us", token: signOwn(with(validClaims(), "aud", []string{"a", "b"}))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			iss, aud, now := testIss, testAud, t0
			if c.iss != "" {
				iss = c.iss
			}
			if c.aud != "" {
				aud = c.aud
			}
			if !c.now.IsZero() {
				now = c.now
			}
			claims, err := Verify(c.token, jwks, iss, aud, now)
			if err == nil {
				t.Fatalf("accepted: %+v", claims)
			}
			t.Logf("rejected: %v", err)
		})
	}

	// The own-signed helper does produce acceptable tokens: the cases above fail for their
	// one defect.
	if _, err := Verify(signOwn(validClaims()), jwks, testIss, testAud, t0); err != nil {
		t.Errorf("control token: %v", err)
	}
	if _, err := Verify(good, jwks, "", testAud, t0); err == nil {
		t.Error("verified without an expected issuer")
	}
}

func TestVerifyJWKS(t *testing.T) {
	kr := testRing(t, testKey(t, ES256, 0))
	token, _, _ := testIssuer(kr, testclock.New(t0)).Sign(alice)

	var set struct{ Keys []map[string]any }
	_ = json.Unmarshal(kr.JWKS(), &set)
	mutate := func(f func(k map[string]any)) []byte {
		k := maps.Clone(set.Keys[0])
		f(k)
		// An unrelated key of another type is skipped, not an error.
		data, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}, k}})
		return data
	}
	if _, err := Verify(token, mutate(func(map[string]any) {}), testIss, testAud, t0); err != nil {
		t.Fatalf("control: %v", err)
	}
	bad := map[string][]byte{
		"not JSON":          []byte("{"),
		"point off curve":   mutate(func(k map[string]any) { k["y"] = k["x"] }),
		"alg mismatch":      mutate(func(k map[string]any) { k["alg"] = "HS256" }),
		"for encryption":    mutate(func(k map[string]any) { k["use"] = "enc" }),
		"short coordinate":  mutate(func(k map[string]any) { k["x"] = "AQAB" }),
		"padded coordinate": mutate(func(k map[string]any) { k["x"] = k["x"].(string) + "=" }),
	}
	for name, jwks := range bad {
		if _, err := Verify(token, jwks, testIss, testAud, t0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := testKey(t, EdDSA, 0), testKey(t, ES256, 0)
	c := testclock.New(t0)
	before := testRing(t, oldKey)
	oldToken, _, _ := testIssuer(before, c).Sign(alice)

	after := testRing(t, newKey, oldKey)
	newToken, _, _ := testIssuer(after, c).Sign(alice)
	if after.KeyID() != testRing(t, newKey).KeyID() || after.Algorithm() != ES256 {
		t.Fatalf("the newest key does not sign")
	}
	for name, token := range map[string]string{"old": oldToken, "new": newToken} {
		if _, err := Verify(token, after.JWKS(), testIss, testAud, t0); err != nil {
			t.Errorf("%s token against both keys: %v", name, err)
		}
	}
	retired := testRing(t, newKey)
	if _, err := Verify(oldToken, retired.JWKS(), testIss, testAud, t0); err == nil {
		t.Error("old token verifies after its key was retired")
	}
	if _, err := Verify(newToken, before.JWKS(), testIss, testAud, t0); err == nil {
		t.Error("new token verifies against a JWK set without its key")
	}
}

// fuzzKeys returns fixed keys, one per algorithm: the fuzzing engine runs the seed corpus in
// other processes, where the tokens of random keys would not verify.
func fuzzKeys(f *testing.F) []crypto.Signer {
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile("testdata/fuzz-rs256.pem")
	if err != nil {
		f.Fatal(err)
	}
	rs, err := ParsePrivateKeyPEM(data)
	if err != nil {
		f.Fatal(err)
	}
	return []crypto.Signer{ed, ec, rs}
}

// FuzzVerify feeds Verify arbitrary tokens. Whatever verifies must assert exactly what the
// gateway signed: the jti and the ECDSA signatures are random, so the genuine tokens differ
// between the fuzzing processes, but their claims do not.
func FuzzVerify(f *testing.F) {
	var all []any
	for _, key := range fuzzKeys(f) {
		kr := testRing(f, key)
		token, _, err := testIssuer(kr, testclock.New(t0)).Sign(alice)
		if err != nil {
			f.Fatal(err)
		}
		parts := strings.Split(token, ".")
		f.Add(token)
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + ".." + parts[2])
		f.Add(token + "=")
		f.Add(strings.ToUpper(token))
		var set struct{ Keys []any }
		_ = json.Unmarshal(kr.JWKS(), &set)
		all = append(all, set.Keys...)
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6IngifQ.e30.AAAA")
	jwks, _ := json.Marshal(map[string]any{"keys": all})

	f.Fuzz(func(t *testing.T, token string) {
		c, err := Verify(token, jwks, testIss, testAud, t0)
		if err != nil {
			return
		}
		if c.Subject != alice.Subject || c.Policy != alice.Policy || !maps.Equal(c.Attributes, alice.Attributes) ||
			!c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(DefaultTTL)) || c.Issuer != testIss {
			t.Errorf("a token the gateway never signed verified: %q: %+v", token, c)
		}
	})
}

func mustSigned(t *testing.T, tok *jwt.Token, key any) string {
	t.Helper()
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func without(c jwt.MapClaims, name string) jwt.MapClaims {
	delete(c, name)
	return c
}

func with(c jwt.MapClaims, name string, v any) jwt.MapClaims {
	c[name] = v
	return c
}

// flipLast changes the last base64url character of s to another valid one.
func flipLast(s string) string {
	last := s[len(s)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'Q'
	}
	return s[:len(s)-1] + string(repl)
}
