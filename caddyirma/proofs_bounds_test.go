package caddyirma

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/privacybydesign/gabi"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/proofbounds"
)

// acceptProofs is a check that bounds nothing.
func acceptProofs([]byte) error { return nil }

// sessionServer stands in for irmaserver: one session, tok, at host
// gateway.example. Its status answers 200; a post to its proofs is read and
// answered 200. The status of session broken fails; other sessions are
// unknown (400, nothing read).
type sessionServer struct {
	posts    int
	received []byte
}

func (s *sessionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	known := strings.HasPrefix(r.URL.Path, "/session/tok/")
	switch {
	case r.URL.Path == "/session/broken/status":
		http.Error(w, `{"error":"INTERNAL_ERROR"}`, http.StatusInternalServerError) // its store failed, say
	case r.URL.Path == "/session/broken/proofs":
		s.posts++
		s.received, _ = io.ReadAll(r.Body)
	case !known:
		http.Error(w, `{"error":"SESSION_UNKNOWN"}`, http.StatusBadRequest)
	case r.Host != "gateway.example":
		http.Error(w, `{"error":"UNAUTHORIZED"}`, http.StatusForbidden)
	case r.Method == http.MethodGet && r.URL.Path == "/session/tok/status" && r.ContentLength == 0:
		_, _ = io.WriteString(w, `"CONNECTED"`)
	case r.Method == http.MethodPost && r.URL.Path == "/session/tok/proofs":
		s.posts++
		s.received, _ = io.ReadAll(r.Body)
		_, _ = io.WriteString(w, `{"proofStatus":"VALID"}`)
	default:
		http.Error(w, "unexpected", http.StatusTeapot)
	}
}

// TestServeProofsBounds: proofs posted to a session that exists are
// checked before irmaserver verifies them, and refused as irmaserver
// refuses input; posts to sessions that do not exist are passed on unread.
func TestServeProofsBounds(t *testing.T) {
	body, _ := disclosureBody(t)
	outOfBounds := func([]byte) error {
		return errors.New("v_response of 3300001 bits, at most 2037: " + proofbounds.ErrOutOfBounds.Error())
	}
	type result struct {
		code     int
		irmaErr  string // the error of irmaserver's JSON shape
		posts    int    // posts that reached irmaserver
		checked  int
		read     int
		received []byte
	}
	run := func(t *testing.T, path, host string, r io.Reader, contentLength int64, check func([]byte) error) result {
		t.Helper()
		irmaserver := &sessionServer{}
		counted := &countingReader{r: r}
		req := httptest.NewRequest(http.MethodPost, path, counted)
		req.Host, req.ContentLength = host, contentLength
		req.Header.Set("Authorization", "client-authorization")
		checked := 0
		counting := func(b []byte) (gabi.ProofList, error) { checked++; return nil, check(b) }
		w := httptest.NewRecorder()
		if err := serveProofs(w, req, http.StripPrefix("/irma", irmaserver), marks.New(marks.Config{}), "tok", time.Hour, counting); err != nil {
			t.Fatal(err)
		}
		var e struct{ Error, Message string }
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		if e.Message != "" {
			t.Logf("%d %s: %s", w.Code, e.Error, e.Message)
		}
		return result{code: w.Code, irmaErr: e.Error, posts: irmaserver.posts, checked: checked, read: counted.n, received: irmaserver.received}
	}

	t.Run("unknown session", func(t *testing.T) {
		// 10 MB, as irmaserver allows: not read, not checked.
		got := run(t, "/irma/session/other/proofs", "gateway.example", bytes.NewReader(bytes.Repeat([]byte("["), 10<<20)), 10<<20, outOfBounds)
		if got.code != http.StatusBadRequest || got.read != 0 || got.checked != 0 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("session not looked up", func(t *testing.T) {
		// Not passed on unchecked: the store may find it next time.
		got := run(t, "/irma/session/broken/proofs", "gateway.example", bytes.NewReader(body), int64(len(body)), outOfBounds)
		if got.code != http.StatusInternalServerError || got.posts != 0 || got.read != 0 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("other host", func(t *testing.T) {
		got := run(t, "/irma/session/tok/proofs", "evil.example", bytes.NewReader(body), int64(len(body)), outOfBounds)
		if got.code != http.StatusForbidden || got.read != 0 || got.checked != 0 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("out of bounds", func(t *testing.T) {
		got := run(t, "/irma/session/tok/proofs", "gateway.example", bytes.NewReader(body), int64(len(body)), outOfBounds)
		if got.code != http.StatusBadRequest || got.irmaErr != "MALFORMED_INPUT" || got.checked != 1 || got.posts != 0 {
			t.Errorf("%+v: want 400 MALFORMED_INPUT, checked, not passed on", got)
		}
	})
	t.Run("within bounds", func(t *testing.T) {
		got := run(t, "/irma/session/tok/proofs", "gateway.example", bytes.NewReader(body), int64(len(body)), acceptProofs)
		if got.code != http.StatusOK || got.checked != 1 || got.posts != 1 || !bytes.Equal(got.received, body) {
			t.Errorf("%+v: want passed on whole", got)
		}
	})
	t.Run("too large", func(t *testing.T) {
		large := bytes.Repeat([]byte(" "), maxProofsBody+1)
		for _, length := range []int64{int64(len(large)), -1} { // declared, and chunked
			got := run(t, "/irma/session/tok/proofs", "gateway.example", bytes.NewReader(large), length, acceptProofs)
			if got.code != http.StatusRequestEntityTooLarge || got.irmaErr != "MALFORMED_INPUT" || got.checked != 0 || got.posts != 0 || got.read > maxProofsBody+1 {
				t.Errorf("length %d: %+v", length, got)
			}
		}
		got := run(t, "/irma/session/tok/proofs", "gateway.example", bytes.NewReader(large[1:]), -1, acceptProofs)
		if got.code != http.StatusOK || got.posts != 1 {
			t.Errorf("at the bound: %+v", got)
		}
	})
}
