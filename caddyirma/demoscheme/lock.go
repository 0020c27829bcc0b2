package demoscheme

import "sync"

// dirLocks holds one mutex per state directory (absolute path). Caddy provisions a new config
// while the old one still runs, so two Ensure calls for one directory can overlap in a process.
var dirLocks sync.Map

func lockInProcess(dir string) func() {
	m, _ := dirLocks.LoadOrStore(dir, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
