// Package storetest is the conformance suite of marks.Store: every
// implementation passes it, with the clock in the suite's hands.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
)

// NewStore returns a fresh store for one subtest, on the given clock, with
// its keys under prefix (stores with other prefixes must not see them).
type NewStore func(t *testing.T, now func() time.Time, prefix string) marks.Store

// Run runs the suite against the stores that newStore makes.
func Run(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	var n atomic.Int64
	setup := func(t *testing.T) (marks.Store, *testclock.Clock) {
		// Any day will do, and none is special: a fixed, odd time.
		c := testclock.New(time.Date(2031, 2, 3, 4, 5, 6, 7e6, time.UTC))
		return newStore(t, c.Now, fmt.Sprintf("storetest-%d-", n.Add(1))), c
	}
	put := func(t *testing.T, s marks.Store, key, value string, ttl time.Duration) {
		t.Helper()
		if err := s.Put(ctx, key, []byte(value), ttl); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	take := func(t *testing.T, s marks.Store, key string) (string, bool) {
		t.Helper()
		v, ok, err := s.Take(ctx, key)
		if err != nil {
			t.Fatalf("take %s: %v", key, err)
		}
		return string(v), ok
	}
	has := func(t *testing.T, s marks.Store, key string) bool {
		t.Helper()
		ok, err := s.Has(ctx, key)
		if err != nil {
			t.Fatalf("has %s: %v", key, err)
		}
		return ok
	}

	t.Run("taken once", func(t *testing.T) {
		s, _ := setup(t)
		put(t, s, "a", "1", time.Minute)
		if v, ok := take(t, s, "a"); !ok || v != "1" {
			t.Fatalf("first take: %q %v, want 1", v, ok)
		}
		if v, ok := take(t, s, "a"); ok {
			t.Fatalf("second take: %q, want nothing", v)
		}
	})
	t.Run("never put", func(t *testing.T) {
		s, _ := setup(t)
		if v, ok := take(t, s, "nothing"); ok {
			t.Fatalf("took %q", v)
		}
	})
	t.Run("put replaces", func(t *testing.T) {
		s, _ := setup(t)
		put(t, s, "a", "old", time.Minute)
		put(t, s, "a", "new", time.Minute)
		if v, ok := take(t, s, "a"); !ok || v != "new" {
			t.Fatalf("took %q %v, want new", v, ok)
		}
	})
	t.Run("values as given", func(t *testing.T) {
		s, _ := setup(t)
		for key, value := range map[string]string{"empty": "", "binary": "\x00\xff\x00", "text": "2031-02-10T00:00:00Z"} {
			put(t, s, key, value, time.Minute)
			v, _, err := s.Take(ctx, key)
			if err != nil || !bytes.Equal(v, []byte(value)) {
				t.Errorf("%s: took %q, %v, want %q", key, v, err, value)
			}
		}
	})
	t.Run("time is up", func(t *testing.T) {
		s, c := setup(t)
		put(t, s, "short", "1", time.Minute)
		put(t, s, "long", "2", time.Hour)
		put(t, s, "just", "3", time.Minute)
		c.Advance(time.Minute - time.Millisecond)
		if _, ok := take(t, s, "just"); !ok {
			t.Error("a mark was gone before its time")
		}
		c.Advance(time.Millisecond)
		if v, ok := take(t, s, "short"); ok {
			t.Errorf("a mark whose time is up was taken: %q", v)
		}
		if _, ok := take(t, s, "long"); !ok {
			t.Error("a mark with time left was gone")
		}
	})
	t.Run("many puts keep the live marks", func(t *testing.T) {
		// The memory store sweeps now and then: what it sweeps must be
		// only what is over.
		s, c := setup(t)
		put(t, s, "keep", "1", 5*time.Hour) // the loop below takes 200 minutes
		for i := range 100 {
			put(t, s, fmt.Sprint("gone-", i), "x", time.Minute)
			c.Advance(2 * time.Minute)
		}
		if _, ok := take(t, s, "keep"); !ok {
			t.Error("a live mark was swept")
		}
		if _, ok := take(t, s, "gone-0"); ok {
			t.Error("a mark whose time is up was taken after the sweeps")
		}
	})
	t.Run("one taker of many", func(t *testing.T) {
		s, _ := setup(t)
		put(t, s, "contested", "1", time.Minute)
		var got atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok, err := s.Take(ctx, "contested"); err != nil {
					t.Error(err)
				} else if ok {
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Errorf("%d takers got the mark, want 1", got.Load())
		}
	})
	t.Run("added once", func(t *testing.T) {
		s, c := setup(t)
		for i, want := range []bool{true, false} {
			added, err := s.Add(ctx, "a", []byte(fmt.Sprint(i)), time.Minute)
			if err != nil || added != want {
				t.Fatalf("add %d: %v %v, want %v", i, added, err, want)
			}
		}
		if ok, err := s.Has(ctx, "a"); !ok || err != nil {
			t.Fatalf("has: %v %v", ok, err)
		}
		if v, ok := take(t, s, "a"); !ok || v != "0" {
			t.Fatalf("took %q %v, want the first value", v, ok)
		}
		if ok, _ := s.Has(ctx, "a"); ok {
			t.Error("has a taken mark")
		}
		// Once its time is up, a mark can be added anew.
		if added, err := s.Add(ctx, "b", nil, time.Minute); !added || err != nil {
			t.Fatalf("add b: %v %v", added, err)
		}
		c.Advance(time.Minute - time.Millisecond)
		if added, _ := s.Add(ctx, "b", nil, time.Minute); added {
			t.Error("added over a live mark")
		}
		if ok, _ := s.Has(ctx, "b"); !ok {
			t.Error("a live mark is not there")
		}
		c.Advance(time.Millisecond)
		if ok, _ := s.Has(ctx, "b"); ok {
			t.Error("has a mark whose time is up")
		}
		if added, err := s.Add(ctx, "b", nil, time.Minute); !added || err != nil {
			t.Errorf("add over a mark whose time is up: %v %v", added, err)
		}
	})
	t.Run("one adder of many", func(t *testing.T) {
		s, _ := setup(t)
		var got atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if added, err := s.Add(ctx, "contested", nil, time.Minute); err != nil {
					t.Error(err)
				} else if added {
					got.Add(1)
				}
			}()
		}
		wg.Wait()
		if got.Load() != 1 {
			t.Errorf("%d adders added the mark, want 1", got.Load())
		}
	})
	t.Run("has leaves the mark", func(t *testing.T) {
		s, _ := setup(t)
		put(t, s, "a", "1", time.Minute)
		for i := range 3 {
			if !has(t, s, "a") {
				t.Fatalf("look %d: no mark", i+1)
			}
		}
		if v, ok := take(t, s, "a"); !ok || v != "1" {
			t.Fatalf("take after has: %q %v, want 1", v, ok)
		}
		if has(t, s, "a") {
			t.Error("a taken mark is there")
		}
	})
	t.Run("has nothing never put", func(t *testing.T) {
		s, _ := setup(t)
		if has(t, s, "nothing") {
			t.Error("a mark that was never put is there")
		}
	})
	t.Run("has until the time is up", func(t *testing.T) {
		s, c := setup(t)
		put(t, s, "a", "", 2*time.Hour)
		c.Advance(2*time.Hour - time.Millisecond)
		if !has(t, s, "a") {
			t.Error("a mark was gone before its time")
		}
		c.Advance(time.Millisecond)
		if has(t, s, "a") {
			t.Error("a mark whose time is up is there")
		}
	})
	t.Run("has what put replaced", func(t *testing.T) {
		// A longer time replaces a shorter one: what a logout of the same
		// login puts again.
		s, c := setup(t)
		put(t, s, "a", "", time.Minute)
		put(t, s, "a", "", time.Hour)
		c.Advance(30 * time.Minute)
		if !has(t, s, "a") {
			t.Error("the replacing mark's time was not kept")
		}
	})
	t.Run("has of many", func(t *testing.T) {
		// Every request that comes with a login looks; none changes what
		// the others see.
		s, _ := setup(t)
		put(t, s, "a", "", time.Minute)
		var wg sync.WaitGroup
		var missed atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, err := s.Has(ctx, "a"); err != nil {
					t.Error(err)
				} else if !ok {
					missed.Add(1)
				}
			}()
		}
		wg.Wait()
		if missed.Load() != 0 {
			t.Errorf("%d of 16 lookers missed the mark", missed.Load())
		}
	})
	t.Run("stores apart", func(t *testing.T) {
		s1, _ := setup(t)
		s2, _ := setup(t)
		put(t, s1, "k", "1", time.Minute)
		if has(t, s2, "k") {
			t.Fatal("another store has the mark")
		}
		if v, ok := take(t, s2, "k"); ok {
			t.Fatalf("another store took %q", v)
		}
		if _, ok := take(t, s1, "k"); !ok {
			t.Fatal("the mark is gone from its store")
		}
	})
}
