package timestamp

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/bwesterb/go-atum"
)

// TestTrustOwnKey verifies a stamp whose service cannot be reached: with the key pre-trusted it
// verifies, without it (another key) it does not.
func TestTrustOwnKey(t *testing.T) {
	key := newKey(t)
	srv := newServer(t, key)
	n := nonce(t, 32)
	ts, aerr := atum.Stamp(srv.URL, n)
	if aerr != nil {
		t.Fatal(aerr)
	}
	srv.Close()
	unreachable := "http://127.0.0.1:1/atum" // nothing listens on port 1
	ts.ServerUrl = unreachable
	if ok, _ := ts.Verify(n); ok {
		t.Fatal("verified without being able to ask the service")
	}
	own := TrustOwnKey(unreachable, key.Public().(ed25519.PublicKey))
	if ok, err := ts.Verify(n); !ok || err != nil {
		t.Fatalf("pre-trusted key does not verify: %v", err)
	}

	// Rotation: a new own key replaces the old one; releasing the old
	// registration does not end the new one's trust.
	rotated := newKey(t)
	own2 := TrustOwnKey(unreachable, rotated.Public().(ed25519.PublicKey))
	if ok, _ := ts.Verify(n); ok {
		t.Error("a rotated-out key is still trusted")
	}
	own.Release()
	ts2 := atum.Timestamp{Time: ts.Time, ServerUrl: unreachable}
	ts2.Sig = atum.Signature{Alg: atum.Ed25519, PublicKey: rotated.Public().(ed25519.PublicKey),
		Data: ed25519.Sign(rotated, atum.EncodeTimeNonce(ts.Time, n))}
	if ok, err := ts2.Verify(n); !ok || err != nil {
		t.Errorf("the current own key lost its trust when the old registration was released: %v", err)
	}
	own2.Release()
	if ok, _ := ts2.Verify(n); ok {
		t.Error("a released own key is still trusted")
	}
	own = TrustOwnKey(unreachable, key.Public().(ed25519.PublicKey))
	defer own.Release()
	other := newKey(t)
	forged := atum.Timestamp{Time: ts.Time, ServerUrl: unreachable}
	forged.Sig = atum.Signature{Alg: atum.Ed25519, PublicKey: other.Public().(ed25519.PublicKey),
		Data: ed25519.Sign(other, atum.EncodeTimeNonce(ts.Time, n))}
	if ok, _ := forged.Verify(n); ok {
		t.Fatal("a stamp by another key verified")
	}
}

func TestMemoryCacheBounded(t *testing.T) {
	c := NewMemoryCache()
	exp := time.Now().Add(time.Hour)
	for i := range maxCacheEntries + 10 {
		c.StorePublicKey(fmt.Sprintf("http://s%d/", i), atum.Ed25519, []byte{1}, exp)
		c.StoreServerInfo(fmt.Sprintf("http://s%d/", i), atum.ServerInfo{MaxNonceSize: 1})
	}
	if len(c.keys) > maxCacheEntries || len(c.infos) > maxCacheEntries {
		t.Fatalf("cache grew to %d keys and %d infos", len(c.keys), len(c.infos))
	}
	last := fmt.Sprintf("http://s%d/", maxCacheEntries+9)
	if c.GetPublicKey(last, atum.Ed25519, []byte{1}) == nil || c.GetServerInfo(last) == nil {
		t.Fatal("newest entries were evicted")
	}
	c.StorePublicKey("http://old/", atum.Ed25519, []byte{2}, time.Now().Add(-time.Second))
	if c.GetPublicKey("http://old/", atum.Ed25519, []byte{2}) != nil {
		t.Fatal("expired key returned")
	}
}
