//go:build !unix

package demoscheme

// lockDir serializes Ensure calls for dir within this process only: without flock, concurrent
// first runs of two processes on one directory are not guarded here.
func lockDir(dir string) (func(), error) {
	return lockInProcess(dir), nil
}
