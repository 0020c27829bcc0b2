package statusevents

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// session is a fake session whose status a test sets; its probe counts
// the look-ups.
type session struct {
	mu      sync.Mutex
	status  string
	fail    bool
	probes  atomic.Int64
	changes chan struct{}
}

// serveKnown is serve for a client that knows the session reached step
// known.
func serveKnown(t *testing.T, h *Hub, known int, sess *session) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _ := sess.probe(r.Context())
		_ = h.Stream(w, r, "s1", "a", first, known, sess.source())
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	return srv
}

func (s *session) set(status string) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
	if s.changes != nil {
		s.changes <- struct{}{}
	}
}

// steps are the statuses of a fake session in the order they come.
var steps = map[string]int{"INITIALIZED": 0, "PAIRING": 1, "CONNECTED": 2, "DONE": 3, "CANCELLED": 3}

func (s *session) probe(context.Context) (Status, error) {
	s.probes.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return Status{}, errors.New("gone")
	}
	return Status{Data: []byte(`"` + s.status + `"`), Step: steps[s.status], Final: steps[s.status] == 3}, nil
}

// source is the session's Source: with a channel of changes if it has one.
func (s *session) source() Source {
	src := Source{Probe: s.probe}
	if s.changes != nil {
		src.Changes = func() (<-chan struct{}, error) { return s.changes, nil }
	}
	return src
}

// serve runs a test server whose every request streams the session sess
// under key, as the client named by the X-Client header.
func serve(t *testing.T, h *Hub, key string, sess *session) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, err := sess.probe(r.Context())
		if err != nil {
			http.Error(w, "unknown", http.StatusNotFound)
			return
		}
		if err := h.Stream(w, r, key, r.Header.Get("X-Client"), first, 0, sess.source()); errors.Is(err, ErrBusy) {
			http.Error(w, "busy", http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	return srv
}

// stream is one open event stream, read event by event.
type stream struct {
	resp   *http.Response
	events chan string
}

func open(t *testing.T, url, client string) *stream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Client", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{resp: resp, events: make(chan string, 16)}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(s.events)
		return s
	}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				s.events <- data
			} else if sc.Text() == ": open" {
				s.events <- "open"
			}
		}
	}()
	return s
}

// next returns the next event, or "" when the stream ended.
func (s *stream) next(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20 s")
		return ""
	}
}

// expect reads the next events, which must be want; "" for the end.
func (s *stream) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if ev := s.next(t); ev != w {
			t.Fatalf("event %q, want %q", ev, w)
		}
	}
}

// eventually waits (without a deadline that a slow machine would miss)
// until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func TestStreamFollowsPolledStatus(t *testing.T) {
	h := New()
	sess := &session{status: "INITIALIZED"}
	srv := serve(t, h, "s1", sess)
	a, b := open(t, srv.URL, "a"), open(t, srv.URL, "b")
	for _, s := range []*stream{a, b} {
		// Not the status the client knows: the first event is a change.
		if ev := s.next(t); ev != "open" {
			t.Fatalf("first event %q, want the stream's opening", ev)
		}
	}
	eventually(t, "both streams on one watch", func() bool { return h.Streams() == 2 && h.Watches() == 1 })
	sess.set("CONNECTED")
	sess.set("DONE")
	for _, s := range []*stream{a, b} {
		got := []string{}
		for ev := s.next(t); ev != ""; ev = s.next(t) {
			got = append(got, ev)
		}
		// A poll may miss CONNECTED if DONE follows at once; it never
		// misses the end, and the stream closes after it.
		if len(got) == 0 || got[len(got)-1] != `"DONE"` {
			t.Errorf("events %v, want them to end with DONE", got)
		}
	}
	eventually(t, "the watch and streams gone", func() bool { return h.Streams() == 0 && h.Watches() == 0 })
}

