package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
)

// cookieKit is what the cookie cases are made of: Alice's genuine cookies,
// the gateway's key ring and another, and a few values sealed for the
// cases.
type cookieKit struct {
	t             *testing.T
	session       string // Alice's session cookie
	pending       string // the pending cookie her login used, taken by it
	pendingName   string
	keys, foreign *sealedcookie.KeyRing
	revoked       string // a login sealed with the gateway's key, then logged out
	token         string // an identity JWT of Alice's login
}

// seal seals v as name with ring, valid for an hour.
func (k *cookieKit) seal(ring *sealedcookie.KeyRing, name string, v any) string {
	k.t.Helper()
	return k.sealUntil(ring, name, v, time.Now().Add(time.Hour))
}

func (k *cookieKit) sealUntil(ring *sealedcookie.KeyRing, name string, v any, expires time.Time) string {
	k.t.Helper()
	s, err := ring.Seal(name, v, expires)
	if err != nil {
		k.t.Fatal(err)
	}
	return s
}

// login is a login with Alice's attributes, id and end as given.
func aliceLogin(id string, exp time.Time) map[string]any {
	return map[string]any{"id": id, "exp": exp, "a": map[string]string{
		"caddy-demo.gateway.person.email": headerSiteEmail, "caddy-demo.gateway.person.fullname": headerSiteName,
		"caddy-demo.gateway.person.over18": "yes",
	}}
}

// flipBit flips one bit of the sealed bytes of v (the value decoded) at
// the fraction at of their length, and encodes them again as the gateway
// does.
func flipBit(v string, at float64) string {
	b, _ := base64.URLEncoding.DecodeString(v)
	b[int(float64(len(b)-1)*at)] ^= 0x10
	return base64.URLEncoding.EncodeToString(b)
}

// changeChar replaces the character of v at the fraction at of its length
// by another of the base64url alphabet.
func changeChar(v string, at float64) string {
	p := int(float64(len(v)-1) * at)
	for v[p] == '=' {
		p-- // padding: change the last character that carries bits
	}
	c := byte('A')
	if v[p] == 'A' {
		c = 'B'
	}
	return v[:p] + string(c) + v[p+1:]
}

func sessionCookie(v string) []string { return []string{"Cookie: irma_session=" + v} }

// cookieCase is a request to /members/x with the Cookie lines that
// cookie makes.
type cookieCase struct {
	name   string
	cookie func(k *cookieKit) []string
	status int
}

