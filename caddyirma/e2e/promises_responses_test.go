package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma"
)

// TestPromisesResponses asserts what README.md promises about the responses
// of irma_auth with the default login settings, on http: the JSON 401, the
// caching headers, the cookies, the placeholders, pairing and logout. Each
// subtest is named after the promise.
func TestPromisesResponses(t *testing.T) {
	up := newRecordingUpstream(t)
	g := newGateway(t)
	base := g.base
	app := g.start(t, `policy members {
			require caddy-demo.gateway.person.email
		}`, fmt.Sprintf(`irma_auth /members/* members
	irma_auth /inline/* {
		require caddy-demo.gateway.person.email
	}
	irma_auth /paired/* {
		require caddy-demo.gateway.person.email
		pairing on
	}
	irma_auth /unpaired/* {
		require caddy-demo.gateway.person.over18=yes
		pairing off
	}
	irma_auth /adults/* {
		require caddy-demo.gateway.person.over18=yes
	}
	@placeholders path /members/placeholders /inline/placeholders
	handle @placeholders {
		reverse_proxy %[1]s {
			header_up X-Policy {irma.policy}
			header_up X-Login-Id {irma.login_id}
			header_up X-Login-Expires {irma.login_expires}
		}
	}
	handle {
		reverse_proxy %[1]s
	}`, up.addr()))
	site := &authSite{base: base, scheme: g.scheme, app: app}
	codes := make(chan string, 4)
	alice := site.newWalletPairing(t, "alice@example.com", "yes", func(code string) {
		select {
		case codes <- code:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The visitor of most subtests: logged in by "login".
	b, jar := newRecordingBrowser(t, nil)

	t.Run("JSON 401 has WWW-Authenticate IRMA realm, no-store and the pending cookie", func(t *testing.T) {
		resp, body := newBrowser(t).get(base+"/members/x", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("anonymous JSON request: %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		parseInfo(t, body)
		if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != `IRMA realm="caddy-irma"` {
			t.Errorf("WWW-Authenticate %q, want [IRMA realm=\"caddy-irma\"]", got)
		}
		if got := cacheDirectives(resp.Header); !slices.Equal(got, []string{"no-store"}) {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		pending := cookieWithPrefix(resp, caddyirma.DefaultCookieName+"_pending_")
		if pending == nil {
			t.Fatalf("no %s_pending_… cookie in %q", caddyirma.DefaultCookieName, resp.Header.Values("Set-Cookie"))
		}
		if !pending.HttpOnly || pending.SameSite != http.SameSiteLaxMode || pending.Path != "/" {
			t.Errorf("pending cookie %s", describeCookie(pending))
		}
	})

	t.Run("login page is a 401 with no-store", func(t *testing.T) {
		resp, body := newBrowser(t).get(base+"/members/x", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("anonymous page navigation: %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if got := cacheDirectives(resp.Header); !slices.Equal(got, []string{"no-store"}) {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		if pageConfig(t, body)["doneUrl"] != "/members/x" {
			t.Errorf("the login page does not return to /members/x: %v", pageConfig(t, body))
		}
	})

	t.Run("the response that sets the session cookie gets no-store and Vary Cookie", func(t *testing.T) {
		// The upstream would let shared caches keep the page for ten
		// minutes: not the one that carries the new session cookie.
		target := base + "/members/x?cc=" + url.QueryEscape("public, max-age=600")
		b.login(ctx, alice, target)
		resp, body := b.get(target, nil)
		if resp.StatusCode != http.StatusOK || body != "upstream /members/x" {
			t.Fatalf("after the login: %d %q", resp.StatusCode, body)
		}
		if setCookies(resp)[caddyirma.DefaultCookieName] == nil {
			t.Fatalf("the login did not set %s: %q", caddyirma.DefaultCookieName, resp.Header.Values("Set-Cookie"))
		}
		if got := cacheDirectives(resp.Header); !slices.Equal(got, []string{"no-store"}) {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		if !varies(resp.Header, "Cookie") {
			t.Errorf("Vary %q lacks Cookie", resp.Header.Values("Vary"))
		}
	})

	t.Run("cookies are HttpOnly and SameSite=Lax, and not Secure on http", func(t *testing.T) {
		all := jar.all()
		if len(all) < 2 {
			t.Fatalf("the login set %d cookies", len(all))
		}
		for _, c := range all {
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Domain != "" {
				t.Errorf("cookie %s", describeCookie(c))
			}
		}
	})

	t.Run("Cache-Control private keeps the upstream's other directives", func(t *testing.T) {
		for _, tc := range []struct {
			upstream string // "-": no Cache-Control
			want     []string
		}{
			{"-", []string{"private"}},
			{"max-age=60", []string{"private", "max-age=60"}},
			{"public", []string{"private"}},
			{"public, max-age=60", []string{"private", "max-age=60"}},
			{"max-age=60, public", []string{"private", "max-age=60"}},
			{"Public, Max-Age=60", []string{"private", "max-age=60"}},
			{"no-cache, must-revalidate", []string{"private", "no-cache", "must-revalidate"}},
			{"private, max-age=30", []string{"private", "max-age=30"}},
			// Stricter than private already: kept as it is.
			{"no-store", []string{"no-store"}},
		} {
			target := base + "/members/cache"
			if tc.upstream != "-" {
				target += "?cc=" + url.QueryEscape(tc.upstream)
			}
			resp, body := b.get(target, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("upstream Cache-Control %q: %d %s", tc.upstream, resp.StatusCode, body)
			}
			got := cacheDirectives(resp.Header)
			gotSorted, want := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(gotSorted, want) {
				t.Errorf("upstream Cache-Control %q: got %q, want the directives %q", tc.upstream, got, tc.want)
			}
			if !varies(resp.Header, "Cookie") {
				t.Errorf("upstream Cache-Control %q: Vary %q lacks Cookie", tc.upstream, resp.Header.Values("Vary"))
			}
			if len(setCookies(resp)) != 0 {
				t.Errorf("a logged-in request set cookies: %q", resp.Header.Values("Set-Cookie"))
			}
		}
	})

	t.Run("Vary Cookie is added to the upstream's Vary", func(t *testing.T) {
		resp, _ := b.get(base+"/members/vary?vary=Accept-Encoding", nil)
		if resp.StatusCode != http.StatusOK || !varies(resp.Header, "Cookie") || !varies(resp.Header, "Accept-Encoding") {
			t.Errorf("%d, Vary %q, want Accept-Encoding and Cookie", resp.StatusCode, resp.Header.Values("Vary"))
		}
	})

	t.Run("placeholders irma.policy, irma.login_id and irma.login_expires", func(t *testing.T) {
		var session *http.Cookie
		for _, c := range jar.all() {
			if c.Name == caddyirma.DefaultCookieName {
				session = c
			}
		}
		if session == nil || session.Expires.IsZero() {
			t.Fatalf("session cookie %s", describeCookie(session))
		}
		keys := fetchJWKS(t, b, base)
		for _, tc := range []struct{ path, policy string }{
			{"/members/placeholders", "members"},
			// A route's own requirements have no name: the placeholder
			// and the JWT agree on the one the gateway gives them.
			{"/inline/placeholders", ""},
		} {
			resp, body := b.get(base+tc.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
			}
			h := up.headers()
			claims := verifyWithJWKS(t, h.Get(caddyirma.DefaultIdentityHeader), keys, base)
			if tc.policy != "" && h.Get("X-Policy") != tc.policy {
				t.Errorf("%s: {irma.policy} = %q, want %q", tc.path, h.Get("X-Policy"), tc.policy)
			}
			if h.Get("X-Policy") == "" || h.Get("X-Policy") != claims.Policy {
				t.Errorf("%s: {irma.policy} = %q, the JWT's policy %q", tc.path, h.Get("X-Policy"), claims.Policy)
			}
			if h.Get("X-Login-Id") == "" || h.Get("X-Login-Id") != claims.Subject {
				t.Errorf("%s: {irma.login_id} = %q, the JWT's sub %q", tc.path, h.Get("X-Login-Id"), claims.Subject)
			}
			expires, err := time.Parse(time.RFC3339, h.Get("X-Login-Expires"))
			if err != nil {
				t.Errorf("%s: {irma.login_expires} = %q: not RFC 3339: %v", tc.path, h.Get("X-Login-Expires"), err)
			} else if !expires.Equal(session.Expires) {
				t.Errorf("%s: {irma.login_expires} = %s, the session cookie expires %s", tc.path, expires, session.Expires)
			}
			if claims.ExpiresAt == nil || claims.ExpiresAt.After(expires) {
				t.Errorf("%s: the JWT expires %v, after the login", tc.path, claims.ExpiresAt)
			}
		}
	})

	t.Run("the JWT lives 60 s by default, with kid, iss, aud, sub, jti and the route's attributes", func(t *testing.T) {
		if resp, _ := b.get(base+"/members/jwt", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%d", resp.StatusCode)
		}
		token := up.headers().Get(caddyirma.DefaultIdentityHeader)
		if kid, _ := jwtHeader(t, token)["kid"].(string); kid == "" {
			t.Error("the JWT has no kid")
		}
		c := verifyWithJWKS(t, token, fetchJWKS(t, b, base), base)
		if c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) != 60*time.Second {
			t.Errorf("iat %v, exp %v: want 60 s apart", c.IssuedAt, c.ExpiresAt)
		}
		if c.Subject == "" || c.ID == "" || c.Policy != "members" || len(c.Attributes) != 1 ||
			c.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" {
			t.Errorf("claims %+v", c)
		}
	})

	t.Run("pairing on pairs a disclosure without values", func(t *testing.T) {
		pb, _ := newRecordingBrowser(t, nil)
		resp, body := pb.get(base+"/paired/x", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		info := parseInfo(t, body)
		if info.Frontend.PairingCode == "" || info.Frontend.PairingCompletedURL == "" {
			t.Fatalf("pairing on, but the 401 asks for no pairing: %s", body)
		}
		if code := runPaired(ctx, t, pb, base, alice, info, codes); code != info.Frontend.PairingCode {
			t.Errorf("the wallet showed %q, the page expects %q", code, info.Frontend.PairingCode)
		}
		if resp, body := pb.get(base+"/paired/x", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("after the paired login: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("pairing off does not pair a disclosure of values", func(t *testing.T) {
		// pairing auto would pair here: the policy asks for a value.
		_, body := newBrowser(t).get(base+"/adults/x", nil)
		if info := parseInfo(t, body); info.Frontend.PairingCode == "" {
			t.Fatalf("pairing auto with a value does not pair: %s", body)
		}
		pb, _ := newRecordingBrowser(t, nil)
		resp, body := pb.get(base+"/unpaired/x", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		info := parseInfo(t, body)
		if info.Frontend.PairingCode != "" || info.Frontend.PairingCompletedURL != "" {
			t.Errorf("pairing off, but the 401 asks for pairing: %s", body)
		}
		runUnpaired(ctx, t, alice, info.SessionPtr, codes)
		if resp, body := pb.get(base+"/unpaired/x", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("after the unpaired login: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("logout refuses a request from another site", func(t *testing.T) {
		for _, method := range []string{"GET", "POST"} {
			for _, site := range []string{"cross-site", "same-site"} {
				resp, _ := b.send(method, base+"/irma/logout", map[string]string{"Sec-Fetch-Site": site}, "")
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("logout %s with Sec-Fetch-Site %s: %d, want 403", method, site, resp.StatusCode)
				}
				if len(resp.Header.Values("Set-Cookie")) != 0 {
					t.Errorf("a refused logout (%s, %s) touched cookies: %q", method, site, resp.Header.Values("Set-Cookie"))
				}
			}
		}
		if resp, _ := b.get(base+"/members/x", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("a refused logout logged out: %d", resp.StatusCode)
		}
	})

	t.Run("a GET of the logout shows a button; its POST from the site logs out", func(t *testing.T) {
		for _, header := range []map[string]string{{"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": base}} {
			v, vjar := newRecordingBrowser(t, nil)
			v.login(ctx, alice, base+"/members/x")
			if resp, _ := v.get(base+"/members/x", nil); resp.StatusCode != http.StatusOK || !vjar.has(caddyirma.DefaultCookieName) {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			resp, body := v.get(base+"/irma/logout?return=/members/", header)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<form method="post" action="/irma/logout?return=%2Fmembers%2F">`) ||
				len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("GET of the logout with %v: %d, cookies %q: %.500s", header, resp.StatusCode, resp.Header.Values("Set-Cookie"), body)
			}
			if !vjar.has(caddyirma.DefaultCookieName) {
				t.Fatalf("GET of the logout with %v logged out", header)
			}
			resp, _ = v.send("POST", base+"/irma/logout?return=/members/", header, "")
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/members/" {
				t.Errorf("logout with %v: %d to %q", header, resp.StatusCode, resp.Header.Get("Location"))
			}
			if vjar.has(caddyirma.DefaultCookieName) {
				t.Errorf("logout with %v left the session cookie", header)
			}
			if resp, _ := v.get(base+"/members/x", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("after logout with %v: %d", header, resp.StatusCode)
			}
		}
	})
}
