package caddyirma

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-redis/redis/v8"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
)

// The logout on its own: where a request comes from, and a revocation
// that two instances of the gateway share through one real redis-server.
// The end-to-end tests (caddyirma/e2e/logout_test.go) log out through
// Caddy with the wallet.

func TestSourceOf(t *testing.T) {
	const app = "https://gw.example/irma/"
	for _, c := range []struct {
		name   string
		host   string // default gw.example
		plain  bool   // http, not TLS
		header http.Header
		want   requestSource
	}{
		{name: "sec-fetch/same-origin", header: http.Header{"Sec-Fetch-Site": {"same-origin"}}, want: sourceOwn},
		{name: "sec-fetch/none", header: http.Header{"Sec-Fetch-Site": {"none"}}, want: sourceOwn},
		{name: "sec-fetch/same-site", header: http.Header{"Sec-Fetch-Site": {"same-site"}}, want: sourceForeign},
		{name: "sec-fetch/cross-site", header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, want: sourceForeign},
		{name: "sec-fetch/empty", header: http.Header{"Sec-Fetch-Site": {""}}, want: sourceForeign},
		{name: "sec-fetch/capitals", header: http.Header{"Sec-Fetch-Site": {"Same-Origin"}}, want: sourceForeign},
		{name: "sec-fetch/twice", header: http.Header{"Sec-Fetch-Site": {"same-origin", "cross-site"}}, want: sourceForeign},
		{name: "sec-fetch/decides over Origin", header: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://gw.example"}}, want: sourceForeign},
		{name: "sec-fetch/same-origin with Origin null", header: http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"null"}}, want: sourceOwn},
		{name: "origin/the app's", header: http.Header{"Origin": {"https://gw.example"}}, want: sourceOwn},
		{name: "origin/the app's with its default port", header: http.Header{"Origin": {"https://gw.example:443"}}, want: sourceOwn},
		{name: "origin/the app's in capitals", header: http.Header{"Origin": {"HTTPS://GW.EXAMPLE"}}, want: sourceOwn},
		{name: "origin/the app's host over http", header: http.Header{"Origin": {"http://gw.example"}}, want: sourceForeign},
		{name: "origin/the app's host, another port", header: http.Header{"Origin": {"https://gw.example:8443"}}, want: sourceForeign},
		{name: "origin/the request's", host: "other.example", header: http.Header{"Origin": {"https://other.example"}}, want: sourceOwn},
		{name: "origin/the request's with a port", host: "other.example:8443", header: http.Header{"Origin": {"https://other.example:8443"}}, want: sourceOwn},
		{name: "origin/the request's over plain http", host: "other.example", plain: true, header: http.Header{"Origin": {"http://other.example"}}, want: sourceOwn},
		{name: "origin/http to a TLS request", host: "other.example", header: http.Header{"Origin": {"http://other.example"}}, want: sourceForeign},
		{name: "origin/another site", header: http.Header{"Origin": {"https://evil.example"}}, want: sourceForeign},
		{name: "origin/a sibling", header: http.Header{"Origin": {"https://www.gw.example"}}, want: sourceForeign},
		{name: "origin/a suffix", header: http.Header{"Origin": {"https://gw.example.evil.example"}}, want: sourceForeign},
		{name: "origin/null", header: http.Header{"Origin": {"null"}}, want: sourceForeign},
		{name: "origin/empty", header: http.Header{"Origin": {""}}, want: sourceForeign},
		{name: "origin/twice", header: http.Header{"Origin": {"https://gw.example", "https://evil.example"}}, want: sourceForeign},
		{name: "origin/with a path", header: http.Header{"Origin": {"https://gw.example/"}}, want: sourceForeign},
		{name: "origin/with user info", header: http.Header{"Origin": {"https://evil.example@gw.example"}}, want: sourceForeign},
		{name: "origin/with a query", header: http.Header{"Origin": {"https://gw.example?"}}, want: sourceForeign},
		{name: "origin/another scheme", header: http.Header{"Origin": {"ftp://gw.example"}}, want: sourceForeign},
		{name: "neither", header: http.Header{}, want: sourceUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "https://gw.example/irma/logout", nil)
			if c.host != "" {
				r.Host = c.host
			}
			if c.plain {
				r.TLS = nil
			} else {
				r.TLS = &tls.ConnectionState{}
			}
			r.Header = c.header
			if got, why := sourceOf(r, app); got != c.want {
				t.Errorf("source %d (%s), want %d", got, why, c.want)
			}
		})
	}
}

