package keystore

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
)

// Memory is a Storage in memory, for tests: safe for concurrent use, with locks that block like
// a shared storage's do. The zero value is ready to use.
type Memory struct {
	mu     sync.Mutex
	values map[string][]byte
	locks  map[string]chan struct{}
}

// Load returns a copy of the value at key, or an error wrapping fs.ErrNotExist.
func (m *Memory) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[key]
	if !ok {
		return nil, fmt.Errorf("memory storage: %q: %w", key, fs.ErrNotExist)
	}
	return append([]byte(nil), v...), nil
}

// Store keeps a copy of value at key.
func (m *Memory) Store(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values == nil {
		m.values = make(map[string][]byte)
	}
	m.values[key] = append([]byte(nil), value...)
	return nil
}

// Lock takes the named lock, waiting until it is free or ctx is done.
func (m *Memory) Lock(ctx context.Context, name string) error {
	l := m.lock(name)
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the named lock; it fails if the lock is not held.
func (m *Memory) Unlock(_ context.Context, name string) error {
	select {
	case <-m.lock(name):
		return nil
	default:
		return fmt.Errorf("memory storage: unlock %q: not locked", name)
	}
}

// lock returns the channel of the named lock: full while the lock is held.
func (m *Memory) lock(name string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = make(map[string]chan struct{})
	}
	l, ok := m.locks[name]
	if !ok {
		l = make(chan struct{}, 1)
		m.locks[name] = l
	}
	return l
}

var _ Storage = (*Memory)(nil)
