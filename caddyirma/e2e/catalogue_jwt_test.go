package e2e

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
)

// jwtKit is what the forged tokens are made of: two identity JWTs of
// Alice's login (for members and for adults), and the JWKS they verify
// with.
type jwtKit struct {
	t              *testing.T
	members, adult string
	jwks           []byte
	kid            string
}

// resigned is the token with header and payload as given, signed with a
// fresh Ed25519 key; header may name the key (jwk) or where to get it
// (jku), as some verifiers honour.
func (k *jwtKit) resigned(header, payload map[string]any) string {
	return signedByNewKey(k.t, jwtSegment(k.t, header)+"."+jwtSegment(k.t, payload))
}

// hs256 is the token's header and payload with alg HS256, keyed with key.
func (k *jwtKit) hs256(token string, key []byte) string {
	header, payload, _ := jwtParts(k.t, token)
	header["alg"] = "HS256"
	input := jwtSegment(k.t, header) + "." + jwtSegment(k.t, payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// jwtCase is a token that an upstream must refuse, unless valid, as it
// verifies with assertion.Verify at now+at against the gateway's JWKS, its
// issuer and the audience caddy-irma (or issuer or audience, if set).
type jwtCase struct {
	name             string
	token            func(k *jwtKit) string
	at               time.Duration
	issuer, audience string
	valid            bool
	notForTheGateway bool // a value no client can send as a header
}

// catalogueJWTCases: identity JWTs forged every way an upstream's
// verifier might fall for (alg none, another key, alg confusion, keys in
// the header, tampered claims and signatures, encodings), and genuine ones
// out of their time, issuer or audience.
func catalogueJWTCases() []jwtCase {
	return []jwtCase{
		{name: "alg/none", token: func(k *jwtKit) string { return forgedNone(k.t, k.members) }},
		{name: "alg/none, upper case", token: func(k *jwtKit) string {
			h, p, _ := jwtParts(k.t, k.members)
			h["alg"] = "NONE"
			return jwtSegment(k.t, h) + "." + jwtSegment(k.t, p) + "."
		}},
		{name: "alg/HS256 keyed with the public key", token: func(k *jwtKit) string {
			var set struct {
				Keys []publicJWK `json:"keys"`
			}
			_ = json.Unmarshal(k.jwks, &set)
			x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
			return k.hs256(k.members, x)
		}},
		{name: "alg/HS256 keyed with the JWKS", token: func(k *jwtKit) string { return k.hs256(k.members, k.jwks) }},
		{name: "alg/HS256 keyed with nothing", token: func(k *jwtKit) string { return k.hs256(k.members, nil) }},
		{name: "key/another key under the gateway's kid", token: func(k *jwtKit) string { return signedByAnotherKey(k.t, k.members) }},
		{name: "key/another key in a jwk header", token: func(k *jwtKit) string {
			h, p, _ := jwtParts(k.t, k.members)
			pub, _, _ := ed25519.GenerateKey(rand.Reader)
			h["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub), "kid": k.kid}
			return k.resigned(h, p)
		}},
		{name: "key/a jku header", token: func(k *jwtKit) string {
			h, p, _ := jwtParts(k.t, k.members)
			h["jku"], h["kid"] = "https://evil.example/jwks.json", "evil"
			return k.resigned(h, p)
		}},
		{name: "key/a kid that is a path", token: func(k *jwtKit) string {
			h, p, _ := jwtParts(k.t, k.members)
			h["kid"] = "../../../../dev/null"
			return k.resigned(h, p)
		}},
		{name: "key/no kid", token: func(k *jwtKit) string {
			h, p, _ := jwtParts(k.t, k.members)
			delete(h, "kid")
			return k.resigned(h, p)
		}},
		{name: "claims/another email, the signature kept", token: func(k *jwtKit) string {
			return tamperedPayload(k.t, k.members, "caddy-demo.gateway.person.email", "mallory@example.com")
		}},
		{name: "claims/another policy, the signature kept", token: func(k *jwtKit) string {
			h, p, sig := jwtParts(k.t, k.members)
			p["policy"] = "club"
			return jwtSegment(k.t, h) + "." + jwtSegment(k.t, p) + "." + sig
		}},
		{name: "claims/a later exp, the signature kept", token: func(k *jwtKit) string {
			h, p, sig := jwtParts(k.t, k.members)
			p["exp"] = time.Now().Add(24 * time.Hour).Unix()
			return jwtSegment(k.t, h) + "." + jwtSegment(k.t, p) + "." + sig
		}},
		{name: "claims/the same claims in other JSON, the signature kept", token: func(k *jwtKit) string {
			parts := strings.Split(k.members, ".")
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(append([]byte(" "), raw...)) + "." + parts[2]
		}},
		{name: "signature/stripped", token: func(k *jwtKit) string { return k.members[:strings.LastIndex(k.members, ".")+1] }},
		{name: "signature/of another token", token: func(k *jwtKit) string {
			return k.members[:strings.LastIndex(k.members, ".")] + k.adult[strings.LastIndex(k.adult, "."):]
		}},
		{name: "signature/one bit flipped", token: func(k *jwtKit) string {
			i := strings.LastIndex(k.members, ".") + 1
			sig, _ := base64.RawURLEncoding.DecodeString(k.members[i:])
			sig[0] ^= 1
			return k.members[:i] + base64.RawURLEncoding.EncodeToString(sig)
		}},
		{name: "encoding/padding added", token: func(k *jwtKit) string { return k.members + "==" }},
		{name: "encoding/standard base64", token: func(k *jwtKit) string {
			parts := strings.Split(k.members, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			return parts[0] + "." + parts[1] + "." + base64.StdEncoding.EncodeToString(sig)
		}},
		{name: "encoding/a fourth segment", token: func(k *jwtKit) string { return k.members + ".x" }},
		{name: "encoding/two tokens in one value", token: func(k *jwtKit) string { return k.members + ", " + k.adult }},
		{name: "encoding/a line break inside", token: func(k *jwtKit) string { return k.members[:20] + "\n" + k.members[20:] }, notForTheGateway: true},
		{name: "time/expired", token: func(k *jwtKit) string { return k.members }, at: 2 * time.Minute},
		{name: "time/not yet valid", token: func(k *jwtKit) string { return k.members }, at: -2 * time.Minute},
		{name: "scope/another issuer", token: func(k *jwtKit) string { return k.members }, issuer: "https://evil.example"},
		{name: "scope/another audience", token: func(k *jwtKit) string { return k.members }, audience: "another-app"},
		// Controls: the gateway's own tokens verify; at the gateway they
		// are still no login.
		{name: "control/the gateway's token for members", token: func(k *jwtKit) string { return k.members }, valid: true},
		{name: "control/the gateway's token for adults", token: func(k *jwtKit) string { return k.adult }, valid: true},
	}
}

// TestCatalogueForgedJWT verifies each token as an upstream does, with
// assertion.Verify and the gateway's JWKS; and sends it to the gateway as
// the identity header: as nobody (no login: 401, nothing reaches the
// upstream), as Alice (the upstream gets the gateway's own token only) and
// to an open route (the upstream gets none).
func TestCatalogueForgedJWT(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	b := s.alice(t)
	alice := s.cookieLine(b)
	k := &jwtKit{t: t, members: gatewayToken(t, b, s.base)}
	resp, _ := b.get(s.base+"/irma/auth?policy=adults", nil)
	k.adult = resp.Header.Get("X-Irma-Identity")
	jwks, err := http.Get(s.base + "/irma/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	k.jwks, _ = io.ReadAll(jwks.Body)
	jwks.Body.Close()
	k.kid, _ = jwtHeader(t, k.members)["kid"].(string)
	if k.adult == "" || k.kid == "" {
		t.Fatalf("no token for adults (%q), or no kid", k.adult)
	}
	keys := fetchJWKS(t, b, s.base)
	for _, c := range catalogueJWTCases() {
		t.Run(c.name, func(t *testing.T) {
			k.t = t
			token := c.token(k)
			issuer, audience := s.base, "caddy-irma"
			if c.issuer != "" {
				issuer = c.issuer
			}
			if c.audience != "" {
				audience = c.audience
			}
			claims, err := assertion.Verify(token, k.jwks, issuer, audience, time.Now().Add(c.at))
			if valid := err == nil; valid != c.valid {
				t.Errorf("an upstream's verification: %+v, %v; want valid %v", claims, err, c.valid)
			}
			if c.notForTheGateway {
				return
			}
			s.forgedIdentity(t, token, alice, keys)
		})
	}
}

// forgedIdentity sends token as the identity header: as nobody to a
// protected and an open route, and as Alice to the protected one.
func (s *catalogueSite) forgedIdentity(t *testing.T, token, alice string, keys []publicJWK) {
	t.Helper()
	for _, r := range []struct {
		path  string
		lines []string
	}{{"/members/x", nil}, {"/open/x", nil}, {"/members/x", []string{alice}}} {
		id := s.nextCase()
		lines := append([]string{"Accept: application/json", "X-Irma-Identity: " + token}, r.lines...)
		resp, body := s.send(t, id, wireRequest{method: "GET", target: r.path, lines: lines})
		switch {
		case r.path == "/members/x" && r.lines == nil:
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a token without a login: %d %.200q, want 401", resp.StatusCode, body)
			}
			s.up.nothing(t, id)
		case r.path == "/open/x":
			if got := s.up.one(t, id); len(got.header.Values("X-Irma-Identity")) != 0 {
				t.Errorf("the open route's upstream got the identity %q", got.header.Values("X-Irma-Identity"))
			}
		default:
			got := s.up.one(t, id).header.Values("X-Irma-Identity")
			if len(got) != 1 {
				t.Fatalf("Alice's upstream got %d identities, want the gateway's", len(got))
			}
			// A forged token would not verify here.
			if c := verifyWithJWKS(t, got[0], keys, s.base); c.Attributes["caddy-demo.gateway.person.email"] != headerSiteEmail {
				t.Errorf("Alice's upstream got the claims %+v", c)
			}
		}
	}
}
