package sessionlimit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit/limittest"
)

func TestMemory(t *testing.T) {
	limittest.Run(t, func(t *testing.T, b sessionlimit.Bounds, now func() time.Time, _ string) sessionlimit.Limiter {
		return &sessionlimit.Memory{Bounds: b, MaxClients: 1000, Now: now}
	})
}

// redisClient returns a client of a redis-server of the test's own.
func redisClient(t testing.TB) *redis.Client {
	client := redis.NewClient(&redis.Options{Addr: testredis.Start(t)})
	t.Cleanup(func() { client.Close() })
	return client
}

func TestRedis(t *testing.T) {
	client := redisClient(t)
	limittest.Run(t, func(t *testing.T, b sessionlimit.Bounds, now func() time.Time, prefix string) sessionlimit.Limiter {
		return &sessionlimit.Redis{Bounds: b, Client: client, Prefix: prefix, Now: now}
	})
	// The suite counted in this Redis, and left its sets, under their
	// prefixes, until Redis expires them.
	if keys, err := client.Keys(context.Background(), "limittest-*").Result(); err != nil || len(keys) == 0 {
		t.Errorf("the suite left nothing in Redis (%v): was it used?", err)
	}
}

// TestRedisShared: limiters in two processes that share a Redis and a
// prefix count together, each on its own clock.
func TestRedisShared(t *testing.T) {
	client := redisClient(t)
	start := time.Date(2031, 2, 3, 4, 5, 6, 7e6, time.UTC)
	b := sessionlimit.Bounds{PerClient: 3, Window: 10 * time.Minute, Total: 100, TotalWindow: 15 * time.Minute}
	c1, c2 := testclock.New(start), testclock.New(start)
	one := &sessionlimit.Redis{Bounds: b, Client: client, Prefix: "shared-", Now: c1.Now}
	other := &sessionlimit.Redis{Bounds: b, Client: client, Prefix: "shared-", Now: c2.Now}
	for i, c := range []struct {
		l    *sessionlimit.Redis
		ok   bool
		wait time.Duration
	}{
		{one, true, 0}, {other, true, 0}, {one, true, 0},
		{other, false, 10 * time.Minute}, {one, false, 10 * time.Minute},
	} {
		ok, wait, err := c.l.Allow(context.Background(), "192.0.2.1")
		if err != nil || ok != c.ok || wait != c.wait {
			t.Fatalf("try %d: %v, wait %s, %v; want %v and %s", i+1, ok, wait, err, c.ok, c.wait)
		}
	}
	// The other's clock decides for the other.
	c2.Advance(10 * time.Minute)
	if ok, _, err := other.Allow(context.Background(), "192.0.2.1"); !ok || err != nil {
		t.Errorf("after the window, on the other: %v %v", ok, err)
	}
}

// TestRedisBoundLowered: the counts in Redis outlive a config: an instance
// with a lower bound than the one that counted (a reload, a rolling
// deploy) waits until the starts over its own bound have left the window.
func TestRedisBoundLowered(t *testing.T) {
	client := redisClient(t)
	c := testclock.New(time.Date(2031, 2, 3, 4, 5, 6, 7e6, time.UTC))
	b := sessionlimit.Bounds{PerClient: 5, Window: 10 * time.Minute, Total: 100, TotalWindow: 15 * time.Minute}
	before := &sessionlimit.Redis{Bounds: b, Client: client, Prefix: "lowered-", Now: c.Now}
	for range 5 {
		if ok, _, err := before.Allow(context.Background(), "192.0.2.1"); !ok || err != nil {
			t.Fatalf("under the first bound: %v %v", ok, err)
		}
		c.Advance(time.Minute)
	}
	// Starts at 0, 1, 2, 3 and 4 minutes; now is 5. With a bound of 3, the
	// third newest (at 2) must leave the window first.
	b.PerClient = 3
	after := &sessionlimit.Redis{Bounds: b, Client: client, Prefix: "lowered-", Now: c.Now}
	if ok, wait, err := after.Allow(context.Background(), "192.0.2.1"); ok || err != nil || wait != 7*time.Minute {
		t.Fatalf("under the lower bound: %v, wait %s, %v; want a refusal and 7m", ok, wait, err)
	}
	c.Advance(7 * time.Minute)
	if ok, _, err := after.Allow(context.Background(), "192.0.2.1"); !ok || err != nil {
		t.Errorf("after the wait: %v %v", ok, err)
	}
}

