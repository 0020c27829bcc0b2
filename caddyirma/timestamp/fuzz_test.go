package timestamp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bwesterb/go-atum"
)

// FuzzHandler feeds arbitrary methods, paths and bodies to the handler. It must never panic,
// must answer one of the statuses the protocol uses, and every timestamp it issues must be a
// valid signature over the nonce that was asked for. The seeds run under plain `go test`.
func FuzzHandler(f *testing.F) {
	seeds := []struct{ method, path, body string }{
		{"POST", "/", `{"Nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`},
		{"POST", "/", `{"Nonce":"AA==","PreferredSigAlg":"ed25519","Time":1700000000}`},
		{"POST", "/", `{"Nonce":"AA==","ProofOfWork":{"Nonce":"AA=="}}`},
		{"POST", "/", `{"Nonce":null}`},
		{"POST", "/", `{"Nonce":"AA==","PreferredSigAlg":null,"Time":null}`},
		{"POST", "/", `{"Nonce":"AA==","Time":"soon"}`},
		{"POST", "/", `nul`},
		{"POST", "/", "\x00\xff"},
		{"GET", "/", ``},
		{"HEAD", "/", ``},
		{"GET", "/checkPublicKey?alg=ed25519&pk=00", ``},
		{"GET", "/checkPublicKey?alg=&pk=&pk=", ``},
		{"DELETE", "/checkPublicKey", ``},
		{"OPTIONS", "/x", ``},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}

	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	h := NewHandler(key)
	allowed := map[int]bool{
		http.StatusOK: true, http.StatusBadRequest: true, http.StatusNotFound: true,
		http.StatusMethodNotAllowed: true, http.StatusRequestEntityTooLarge: true,
	}

	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		req, err := http.NewRequest(method, "http://atum.test"+path, bytes.NewReader(body))
		if err != nil || req.URL.Path != path && path != "" {
			return // not a request a server could receive in this shape
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("%s %q: status %d", method, path, rec.Code)
		}
		if method != http.MethodPost || (req.URL.Path != "/" && req.URL.Path != "") {
			return
		}
		var resp atum.Response
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("stamp answer is not JSON: %v: %q", err, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if resp.Error == nil || resp.Stamp != nil {
				t.Fatalf("status %d without an error code: %q", rec.Code, rec.Body)
			}
			return
		}
		var sent atum.Request
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("a request that does not parse got a stamp: %q", body)
		}
		if resp.Stamp == nil || len(sent.Nonce) == 0 || len(sent.Nonce) > MaxNonceSize {
			t.Fatalf("stamp %+v for nonce of %d bytes", resp.Stamp, len(sent.Nonce))
		}
		ok, _ := resp.Stamp.Sig.DangerousVerifySignatureButNotPublicKey(resp.Stamp.Time, sent.Nonce)
		if !ok || !bytes.Equal(resp.Stamp.Sig.PublicKey, key.Public().(ed25519.PublicKey)) {
			t.Fatalf("stamp does not verify: %q", rec.Body)
		}
	})
}
