package caddyirma

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
)

var cacheT0 = time.Date(2026, 11, 30, 13, 7, 0, 0, time.UTC)

func cachedLoginOf(id string) *loginState {
	return &loginState{ID: id, Attributes: map[string]string{emailID: id + "@example.com"}, Expires: cacheT0.Add(time.Hour)}
}

func TestLoginCacheBounded(t *testing.T) {
	c := newLoginCache(3)
	for i := range 5 {
		c.put(fmt.Sprint("value", i), cachedLoginOf(fmt.Sprint(i)), cacheT0.Add(time.Hour))
	}
	if n := c.len(); n != 3 {
		t.Errorf("%d logins kept, want 3", n)
	}
	for i := range 5 {
		got := c.get(fmt.Sprint("value", i), cacheT0)
		if kept := i >= 2; (got != nil) != kept || got != nil && got.ID != fmt.Sprint(i) {
			t.Errorf("value %d: %+v, want kept %v", i, got, kept)
		}
	}
	// Taking in a kept value again replaces it, and evicts nothing.
	c.put("value4", cachedLoginOf("4b"), cacheT0.Add(time.Hour))
	if c.len() != 3 || c.get("value2", cacheT0) == nil || c.get("value4", cacheT0).ID != "4b" {
		t.Errorf("after taking a kept value in again: %d kept", c.len())
	}
}

func TestLoginCacheExpiry(t *testing.T) {
	c := newLoginCache(10)
	// The sealed value expires first.
	c.put("sealed", cachedLoginOf("a"), cacheT0.Add(time.Minute))
	// The login ends first.
	c.put("login", cachedLoginOf("b"), cacheT0.Add(2*time.Hour))
	for _, tc := range []struct {
		value string
		end   time.Time
	}{{"sealed", cacheT0.Add(time.Minute)}, {"login", cacheT0.Add(time.Hour)}} {
		if c.get(tc.value, tc.end.Add(-time.Nanosecond)) == nil {
			t.Errorf("%s: not given before its end", tc.value)
		}
		for _, at := range []time.Time{tc.end, tc.end.Add(time.Second), tc.end.Add(1000 * time.Hour)} {
			if got := c.get(tc.value, at); got != nil {
				t.Errorf("%s: given %s after its end", tc.value, at.Sub(tc.end))
			}
		}
	}
}

func TestLoginCacheKeyedByValue(t *testing.T) {
	c := newLoginCache(10)
	c.put("value-a", cachedLoginOf("a"), cacheT0.Add(time.Hour))
	for _, other := range []string{"value-b", "value-a ", "value-", "VALUE-A", ""} {
		if got := c.get(other, cacheT0); got != nil {
			t.Errorf("%q: given the login of another value", other)
		}
	}
	c.put("value-b", cachedLoginOf("b"), cacheT0.Add(time.Hour))
	if a, b := c.get("value-a", cacheT0), c.get("value-b", cacheT0); a.ID != "a" || b.ID != "b" {
		t.Errorf("got %s and %s, want a and b", a.ID, b.ID)
	}
}

func TestLoginCacheConcurrent(t *testing.T) {
	c := newLoginCache(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				v := fmt.Sprint("value", (g*7+i)%20)
				if got := c.get(v, cacheT0); got != nil && got.ID != v {
					t.Errorf("%s: got the login of %s", v, got.ID)
					return
				}
				c.put(v, cachedLoginOf(v), cacheT0.Add(time.Hour))
			}
		}()
	}
	wg.Wait()
	if c.len() > 8 {
		t.Errorf("%d kept, want at most 8", c.len())
	}
}

