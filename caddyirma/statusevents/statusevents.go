// Package statusevents streams the status of IRMA sessions as server-sent
// events, the way irma server does with SSE on (its statusevents routes),
// so that a page or a requestor learns that a session changed as soon as
// it did, instead of at its next poll.
//
// A Hub keeps one watch per session, shared by every stream that follows
// it. A watch learns of changes from a channel when the store offers one
// (irmago's memory store) and otherwise polls the status at a short
// interval (irmago's Redis store offers none), and it stops when the
// session ends or, when it polls, when its last stream goes. The Hub
// bounds the streams per client and in all: every stream is a connection
// that an anonymous client holds open.
package statusevents

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of a Hub's settings.
const (
	DefaultPollInterval = 25 * time.Millisecond
	DefaultHeartbeat    = 15 * time.Second
	DefaultMaxPerClient = 8
	DefaultMaxStreams   = 10000
	DefaultMaxPolling   = 1000
	DefaultPollBudget   = 1000
	DefaultMaxDuration  = 15 * time.Minute
)

// Status is a session's status as a stream announces it.
type Status struct {
	// Data is the data of the event that announces it: a line of JSON.
	Data []byte
	// Step is how far the session got (INITIALIZED, PAIRING, CONNECTED,
	// ended): a stream announces only statuses of a later step than the
	// one it knows, as irmaserver's own events announce only changes.
	Step int
	// Final is set once the session ended (DONE, CANCELLED, TIMEOUT).
	Final bool
	// Passed, if set, is a status that the session must have passed on its
	// way to this one (CONNECTED before DONE): a stream that announced
	// neither it nor a later step announces it first, as irmaserver's own
	// events, which come from every change, would have. A watch that polls
	// can miss a status that lasted less than its interval.
	Passed *Status
}

// Probe looks up a session's status. An error ends the watch, and with it
// its streams: the clients fall back to their status poll, which then
// answers what went wrong.
type Probe func(ctx context.Context) (Status, error)

// Changes, when the store can tell, returns a channel that receives a value
// whenever the session's status may have changed, and that is closed when
// the session has ended. The watch reads it until it is closed.
type Changes func() (<-chan struct{}, error)

// Source is how a watch learns a session's status.
type Source struct {
	Probe   Probe
	Changes Changes // nil: poll
}

// ErrBusy is Stream's answer when the client has too many streams open, or
// the Hub is full (of streams, or of sessions it polls): nothing was
// written.
var ErrBusy = errors.New("statusevents: too many status streams")

// Hub holds the watches of the sessions that streams follow. Its zero
// value is not usable: build one with New.
type Hub struct {
	// PollInterval is how often a watch without changes looks the status
	// up: the longest a change waits to be noticed. Default 25 ms.
	PollInterval time.Duration
	// Heartbeat is how often an idle stream gets a comment line, which
	// keeps proxies from closing it. Default 15 s.
	Heartbeat time.Duration
	// MaxPerClient bounds the open streams of one client. Default 8.
	MaxPerClient int
	// MaxStreams bounds the open streams in all. Default 10,000.
	MaxStreams int
	// MaxPolling bounds the sessions watched by polling at once. Default
	// 1,000.
	MaxPolling int
	// PollBudget bounds the look-ups that polling watches make, in all, a
	// second: each polls every PollInterval while the budget lasts, and
	// less often when more sessions share it (40 sessions get 25 ms each
	// from 1,000 a second; 400 get 400 ms). Default 1,000. Set it before
	// the first Stream.
	PollBudget int
	// MaxDuration is the longest a stream stays open. Default 15 minutes.
	MaxDuration time.Duration

	budgetOnce sync.Once
	budget     *rate.Limiter

	mu      sync.Mutex
	watches map[string]*watch
	polling int // watches that poll
	clients map[string]int
	streams int
	closed  chan struct{}
	stopped bool
}

