package timestamp

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bwesterb/go-atum"
)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newServer serves a handler at a random loopback port, with its own URL written into stamps.
func newServer(t testing.TB, key ed25519.PrivateKey) *httptest.Server {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	h = NewHandler(key, WithURL(srv.URL+"/"))
	t.Cleanup(srv.Close)
	return srv
}

func nonce(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStampVerifies drives the handler with go-atum's own client and verifier, as irmago does.
func TestStampVerifies(t *testing.T) {
	key := newKey(t)
	srv := newServer(t, key)
	n := nonce(t, 32)

	alg := atum.Ed25519
	before := time.Now().Unix()
	ts, aerr := atum.SendRequest(srv.URL, atum.Request{Nonce: n, PreferredSigAlg: &alg})
	after := time.Now().Unix()
	if aerr != nil {
		t.Fatalf("SendRequest: %v", aerr)
	}
	if ts.Sig.Alg != atum.Ed25519 || ts.ServerUrl != srv.URL+"/" {
		t.Fatalf("unexpected stamp: alg %q, url %q", ts.Sig.Alg, ts.ServerUrl)
	}
	// Stamped while the request ran, to the second, however long it took.
	if got := ts.GetTime().Unix(); got < before || got > after {
		t.Fatalf("stamp time %v: not between %v and %v", ts.GetTime(), time.Unix(before, 0), time.Unix(after, 0))
	}

	valid, aerr := ts.Verify(n)
	if aerr != nil || !valid {
		t.Fatalf("Verify of a fresh stamp: valid=%v err=%v", valid, aerr)
	}

	// The JSON route, as stored in an IRMA signature.
	js, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	valid, _, serverURL, aerr := atum.Verify(js, n)
	if aerr != nil || !valid || serverURL != srv.URL+"/" {
		t.Fatalf("atum.Verify: valid=%v url=%q err=%v", valid, serverURL, aerr)
	}

	// Verification went through our in-memory cache, not go-atum's bolt file in $HOME.
	if installed.GetPublicKey(srv.URL+"/", atum.Ed25519, key.Public().(ed25519.PublicKey)) == nil {
		t.Fatal("trusted key was not stored in the in-memory cache; is go-atum still using its default cache?")
	}

	t.Run("modified nonce", func(t *testing.T) {
		bad := append([]byte(nil), n...)
		bad[0] ^= 1
		valid, _ := ts.Verify(bad)
		if valid {
			t.Fatal("stamp verified for a different nonce")
		}
	})
	t.Run("modified time", func(t *testing.T) {
		forged := *ts
		forged.Time -= 3600
		valid, _ := forged.Verify(n)
		if valid {
			t.Fatal("stamp verified with a different time")
		}
	})
}

// TestForeignKeyNotTrusted checks the verifier's key check: a stamp from another service, with our
// URL put in (as irmago does with the scheme's TimestampServer), must not verify.
func TestForeignKeyNotTrusted(t *testing.T) {
	ours := newServer(t, newKey(t))
	theirs := newServer(t, newKey(t))
	n := nonce(t, 32)

	ts, aerr := atum.Stamp(theirs.URL, n)
	if aerr != nil {
		t.Fatalf("Stamp: %v", aerr)
	}
	if valid, aerr := ts.Verify(n); !valid || aerr != nil {
		t.Fatalf("stamp does not verify against its own service: %v", aerr)
	}
	ts.ServerUrl = ours.URL
	if valid, _ := ts.Verify(n); valid {
		t.Fatal("a stamp signed by another key verified against our service")
	}
}

func TestCheckPublicKey(t *testing.T) {
	key := newKey(t)
	h := NewHandler(key, WithKeyTrustDuration(time.Minute))
	pkHex := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	other := hex.EncodeToString(newKey(t).Public().(ed25519.PublicKey))

	tests := []struct {
		name    string
		query   string
		status  int
		trusted bool
	}{
		{"own key", "alg=ed25519&pk=" + pkHex, http.StatusOK, true},
		{"other key", "alg=ed25519&pk=" + other, http.StatusOK, false},
		{"other algorithm", "alg=xmssmt&pk=" + pkHex, http.StatusOK, false},
		{"empty key", "alg=ed25519&pk=", http.StatusOK, false},
		{"missing pk", "alg=ed25519", http.StatusBadRequest, false},
		{"missing alg", "pk=" + pkHex, http.StatusBadRequest, false},
		{"two pks", "alg=ed25519&pk=" + pkHex + "&pk=" + pkHex, http.StatusBadRequest, false},
		{"not hex", "alg=ed25519&pk=zz", http.StatusBadRequest, false},
		{"malformed query", "alg=ed25519&pk=%zz", http.StatusBadRequest, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/checkPublicKey?"+tc.query, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != http.StatusOK {
				return
			}
			var resp atum.PublicKeyCheckResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Trusted != tc.trusted {
				t.Fatalf("trusted = %v, want %v", resp.Trusted, tc.trusted)
			}
			if d := time.Until(resp.Expires); d < 50*time.Second || d > 70*time.Second {
				t.Fatalf("expires in %v, want about a minute", d)
			}
		})
	}
}