// TestRedisKeys: what the limiter leaves in Redis: a set per client that
// started a session, named by a hash of the client, and one of all starts,
// each to expire when its window is over; nothing for a refusal.
func TestRedisKeys(t *testing.T) {
	ctx := context.Background()
	client := redisClient(t)
	b := sessionlimit.Bounds{PerClient: 3, Window: 10 * time.Minute, Total: 1, TotalWindow: 15 * time.Minute}
	l := &sessionlimit.Redis{Bounds: b, Client: client, Prefix: "keys-"}
	for _, c := range []struct {
		client string
		ok     bool
	}{{"192.0.2.1", true}, {"2001:db8::2", false}} {
		if ok, _, err := l.Allow(ctx, c.client); ok != c.ok || err != nil {
			t.Fatalf("%s: %v %v, want %v", c.client, ok, err, c.ok)
		}
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys %q, want the client's and the total's", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "192.0.2") || strings.Contains(k, "2001:db8") {
			t.Errorf("key %q holds a client address", k)
		}
		members, err := client.ZRange(ctx, k, 0, -1).Result()
		if err != nil || len(members) != 1 || strings.Contains(members[0], "192.0.2") {
			t.Errorf("key %q holds %q, %v; want one start", k, members, err)
		}
		window := b.Window
		if k == "keys-total" {
			window = b.TotalWindow
		}
		// The key was set just now: it lives its window, less the time
		// since.
		if ttl, err := client.PTTL(ctx, k).Result(); err != nil || ttl <= 0 || ttl > window {
			t.Errorf("key %q expires in %s, %v; want within %s", k, ttl, err, window)
		}
	}
}

// TestRedisUnavailable: a limiter that cannot count refuses, with an error
// that says so.
func TestRedisUnavailable(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: caddytest.RefusedAddr(t), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { down.Close() })
	up := redisClient(t)
	if err := up.Set(context.Background(), "foreign-total", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	b := sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 10, TotalWindow: time.Minute}
	for _, c := range []struct {
		name string
		l    *sessionlimit.Redis
	}{
		{"redis down", &sessionlimit.Redis{Bounds: b, Client: down}},
		{"a foreign value under the key", &sessionlimit.Redis{Bounds: b, Client: up, Prefix: "foreign-"}},
	} {
		ok, _, err := c.l.Allow(context.Background(), "192.0.2.1")
		if ok || err == nil || !strings.HasPrefix(err.Error(), "sessionlimit: redis: ") {
			t.Errorf("%s: %v, %v; want a refusal and an error", c.name, ok, err)
		}
	}
}

// BenchmarkAllow is the check that every request which would start a
// session makes, in memory and in a local redis-server: the first tries of
// many clients (a session each), and the tries of a client over its bound:
//
//	go test -run '^$' -bench BenchmarkAllow ./caddyirma/sessionlimit
func BenchmarkAllow(b *testing.B) {
	client := redisClient(b)
	bounds := sessionlimit.Bounds{PerClient: 3, Window: time.Minute, Total: 1 << 30, TotalWindow: time.Minute}
	for _, l := range []struct {
		name    string
		limiter sessionlimit.Limiter
	}{
		{"memory", &sessionlimit.Memory{Bounds: bounds, MaxClients: 1 << 30}},
		{"redis", &sessionlimit.Redis{Bounds: bounds, Client: client, Prefix: "bench-"}},
	} {
		for _, c := range []struct {
			name   string
			client func(i int) string
			want   bool
		}{
			{"admitted", func(i int) string { return fmt.Sprint("192.0.2.", i) }, true},
			{"refused", func(int) string { return "198.51.100.1" }, false},
		} {
			b.Run(l.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					ok, _, err := l.limiter.Allow(context.Background(), c.client(i))
					if err != nil || (ok != c.want && i > bounds.PerClient) {
						b.Fatalf("try %d: %v %v", i, ok, err)
					}
				}
			})
		}
	}
}
