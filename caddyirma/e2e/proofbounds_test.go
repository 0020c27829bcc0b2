package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// inflateProofs returns a body of proofs (its list under listKey) with the
// number at path, in the first proof, replaced by one of 3.3 Mbit.
func inflateProofs(body []byte, listKey string, path ...string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	list, _ := m[listKey].([]any)
	if len(list) == 0 {
		return nil, errors.New("no " + listKey)
	}
	obj, _ := list[0].(map[string]any)
	for _, k := range path[:len(path)-1] {
		obj, _ = obj[k].(map[string]any)
	}
	if _, ok := obj[path[len(path)-1]]; !ok {
		return nil, errors.New("no " + strings.Join(path, " ") + " in the first proof")
	}
	obj[path[len(path)-1]] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 3_300_000/8))
	return json.Marshal(m)
}

// TestProofsOutOfBounds: while the wallet posts its commitments (at
// issuance) and its proofs (at a login), copies with one number inflated
// (gabi would exponentiate with it for seconds) are posted first, with the
// wallet's own client authorization, to the session, which is CONNECTED.
// The gateway refuses each (400, as irmaserver refuses input) before
// irmaserver verifies it: the session stays CONNECTED, and the wallet's
// genuine post, passed on next, issues or logs in. (Had irmaserver
// verified an inflated copy, it would have ended the session, and the
// genuine post would get 403 UNEXPECTED_REQUEST.)
func TestProofsOutOfBounds(t *testing.T) {
	s := newProofsSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	endpoints := map[string]struct {
		list   string
		fields [][]string
	}{
		"commitments": {"combinedProofs", [][]string{{"v_prime_response"}, {"s_response"}, {"c"}, {"U"}}},
		"proofs":      {"proofs", [][]string{{"v_response"}, {"e_response"}, {"a_responses", "0"}, {"c"}, {"A"}}},
	}
	type refusal struct {
		status      int
		body        string
		statusAfter string
	}
	var mu sync.Mutex
	refusals := map[string]refusal{} // by endpoint and field
	post := func(r *http.Request, body []byte) (int, string, error) {
		req, err := http.NewRequest(http.MethodPost, s.base+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		for k, v := range r.Header {
			if k != "Content-Length" {
				req.Header[k] = v
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b), nil
	}
	status := func(r *http.Request) string {
		resp, err := http.Get(s.base + r.URL.Path[:strings.LastIndexByte(r.URL.Path, '/')] + "/status")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return string(b)
	}
	s.mu.Lock()
	s.before = func(r *http.Request, genuine []byte) {
		endpoint := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		e := endpoints[endpoint]
		for _, path := range e.fields {
			name := endpoint + " " + strings.Join(path, " ")
			inflated, err := inflateProofs(genuine, e.list, path...)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			code, body, err := post(r, inflated)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			mu.Lock()
			refusals[name] = refusal{code, body, status(r)}
			mu.Unlock()
		}
	}
	s.mu.Unlock()

	alice := s.newWallet(t, "alice@example.com", "yes") // issuance: commitments
	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/") // disclosure: proofs
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the login after the refused copies: %d %s", resp.StatusCode, body)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(refusals) != len(endpoints["commitments"].fields)+len(endpoints["proofs"].fields) {
		t.Errorf("%d inflated copies posted: %v", len(refusals), refusals)
	}
	for name, r := range refusals {
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "MALFORMED_INPUT") || !strings.Contains(r.body, "out of bounds") {
			t.Errorf("%s inflated: %d %s, want 400 MALFORMED_INPUT out of bounds", name, r.status, r.body)
		}
		if r.statusAfter != `"CONNECTED"` {
			t.Errorf("%s inflated: the session is %s afterwards, want CONNECTED (irmaserver never saw the copy)", name, r.statusAfter)
		}
	}
}