func TestServerInfo(t *testing.T) {
	h := NewHandler(newKey(t))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var info atum.ServerInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.DefaultSigAlg != atum.Ed25519 || info.MaxNonceSize != MaxNonceSize || len(info.RequiredProofOfWork) != 0 {
		t.Fatalf("unexpected server info %+v", info)
	}
}

func TestBadRequests(t *testing.T) {
	h := NewHandler(newKey(t))
	b64 := func(n int) string {
		js, _ := json.Marshal(make([]byte, n))
		return string(js)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   atum.ErrorCode // checked when set
	}{
		{"bad json", http.MethodPost, "/", `{"Nonce":`, http.StatusBadRequest, errInvalidRequest},
		{"not an object", http.MethodPost, "/", `[1,2]`, http.StatusBadRequest, errInvalidRequest},
		{"trailing data", http.MethodPost, "/", `{"Nonce":` + b64(32) + `} x`, http.StatusBadRequest, errInvalidRequest},
		{"nonce not base64", http.MethodPost, "/", `{"Nonce":"%%%"}`, http.StatusBadRequest, errInvalidRequest},
		{"missing nonce", http.MethodPost, "/", `{}`, http.StatusBadRequest, atum.ErrorMissingNonce},
		{"empty nonce", http.MethodPost, "/", `{"Nonce":""}`, http.StatusBadRequest, atum.ErrorMissingNonce},
		{"nonce too long", http.MethodPost, "/", `{"Nonce":` + b64(MaxNonceSize+1) + `}`, http.StatusBadRequest, atum.ErrorNonceTooLong},
		{"unsupported algorithm", http.MethodPost, "/", `{"Nonce":` + b64(32) + `,"PreferredSigAlg":"xmssmt"}`, http.StatusBadRequest, errUnsupportedAlg},
		{"unknown algorithm", http.MethodPost, "/", `{"Nonce":` + b64(32) + `,"PreferredSigAlg":"rot13"}`, http.StatusBadRequest, errUnsupportedAlg},
		{"time too old", http.MethodPost, "/", `{"Nonce":` + b64(32) + `,"Time":1}`, http.StatusBadRequest, atum.ErrorCodeLag},
		{"time extreme", http.MethodPost, "/", `{"Nonce":` + b64(32) + `,"Time":-9223372036854775808}`, http.StatusBadRequest, atum.ErrorCodeLag},
		{"oversized body", http.MethodPost, "/", `{"Nonce":"` + strings.Repeat("A", maxBodySize) + `"}`, http.StatusRequestEntityTooLarge, errRequestTooLarge},
		{"wrong method root", http.MethodPut, "/", `{}`, http.StatusMethodNotAllowed, errMethod},
		{"wrong method check", http.MethodPost, "/checkPublicKey", ``, http.StatusMethodNotAllowed, errMethod},
		{"unknown path", http.MethodGet, "/nope", ``, http.StatusNotFound, ""},
		{"good max nonce", http.MethodPost, "/", `{"Nonce":` + b64(MaxNonceSize) + `}`, http.StatusOK, ""},
		{"good ed25519", http.MethodPost, "/", `{"Nonce":` + b64(1) + `,"PreferredSigAlg":"ed25519"}`, http.StatusOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code == "" {
				return
			}
			var resp atum.Response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("error body is not an atum response: %v", err)
			}
			if resp.Error == nil || *resp.Error != tc.code || resp.Stamp != nil {
				t.Fatalf("response %s, want error %q", rec.Body, tc.code)
			}
		})
	}
}

// TestRequestedTime checks that a time within the acceptable lag is used, as the protocol says.
func TestRequestedTime(t *testing.T) {
	key := newKey(t)
	h := NewHandler(key).(*handler)
	fixed := time.Unix(1_700_000_000, 0)
	now = func() time.Time { return fixed }
	t.Cleanup(func() { now = time.Now })

	want := fixed.Unix() - 30
	body, _ := json.Marshal(atum.Request{Nonce: []byte("n"), Time: &want})
	status, resp := h.process(body)
	if status != http.StatusOK || resp.Stamp == nil || resp.Stamp.Time != want {
		t.Fatalf("status %d, response %+v", status, resp)
	}
	if ok, _ := resp.Stamp.Sig.DangerousVerifySignatureButNotPublicKey(want, []byte("n")); !ok {
		t.Fatal("signature over requested time does not verify")
	}
}

func TestNewHandlerRejectsBadKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewHandler accepted a short key")
		}
	}()
	NewHandler(ed25519.PrivateKey("short"))
}
