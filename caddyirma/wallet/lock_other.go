//go:build cgo && !unix

package wallet

import (
	"os"
	"path/filepath"
)

// lockDir only creates the lock file where flock is not available; irmago's own database lock still applies.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
}
