package statusevents

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestStreamAnnouncesPassedStatus(t *testing.T) {
	// A session whose DONE says it passed CONNECTED: a stream that missed
	// CONNECTED (a poll between INITIALIZED and DONE saw neither change)
	// announces it before DONE, once, and never to a client that knows it.
	connected := Status{Data: []byte(`"CONNECTED"`), Step: steps["CONNECTED"]}
	withPassed := func(sess *session) Source {
		src := sess.source()
		src.Probe = func(ctx context.Context) (Status, error) {
			st, err := sess.probe(ctx)
			if string(st.Data) == `"DONE"` {
				st.Passed = &connected
			}
			return st, err
		}
		return src
	}
	for _, tc := range []struct {
		name, from, to string
		known          int
		want           []string
	}{
		{"jumped to DONE", "INITIALIZED", "DONE", 0, []string{`"CONNECTED"`, `"DONE"`, ""}},
		{"jumped to DONE from PAIRING", "PAIRING", "DONE", steps["PAIRING"], []string{`"CONNECTED"`, `"DONE"`, ""}},
		{"saw CONNECTED", "CONNECTED", "DONE", 0, []string{`"CONNECTED"`, `"DONE"`, ""}},
		{"knew CONNECTED", "CONNECTED", "DONE", steps["CONNECTED"], []string{`"DONE"`, ""}},
		{"cancelled", "INITIALIZED", "CANCELLED", 0, []string{`"CANCELLED"`, ""}},
		{"DONE before the stream opened", "DONE", "", 0, []string{`"CONNECTED"`, `"DONE"`, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New()
			h.PollInterval = time.Hour // no poll sees the status in between
			sess := &session{status: tc.from, changes: make(chan struct{}, 1)}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				src := withPassed(sess)
				first, _ := src.Probe(r.Context())
				_ = h.Stream(w, r, "s1", "a", first, tc.known, src)
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(h.Close)
			a := open(t, srv.URL, "a")
			a.expect(t, "open")
			if tc.to != "" {
				eventually(t, "the stream subscribed", func() bool { return h.Watches() == 1 })
				sess.set(tc.to)
			}
			a.expect(t, tc.want...)
		})
	}
}
