// Package dirlock serializes the writers of a directory: goroutines of this process, and (on
// Unix) other processes, such as a second Caddy or a command run beside it.
package dirlock

import "sync"

// inProcess holds one mutex per directory path. Caddy provisions a new config while the old one
// still runs, so two writers of one directory can overlap in a process; a flock would not keep
// them apart (it belongs to the open file, and each writer opens its own).
var inProcess sync.Map

func lockInProcess(dir string) func() {
	m, _ := inProcess.LoadOrStore(dir, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
