package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

func TestAuth(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := newBrowser(t)

	t.Run("public", func(t *testing.T) {
		if resp, body := b.get(s.base+"/", nil); resp.StatusCode != 200 || body != "public" {
			t.Errorf("public page: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("JSON 401", func(t *testing.T) {
		resp, body := newBrowser(t).get(s.base+"/members/page", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("unauthenticated: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var info sessionpage.Info
		if err := json.Unmarshal([]byte(body), &info); err != nil || info.SessionPtr == nil || info.SessionPtr.Type != irma.ActionDisclosing ||
			!strings.HasPrefix(info.SessionPtr.URL, s.base+"/irma/session/") || info.Frontend.StatusURL == "" || info.Frontend.Authorization == "" {
			t.Fatalf("401 JSON: %v %s", err, body)
		}
		// The requestor token is sealed in the pending cookie, and nowhere
		// else in what the browser gets.
		var pending *http.Cookie
		for _, c := range resp.Cookies() {
			if strings.HasPrefix(c.Name, "irma_session_pending_") {
				pending = c
			}
		}
		if pending == nil {
			t.Fatal("no pending cookie")
		}
		var p struct {
			Token string `json:"t"`
		}
		if err := storedCookieKeys(t, s).Open(pending.Name, pending.Value, &p, time.Now()); err != nil || p.Token == "" {
			t.Fatalf("opening the pending cookie: %v", err)
		}
		for name, vals := range resp.Header {
			if name != "Set-Cookie" && strings.Contains(strings.Join(vals, " "), p.Token) {
				t.Errorf("header %s holds the requestor token", name)
			}
		}
		if strings.Contains(body, p.Token) {
			t.Error("the 401 body holds the requestor token")
		}
		// The session waits scan_timeout (default 2m) for the app to scan it,
		// not max_session_lifetime.
		srv, err := s.app.Server()
		if err != nil {
			t.Fatal(err)
		}
		if req, err := srv.GetRequest(irma.RequestorToken(p.Token)); err != nil || req.Base().ClientTimeout != 120 {
			t.Errorf("the session's request: %v, %v", req, err)
		}
	})

	t.Run("login", func(t *testing.T) {
		res := b.login(ctx, alice, s.base+"/members/page")
		if len(res.Requests) != 1 || len(res.Requests[0].Disclose) != 1 {
			t.Fatalf("the wallet was asked %+v", res.Requests)
		}
		resp, body := b.get(s.base+"/members/page", nil)
		if resp.StatusCode != 200 || body != "upstream /members/page for alice@example.com" {
			t.Fatalf("after login: %d %q", resp.StatusCode, body)
		}
		// The login lasts no longer than the credential, though the cookie
		// lifetime is 100 days. The credential was asked to be valid a week;
		// IRMA counts validity in whole weeks from a weekly epoch, so it ends
		// on a day that depends on today's: compare with what the wallet holds.
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "irma_session" {
				session = c
			}
		}
		if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
			t.Fatalf("session cookie %+v", session)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("the response that sets the session cookie has Cache-Control %q", cc)
		}
		// IRMA rounds the credential's expiry to its weekly epochs, so on
		// some days "a week from now" is three days away: compare with the
		// expiry the wallet holds, not with a number of days.
		if want := credentialExpiry(t, alice, s.scheme.Credential(demoscheme.CredentialPerson)); !session.Expires.Equal(want) {
			t.Errorf("the login lasts until %s, the person credential until %s: not bounded by the credential's expiry", session.Expires, want)
		}
		got := s.upstream.lastSeen()
		if got.claims.Policy != "members" || got.claims.Subject == "" || got.claims.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" {
			t.Errorf("claims %+v", got.claims)
		}
		if len(got.claims.Attributes) != 1 {
			t.Errorf("the JWT carries attributes the route did not ask for: %v", got.claims.Attributes)
		}
		if got.header.Get("X-Irma-Attr-Email") != "alice@example.com" {
			t.Errorf("plain header %q", got.header.Get("X-Irma-Attr-Email"))
		}
		for _, c := range got.cookies {
			if strings.HasPrefix(c.Name, "irma_session") {
				t.Errorf("the gateway's cookie %s reached the upstream", c.Name)
			}
		}
		// Logged in: no new session, and the JWT is reused.
		first := got.header.Get("X-Irma-Identity")
		if resp, _ := b.get(s.base+"/members/other", nil); resp.StatusCode != 200 {
			t.Errorf("second request: %d", resp.StatusCode)
		}
		if again := s.upstream.lastSeen().header.Get("X-Irma-Identity"); again != first {
			t.Error("the JWT was signed again within its lifetime")
		}
	})

	t.Run("forged identity headers", func(t *testing.T) {
		forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
		resp, _ := b.get(s.base+"/members/page", map[string]string{
			"X-IRMA-IDENTITY": forged, "x_irma_identity": forged, "X-Irma_Identity": forged,
			"X-Irma-Attr-Email": "mallory@example.com", "x_irma_attr_email": "mallory@example.com",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		got := s.upstream.lastSeen()
		for name, vals := range got.header {
			for _, v := range vals {
				if v == forged || v == "mallory@example.com" {
					t.Errorf("forged header %s reached the upstream", name)
				}
			}
		}
		// Not logged in: the forged headers get a login, not the upstream.
		resp, _ = newBrowser(t).get(s.base+"/members/page", map[string]string{"X-Irma-Identity": forged})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged identity without login: %d", resp.StatusCode)
		}
	})

	t.Run("step-up", func(t *testing.T) {
		res := b.login(ctx, alice, s.base+"/adults/")
		// What is missing (over18), and the email the login holds, with its
		// value: one session binds the new credential to the same wallet.
		var names []string
		for _, d := range res.Disclosed {
			names = append(names, d.Type.Name())
		}
		if sort.Strings(names); strings.Join(names, " ") != "email over18" {
			t.Errorf("step-up disclosed %v", names)
		}
		if resp, body := b.get(s.base+"/adults/", nil); resp.StatusCode != 200 {
			t.Fatalf("after step-up: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != 200 {
			t.Error("the step-up lost the earlier login")
		}
	})

	t.Run("alternatives and expression", func(t *testing.T) {
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/club/")
		if resp, body := b.get(s.base+"/club/", nil); resp.StatusCode != 200 {
			t.Errorf("club: %d %s", resp.StatusCode, body)
		}
		b.login(ctx, alice, s.base+"/gold/")
		if resp, body := b.get(s.base+"/gold/", nil); resp.StatusCode != 200 || body != "gold member Caddy demo club" {
			t.Errorf("gold: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("wrong value", func(t *testing.T) {
		minor := s.newWallet(t, "bob@example.com", "no")
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/adults/")
		if err != nil {
			t.Fatal(err)
		}
		res, err := minor.RunSession(ctx, sess, wallet.Accept)
		if err == nil || res.Outcome == wallet.Success {
			t.Fatalf("a wallet with over18=no logged in to /adults/: %+v", res)
		}
		if resp, _ := b.get(s.base+"/adults/", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after a failed login: %d", resp.StatusCode)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/members/")
		if err != nil {
			t.Fatal(err)
		}
		if res, _ := alice.RunSession(ctx, sess, wallet.Refuse); res.Outcome != wallet.Refused {
			t.Fatalf("refusal: %+v", res)
		}
		resp, body := b.get(s.base+"/members/", nil)
		var info sessionpage.Info
		_ = json.Unmarshal([]byte(body), &info)
		if resp.StatusCode != http.StatusUnauthorized || info.SessionPtr == nil || info.SessionPtr.URL == sess.Pointer.URL {
			t.Errorf("after a cancelled session: %d, want a new session: %s", resp.StatusCode, body)
		}
	})

	t.Run("pending cookie replay", func(t *testing.T) {
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/members/")
		if err != nil {
			t.Fatal(err)
		}
		pending := b.cookiePrefix(s.base, "irma_session_pending_")
		if pending == nil {
			t.Fatal("no pending cookie")
		}
		if _, err := alice.RunSession(ctx, sess, wallet.Accept); err != nil {
			t.Fatal(err)
		}
		if resp, _ := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		// Someone with a copy of the pending cookie gets nothing from it.
		thief := newBrowser(t)
		resp, _ := thief.get(s.base+"/members/", map[string]string{"Cookie": pending.Name + "=" + pending.Value})
		if resp.StatusCode == 200 || thief.cookie(s.base, "irma_session") != nil {
			t.Errorf("a replayed pending cookie logged in: %d", resp.StatusCode)
		}
	})

	t.Run("bad cookies", func(t *testing.T) {
		good := b.cookie(s.base, "irma_session")
		if good == nil {
			t.Fatal("no session cookie")
		}
		keys := storedCookieKeys(t, s)
		expired, err := keys.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(-time.Minute),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := sealedcookie.New([]byte(strings.Repeat("k", 32)))
		foreign, err := other.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(time.Hour),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// Control: the same key and a valid login open, so the 401s below
		// are the defects', not a cookie the test cannot make.
		valid, err := keys.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(time.Hour),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + valid})
		if resp.StatusCode != http.StatusOK || body != "upstream /members/ for alice@example.com" {
			t.Errorf("a valid cookie sealed with the gateway's key: %d %q, want 200", resp.StatusCode, body)
		}
		tampered := []byte(good.Value)
		tampered[len(tampered)/2] ^= 1
		for name, value := range map[string]string{
			"tampered": string(tampered), "expired": expired, "unknown key": foreign, "garbage": "%%%", "empty": "",
		} {
			resp, _ := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + value})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s cookie: %d, want 401", name, resp.StatusCode)
			}
		}
	})

	t.Run("unprotected routes", func(t *testing.T) {
		// Forged identity headers and the gateway's cookies reach no
		// upstream, protected or not; other cookies pass untouched.
		session := b.cookie(s.base, "irma_session")
		resp, body := newBrowser(t).get(s.base+"/open/x", map[string]string{
			"X-Irma-Identity": "forged", "x_irma_attr_email": "mallory@example.com",
			"Cookie": `pref={"a":1,"b":2}; irma_session=` + session.Value + `; irma_session_pending_00000000=x; other=1`,
		})
		if resp.StatusCode != 200 || body != "open" {
			t.Fatalf("open route: %d %q", resp.StatusCode, body)
		}
		got := s.upstream.lastSeen().header
		if got.Get("X-Irma-Identity") != "" || got.Get("X_irma_attr_email") != "" || got.Get("x_irma_attr_email") != "" {
			t.Errorf("forged headers reached an unprotected upstream: %v", got)
		}
		if c := strings.Join(got.Values("Cookie"), "; "); c != `pref={"a":1,"b":2}; other=1` {
			t.Errorf("the upstream got the cookies %q", c)
		}
	})

	t.Run("step-up with other values", func(t *testing.T) {
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/name/")
		if resp, body := b.get(s.base+"/name/", nil); resp.StatusCode != 200 || body != "name Alice Demo" {
			t.Fatalf("/name/: %d %q", resp.StatusCode, body)
		}
		// Someone else's wallet answers the step-up: its name differs.
		bob := s.newWalletLevel(t, "Bob", "bob@example.com", "silver")
		b.login(ctx, bob, s.base+"/both/")
		if resp, body := b.get(s.base+"/both/", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a step-up with another person's name: %d %q", resp.StatusCode, body)
		}
		// A silver member is no gold member.
		b2 := newBrowser(t)
		b2.login(ctx, bob, s.base+"/gold/")
		if resp, body := b2.get(s.base+"/gold/", nil); resp.StatusCode != http.StatusForbidden || body != "not gold" {
			t.Errorf("silver at /gold/: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("return to the URL asked for", func(t *testing.T) {
		// handle_path strips /app from the path; the login page must still
		// send the browser back to /app/x.
		resp, body := newBrowser(t).get(s.base+"/app/x?y=1", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"doneUrl":"/app/x?y=1"`) {
			t.Errorf("login page under handle_path: %d %.2000s", resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("login page Cache-Control %q", cc)
		}
	})

	t.Run("logout and return URLs", func(t *testing.T) {
		for ret, want := range map[string]string{
			"/members/":            "/members/",
			"//evil.example/":      "/",
			"/\\evil.example":      "/",
			"https://evil.example": "/",
			"/%2F%2Fevil.example":  "/",
			"":                     "/",
		} {
			b := newBrowser(t)
			resp, _ := b.send("POST", s.base+"/irma/logout?return="+url.QueryEscape(ret), map[string]string{"Sec-Fetch-Site": "same-origin"}, "")
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Errorf("logout?return=%q: %d to %q, want %q", ret, resp.StatusCode, resp.Header.Get("Location"), want)
			}
		}
		if resp, _ := b.send("POST", s.base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if b.cookie(s.base, "irma_session") != nil {
			t.Error("the session cookie survived the logout")
		}
		// A link on another site cannot log anyone out.
		if resp, _ := newBrowser(t).get(s.base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site logout: %d", resp.StatusCode)
		}
		if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after logout: %d", resp.StatusCode)
		}
	})
}

// storedCookieKeys reads the session cookie keys that the gateway generated
// into Caddy's storage.
func storedCookieKeys(t *testing.T, s *authSite) *sealedcookie.KeyRing {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.scheme.Dir, "caddy", "caddy-irma", "session-cookie-keys"))
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for _, line := range strings.Fields(string(data)) {
		k, err := sealedcookie.ParseKey(line)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, k)
	}
	kr, err := sealedcookie.New(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