func TestStreamFollowsChanges(t *testing.T) {
	h := New()
	h.PollInterval = time.Hour // only the channel can bring changes
	sess := &session{status: "INITIALIZED", changes: make(chan struct{})}
	srv := serve(t, h, "s1", sess)
	a := open(t, srv.URL, "a")
	a.expect(t, "open")
	eventually(t, "the stream subscribed", func() bool { return h.Watches() == 1 })
	sess.set("CONNECTED")
	a.expect(t, `"CONNECTED"`)
	// The stream goes; the watch stays, reading the channel, and a later
	// stream joins it instead of subscribing again.
	a.resp.Body.Close()
	eventually(t, "the stream gone", func() bool { return h.Streams() == 0 })
	if h.Watches() != 1 {
		t.Fatalf("%d watches after the last stream went, want 1 (it reads its channel to the end)", h.Watches())
	}
	b := open(t, srv.URL, "b")
	b.expect(t, "open")
	// The session moved on before b opened: b hears of it at once.
	b.expect(t, `"CONNECTED"`)
	sess.set("DONE")
	close(sess.changes)
	b.expect(t, `"DONE"`)
	b.expect(t, "")
	eventually(t, "the watch gone", func() bool { return h.Watches() == 0 })
}

func TestStreamsPerClientBounded(t *testing.T) {
	h := New()
	h.MaxPerClient, h.MaxStreams = 2, 3
	sess := &session{status: "INITIALIZED"}
	srv := serve(t, h, "s1", sess)
	var open2 []*stream
	for i := 0; i < 2; i++ {
		s := open(t, srv.URL, "a")
		if s.resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, s.resp.StatusCode)
		}
		open2 = append(open2, s)
	}
	if s := open(t, srv.URL, "a"); s.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream of one client: %d, want 429", s.resp.StatusCode)
	}
	if s := open(t, srv.URL, "b"); s.resp.StatusCode != 200 {
		t.Fatalf("another client's stream: %d, want 200", s.resp.StatusCode)
	}
	if s := open(t, srv.URL, "c"); s.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a stream beyond the hub's bound: %d, want 429", s.resp.StatusCode)
	}
	open2[0].resp.Body.Close()
	eventually(t, "a slot freed", func() bool { return h.Streams() == 2 })
	if s := open(t, srv.URL, "a"); s.resp.StatusCode != 200 {
		t.Fatalf("a stream after one closed: %d, want 200", s.resp.StatusCode)
	}
}

func TestPollingWatchStopsWithItsLastStream(t *testing.T) {
	h := New()
	sess := &session{status: "INITIALIZED"}
	srv := serve(t, h, "s1", sess)
	a := open(t, srv.URL, "a")
	a.next(t)
	eventually(t, "polling", func() bool { return sess.probes.Load() > 3 })
	a.resp.Body.Close()
	eventually(t, "the watch gone", func() bool { return h.Watches() == 0 && h.Streams() == 0 })
	n := sess.probes.Load()
	time.Sleep(10 * h.PollInterval)
	// One look-up may have been under way when the stream went.
	if got := sess.probes.Load(); got > n+1 {
		t.Errorf("%d look-ups after the last stream went", got-n)
	}
}

func TestStreamEndsWhenStatusCannotBeHad(t *testing.T) {
	h := New()
	sess := &session{status: "CONNECTED"}
	srv := serve(t, h, "s1", sess)
	a := open(t, srv.URL, "a")
	a.next(t) // open
	a.next(t) // CONNECTED
	eventually(t, "the stream subscribed", func() bool { return h.Watches() == 1 })
	sess.mu.Lock()
	sess.fail = true
	sess.mu.Unlock()
	a.expect(t, "")
}

func TestCloseEndsStreams(t *testing.T) {
	h := New()
	sess := &session{status: "INITIALIZED"}
	srv := serve(t, h, "s1", sess)
	a := open(t, srv.URL, "a")
	a.next(t)
	h.Close()
	a.expect(t, "")
	if s := open(t, srv.URL, "b"); s.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a stream after Close: %d, want 429", s.resp.StatusCode)
	}
}

func TestHeartbeat(t *testing.T) {
	h := New()
	h.Heartbeat = 10 * time.Millisecond
	sess := &session{status: "INITIALIZED"}
	srv := serve(t, h, "s1", sess)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == ": ping" {
			return
		}
	}
	t.Fatal("no heartbeat")
}

