//go:build unix

package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes the lock of dir, which must exist: the in-process lock, then an exclusive flock
// on <dir>/.lock. The kernel drops a flock when its process dies, so a crash never leaves a
// stale lock behind, unlike a PID file. The returned function releases both.
func Lock(dir string) (func(), error) {
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
