//go:build unix

package demoscheme

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock on <dir>/.lock, after the in-process lock. The kernel drops a
// flock when its process dies, so a crash never leaves a stale lock behind, unlike a PID file.
func lockDir(dir string) (func(), error) {
	unlockProcess := lockInProcess(dir)
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		unlockProcess()
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		unlockProcess()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		unlockProcess()
	}, nil
}