func TestStreamAnnouncesOnlyWhatTheClientDoesNotKnow(t *testing.T) {
	// A client waiting for pairing to end (the Yivi app) knows PAIRING:
	// the first event is the change to CONNECTED, not PAIRING again.
	h := New()
	sess := &session{status: "PAIRING"}
	a := open(t, serveKnown(t, h, steps["PAIRING"], sess).URL, "a")
	a.expect(t, "open")
	eventually(t, "the stream subscribed", func() bool { return h.Watches() == 1 })
	sess.set("CONNECTED")
	a.expect(t, `"CONNECTED"`)
	// If pairing ended before the stream opened, it says so at once.
	h2 := New()
	sess2 := &session{status: "CONNECTED"}
	b := open(t, serveKnown(t, h2, steps["PAIRING"], sess2).URL, "a")
	b.expect(t, "open")
	b.expect(t, `"CONNECTED"`)
}

func TestStreamOfEndedSession(t *testing.T) {
	h := New()
	sess := &session{status: "CANCELLED"}
	a := open(t, serveKnown(t, h, 0, sess).URL, "a")
	a.expect(t, "open", `"CANCELLED"`, "")
	if h.Watches() != 0 {
		t.Error("a watch for an ended session")
	}
}

func TestStaleLookUpNotAnnounced(t *testing.T) {
	// A watch whose last look-up is older than a new stream's sees the
	// new one's; and an older status never goes out as a change.
	h := New()
	h.PollInterval = time.Hour
	sess := &session{status: "INITIALIZED", changes: make(chan struct{}, 1)}
	srv := serveKnown(t, h, 0, sess)
	a := open(t, srv.URL, "a")
	a.next(t)
	eventually(t, "a subscribed", func() bool { return h.Watches() == 1 })
	sess.mu.Lock()
	sess.status = "CONNECTED" // no change signalled: the watch still holds INITIALIZED
	sess.mu.Unlock()
	b := open(t, srv.URL, "a")
	b.expect(t, "open")
	b.expect(t, `"CONNECTED"`)
	// a learns it through the watch, which took b's newer look.
	a.expect(t, `"CONNECTED"`)
}

func TestPollingWatchesBounded(t *testing.T) {
	h := New()
	h.MaxPolling = 1
	one, two := &session{status: "INITIALIZED"}, &session{status: "INITIALIZED"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, key := one, "one"
		if r.URL.Path == "/two" {
			sess, key = two, "two"
		}
		first, _ := sess.probe(r.Context())
		if errors.Is(h.Stream(w, r, key, r.Header.Get("X-Client"), first, 0, sess.source()), ErrBusy) {
			http.Error(w, "busy", http.StatusTooManyRequests)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	a := open(t, srv.URL+"/one", "a")
	a.expect(t, "open")
	// Another stream of the polled session joins its watch; another
	// session would need a second one.
	open(t, srv.URL+"/one", "b").expect(t, "open")
	if s := open(t, srv.URL+"/two", "c"); s.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second polled session: %d, want 429", s.resp.StatusCode)
	}
	one.set("DONE")
	a.expect(t, `"DONE"`, "")
	eventually(t, "the first watch gone", func() bool { return h.Watches() == 0 })
	open(t, srv.URL+"/two", "c").expect(t, "open")
}

func TestPollBudget(t *testing.T) {
	// Ten polled sessions at a 1 ms interval, on a budget of 20 look-ups a
	// second: together they make no more than the budget allows, however
	// fast or slow the machine (a slow one makes fewer).
	h := New()
	h.PollInterval, h.PollBudget = time.Millisecond, 20
	sessions := make([]*session, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := sessions[len(r.URL.Path)-1]
		first, _ := sess.probe(r.Context())
		_ = h.Stream(w, r, r.URL.Path, r.URL.Path, first, 0, sess.source())
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	for i := range sessions {
		sessions[i] = &session{status: "INITIALIZED"}
		open(t, srv.URL+"/"+strings.Repeat("x", i), "c").expect(t, "open")
	}
	eventually(t, "ten watches", func() bool { return h.Watches() == 10 })
	count := func() (n int64) {
		for _, s := range sessions {
			n += s.probes.Load() - 1 // the stream's own first look
		}
		return n
	}
	start, before := time.Now(), count()
	time.Sleep(500 * time.Millisecond)
	made, elapsed := count()-before, time.Since(start)
	if allowed := int64(1 + 20*elapsed.Seconds() + 1); made > allowed {
		t.Errorf("%d look-ups in %s, the budget allows %d", made, elapsed, allowed)
	}
	if made == 0 {
		t.Error("no look-ups at all")
	}
}
