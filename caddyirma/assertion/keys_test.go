package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/keystore"
)

func TestGenerateAndPEMRoundTrip(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k := testKey(t, alg, 0)
			data, err := MarshalPrivateKeyPEM(k)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParsePrivateKeyPEM(data)
			if err != nil {
				t.Fatal(err)
			}
			if testRing(t, back).KeyID() != testRing(t, k).KeyID() {
				t.Error("key changed in a PEM round trip")
			}
			if got := testRing(t, k).Algorithm(); got != alg {
				t.Errorf("algorithm %s, want %s", got, alg)
			}
		})
	}
	if _, err := GenerateKey("HS256"); err == nil {
		t.Error("GenerateKey(HS256) succeeded")
	}
	if k, err := GenerateKey(""); err != nil || testRing(t, k).Algorithm() != DefaultAlgorithm {
		t.Errorf("GenerateKey(\"\") = %v, want an %s key", err, DefaultAlgorithm)
	}
}

func TestParsePrivateKeyPEMFormats(t *testing.T) {
	ec := testKey(t, ES256, 0).(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := testKey(t, RS256, 0).(*rsa.PrivateKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	good := map[string][]byte{
		"SEC 1 EC":     pemOf("EC PRIVATE KEY", sec1),
		"PKCS#1 RSA":   pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)),
		"leading text": append([]byte("a comment\n"), pemOf("EC PRIVATE KEY", sec1)...),
	}
	for name, data := range good {
		if _, err := ParsePrivateKeyPEM(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]struct {
		data []byte
		want string
	}{
		"empty":        {nil, "no PEM block"},
		"not PEM":      {[]byte("hello"), "no PEM block"},
		"certificate":  {pemOf("CERTIFICATE", []byte{1}), "CERTIFICATE"},
		"encrypted":    {pemOf("ENCRYPTED PRIVATE KEY", []byte{1}), "encrypted"},
		"garbage DER":  {pemOf("PRIVATE KEY", []byte{1, 2, 3}), "PRIVATE KEY"},
		"P-384":        {pemOf("PRIVATE KEY", p384DER), "P-384"},
		"RSA 1024":     {pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), "1024 bits"},
		"SEC 1 as RSA": {pemOf("RSA PRIVATE KEY", sec1), "RSA PRIVATE KEY"},
	}
	for name, c := range bad {
		_, err := ParsePrivateKeyPEM(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, c.want)
		}
	}
}

func TestNewKeyRingErrors(t *testing.T) {
	if _, err := NewKeyRing(); err == nil {
		t.Error("empty key ring accepted")
	}
	k := testKey(t, EdDSA, 0)
	if _, err := NewKeyRing(k, k); err == nil || !strings.Contains(err.Error(), "same key") {
		t.Errorf("duplicate key: %v", err)
	}
	if _, err := NewKeyRing(k, nil); err == nil {
		t.Error("nil key accepted")
	}
}

// TestThumbprint checks the kid against the example of RFC 8037, appendix A.3.
func TestThumbprint(t *testing.T) {
	x, err := b64.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	j, alg, err := publicJWK(ed25519.PublicKey(x))
	if err != nil {
		t.Fatal(err)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; j.Kid != want || alg != EdDSA {
		t.Errorf("kid %s (%s), want %s (EdDSA)", j.Kid, alg, want)
	}
}

func TestJWKSPublicOnly(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0), testKey(t, ES256, 0), testKey(t, RS256, 0))
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(kr.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kty, alg string
		members  []string
	}{
		{"OKP", "EdDSA", []string{"kty", "crv", "x", "kid", "alg", "use"}},
		{"EC", "ES256", []string{"kty", "crv", "x", "y", "kid", "alg", "use"}},
		{"RSA", "RS256", []string{"kty", "n", "e", "kid", "alg", "use"}},
	}
	if len(set.Keys) != len(want) {
		t.Fatalf("%d keys, want %d", len(set.Keys), len(want))
	}
	for i, w := range want {
		k := set.Keys[i]
		if k["kty"] != w.kty || k["alg"] != w.alg || k["use"] != "sig" || k["kid"] != kr.keys[i].kid {
			t.Errorf("key %d: %v", i, k)
		}
		if len(k) != len(w.members) {
			t.Errorf("key %d has members %v, want exactly %v (no private parts)", i, k, w.members)
		}
		for _, m := range w.members {
			if _, ok := k[m]; !ok {
				t.Errorf("key %d lacks %q", i, m)
			}
		}
	}
	if set.Keys[2]["e"] != "AQAB" {
		t.Errorf("RSA e = %v, want AQAB", set.Keys[2]["e"])
	}
}

