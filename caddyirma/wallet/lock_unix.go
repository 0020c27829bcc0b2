//go:build cgo && unix

package wallet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir, so that a second process opening the same wallet fails at once with a
// clear error instead of inside irmago (whose bbolt database gives up after a second with "timeout").
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("wallet %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("locking wallet %s: %w", dir, err)
	}
	return f, nil
}