// TestLogoutAcrossInstances: two instances of the gateway, with the same
// cookie keys (Caddy's shared storage) and each its own connection to one
// redis-server, as behind a load balancer. A login made on one and logged
// out on the other is over on both, for every copy of its cookie, until it
// would have ended by itself.
func TestLogoutAcrossInstances(t *testing.T) {
	addr := testredis.Start(t)
	a := newFlowSite(t, 12*time.Hour, emailID)
	redisMarks := func() marks.Store {
		client := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { client.Close() })
		return marks.New(marks.Config{Redis: client, Prefix: "caddy-irma:", Now: a.clock.now})
	}
	a.srv.store = redisMarks()
	bSrv := newFakeSessions(a.clock.now)
	bSrv.store = redisMarks()
	b := *a.flow
	b.backend = bSrv

	a.get(false)
	a.srv.finish(t, 1, a.clock.t.Add(30*day), emailID, "alice@example.com")
	_, login, err := a.get(false)
	if login == nil || err != nil {
		t.Fatalf("login on a: %+v %v", login, err)
	}
	copied := a.request() // the cookie, as a thief copied it
	if got, err := b.satisfied(copied); got == nil || err != nil || got.ID != login.ID {
		t.Fatalf("the login on b: %+v %v", got, err)
	}

	w := httptest.NewRecorder()
	if _, err := endLogin(w, a.request(), &b.login.cookies, bSrv, a.clock.t); err != nil {
		t.Fatalf("logout on b: %v", err)
	}
	if c := setCookie(w, b.login.cookies.name); c == nil || c.MaxAge >= 0 {
		t.Errorf("the logout did not remove the session cookie: %+v", c)
	}
	if keys := testredis.Command(t, addr, "KEYS caddy-irma:revoked-login:*"); keys != "*1" {
		t.Errorf("revocations in Redis: %s, want 1", keys)
	}

	for _, c := range []struct {
		name string
		at   time.Time
	}{
		{"at once", a.clock.t},
		{"the last moment of the login", login.Expires.Add(-time.Millisecond)},
	} {
		a.clock.t = c.at
		t.Run("a/"+c.name, func(t *testing.T) {
			if got, err := a.flow.satisfied(copied); got != nil || err != nil {
				t.Errorf("satisfied: %+v %v", got, err)
			}
			n := a.srv.n
			w, got, err := a.get(false)
			if got != nil || err != nil || w.Code != http.StatusUnauthorized || a.srv.n != n+1 {
				t.Errorf("check: %+v %v %d, %d sessions started, want a new one", got, err, w.Code, a.srv.n-n)
			}
		})
		t.Run("b/"+c.name, func(t *testing.T) {
			if got, err := b.satisfied(copied); got != nil || err != nil {
				t.Errorf("satisfied: %+v %v", got, err)
			}
		})
	}
}

// TestLoginCheckStoreDown: a login whose logout cannot be looked up is not
// let in (503), and a logout that cannot be stored leaves the cookie for
// another try.
func TestLoginCheckStoreDown(t *testing.T) {
	s := newFlowSite(t, 12*time.Hour, emailID)
	s.get(false)
	s.srv.finish(t, 1, s.clock.t.Add(30*day), emailID, "alice@example.com")
	if _, login, err := s.get(false); login == nil || err != nil {
		t.Fatalf("login: %+v %v", login, err)
	}
	client := redis.NewClient(&redis.Options{Addr: caddytest.RefusedAddr(t), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	s.srv.store = marks.New(marks.Config{Redis: client, Now: s.clock.now})
	n := s.srv.n

	for _, c := range []struct {
		name string
		run  func() (*httptest.ResponseRecorder, *loginState, error)
	}{
		{"check", func() (*httptest.ResponseRecorder, *loginState, error) { return s.get(false) }},
		{"satisfied", func() (*httptest.ResponseRecorder, *loginState, error) {
			login, err := s.flow.satisfied(s.request())
			return httptest.NewRecorder(), login, err
		}},
		{"logout", func() (*httptest.ResponseRecorder, *loginState, error) {
			w := httptest.NewRecorder()
			_, err := endLogin(w, s.request(), &s.flow.login.cookies, s.srv, s.clock.t)
			return w, nil, err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, login, err := c.run()
			if login != nil || err == nil {
				t.Fatalf("login %+v, error %v; want none, and an error", login, err)
			}
			var he caddyhttp.HandlerError
			if c.name != "logout" && (!errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable) {
				t.Errorf("error %v, want 503", err)
			}
			if sc := w.Header().Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("cookies set: %q", sc)
			}
			if s.srv.n != n {
				t.Errorf("%d sessions started", s.srv.n-n)
			}
		})
	}
}

// request is a request of the site's browser, with its cookies.
func (s *flowSite) request() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://gw.example/members/", nil)
	for _, c := range s.cookies {
		r.AddCookie(c)
	}
	return r
}

// setCookie returns the cookie of that name that w set, or nil.
func setCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}