// The flow with the cache: a cookie opens once; every request still asks
// the store of marks about a logout; the end of the login holds.
func TestLoginCacheFlow(t *testing.T) {
	s := newFlowSite(t, 12*time.Hour, emailID)
	s.get(false)
	s.srv.finish(t, 1, s.clock.t.Add(30*day), emailID, "alice@example.com")
	_, first, err := s.get(false)
	if first == nil || err != nil {
		t.Fatalf("login: %+v %v", first, err)
	}
	_, second, _ := s.get(false)
	_, third, _ := s.get(false)
	if second == nil || second != third || s.flow.login.cookies.logins.len() != 1 {
		t.Errorf("the cookie was opened again: %p %p, %d kept", second, third, s.flow.login.cookies.logins.len())
	}
	token, err := s.flow.token(second)
	if again, err2 := s.flow.token(third); err != nil || err2 != nil || again != token {
		t.Errorf("the JWT of one login was not reused: %v %v", err, err2)
	}

	if _, err := endLogin(httptest.NewRecorder(), s.request(), &s.flow.login.cookies, s.srv, s.clock.t); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if got, err := s.flow.satisfied(s.request()); got != nil || err != nil {
		t.Errorf("after the logout, the cached login: %+v %v", got, err)
	}
}

// A cookie of a retired key does not open from the cache of another
// config's keys.
func TestLoginCacheKeyRing(t *testing.T) {
	s := newFlowSite(t, 12*time.Hour, emailID)
	s.get(false)
	s.srv.finish(t, 1, s.clock.t.Add(30*day), emailID, "alice@example.com")
	if _, login, _ := s.get(false); login == nil {
		t.Fatal("no login")
	}
	l := &LoginConfig{}
	if err := l.provision("https://gw.example/irma/"); err != nil {
		t.Fatal(err)
	}
	if err := l.start(context.Background(), new(keystore.Memory)); err != nil {
		t.Fatal(err)
	}
	if got := l.cookies.readLogin(s.request(), s.clock.t); got != nil {
		t.Errorf("a cookie of other keys opened: %+v", got)
	}
}

// BenchmarkReadLogin is the opening of a session cookie per request, from
// the cache and without.
func BenchmarkReadLogin(b *testing.B) {
	l := &LoginConfig{}
	if err := l.provision("https://gw.example/irma/"); err != nil {
		b.Fatal(err)
	}
	if err := l.start(context.Background(), new(keystore.Memory)); err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	login := cachedLoginOf("bench")
	login.Expires = time.Now().Add(time.Hour)
	if err := l.cookies.setLogin(w, login); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "https://gw.example/", nil)
	r.AddCookie(w.Result().Cookies()[0])
	for _, cached := range []bool{true, false} {
		b.Run(fmt.Sprintf("cached=%v", cached), func(b *testing.B) {
			if !cached {
				l.cookies.logins = nil
			}
			b.ReportAllocs()
			for b.Loop() {
				if l.cookies.readLogin(r, time.Now()) == nil {
					b.Fatal("no login")
				}
			}
		})
	}
}

// The {irma.*} placeholders are those of the last irma_auth that passed the
// request, as when each copied its values into the replacer.
func TestPlaceholders(t *testing.T) {
	s := newFlowSite(t, 12*time.Hour, emailID)
	login := cachedLoginOf("alice")
	first := *s.flow
	second := *s.flow
	second.name = "second"
	repl := caddy.NewReplacer()
	state := new(shielded)
	if got := repl.ReplaceAll("{irma.policy}", "-"); got != "-" {
		t.Errorf("before irma_auth: %q", got)
	}
	state.setPlaceholders(repl, first.view(login))
	if got := repl.ReplaceAll("{irma.policy} {irma.attr."+emailID+"}", "-"); got != "test alice@example.com" {
		t.Errorf("after the first: %q", got)
	}
	state.setPlaceholders(repl, second.view(login))
	if got := repl.ReplaceAll("{irma.policy} {irma.attr.x.y.z.w} {irma.nothing} {http.nothing}", "-"); got != "second - - -" {
		t.Errorf("after the second: %q", got)
	}
	if got := repl.ReplaceAll("{irma.login_expires}", "-"); got != login.Expires.Format(time.RFC3339) {
		t.Errorf("login_expires: %q", got)
	}
}