// New returns a Hub with the default settings.
func New() *Hub {
	return &Hub{
		PollInterval: DefaultPollInterval,
		Heartbeat:    DefaultHeartbeat,
		MaxPerClient: DefaultMaxPerClient,
		MaxStreams:   DefaultMaxStreams,
		MaxPolling:   DefaultMaxPolling,
		PollBudget:   DefaultPollBudget,
		MaxDuration:  DefaultMaxDuration,
		watches:      map[string]*watch{},
		clients:      map[string]int{},
		closed:       make(chan struct{}),
	}
}

// Close ends every stream and watch.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stopped {
		h.stopped = true
		close(h.closed)
	}
}

// Streams returns the number of open streams.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams
}

// Watches returns the number of sessions being watched.
func (h *Hub) Watches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watches)
}

// pollBudget is the limiter of the polling watches' look-ups.
func (h *Hub) pollBudget() *rate.Limiter {
	h.budgetOnce.Do(func() {
		burst := max(1, h.PollBudget/40)
		h.budget = rate.NewLimiter(rate.Limit(h.PollBudget), burst)
	})
	return h.budget
}

// admit takes a stream slot for client, or says there is none.
func (h *Hub) admit(client string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.streams >= h.MaxStreams || h.clients[client] >= h.MaxPerClient {
		return false
	}
	h.streams++
	h.clients[client]++
	return true
}

func (h *Hub) release(client string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams--
	if h.clients[client]--; h.clients[client] <= 0 {
		delete(h.clients, client)
	}
}

// Stream answers r with the event stream of the session that key names
// (one key per session and event format), as a client of the given
// identity, until the session ends, the client goes away, MaxDuration
// passes or the Hub closes. first is the status the caller looked up,
// which checked that the client may follow the session; known is the step
// that a client opening this stream knows already. The stream announces
// first at once if it is further than that (the session moved on before
// the stream opened), and then every later step; never a step the client
// knows, which the Yivi app and the Yivi frontend take for a change, and
// fail. src is used when no watch of key runs yet. It returns ErrBusy,
// having written nothing, when the client or the Hub has no stream left.
func (h *Hub) Stream(w http.ResponseWriter, r *http.Request, key, client string, first Status, known int, src Source) error {
	if !h.admit(client) {
		return ErrBusy
	}
	defer h.release(client)
	var wt *watch
	var sub chan struct{}
	if !first.Final {
		if wt, sub = h.subscribe(key, first, src); wt == nil {
			return ErrBusy
		}
		defer h.unsubscribe(wt, sub)
	}
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx in front: pass events at once
	w.WriteHeader(http.StatusOK)
	// A comment, so that the client sees the stream open now.
	if _, err := w.Write([]byte(": open\n\n")); err != nil || rc.Flush() != nil {
		return nil
	}
	sent := Status{Step: known}
	if first.Step > known || first.Final {
		sent = first
		if announce(w, rc, first, known) != nil || first.Final {
			return nil
		}
	}

	deadline := time.NewTimer(h.MaxDuration)
	defer deadline.Stop()
	beat := time.NewTicker(h.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-h.closed:
			return nil
		case <-deadline.C:
			return nil
		case <-beat.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil || rc.Flush() != nil {
				return nil
			}
		case <-sub:
			st, gone := wt.state()
			if gone {
				return nil
			}
			if st.Step > sent.Step {
				if announce(w, rc, st, sent.Step) != nil {
					return nil
				}
				sent = st
			}
			if st.Final {
				return nil
			}
		}
	}
}

// announce writes the event of st to a client that knows step known,
// preceded by the event of the status st passed if the client knows no
// step as far.
func announce(w http.ResponseWriter, rc *http.ResponseController, st Status, known int) error {
	if p := st.Passed; p != nil && p.Step > known && p.Step < st.Step {
		if err := writeEvent(w, rc, p.Data); err != nil {
			return err
		}
	}
	return writeEvent(w, rc, st.Data)
}

// writeEvent writes one event whose data is a line of JSON, and flushes it.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, data []byte) error {
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, bytes.ReplaceAll(data, []byte("\n"), nil)...)
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}
