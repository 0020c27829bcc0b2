//go:build cgo

package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/proofbounds"
)

// countVerifications counts the calls of irmago's verification until the test ends.
func countVerifications(t testing.TB) *atomic.Int64 {
	n := new(atomic.Int64)
	orig := verifySignedMessage
	verifySignedMessage = func(sm *irma.SignedMessage, conf *irma.Configuration, r *irma.SignatureRequest) ([][]*irma.DisclosedAttribute, irma.ProofStatus, error) {
		n.Add(1)
		return orig(sm, conf, r)
	}
	t.Cleanup(func() { verifySignedMessage = orig })
	return n
}

// inflatedNumber is a 3.3 Mbit number as gabi writes it (base64): with it in v_response a
// genuine signature grows from 1.5 KB to about 551 KB.
var inflatedNumber = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 3_300_000/8))

// inflate returns the signature with the number at path (in the first proof) replaced by
// inflatedNumber.
func inflate(t testing.TB, sig []byte, path ...string) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(sig))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	obj := proof(m)
	for _, k := range path[:len(path)-1] {
		obj = obj[k].(map[string]any)
	}
	if _, ok := obj[path[len(path)-1]]; !ok {
		t.Fatalf("no %v in the signature", path)
	}
	obj[path[len(path)-1]] = inflatedNumber
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// undisclosedIndex returns the index of a response for an attribute (not the secret key).
func undisclosedIndex(t testing.TB, sig []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(sig, &m); err != nil {
		t.Fatal(err)
	}
	for k := range proof(m)["a_responses"].(map[string]any) {
		if k != "0" {
			return k
		}
	}
	t.Fatal("no undisclosed attribute")
	return ""
}

// testInflated: a signature made by the wallet with one number inflated far beyond what the
// issuer key allows is refused as no signature (400), before irmago's verification: gabi would
// exponentiate with it first (2 s of CPU for v_response at 3.3 Mbit).
func testInflated(t *testing.T, f *fixture) {
	calls := countVerifications(t)
	h := Handler(func() *irma.Configuration { return f.conf })
	for _, path := range [][]string{
		{"v_response"}, {"e_response"}, {"a_responses", "0"}, {"a_responses", undisclosedIndex(t, f.signed)}, {"c"}, {"A"},
	} {
		name := strings.Join(path, " ")
		t.Run(name, func(t *testing.T) {
			sig := inflate(t, f.signed, path...)
			before := calls.Load()
			res, err := Verify(f.conf, sig, nil, time.Now())
			if !errors.Is(err, proofbounds.ErrOutOfBounds) || res != nil {
				t.Fatalf("Verify: %+v, %v; want refused out of bounds", res, err)
			}
			if !strings.Contains(err.Error(), path[0]) {
				t.Errorf("error %q does not name %s", err, path[0])
			}

			r := httptest.NewRequest(http.MethodPost, "/verify", bytes.NewReader(sig))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var e struct{ Error string }
			if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, "out of bounds") {
				t.Errorf("handler, JSON: %d %.300s", w.Code, w.Body)
			}

			r = httptest.NewRequest(http.MethodPost, "/verify", strings.NewReader(url.Values{"signature": {string(sig)}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w = httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "This is not a signature") {
				t.Errorf("handler, form: %d %.300s", w.Code, w.Body)
			}

			if n := calls.Load() - before; n != 0 {
				t.Errorf("irmago's verification ran %d times", n)
			}
		})
	}

	t.Run("extra attribute or response", func(t *testing.T) {
		// More attributes than the credential type has, or responses than the key has bases.
		for _, change := range []func(m map[string]any){
			func(m map[string]any) { proof(m)["a_disclosed"].(map[string]any)["20"] = "AQ==" },
			func(m map[string]any) { proof(m)["a_responses"].(map[string]any)["20"] = "AQ==" },
		} {
			before := calls.Load()
			if _, err := Verify(f.conf, edit(t, f.signed, change), nil, time.Now()); !errors.Is(err, proofbounds.ErrOutOfBounds) {
				t.Errorf("got %v, want out of bounds", err)
			}
			if calls.Load() != before {
				t.Error("irmago's verification ran")
			}
		}
	})

	t.Run("genuine", func(t *testing.T) {
		before := calls.Load()
		if res, err := Verify(f.conf, f.signed, nil, time.Now()); err != nil || !res.Valid {
			t.Fatalf("%+v %v", res, err)
		}
		if calls.Load() != before+1 {
			t.Error("irmago's verification did not run")
		}
	})
}

// BenchmarkVerifyInflated measures the CPU that a genuine signature with v_response inflated to
// 3.3 Mbit (551 KB) costs: with irmago's verification as /irma/verify called it before the
// bounds (parse, then irmago), and with Verify now. The genuine signature, for comparison:
//
//	CGO_ENABLED=1 go test -run '^$' -bench BenchmarkVerifyInflated -benchtime 5x ./caddyirma/signature
func BenchmarkVerifyInflated(b *testing.B) {
	f := newFixture(b)
	inflated := inflate(b, f.signed, "v_response")
	b.Logf("genuine signature %d bytes, inflated %d bytes", len(f.signed), len(inflated))
	for _, bc := range []struct {
		name string
		sig  []byte
	}{{"genuine", f.signed}, {"inflated", inflated}} {
		b.Run(bc.name+"/before", func(b *testing.B) {
			b.SetBytes(int64(len(bc.sig)))
			for b.Loop() {
				sm, err := parse(bc.sig)
				if err != nil {
					b.Fatal(err)
				}
				if _, status, _ := verify(f.conf, sm); (status == irma.ProofStatusValid) != (bc.name == "genuine") {
					b.Fatalf("status %s", status)
				}
			}
		})
		b.Run(bc.name+"/after", func(b *testing.B) {
			b.SetBytes(int64(len(bc.sig)))
			for b.Loop() {
				res, err := Verify(f.conf, bc.sig, nil, time.Now())
				if (err == nil && res.Valid) != (bc.name == "genuine") {
					b.Fatalf("%+v %v", res, err)
				}
			}
		})
	}
}
