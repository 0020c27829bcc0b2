// Package schemeserver serves IRMA schemes over HTTPS for tests: copies of the real default
// schemes (pbdf and irma-demo, in testdata/yivi, under irmago's real pinned keys) and schemes
// that a test makes and signs under a key of its own. It also changes and re-signs schemes.
package schemeserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/privacybydesign/gabi/signed"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// Server is an HTTPS server of scheme folders: <URL>/<id>/<file>. Its client (Client) trusts
// its certificate.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	dirs     map[string]string // scheme id: the folder served
	override http.Handler
	requests atomic.Int64
}

// New starts a scheme server, closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{dirs: map[string]string{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	override := s.override
	s.mu.Unlock()
	if override != nil {
		override.ServeHTTP(w, r)
		return
	}
	id, rel, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s.mu.Lock()
	dir, ok := s.dirs[id]
	s.mu.Unlock()
	if !ok || rel == "" || rel != path.Clean(rel) || strings.HasPrefix(rel, "../") {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(b)
}

// Serve serves the scheme folder dir as scheme id, from now on.
func (s *Server) Serve(id, dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirs[id] = dir
}

// Override has h answer every request from now on (a slow or broken server); nil ends that.
func (s *Server) Override(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override = h
}

// Requests returns how many requests the server has had.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Remote returns scheme id at this server, under the pinned public key (PEM).
func (s *Server) Remote(id string, publicKey []byte) schemecache.Remote {
	return schemecache.Remote{ID: id, URL: s.URL + "/" + id, PublicKey: publicKey}
}

// YiviRemotes returns irmago's default schemes with their real pinned keys, at this server.
func (s *Server) YiviRemotes() []schemecache.Remote {
	remotes := schemecache.Defaults()
	for i := range remotes {
		remotes[i].URL = s.URL + "/" + remotes[i].ID
	}
	return remotes
}

// ServeYivi serves the real pbdf and irma-demo (testdata/yivi).
func (s *Server) ServeYivi(t testing.TB) {
	for _, id := range []string{"pbdf", "irma-demo"} {
		s.Serve(id, filepath.Join(Yivi(t), id))
	}
}

// Yivi returns the folder of the real schemes, pbdf and irma-demo. Never change it: copy a
// scheme (Copy) to change it.
func Yivi(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("schemeserver: cannot find its own source")
	}
	return filepath.Join(filepath.Dir(file), "testdata", "yivi")
}

// Copy copies the folder src to dst.
func Copy(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("schemeserver: copying %s: %v", src, err)
	}
}

// AddCredentialType adds credential type cred with the given attributes to an issuer of the
// scheme in dir; sign the scheme again (Sign) to publish it.
func AddCredentialType(t testing.TB, dir, issuer, cred string, attributes ...string) {
	t.Helper()
	var attrs strings.Builder
	for _, a := range attributes {
		fmt.Fprintf(&attrs, "\t\t<Attribute id=%q>\n\t\t\t<Name><en>%s</en><nl>%s</nl></Name>\n\t\t\t<Description><en>%s</en><nl>%s</nl></Description>\n\t\t</Attribute>\n", a, a, a, a, a)
	}
	scheme := filepath.Base(dir)
	desc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<IssueSpecification version="4">
	<Name><en>%[3]s</en><nl>%[3]s</nl></Name>
	<ShortName><en>%[3]s</en><nl>%[3]s</nl></ShortName>
	<SchemeManager>%[1]s</SchemeManager>
	<IssuerID>%[2]s</IssuerID>
	<CredentialID>%[3]s</CredentialID>
	<Description><en>%[3]s</en><nl>%[3]s</nl></Description>
	<Attributes>
%[4]s	</Attributes>
</IssueSpecification>
`, scheme, issuer, cred, attrs.String())
	p := filepath.Join(dir, issuer, "Issues", cred, "description.xml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(desc), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Sign publishes the scheme in dir as a new version: a timestamp one second after the one it
// had, an index of its files, signed with key, and key's public half as pk.pem.
func Sign(t testing.TB, dir string, key *ecdsa.PrivateKey) {
	t.Helper()
	id := filepath.Base(dir)
	stamp, err := os.ReadFile(filepath.Join(dir, "timestamp"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(stamp)), 10, 64)
	if err != nil {
		t.Fatalf("schemeserver: timestamp of %s: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "timestamp"), []byte(strconv.FormatInt(n+1, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	index := irma.SchemeManagerIndex{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == "index", rel == "index.sig", rel == "pk.pem", rel == "sk.pem", strings.Contains(rel, "PrivateKeys/"),
			path.Base(rel) == "README.md", path.Base(rel) == "AUTHORS", path.Base(rel) == "LICENSE":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		index[id+"/"+rel] = sum[:]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	indexBytes := []byte(index.String())
	sig, err := signed.Sign(key, indexBytes)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := signed.MarshalPemPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"index": indexBytes, "index.sig": sig, "pk.pem": pk} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// NewKey returns a new scheme signing key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := signed.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// LoadKey reads a scheme signing key (PEM), such as a demo scheme's SigningKeyFile.
func LoadKey(t testing.TB, file string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signed.UnmarshalPemPrivateKey(b)
	if err != nil {
		t.Fatalf("schemeserver: %s: %v", file, err)
	}
	return key
}
