package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// inflateProofs returns a body of proofs with the number at path (in the
// first proof) replaced by one of 3.3 Mbit.
func inflateProofs(t *testing.T, body []byte, path ...string) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	obj := m["proofs"].([]any)[0].(map[string]any)
	for _, k := range path[:len(path)-1] {
		obj = obj[k].(map[string]any)
	}
	if _, ok := obj[path[len(path)-1]]; !ok {
		t.Fatalf("no %v in the proofs", path)
	}
	obj[path[len(path)-1]] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 3_300_000/8))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProofsOutOfBounds: while the wallet posts its proofs, a copy with one
// number inflated (gabi would exponentiate with it for seconds) is posted
// first, with the wallet's own client authorization, to the session, which
// is CONNECTED. The gateway refuses each (400, as irmaserver refuses
// input) before irmaserver verifies it: the session stays CONNECTED, and
// the wallet's genuine proofs, passed on next, log in. (Had irmaserver
// verified an inflated copy, it would have ended the session.)
func TestProofsOutOfBounds(t *testing.T) {
	s := newProofsSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")

	type refusal struct {
		status      int
		body        string
		statusAfter string
	}
	refusals := map[string]refusal{}
	fields := [][]string{{"v_response"}, {"e_response"}, {"a_responses", "0"}, {"c"}, {"A"}}
	s.mu.Lock()
	s.before = func(r *http.Request, genuine []byte) {
		for _, path := range fields {
			req, err := http.NewRequest(http.MethodPost, s.base+r.URL.Path, bytes.NewReader(inflateProofs(t, genuine, path...)))
			if err != nil {
				t.Error(err)
				return
			}
			for k, v := range r.Header {
				if k != "Content-Length" {
					req.Header[k] = v
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			statusResp, err := http.Get(s.base + strings.TrimSuffix(r.URL.Path, "/proofs") + "/status")
			if err != nil {
				t.Error(err)
				return
			}
			after, _ := io.ReadAll(io.LimitReader(statusResp.Body, 4096))
			statusResp.Body.Close()
			refusals[strings.Join(path, " ")] = refusal{resp.StatusCode, string(body), string(after)}
		}
	}
	s.mu.Unlock()

	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/")
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the login after the refused copies: %d %s", resp.StatusCode, body)
	}
	if len(refusals) != len(fields) {
		t.Fatalf("%d inflated copies posted, want %d", len(refusals), len(fields))
	}
	for field, r := range refusals {
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "MALFORMED_INPUT") || !strings.Contains(r.body, "out of bounds") {
			t.Errorf("%s inflated: %d %s, want 400 MALFORMED_INPUT out of bounds", field, r.status, r.body)
		}
		if r.statusAfter != `"CONNECTED"` {
			t.Errorf("%s inflated: the session is %s afterwards, want CONNECTED (irmaserver never saw the proofs)", field, r.statusAfter)
		}
	}
}
