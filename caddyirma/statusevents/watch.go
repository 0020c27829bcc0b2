package statusevents

import (
	"context"
	"sync"
	"time"
)

// probeTimeout bounds one look-up of a session's status.
const probeTimeout = 5 * time.Second

// idleProbe is how often a watch that learns of changes from a channel
// looks the status up anyway, while streams follow it: a safety net, not
// the way changes arrive.
const idleProbe = time.Second

// watch follows the status of one session for the streams subscribed to
// it, each of which it signals on a channel of its own when the status
// changed or the watch ended.
type watch struct {
	hub  *Hub
	key  string
	src  Source
	stop chan struct{} // closed when a polling watch lost its last stream

	mu      sync.Mutex
	status  Status
	ended   bool
	polling bool // no channel of changes: stop with the last stream
	counted bool // started polling: one of the hub's MaxPolling
	subs    map[chan struct{}]struct{}
}

// subscribe joins the watch of key, starting it with src if none runs;
// nil if it would have to start one that polls, and MaxPolling run. The
// channel returned receives a value when the state changed.
func (h *Hub) subscribe(key string, first Status, src Source) (*watch, chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watches[key]
	if w == nil {
		polls := src.Changes == nil
		if polls && h.polling >= h.MaxPolling {
			return nil, nil
		}
		w = &watch{hub: h, key: key, src: src, status: first, polling: polls, counted: polls,
			stop: make(chan struct{}), subs: map[chan struct{}]struct{}{}}
		h.watches[key] = w
		if polls {
			h.polling++
		}
		go w.run()
	}
	sub := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[sub] = struct{}{}
	w.setLocked(first) // the caller's look may be newer than the watch's
	w.mu.Unlock()
	select {
	case sub <- struct{}{}: // or the watch's newer than the caller's
	default: // setLocked woke it already
	}
	return w, sub
}

// unsubscribe leaves the watch; a polling watch stops with its last
// stream, one fed by a channel runs on until its session ends (it must
// read the channel to its end, and keeps a later stream from opening
// another).
func (h *Hub) unsubscribe(w *watch, sub chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.subs, sub)
	w.stopIfIdle()
}

// stopIfIdle stops a polling watch that no stream follows; the hub's and
// the watch's locks are held.
func (w *watch) stopIfIdle() {
	if len(w.subs) == 0 && w.polling && !w.ended {
		w.ended = true
		close(w.stop)
		w.removeLocked()
	}
}

// removeLocked takes the watch out of the hub, whose lock is held.
func (w *watch) removeLocked() {
	if w.hub.watches[w.key] != w {
		return
	}
	delete(w.hub.watches, w.key)
	if w.counted {
		w.hub.polling--
	}
}

// state returns the last status seen, and whether the watch ended
// without seeing the session end.
func (w *watch) state() (Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.ended && !w.status.Final
}

// pollFromNowOn makes a watch whose channel of changes failed a polling
// one, which stops with its last stream (and stops at once if it has none).
func (w *watch) pollFromNowOn() {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polling = true
	w.stopIfIdle()
}

func (w *watch) watching() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.subs) > 0
}

// set records a status and signals the streams if the session got further.
func (w *watch) set(st Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setLocked(st)
}

// setLocked is set with w.mu held. A status of an earlier step than the
// one recorded is an older look-up's, and ignored.
func (w *watch) setLocked(st Status) {
	if st.Step <= w.status.Step {
		return
	}
	w.status = st
	w.signal()
}

// signal wakes every stream; w.mu is held.
func (w *watch) signal() {
	for sub := range w.subs {
		select {
		case sub <- struct{}{}:
		default: // it has a wake-up pending already
		}
	}
}

// end removes the watch from the hub and wakes its streams for the last
// time.
func (w *watch) end() {
	w.hub.mu.Lock()
	w.removeLocked()
	w.hub.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	w.signal()
}

// run follows the session until it ends, the watch stops or the hub
// closes.
func (w *watch) run() {
	var changes <-chan struct{}
	interval := w.hub.PollInterval
	if w.src.Changes != nil {
		if ch, err := w.src.Changes(); err == nil {
			changes, interval = ch, idleProbe
		} else {
			w.pollFromNowOn()
		}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-w.hub.closed:
			w.end()
			return
		case <-w.stop:
			return
		case _, ok := <-changes:
			if !ok {
				w.probe()
				w.end()
				return
			}
		case <-ticker.C:
			if !w.watching() || (changes == nil && !w.waitForBudget()) {
				continue
			}
		}
		if !w.probe() {
			w.end()
			return
		}
	}
}

// waitForBudget waits until the hub's budget of look-ups allows one more;
// false if the watch stopped or the hub closed meanwhile (the loop then
// sees why).
func (w *watch) waitForBudget() bool {
	r := w.hub.pollBudget().Reserve()
	if !r.OK() {
		return false
	}
	d := r.Delay()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop:
	case <-w.hub.closed:
	}
	r.Cancel()
	return false
}

// probe looks the status up and records it; false means the watch is
// over: the session ended, or its status cannot be had.
func (w *watch) probe() bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	st, err := w.src.Probe(ctx)
	if err != nil {
		return false
	}
	w.set(st)
	return !st.Final
}
