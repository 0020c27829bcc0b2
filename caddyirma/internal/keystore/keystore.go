// Package keystore keeps generated secrets (signing keys, cookie keys) in a shared storage, such
// as Caddy's, so that a restart and every other instance on the same storage use the same secret.
// It knows nothing of Caddy: its Storage is the part of certmagic.Storage it needs.
package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Storage is where secrets are kept: the subset of certmagic.Storage that LoadOrCreate needs, so
// Caddy's configured storage (ctx.Storage()) can be passed as is.
type Storage interface {
	// Load returns the value at key, or an error wrapping fs.ErrNotExist if there is none.
	Load(ctx context.Context, key string) ([]byte, error)
	// Store puts value at key, replacing any value there.
	Store(ctx context.Context, key string, value []byte) error
	// Lock takes the named lock, blocking until it is free or ctx is done. The lock is shared by
	// every process on the same storage.
	Lock(ctx context.Context, name string) error
	// Unlock releases a lock taken with Lock.
	Unlock(ctx context.Context, name string) error
}

// LoadOrCreate returns the value at key, creating it with create and storing it if there is
// none yet. Creation happens under a storage lock named after the key, and the key is loaded
// again once the lock is held, so that instances starting together on one storage agree on one
// value instead of each storing its own. An existing value is returned without taking the lock.
func LoadOrCreate(ctx context.Context, s Storage, key string, create func() ([]byte, error)) ([]byte, error) {
	if v, err := s.Load(ctx, key); err == nil {
		return v, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore: load %q: %w", key, err)
	}

	if err := s.Lock(ctx, key); err != nil {
		return nil, fmt.Errorf("keystore: lock %q: %w", key, err)
	}
	defer func() {
		// Unlock even when ctx has been cancelled meanwhile: a lock left behind blocks the other
		// instances until it goes stale. An unlock error changes nothing about the value.
		_ = s.Unlock(context.WithoutCancel(ctx), key)
	}()

	v, err := s.Load(ctx, key)
	if err == nil {
		return v, nil // another instance created it while we waited for the lock
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore: load %q: %w", key, err)
	}
	if v, err = create(); err != nil {
		return nil, fmt.Errorf("keystore: create %q: %w", key, err)
	}
	if err := s.Store(ctx, key, v); err != nil {
		return nil, fmt.Errorf("keystore: store %q: %w", key, err)
	}
	return v, nil
}
