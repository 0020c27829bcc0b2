package e2e

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The logout of issue 8: a logout that another site cannot cause (item 7),
// and that ends the login for every copy of the session cookie, on every
// instance of the gateway (item 9).

// loggedIn returns a browser with a login of its own at /members/, made
// with w.
func loggedIn(ctx context.Context, t *testing.T, s *authSite, w *wallet.Wallet) *browser {
	t.Helper()
	b := newBrowser(t)
	b.login(ctx, w, s.base+"/members/page")
	if resp, body := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %q", resp.StatusCode, body)
	}
	return b
}

// status is the status of a GET of path with the session cookie c alone,
// as a thief who copied it would send it.
func statusWith(t *testing.T, base, path string, c *http.Cookie) int {
	t.Helper()
	thief := newBrowser(t)
	resp, _ := thief.get(base+path, map[string]string{"Cookie": c.Name + "=" + c.Value})
	return resp.StatusCode
}

// TestLogout: where a logout may come from, what it answers, and that it
// ends the login, copies of the cookie included.
func TestLogout(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	own := s.base // http://127.0.0.1:<port>: the gateway's origin
	port := strings.TrimPrefix(own, "http://127.0.0.1:")
	const logoutPath = "/irma/logout?return=%2Fmembers%2F"
	logout := s.base + logoutPath

	// A logout must not happen unless the browser says that the request
	// came from the gateway's own pages: each of these leaves the login as
	// it was, and sets no cookie.
	t.Run("csrf", func(t *testing.T) {
		victim := loggedIn(ctx, t, s, alice)
		for _, c := range []struct {
			name   string
			method string
			header map[string]string
			want   int
		}{
			{"POST cross-site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"POST same-site", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{"POST cross-site with the gateway's Origin", "POST", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": own}, http.StatusForbidden},
			{"POST unknown Sec-Fetch-Site", "POST", map[string]string{"Sec-Fetch-Site": "same-origin, cross-site"}, http.StatusForbidden},
			{"POST foreign Origin", "POST", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			{"POST Origin null", "POST", map[string]string{"Origin": "null"}, http.StatusForbidden},
			{"POST Origin of another port", "POST", map[string]string{"Origin": "http://127.0.0.1:1"}, http.StatusForbidden},
			{"POST Origin of another scheme", "POST", map[string]string{"Origin": "https://127.0.0.1:" + port}, http.StatusForbidden},
			{"POST Origin of another host name", "POST", map[string]string{"Origin": "http://localhost:" + port}, http.StatusForbidden},
			{"POST Origin of a suffix host", "POST", map[string]string{"Origin": "http://127.0.0.1:" + port + ".evil.example"}, http.StatusForbidden},
			{"POST Origin with user info", "POST", map[string]string{"Origin": "http://evil.example@127.0.0.1:" + port}, http.StatusForbidden},
			{"POST Origin with a path", "POST", map[string]string{"Origin": own + "/irma/"}, http.StatusForbidden},
			{"POST neither Sec-Fetch-Site nor Origin", "POST", nil, http.StatusForbidden},
			{"POST form of another site", "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusForbidden},
			{"GET cross-site", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"GET same-site", "GET", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{"GET foreign Origin", "GET", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			// GET never logs out: it shows the page with the button.
			{"GET neither Sec-Fetch-Site nor Origin", "GET", nil, http.StatusOK},
			{"GET same-origin", "GET", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
			{"GET none", "GET", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
			{"GET the gateway's Origin", "GET", map[string]string{"Origin": own}, http.StatusOK},
			{"GET prefetch", "GET", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Purpose": "prefetch"}, http.StatusOK},
			{"GET image on the site", "GET", map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"}, http.StatusOK},
			{"HEAD same-origin", "HEAD", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusMethodNotAllowed},
			{"PUT same-origin", "PUT", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusMethodNotAllowed},
			{"DELETE the gateway's Origin", "DELETE", map[string]string{"Origin": own}, http.StatusMethodNotAllowed},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, body := victim.send(c.method, logout, c.header, "")
				if resp.StatusCode != c.want {
					t.Errorf("%d, want %d: %.300q", resp.StatusCode, c.want, body)
				}
				if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
					t.Errorf("cookies set: %q", sc)
				}
				if resp, _ := victim.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("logged out: /members/page answers %d", resp.StatusCode)
				}
			})
		}
	})

	// The requests that do log out: the browser says they come from the
	// gateway's own origin.
	t.Run("logout", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			header map[string]string
		}{
			{"POST same-origin", map[string]string{"Sec-Fetch-Site": "same-origin"}},
			{"POST none", map[string]string{"Sec-Fetch-Site": "none"}},
			{"POST same-origin with a foreign Origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "null"}},
			{"POST the gateway's Origin", map[string]string{"Origin": own}},
			{"POST the gateway's Origin in capitals", map[string]string{"Origin": strings.ToUpper(own)}},
			{"POST form", map[string]string{"Origin": own, "Content-Type": "application/x-www-form-urlencoded"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				b := loggedIn(ctx, t, s, alice)
				session := b.cookie(s.base, "irma_session")
				resp, body := b.send("POST", logout, c.header, "")
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/members/" {
					t.Errorf("logout: %d to %q, want 303 to /members/: %.300q", resp.StatusCode, resp.Header.Get("Location"), body)
				}
				if b.cookie(s.base, "irma_session") != nil {
					t.Error("the session cookie survived the logout")
				}
				if got := statusWith(t, s.base, "/members/page", session); got != http.StatusUnauthorized {
					t.Errorf("the session cookie of before the logout: %d, want 401", got)
				}
			})
		}
	})

	// A link to the logout shows a page whose button posts the logout.
	t.Run("page", func(t *testing.T) {
		b := loggedIn(ctx, t, s, alice)
		resp, body := b.get(logout, map[string]string{"Accept": "text/html", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"})
		t.Run("GET shows a button that posts", func(t *testing.T) {
			form := regexp.MustCompile(`<form method="post" action="([^"]*)"`).FindStringSubmatch(body)
			if resp.StatusCode != http.StatusOK || form == nil || html.UnescapeString(form[1]) != logoutPath ||
				!strings.Contains(body, "<button") {
				t.Fatalf("%d, form %q: %.2000s", resp.StatusCode, form, body)
			}
		})
		t.Run("GET cannot be framed", func(t *testing.T) {
			if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("X-Frame-Options %q, Content-Security-Policy %q", resp.Header.Get("X-Frame-Options"), resp.Header.Get("Content-Security-Policy"))
			}
		})
		t.Run("GET is not kept", func(t *testing.T) {
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
		t.Run("GET keeps the Origin of the button's post", func(t *testing.T) {
			// Under Referrer-Policy no-referrer, a browser sends Origin: null
			// with a form's post, which the check refuses.
			if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" || strings.Contains(body, `content="no-referrer"`) {
				t.Errorf("Referrer-Policy %q", rp)
			}
		})
		t.Run("GET in Dutch", func(t *testing.T) {
			_, nl := b.get(logout, map[string]string{"Accept": "text/html", "Accept-Language": "nl"})
			if !strings.Contains(nl, `lang="nl"`) || !strings.Contains(nl, "Uitloggen") {
				t.Errorf("%.2000s", nl)
			}
		})
		t.Run("POST of the button logs out", func(t *testing.T) {
			if resp, _ := b.send("POST", logout, map[string]string{"Origin": own, "Content-Type": "application/x-www-form-urlencoded"}, ""); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("after logout: %d", resp.StatusCode)
			}
		})
	})

	// Item 9: the session cookie of before the logout opens nothing after
	// it, anywhere a login is checked.
	t.Run("revocation", func(t *testing.T) {
		b := loggedIn(ctx, t, s, alice)
		other := loggedIn(ctx, t, s, alice)
		copied := b.cookie(s.base, "irma_session")
		if copied == nil {
			t.Fatal("no session cookie")
		}
		if got := statusWith(t, s.base, "/members/page", copied); got != http.StatusOK {
			t.Fatalf("the copy before the logout: %d", got)
		}
		if resp, _ := b.send("POST", logout, map[string]string{"Sec-Fetch-Site": "same-origin"}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		for _, c := range []struct {
			name, path string
			want       int
			body       string // what the answer holds: a new session, or where to log in
		}{
			{"the copy at a protected route", "/members/page", http.StatusUnauthorized, "sessionPtr"},
			{"the copy at a route under handle_path", "/app/page", http.StatusUnauthorized, "sessionPtr"},
			{"the copy at forward auth", "/irma/auth?policy=members", http.StatusUnauthorized, "login_required"},
			{"the copy at the login endpoint", "/irma/login?policy=members&return=%2Fmembers%2F", http.StatusUnauthorized, "sessionPtr"}, // a new session, not 303
		} {
			t.Run(c.name, func(t *testing.T) {
				thief := newBrowser(t)
				resp, body := thief.get(s.base+c.path, map[string]string{"Cookie": copied.Name + "=" + copied.Value})
				if resp.StatusCode != c.want || !strings.Contains(body, c.body) {
					t.Errorf("%d, want %d with %s: %.300q", resp.StatusCode, c.want, c.body, body)
				}
				if resp.Header.Get("X-Irma-Identity") != "" {
					t.Error("an identity for the copy")
				}
			})
		}
		t.Run("a step-up on the copy starts afresh", func(t *testing.T) {
			// The copy's login is over: a step-up on it is a new login,
			// which does not inherit the email address.
			thief := newBrowser(t)
			u, _ := url.Parse(s.base)
			thief.jar.SetCookies(u, []*http.Cookie{{Name: copied.Name, Value: copied.Value, Path: "/"}})
			thief.login(ctx, alice, s.base+"/adults/")
			if resp, body := thief.get(s.base+"/adults/", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("the step-up: %d %q", resp.StatusCode, body)
			}
			if resp, _ := thief.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("the step-up revived the copy's login: /members/ answers %d", resp.StatusCode)
			}
		})
		t.Run("another login stays", func(t *testing.T) {
			if resp, _ := other.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%d", resp.StatusCode)
			}
		})
		t.Run("a new login of the same browser", func(t *testing.T) {
			b.login(ctx, alice, s.base+"/members/page")
			if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%d", resp.StatusCode)
			}
		})
		t.Run("a reload that starts a new IRMA server", func(t *testing.T) {
			// A changed session setting starts a new IRMA server; the
			// logouts of the old one still hold.
			changed := strings.Replace(s.config, "schemes_update off", "schemes_update off\n\t\tmax_session_lifetime 6m", 1)
			if changed == s.config {
				t.Fatal("the config has no schemes_update line to change")
			}
			if err := caddytest.Load(changed); err != nil {
				t.Fatal(err)
			}
			if got := statusWith(t, s.base, "/members/page", copied); got != http.StatusUnauthorized {
				t.Errorf("the copy after a reload: %d, want 401", got)
			}
			if resp, _ := other.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("another login after a reload: %d", resp.StatusCode)
			}
		})
	})
}

// TestLogoutRedis: with the sessions in Redis, a logout is kept there, for
// every instance of the gateway, until the login would have ended; with
// Redis unreachable, a login is not let in.
func TestLogoutRedis(t *testing.T) {
	addr := startRedis(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", addr))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logout := s.base + "/irma/logout"
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := loggedIn(ctx, t, s, alice)
	other := loggedIn(ctx, t, s, alice)
	copied := b.cookie(s.base, "irma_session")
	if resp, _ := b.send("POST", logout, map[string]string{"Origin": s.base}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}

	t.Run("redis/revoked until the login ends", func(t *testing.T) {
		if n := redisCommand(t, addr, "KEYS *revoked-login*"); n != "*1" {
			t.Fatalf("revocations in Redis: %s, want one key", n)
		}
		// The revocation lasts as long as the login would have (its end is
		// in the sealed cookie), and a minute more for clocks that differ.
		var login struct {
			Expires time.Time `json:"exp"`
		}
		if err := storedCookieKeys(t, s).Open(copied.Name, copied.Value, &login, time.Now()); err != nil {
			t.Fatal(err)
		}
		pttl := redisCommand(t, addr, `EVAL "return redis.call('PTTL', redis.call('KEYS', '*revoked-login*')[1])" 0`)
		ms, err := strconv.ParseInt(strings.TrimPrefix(pttl, ":"), 10, 64)
		if err != nil {
			t.Fatalf("PTTL: %q", pttl)
		}
		left := time.Until(login.Expires)
		if got := time.Duration(ms) * time.Millisecond; got <= left || got > left+2*time.Minute {
			t.Errorf("the revocation lives %s more, the login %s", got, left)
		}
	})
	t.Run("redis/the copy is refused", func(t *testing.T) {
		if got := statusWith(t, s.base, "/members/page", copied); got != http.StatusUnauthorized {
			t.Errorf("%d, want 401", got)
		}
	})
	t.Run("redis/the copy is refused after a restart", func(t *testing.T) {
		// A new IRMA server and store of marks, as on another instance:
		// what it knows of the logout, it knows from Redis.
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := caddytest.Load(s.config); err != nil {
			t.Fatal(err)
		}
		if got := statusWith(t, s.base, "/members/page", copied); got != http.StatusUnauthorized {
			t.Errorf("%d, want 401", got)
		}
		if resp, _ := other.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("another login: %d", resp.StatusCode)
		}
	})
	t.Run("redis/unreachable store", func(t *testing.T) {
		// The default user may do nothing more: every command fails at
		// once, as with a Redis that is down, without a timeout to wait.
		if got := redisCommand(t, addr, "ACL SETUSER default -@all"); got != "+OK" {
			t.Fatalf("ACL SETUSER: %s", got)
		}
		for _, c := range []struct{ name, method, path string }{
			{"a protected route", "GET", "/members/page"},
			{"forward auth", "GET", "/irma/auth?policy=members"},
			{"the login endpoint", "GET", "/irma/login?policy=members"},
		} {
			resp, body := other.send(c.method, s.base+c.path, nil, "")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s: %d, want 503: %.300q", c.name, resp.StatusCode, body)
			}
		}
		resp, _ := other.send("POST", logout, map[string]string{"Origin": s.base}, "")
		if resp.StatusCode != http.StatusServiceUnavailable || len(resp.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("a logout that cannot be kept: %d, cookies %q; want 503 and the cookie left to try again", resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
	})
}

// TestLogoutTwoInstances: two gateways, this test's Caddy and the Caddy
// binary as a process of its own, with the same settings, storage and
// redis-server, as behind a load balancer. A login made on one opens the
// other; logged out on either, it is over on both.
func TestLogoutTwoInstances(t *testing.T) {
	addr := startRedis(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", addr))
	other := startInstance(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")

	for _, c := range []struct {
		name     string
		on, then string // where the logout goes, and where the copy is tried afterwards
	}{
		{"instances/logout on this, the copy on the other", s.base, other},
		{"instances/logout on the other, the copy on this", other, s.base},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := loggedIn(ctx, t, s, alice)
			copied := b.cookie(s.base, "irma_session")
			for _, base := range []string{s.base, other} {
				if got := statusWith(t, base, "/members/page", copied); got != http.StatusOK {
					t.Fatalf("the login at %s: %d", base, got)
				}
			}
			// The Origin is the instance's own (its scheme and Host).
			resp, _ := b.send("POST", c.on+"/irma/logout", map[string]string{"Origin": c.on}, "")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout at %s: %d", c.on, resp.StatusCode)
			}
			if got := statusWith(t, c.then, "/members/page", copied); got != http.StatusUnauthorized {
				t.Errorf("the copy at %s after the logout: %d, want 401", c.then, got)
			}
		})
	}
}

// TestLogoutChromium: in a real browser, the page of a logout link posts
// the logout, which the check lets through; and the post says its Origin
// (not null), on which a browser without Sec-Fetch-Site would pass.
func TestLogoutChromium(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := loggedIn(ctx, t, s, s.newWallet(t, "alice@example.com", "yes"))
	copied := b.cookie(s.base, "irma_session")
	browser := newChromium(t)

	// The headers of the logout's post, as Chromium sent them: the first
	// of its request id, whose redirect follows under the same id.
	var mu sync.Mutex
	var post network.RequestID
	sent := map[network.RequestID][]network.Headers{}
	chromedp.ListenTarget(browser, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.Request.Method == "POST" && strings.Contains(e.Request.URL, "/irma/logout") {
				post = e.RequestID
			}
		case *network.EventRequestWillBeSentExtraInfo:
			sent[e.RequestID] = append(sent[e.RequestID], e.Headers)
		}
	})
	var left []*network.Cookie
	if err := chromedp.Run(browser,
		network.Enable(),
		network.SetCookie(copied.Name, copied.Value).WithURL(s.base+"/").WithHTTPOnly(true),
		chromedp.Navigate(s.base+"/members/page"),
		chromedp.WaitVisible(`//body[contains(., "upstream /members/page for alice@example.com")]`, chromedp.BySearch),
		chromedp.Navigate(s.base+"/irma/logout?return=%2F"),
		chromedp.WaitVisible(`form button`, chromedp.ByQuery),
		chromedp.Click(`form button`, chromedp.ByQuery),
		chromedp.WaitVisible(`//body[normalize-space(.)="public"]`, chromedp.BySearch),
		chromedp.ActionFunc(func(ctx context.Context) (err error) {
			left, err = network.GetCookies().WithURLs([]string{s.base + "/"}).Do(ctx)
			return err
		}),
	); err != nil {
		screenshot(t, browser, "logout.png")
		t.Fatalf("logging out in Chromium: %v", err)
	}
	for _, c := range left {
		if c.Name == copied.Name {
			t.Error("the session cookie is still in the browser")
		}
	}
	if got := statusWith(t, s.base, "/members/page", copied); got != http.StatusUnauthorized {
		t.Errorf("the session cookie of before the logout: %d, want 401", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent[post]) == 0 {
		t.Fatal("no headers of the logout's post")
	}
	header := map[string]string{}
	for k, v := range sent[post][0] {
		header[strings.ToLower(k)] = fmt.Sprint(v)
	}
	if header["origin"] != s.base || header["sec-fetch-site"] != "same-origin" {
		t.Errorf("the logout's post said Origin %q, Sec-Fetch-Site %q; want %q, same-origin", header["origin"], header["sec-fetch-site"], s.base)
	}
}
