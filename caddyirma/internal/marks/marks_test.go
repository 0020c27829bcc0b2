package marks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-redis/redis/v8"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks/storetest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time, _ string) marks.Store {
		return marks.New(marks.Config{Now: now})
	})
}

func TestRedis(t *testing.T) {
	addr := testredis.Start(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	storetest.Run(t, func(t *testing.T, now func() time.Time, prefix string) marks.Store {
		return marks.New(marks.Config{Redis: client, Prefix: prefix, Now: now})
	})
	// The suite ran against this Redis, and left the marks it put and
	// never took, under their prefixes, until Redis expires them.
	if keys := testredis.Command(t, addr, "KEYS storetest-*"); keys == "*0" {
		t.Error("the suite left nothing in Redis: was it used?")
	}
}

// TestRedisNotAMark: a value that another program left under a key is an
// error, not a mark.
func TestRedisNotAMark(t *testing.T) {
	addr := testredis.Start(t)
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	if err := client.Set(context.Background(), "p-k", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	s := marks.New(marks.Config{Redis: client, Prefix: "p-"})
	if _, ok, err := s.Take(context.Background(), "k"); ok || err == nil || !strings.Contains(err.Error(), "not a mark") {
		t.Errorf("took a foreign value: %v %v", ok, err)
	}
	if err := client.Set(context.Background(), "p-h", "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Has(context.Background(), "h"); ok || err == nil || !strings.Contains(err.Error(), "not a mark") {
		t.Errorf("has a foreign value: %v %v", ok, err)
	}
}

func TestRedisDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: caddytest.RefusedAddr(t), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	s := marks.New(marks.Config{Redis: client})
	if err := s.Put(context.Background(), "k", nil, time.Minute); !errors.Is(err, marks.ErrUnavailable) {
		t.Errorf("put to an unreachable Redis: %v", err)
	}
	if _, err := s.Add(context.Background(), "k", nil, time.Minute); !errors.Is(err, marks.ErrUnavailable) {
		t.Errorf("add to an unreachable Redis: %v", err)
	}
	if _, ok, err := s.Take(context.Background(), "k"); !errors.Is(err, marks.ErrUnavailable) || ok {
		t.Errorf("take from an unreachable Redis: %v %v", ok, err)
	}
	if ok, err := s.Has(context.Background(), "k"); !errors.Is(err, marks.ErrUnavailable) || ok {
		t.Errorf("has of an unreachable Redis: %v %v", ok, err)
	}
}

// BenchmarkHas is the lookup that every request with a login makes (was
// the login logged out?), in memory and in a local redis-server:
//
//	go test -run '^$' -bench BenchmarkHas ./caddyirma/internal/marks
func BenchmarkHas(b *testing.B) {
	client := redis.NewClient(&redis.Options{Addr: testredis.Start(b)})
	b.Cleanup(func() { client.Close() })
	for _, c := range []struct {
		name  string
		store marks.Store
	}{
		{"memory", marks.New(marks.Config{})},
		{"redis", marks.New(marks.Config{Redis: client, Prefix: "bench-"})},
	} {
		ctx := context.Background()
		if err := c.store.Put(ctx, "revoked", nil, time.Hour); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.store.Has(ctx, "not-revoked"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
