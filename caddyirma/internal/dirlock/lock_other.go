//go:build !unix

package dirlock

// Lock serializes the writers of dir within this process only: without flock, two processes
// writing one directory at once are not kept apart here.
func Lock(dir string) (func(), error) {
	return lockInProcess(dir), nil
}
