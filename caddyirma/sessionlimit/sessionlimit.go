// Package sessionlimit bounds the IRMA sessions that anonymous clients can
// make a gateway start: per client, and in total. Every session is state
// that the IRMA server keeps (about 8.6 KB) until it ends or times out, and
// irmago's memory store copies every session on each of its sweeps, so an
// unbounded stream of anonymous requests to a protected route would
// exhaust the process. It knows nothing of Caddy.
package sessionlimit

import (
	"sync"
	"time"
)

// Limiter is a token bucket per client and one for all clients together:
// a client may start PerClient sessions at once, and one more each
// Window/PerClient; all clients together Total, and one more each
// TotalWindow/Total. A Limiter is safe for concurrent use; set its fields
// before the first call.
type Limiter struct {
	PerClient   int
	Window      time.Duration
	Total       int
	TotalWindow time.Duration
	// MaxClients bounds how many clients it keeps track of; beyond it,
	// new clients are refused until the idle ones are forgotten.
	MaxClients int
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	mu      sync.Mutex
	clients map[string]*bucket
	total   bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for the time since it was last used, at rate tokens per
// second up to capacity, and takes one token if there is one; otherwise it
// says how long until there is.
func (b *bucket) take(now time.Time, capacity int, window time.Duration) (bool, time.Duration) {
	rate := float64(capacity) / window.Seconds()
	if b.last.IsZero() {
		b.tokens = float64(capacity)
	} else if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(float64(capacity), b.tokens+elapsed*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// full says whether b has refilled to capacity by now: an idle client.
func (b *bucket) full(now time.Time, capacity int, window time.Duration) bool {
	return b.tokens+now.Sub(b.last).Seconds()*float64(capacity)/window.Seconds() >= float64(capacity)
}

// Allow says whether client may start a session now, and if not, how long
// it should wait before it tries again.
func (l *Limiter) Allow(client string) (bool, time.Duration) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients == nil {
		l.clients = map[string]*bucket{}
	}
	b, known := l.clients[client]
	if !known {
		if len(l.clients) >= l.MaxClients {
			for c, cb := range l.clients {
				if cb.full(now, l.PerClient, l.Window) {
					delete(l.clients, c)
				}
			}
		}
		if len(l.clients) >= l.MaxClients {
			return false, l.Window / time.Duration(l.PerClient)
		}
		b = new(bucket)
		l.clients[client] = b
	}
	// The client's own bound first: a client over it takes nothing from
	// everyone else's.
	if ok, wait := b.take(now, l.PerClient, l.Window); !ok {
		return false, wait
	}
	if ok, wait := l.total.take(now, l.Total, l.TotalWindow); !ok {
		b.tokens++ // not started: the client keeps its token
		return false, wait
	}
	return true, 0
}
