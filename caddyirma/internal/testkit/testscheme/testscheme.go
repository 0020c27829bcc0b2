// Package testscheme gives tests a complete demo IRMA scheme in a temporary directory within
// milliseconds, by installing a committed 1024-bit issuer key pair instead of generating one
// (which takes seconds to minutes).
//
// The key pair in testdata/ is for tests only. Its private key is public, in this repository:
// anyone can issue credentials under it, so never let a gateway outside tests trust a scheme
// that uses it. Regenerate it with:
//
//	go generate ./caddyirma/internal/testkit/testscheme
package testscheme

//go:generate go run ./genkeys -out testdata

import (
	_ "embed"
	"net/http"
	"net/http/httptest"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
)

// KeyBits is the size of the committed test issuer key.
const KeyBits = 1024

var (
	//go:embed testdata/issuer-private-key.xml
	privateKeyXML []byte
	//go:embed testdata/issuer-public-key.xml
	publicKeyXML []byte
)

// KeyPair returns copies of the committed test issuer key pair (gabikeys XML). Tests only.
func KeyPair() (private, public []byte) {
	return append([]byte(nil), privateKeyXML...), append([]byte(nil), publicKeyXML...)
}

// New makes a demo scheme (default scheme ID) naming timestampServer in a fresh t.TempDir(),
// with the committed 1024-bit test issuer keys. It fails the test on any error.
func New(t testing.TB, timestampServer string) *demoscheme.Scheme {
	t.Helper()
	dir := t.TempDir()
	priv, pub := KeyPair()
	if err := demoscheme.InstallIssuerKeyPair(dir, demoscheme.DefaultSchemeID, priv, pub); err != nil {
		t.Fatalf("testscheme: %v", err)
	}
	s, err := demoscheme.Ensure(demoscheme.Options{Dir: dir, TimestampServer: timestampServer, KeyBits: KeyBits})
	if err != nil {
		t.Fatalf("testscheme: %v", err)
	}
	return s
}

// NewWithTimestampServer is New plus a running timestamp service (an httptest server, closed
// when the test ends) at the URL the scheme names, signing with the scheme's timestamp key: what
// attribute-based signature sessions need.
func NewWithTimestampServer(t testing.TB) *demoscheme.Scheme {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	s := New(t, srv.URL+"/")
	key, err := timestamp.LoadKey(s.TimestampKeyFile)
	if err != nil {
		t.Fatalf("testscheme: %v", err)
	}
	// Set before the first request can arrive: the URL is only known to this test so far.
	h = timestamp.NewHandler(key, timestamp.WithURL(s.TimestampServer))
	return s
}

// RevocationSettings are the revocation settings that an irmaserver on s needs to start:
// irmaserver refuses a revocation-capable issuer key of a revocable credential type (staff)
// without settings for it, and its authority mode needs a SQL database. These follow the
// scheme's revocation server instead (which does not resolve), so staff cannot be issued.
func RevocationSettings(s *demoscheme.Scheme) irma.RevocationSettings {
	return irma.RevocationSettings{
		s.Credential(demoscheme.CredentialStaff): {RevocationServerURL: s.RevocationServer},
	}
}
