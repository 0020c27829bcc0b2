// Package limittest is the conformance suite of sessionlimit.Limiter: every
// implementation passes it, with the clock in the suite's hands. Its steps
// are whole microseconds, the finest time that every implementation keeps.
package limittest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
)

// NewLimiter returns a fresh limiter for one subtest with the bounds b, on
// the given clock, with its counts under prefix (limiters with other
// prefixes must not see them).
type NewLimiter func(t *testing.T, b sessionlimit.Bounds, now func() time.Time, prefix string) sessionlimit.Limiter

// Run runs the suite against the limiters that newLimiter makes.
func Run(t *testing.T, newLimiter NewLimiter) {
	var n atomic.Int64
	setup := func(t *testing.T, b sessionlimit.Bounds) (*tester, *testclock.Clock) {
		// Any day will do, and none is special: a fixed, odd time.
		c := testclock.New(time.Date(2031, 2, 3, 4, 5, 6, 7e6, time.UTC))
		return &tester{t: t, l: newLimiter(t, b, c.Now, fmt.Sprintf("limittest-%d-", n.Add(1)))}, c
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, clock := setup(t, c.bounds)
			c.run(t, l, clock)
		})
	}
	t.Run("limiters apart", func(t *testing.T) {
		b := sessionlimit.Bounds{PerClient: 2, Window: time.Minute, Total: 2, TotalWindow: time.Minute}
		l1, _ := setup(t, b)
		l2, _ := setup(t, b)
		for _, l := range []*tester{l1, l2, l1, l2} {
			l.admit("a")
		}
		l1.refuse("a", time.Minute)
		l2.refuse("b", time.Minute)
	})
}

// tester asks a limiter, failing the test on an error.
type tester struct {
	t *testing.T
	l sessionlimit.Limiter
}

func (l *tester) allow(client string) (bool, time.Duration) {
	l.t.Helper()
	ok, wait, err := l.l.Allow(context.Background(), client)
	if err != nil {
		l.t.Fatalf("allow %.20q: %v", client, err)
	}
	return ok, wait
}

// admit fails the test unless client may start a session.
func (l *tester) admit(client string) {
	l.t.Helper()
	if ok, wait := l.allow(client); !ok {
		l.t.Fatalf("%.20q refused, wait %s; want a session", client, wait)
	}
}

// refuse fails the test unless client is refused with wait.
func (l *tester) refuse(client string, wait time.Duration) {
	l.t.Helper()
	if ok, got := l.allow(client); ok || got != wait {
		l.t.Fatalf("%.20q: %v, wait %s; want a refusal and %s", client, ok, got, wait)
	}
}

// cases are the suite's cases that run on one limiter each.
var cases = []struct {
	name   string
	bounds sessionlimit.Bounds
	run    func(t *testing.T, l *tester, c *testclock.Clock)
}{
	{"per client", sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 100, TotalWindow: 10 * time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			for range 3 {
				c.Advance(10 * time.Second)
				l.admit("a")
			}
			// Three in the window (at 10, 20, 30 s): the next when the
			// first leaves it.
			l.refuse("a", 40*time.Second)
			l.admit("b")
			c.Advance(40*time.Second - time.Microsecond)
			l.refuse("a", time.Microsecond)
			c.Advance(time.Microsecond)
			l.admit("a")
			l.refuse("a", 10*time.Second)
			// In no window of a minute did a start more than 3.
		}},
	{"total", sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 5, TotalWindow: 10 * time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			started := 0
			for i := range 10 {
				if ok, _ := l.allow(fmt.Sprint("client-", i)); ok {
					started++
				}
			}
			if started != 5 {
				t.Fatalf("%d sessions started by 10 clients, want the total of 5", started)
			}
			l.refuse("late", 10*time.Minute)
			c.Advance(9 * time.Minute)
			l.refuse("late", time.Minute)
			c.Advance(time.Minute)
			l.admit("late")
		}},
	{"refusals do not count", sessionlimit.Bounds{PerClient: 2, Window: time.Hour, Total: 2, TotalWindow: time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			l.admit("x")
			l.admit("y")
			// Refused for the total, x has not used its second session.
			for range 5 {
				l.refuse("x", time.Minute)
			}
			c.Advance(time.Minute)
			l.admit("x")
			l.refuse("x", 59*time.Minute)
			c.Advance(30 * time.Minute)
			l.refuse("x", 29*time.Minute)
			c.Advance(29 * time.Minute)
			l.admit("x")
		}},
	{"the wait is exact", sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 1000, TotalWindow: time.Hour},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			// Whatever the steps between tries, a refused client gets a
			// session after its wait, and not a microsecond before.
			refusals := 0
			for _, step := range []time.Duration{0, 1, 7e6, 3, 13e6, 0, 2e6, 29e6, 1, 5e6} {
				c.Advance(step * time.Microsecond)
				ok, wait := l.allow("a")
				if ok {
					continue
				}
				refusals++
				if wait <= 0 || wait > time.Minute {
					t.Fatalf("wait %s, want within the window", wait)
				}
				c.Advance(wait - time.Microsecond)
				l.refuse("a", time.Microsecond)
				c.Advance(time.Microsecond)
				l.admit("a")
			}
			if refusals == 0 {
				t.Fatal("never refused: the steps test nothing")
			}
		}},
	{"any client", sessionlimit.Bounds{PerClient: 1, Window: time.Minute, Total: 100, TotalWindow: time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			clients := []string{"", "127.0.0.1", "::1", "2001:db8::1", "client:total", "total", strings.Repeat("x", 10000), "\x00\xff"}
			for _, client := range clients {
				l.admit(client)
			}
			for _, client := range clients {
				l.refuse(client, time.Minute)
			}
		}},
	{"one client, concurrently", sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 100, TotalWindow: time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			if got := concurrently(t, l.l, func(int) string { return "a" }); got != 3 {
				t.Errorf("%d of 32 concurrent tries started a session, want 3", got)
			}
		}},
	{"many clients, concurrently", sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 5, TotalWindow: time.Minute},
		func(t *testing.T, l *tester, c *testclock.Clock) {
			if got := concurrently(t, l.l, func(i int) string { return fmt.Sprint("client-", i) }); got != 5 {
				t.Errorf("%d of 32 concurrent clients started a session, want the total of 5", got)
			}
		}},
}

// concurrently has 32 goroutines ask l at once, the i-th for client(i),
// and returns how many were admitted.
func concurrently(t *testing.T, l sessionlimit.Limiter, client func(i int) string) int {
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, err := l.Allow(context.Background(), client(i)); err != nil {
				t.Error(err)
			} else if ok {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(admitted.Load())
}