// catalogueCookieCases: Alice's session cookie truncated, bit-flipped,
// changed, extended; values sealed with another key, for another name,
// expired, empty, of another kind; unsealed values; the genuine value
// under other names; a login logged out; a pending cookie replayed; and a
// gateway cookie twice.
func catalogueCookieCases() []cookieCase {
	refused := http.StatusUnauthorized // a new login session, not the upstream
	var cases []cookieCase
	for i, at := range []float64{0, 0.25, 0.5, 0.75, 1} {
		pos := []string{"first", "a quarter in", "half-way", "three quarters in", "last"}[i]
		cases = append(cases,
			cookieCase{"bit flipped/" + pos + " byte", func(k *cookieKit) []string { return sessionCookie(flipBit(k.session, at)) }, refused},
			cookieCase{"character changed/" + pos, func(k *cookieKit) []string { return sessionCookie(changeChar(k.session, at)) }, refused})
	}
	one := func(name string, v func(k *cookieKit) string, status int) cookieCase {
		return cookieCase{name, func(k *cookieKit) []string { return sessionCookie(v(k)) }, status}
	}
	return append(cases,
		one("truncated/by one character", func(k *cookieKit) string { return k.session[:len(k.session)-1] }, refused),
		one("truncated/to half", func(k *cookieKit) string { return k.session[:len(k.session)/2] }, refused),
		one("truncated/to ten characters", func(k *cookieKit) string { return k.session[:10] }, refused),
		one("truncated/the first character", func(k *cookieKit) string { return k.session[1:] }, refused),
		one("extended/a character", func(k *cookieKit) string { return k.session + "A" }, refused),
		one("extended/a block of padding", func(k *cookieKit) string { return k.session + "====" }, refused),
		one("extended/an encoded =", func(k *cookieKit) string { return k.session + "%3D" }, refused),
		one("changed/upper case", func(k *cookieKit) string { return strings.ToUpper(k.session) }, refused),
		one("changed/reversed", func(k *cookieKit) string {
			b := []byte(k.session)
			slices.Reverse(b)
			return string(b)
		}, refused),
		one("sealed/with another key", func(k *cookieKit) string {
			return k.seal(k.foreign, "irma_session", aliceLogin("forged", time.Now().Add(time.Hour)))
		}, refused),
		one("sealed/for the pending cookie's name", func(k *cookieKit) string {
			return k.seal(k.keys, k.pendingName, aliceLogin("forged", time.Now().Add(time.Hour)))
		}, refused),
		one("sealed/a login that ended", func(k *cookieKit) string {
			return k.seal(k.keys, "irma_session", aliceLogin("forged", time.Now().Add(-time.Minute)))
		}, refused),
		one("sealed/an envelope that expired", func(k *cookieKit) string {
			return k.sealUntil(k.keys, "irma_session", aliceLogin("forged", time.Now().Add(time.Hour)), time.Now().Add(-time.Minute))
		}, refused),
		one("sealed/no attributes", func(k *cookieKit) string {
			return k.seal(k.keys, "irma_session", map[string]any{"id": "forged", "a": map[string]string{}, "exp": time.Now().Add(time.Hour)})
		}, refused),
		one("sealed/no login id", func(k *cookieKit) string {
			return k.seal(k.keys, "irma_session", aliceLogin("", time.Now().Add(time.Hour)))
		}, refused),
		one("sealed/a pending session", func(k *cookieKit) string {
			return k.seal(k.keys, "irma_session", pendingCookie{Token: "x", Route: "policy:members", Return: "/"})
		}, refused),
		one("sealed/a login logged out", func(k *cookieKit) string { return k.revoked }, refused),
		one("unsealed/the login as JSON", func(k *cookieKit) string {
			b, _ := json.Marshal(aliceLogin("forged", time.Now().Add(time.Hour)))
			return base64.URLEncoding.EncodeToString(b)
		}, refused),
		one("unsealed/Alice's identity JWT", func(k *cookieKit) string { return k.token }, refused),
		one("unsealed/garbage", func(*cookieKit) string { return "%%%" }, refused),
		one("unsealed/empty", func(*cookieKit) string { return "" }, refused),
		one("unsealed/null", func(*cookieKit) string { return "null" }, refused),
		one("unsealed/the pending cookie's value", func(k *cookieKit) string { return k.pending }, refused),
		cookieCase{"names/upper case", func(k *cookieKit) []string { return []string{"Cookie: IRMA_SESSION=" + k.session} }, refused},
		cookieCase{"names/__Host- on http", func(k *cookieKit) []string { return []string{"Cookie: __Host-irma_session=" + k.session} }, refused},
		cookieCase{"names/as the pending cookie", func(k *cookieKit) []string { return []string{"Cookie: " + k.pendingName + "=" + k.session} }, refused},
		// The pending cookie of a login that was picked up: the result
		// counts once.
		cookieCase{"replayed/the pending cookie", func(k *cookieKit) []string { return []string{"Cookie: " + k.pendingName + "=" + k.pending} },
			http.StatusForbidden},
		cookieCase{"twice/the genuine and a planted one", func(k *cookieKit) []string { return sessionCookie(k.session + "; irma_session=planted") },
			http.StatusBadRequest},
		cookieCase{"twice/a planted one first", func(k *cookieKit) []string { return sessionCookie("planted; irma_session=" + k.session) },
			http.StatusBadRequest},
		cookieCase{"twice/the genuine twice", func(k *cookieKit) []string { return sessionCookie(k.session + "; irma_session=" + k.session) },
			http.StatusBadRequest},
		cookieCase{"twice/in two Cookie lines", func(k *cookieKit) []string {
			return append(sessionCookie(k.session), "Cookie: irma_session=planted")
		}, http.StatusBadRequest},
		cookieCase{"twice/two pending cookies", func(k *cookieKit) []string {
			return append(sessionCookie(k.session), "Cookie: "+k.pendingName+"=a; "+k.pendingName+"=b")
		}, http.StatusBadRequest},
		// Controls: what the gateway sealed opens.
		one("control/the genuine cookie", func(k *cookieKit) string { return k.session }, http.StatusOK),
		one("control/a login sealed with the gateway's key", func(k *cookieKit) string {
			return k.seal(k.keys, "irma_session", aliceLogin("sealed-by-the-test", time.Now().Add(time.Hour)))
		}, http.StatusOK),
		cookieCase{"control/among other cookies", func(k *cookieKit) []string {
			return []string{`Cookie: pref={"a":1}; irma_session=` + k.session + "; other=1"}
		}, http.StatusOK},
	)
}