func TestJWKSHandler(t *testing.T) {
	kr := testRing(t, testKey(t, EdDSA, 0))
	h := kr.JWKSHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != string(kr.JWKS()) {
		t.Fatalf("GET: %d %q", rec.Code, rec.Body)
	}
	for name, want := range map[string]string{
		"Content-Type":  "application/json",
		"Cache-Control": "public, max-age=300",
	} {
		if got := rec.Header().Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	etag := rec.Header().Get("ETag")

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes of body", rec.Code, rec.Body.Len())
	}

	req := httptest.NewRequest(http.MethodGet, "/jwks.json", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if etag == "" || rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET with ETag %q: %d, want 304", etag, rec.Code)
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/jwks.json", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestLoadOrCreateKeyRing(t *testing.T) {
	ctx := context.Background()
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			var s keystore.Memory
			const callers = 4
			kids := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					kr, err := LoadOrCreateKeyRing(ctx, &s, "assertion/key.pem", alg)
					if err != nil {
						t.Error(err)
						return
					}
					kids[i] = kr.KeyID()
				})
			}
			wg.Wait()
			for i, kid := range kids {
				if kid == "" || kid != kids[0] {
					t.Errorf("caller %d got kid %q, caller 0 %q", i, kid, kids[0])
				}
			}
			// A restart loads the same key.
			kr, err := LoadOrCreateKeyRing(ctx, &s, "assertion/key.pem", alg)
			if err != nil || kr.KeyID() != kids[0] || kr.Algorithm() != alg {
				t.Errorf("reload: %v, kid %s", err, kr.KeyID())
			}
		})
	}
}

func TestLoadOrCreateKeyRingStored(t *testing.T) {
	ctx := context.Background()
	ed, _ := MarshalPrivateKeyPEM(testKey(t, EdDSA, 0))
	ec, _ := MarshalPrivateKeyPEM(testKey(t, ES256, 0))

	t.Run("rotation bundle", func(t *testing.T) {
		var s keystore.Memory
		_ = s.Store(ctx, "k", append(append([]byte{}, ed...), ec...))
		kr, err := LoadOrCreateKeyRing(ctx, &s, "k", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(kr.keys) != 2 || kr.Algorithm() != EdDSA {
			t.Errorf("%d keys, signing %s", len(kr.keys), kr.Algorithm())
		}
	})
	t.Run("algorithm changed", func(t *testing.T) {
		var s keystore.Memory
		_ = s.Store(ctx, "k", ed)
		_, err := LoadOrCreateKeyRing(ctx, &s, "k", RS256)
		if err == nil || !strings.Contains(err.Error(), `storage key "k": the newest key is for EdDSA, but RS256 is configured`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		var s keystore.Memory
		_ = s.Store(ctx, "k", []byte("not a key"))
		if _, err := LoadOrCreateKeyRing(ctx, &s, "k", EdDSA); err == nil || !strings.Contains(err.Error(), `storage key "k"`) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("unknown algorithm", func(t *testing.T) {
		var s keystore.Memory
		if _, err := LoadOrCreateKeyRing(ctx, &s, "k", "HS256"); err == nil {
			t.Error("HS256 accepted")
		}
	})
}
