package keystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadOrCreateCreatesOnce(t *testing.T) {
	ctx := context.Background()
	var s Memory
	var calls atomic.Int32
	create := func() ([]byte, error) {
		n := calls.Add(1)
		time.Sleep(time.Millisecond) // widen the race window
		return fmt.Appendf(nil, "value %d", n), nil
	}

	const callers = 16
	got := make([][]byte, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			v, err := LoadOrCreate(ctx, &s, "k", create)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()

	if n := calls.Load(); n != 1 {
		t.Fatalf("create called %d times, want 1", n)
	}
	for i, v := range got {
		if !bytes.Equal(v, got[0]) {
			t.Errorf("caller %d got %q, caller 0 got %q", i, v, got[0])
		}
	}
	stored, err := s.Load(ctx, "k")
	if err != nil || !bytes.Equal(stored, got[0]) {
		t.Errorf("stored %q, %v; want %q", stored, err, got[0])
	}
}

func TestLoadOrCreateKeepsExisting(t *testing.T) {
	ctx := context.Background()
	var s Memory
	if err := s.Store(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	v, err := LoadOrCreate(ctx, &s, "k", func() ([]byte, error) {
		t.Error("create called for an existing key")
		return []byte("new"), nil
	})
	if err != nil || string(v) != "old" {
		t.Errorf("got %q, %v; want old", v, err)
	}
}

func TestLoadOrCreateErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")

	t.Run("create fails", func(t *testing.T) {
		var s Memory
		_, err := LoadOrCreate(ctx, &s, "k", func() ([]byte, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
		if _, err := s.Load(ctx, "k"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a failed create stored something: %v", err)
		}
		// The lock must have been released: a second try succeeds.
		if _, err := LoadOrCreate(ctx, &s, "k", func() ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Errorf("second try: %v", err)
		}
	})

	t.Run("load fails", func(t *testing.T) {
		s := failingLoad{boom}
		_, err := LoadOrCreate(ctx, s, "k", func() ([]byte, error) {
			t.Error("create called although the storage could not say whether the key exists")
			return nil, nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})

	t.Run("lock times out", func(t *testing.T) {
		var s Memory
		if err := s.Lock(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		_, err := LoadOrCreate(ctx, &s, "k", func() ([]byte, error) { return []byte("v"), nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
	})
}

func TestMemoryUnlockUnlocked(t *testing.T) {
	var s Memory
	if err := s.Unlock(context.Background(), "k"); err == nil {
		t.Error("unlocking a lock that is not held succeeded")
	}
}

func TestMemoryCopies(t *testing.T) {
	ctx := context.Background()
	var s Memory
	v := []byte("abc")
	_ = s.Store(ctx, "k", v)
	v[0] = 'x'
	got, _ := s.Load(ctx, "k")
	got[1] = 'y'
	again, _ := s.Load(ctx, "k")
	if string(again) != "abc" {
		t.Errorf("stored value changed through a caller's slice: %q", again)
	}
}

// failingLoad is a Storage whose Load fails with something other than "not found".
type failingLoad struct{ err error }

func (f failingLoad) Load(context.Context, string) ([]byte, error) { return nil, f.err }
func (f failingLoad) Store(context.Context, string, []byte) error  { return nil }
func (f failingLoad) Lock(context.Context, string) error           { return nil }
func (f failingLoad) Unlock(context.Context, string) error         { return nil }