// TestCatalogueCookieTampering presents each cookie at a protected route:
// only what the gateway sealed for the session cookie, unexpired and not
// logged out, opens it.
func TestCatalogueCookieTampering(t *testing.T) {
	s := newCatalogueSite(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := &cookieKit{t: t, keys: storedCookieKeys(t, s.authSite), pendingName: pendingCookieName("policy:members")}
	k.foreign, _ = sealedcookie.New([]byte(strings.Repeat("k", 32)))
	b := newBrowser(t)
	b.login(ctx, s.newWalletLevel(t, headerSiteName, headerSiteEmail, "gold"), s.base+"/members/x")
	if c := b.cookie(s.base, k.pendingName); c != nil {
		k.pending = c.Value
	}
	if resp, body := b.get(s.base+"/members/x", nil); resp.StatusCode != http.StatusOK || k.pending == "" {
		t.Fatalf("the login: %d %q, pending cookie %q", resp.StatusCode, body, k.pending)
	}
	k.session = b.cookie(s.base, "irma_session").Value
	k.token = gatewayToken(t, b, s.base)
	// A login of the gateway's key opens, until it is logged out.
	k.revoked = k.seal(k.keys, "irma_session", aliceLogin("logged-out-by-the-test", time.Now().Add(time.Hour)))
	if got := statusWith(t, s.base, "/members/x", &http.Cookie{Name: "irma_session", Value: k.revoked}); got != http.StatusOK {
		t.Fatalf("a login sealed with the gateway's key: %d, want 200", got)
	}
	resp, _ := newBrowser(t).send("POST", s.base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": "irma_session=" + k.revoked}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the logout: %d", resp.StatusCode)
	}

	for _, c := range catalogueCookieCases() {
		t.Run(c.name, func(t *testing.T) {
			k.t = t
			id := s.nextCase()
			lines := append([]string{"Accept: application/json"}, c.cookie(k)...)
			resp, body := s.send(t, id, wireRequest{method: "GET", target: "/members/x", lines: lines})
			if resp.StatusCode != c.status {
				t.Errorf("%d %.200q, want %d", resp.StatusCode, body, c.status)
			}
			if c.status != http.StatusOK {
				s.up.nothing(t, id)
				for _, ck := range resp.Cookies() {
					if ck.Name == "irma_session" && ck.MaxAge >= 0 && ck.Value != "" {
						t.Errorf("the refusal set a session cookie")
					}
				}
				return
			}
			if got := s.up.one(t, id); got.header.Get("X-Irma-Identity") == "" || got.header.Get("X-Irma-Attr-Email") != headerSiteEmail {
				t.Errorf("the upstream got no identity of Alice: %v", got.header)
			}
		})
	}
}
