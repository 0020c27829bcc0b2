// Package sessionlimit bounds the IRMA sessions that anonymous clients can
// make a gateway start: per client, and in total. Every session is state
// that the IRMA server keeps (about 8.6 KB) until it ends or times out, and
// irmago's memory store copies every session on each of its sweeps, so an
// unbounded stream of anonymous requests to a protected route would
// exhaust the process. It knows nothing of Caddy.
//
// The counts are in the process (Memory), or in a Redis that several
// processes share (Redis), so that together they start no more sessions
// than one would. Both pass the one conformance suite in package limittest.
package sessionlimit

import (
	"context"
	"sync"
	"time"
)

// Limiter decides whether a client may start another session.
type Limiter interface {
	// Allow says whether client may start a session now (and counts it if
	// so), and if not, how long it should wait before it tries again. An
	// error means that it cannot tell; the caller refuses the session.
	Allow(ctx context.Context, client string) (ok bool, retryAfter time.Duration, err error)
}

// Bounds are the sliding windows of a Limiter: a client may start at most
// PerClient sessions within any Window, and all clients together at most
// Total within any TotalWindow. With TotalWindow the lifetime of a
// session, Total bounds the sessions alive at once. All are positive.
type Bounds struct {
	PerClient   int
	Window      time.Duration
	Total       int
	TotalWindow time.Duration
}

// clock returns the time of now, or of time.Now if now is nil.
func clock(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}

// Memory is a Limiter that counts in the process. It is safe for
// concurrent use; set its fields before the first call.
type Memory struct {
	Bounds
	// MaxClients bounds how many clients it keeps track of; beyond it,
	// new clients are refused until idle ones are forgotten.
	MaxClients int
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	mu      sync.Mutex
	clients map[string]*starts
	total   starts
}

// starts are the times sessions were started, oldest first.
type starts []time.Time

// prune forgets the starts that are outside the window before now.
func (s *starts) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(*s) && !(*s)[i].After(now.Add(-window)) {
		i++
	}
	*s = (*s)[i:]
}

// full says whether s has max starts in the window, and if so how long
// until the oldest leaves it.
func (s starts) full(now time.Time, max int, window time.Duration) (bool, time.Duration) {
	if len(s) < max {
		return false, 0
	}
	return true, s[len(s)-max].Add(window).Sub(now)
}

// Allow implements Limiter; it never fails.
func (l *Memory) Allow(_ context.Context, client string) (bool, time.Duration, error) {
	now := clock(l.Now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil {
		l.clients = map[string]*starts{}
	}
	s, known := l.clients[client]
	if !known {
		if len(l.clients) >= l.MaxClients {
			for c, cs := range l.clients {
				if cs.prune(now, l.Window); len(*cs) == 0 {
					delete(l.clients, c)
				}
			}
		}
		if len(l.clients) >= l.MaxClients {
			return false, l.Window, nil
		}
		s = new(starts)
		l.clients[client] = s
	}
	s.prune(now, l.Window)
	if full, wait := s.full(now, l.PerClient, l.Window); full {
		return false, wait, nil
	}
	l.total.prune(now, l.TotalWindow)
	if full, wait := l.total.full(now, l.Total, l.TotalWindow); full {
		return false, wait, nil
	}
	*s = append(*s, now)
	l.total = append(l.total, now)
	return true, 0, nil
}

// Interface guards
var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
)
