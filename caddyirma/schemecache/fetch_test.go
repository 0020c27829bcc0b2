package schemecache_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privacybydesign/gabi/signed"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// TestFetchYivi installs the real default schemes from a local server under
// irmago's real pinned keys (only the host differs from production), and
// asks again: nothing changes, and only the signed index is fetched.
func TestFetchYivi(t *testing.T) {
	srv := schemeserver.New(t)
	srv.ServeYivi(t)
	dir := t.TempDir()
	f := &schemecache.Fetcher{Client: srv.Client()}
	demoKeys, _ := filepath.Glob(filepath.Join(schemeserver.Yivi(t), "irma-demo", "*", "PrivateKeys", "*.xml"))
	for _, r := range srv.YiviRemotes() {
		res, err := f.Fetch(context.Background(), dir, r)
		if err != nil {
			t.Fatalf("fetching %s: %v", r.ID, err)
		}
		want := 0
		if r.ID == "irma-demo" {
			want = len(demoKeys)
		}
		if !res.Changed || !res.Previous.IsZero() || res.Timestamp.IsZero() || res.PrivateKeys != want {
			t.Errorf("%s: %+v, want a first install with %d private keys", r.ID, res, want)
		}
		if c, err := schemecache.Verify(dir, r); err != nil || !c.Timestamp.Equal(res.Timestamp) {
			t.Errorf("%s: the copy does not verify: %v", r.ID, err)
		}
	}
	conf := parse(t, dir)
	if conf.AttributeTypes[irma.NewAttributeTypeIdentifier("pbdf.sidn-pbdf.email.email")] == nil ||
		conf.CredentialTypes[irma.NewCredentialTypeIdentifier("irma-demo.sidn-pbdf.email")] == nil {
		t.Error("the installed schemes lack pbdf.sidn-pbdf.email.email or irma-demo.sidn-pbdf.email")
	}

	// A fetch cut short left a folder behind: the next fetch removes it.
	leftover := filepath.Join(dir, ".fetch-123", "pbdf")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests()
	for _, r := range srv.YiviRemotes() {
		if res, err := f.Fetch(context.Background(), dir, r); err != nil || res.Changed {
			t.Errorf("fetching %s again: %+v, %v; want no change", r.ID, res, err)
		}
	}
	if n := srv.Requests() - before; n != 6 {
		t.Errorf("fetching two current schemes took %d requests, want 6 (index, index.sig, timestamp each)", n)
	}
	if _, err := os.Stat(filepath.Dir(leftover)); !os.IsNotExist(err) {
		t.Errorf("the leftover of a fetch cut short is still there: %v", err)
	}
}

// parse has irmago parse a schemes folder, and fails the test on any
// scheme that does not load.
func parse(t *testing.T, dir string) *irma.Configuration {
	t.Helper()
	conf, err := irma.NewConfiguration(dir, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	err = conf.ParseFolder()
	conf.Scheduler.Stop()
	if err != nil || len(conf.DisabledSchemeManagers) > 0 {
		t.Fatalf("irmago does not load %s: %v %v", dir, err, conf.DisabledSchemeManagers)
	}
	return conf
}

// published is a scheme of our own on a scheme server, under its signing
// key, in a folder the test may change and sign again, and a cache that
// holds its first version.
type published struct {
	srv    *schemeserver.Server
	scheme *demoscheme.Scheme
	dir    string // the folder served, which schemeserver.Sign publishes anew
	remote schemecache.Remote
	cache  string
	f      *schemecache.Fetcher
}

func publish(t *testing.T) *published {
	t.Helper()
	s := testscheme.New(t, "https://timestamp.invalid/")
	p := &published{srv: schemeserver.New(t), scheme: s, dir: filepath.Join(t.TempDir(), s.ID), cache: t.TempDir()}
	schemeserver.Copy(t, s.SchemeDir, p.dir)
	p.srv.Serve(s.ID, p.dir)
	pk, err := os.ReadFile(filepath.Join(s.SchemeDir, "pk.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p.remote = p.srv.Remote(s.ID, pk)
	p.f = &schemecache.Fetcher{Client: p.srv.Client()}
	if res, err := p.f.Fetch(context.Background(), p.cache, p.remote); err != nil || !res.Changed {
		t.Fatalf("first install: %+v, %v", res, err)
	}
	return p
}

// sign publishes the served folder as a new version under the scheme's key.
func (p *published) sign(t *testing.T) {
	t.Helper()
	schemeserver.Sign(t, p.dir, schemeserver.LoadKey(t, p.scheme.SigningKeyFile))
}

// files returns every file of the cached copy, to compare before and after.
func (p *published) files(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(filepath.Join(p.cache, p.remote.ID), func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestFetchUpdate: a new version that adds a credential type is fetched,
// taking only the new and changed files from the server; an older version
// never replaces a newer one.
func TestFetchUpdate(t *testing.T) {
	p := publish(t)
	v1 := filepath.Join(t.TempDir(), p.remote.ID)
	schemeserver.Copy(t, p.dir, v1)
	schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
	p.sign(t)

	before := p.srv.Requests()
	res, err := p.f.Fetch(context.Background(), p.cache, p.remote)
	if err != nil || !res.Changed || !res.Timestamp.After(res.Previous) {
		t.Fatalf("update: %+v, %v", res, err)
	}
	// index, index.sig, timestamp, and the new description.xml.
	if n := p.srv.Requests() - before; n != 4 {
		t.Errorf("the update took %d requests, want 4: the unchanged files come from the copy", n)
	}
	conf := parse(t, p.cache)
	if conf.AttributeTypes[irma.NewAttributeTypeIdentifier("caddy-demo.gateway.ticket.seat")] == nil {
		t.Error("the update did not bring caddy-demo.gateway.ticket.seat")
	}

	p.srv.Serve(p.remote.ID, v1)
	if res, err := p.f.Fetch(context.Background(), p.cache, p.remote); err != nil || res.Changed {
		t.Errorf("an older version on the server: %+v, %v; want the newer copy kept", res, err)
	}
}

// TestRefusals: whatever the server does wrong, the fetch fails (bounded by
// the timeout) and the copy in the cache stays exactly as it was.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p *published)
		want  string
	}{
		{"tampered index", func(t *testing.T, p *published) {
			schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
			p.sign(t)
			index := filepath.Join(p.dir, "index")
			b, err := os.ReadFile(index)
			if err != nil {
				t.Fatal(err)
			}
			// The same index with one hash changed: its signature no longer fits.
			b[3] ^= 1
			if err := os.WriteFile(index, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not signed with the pinned key"},
		{"wrong signing key", func(t *testing.T, p *published) {
			schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
			schemeserver.Sign(t, p.dir, schemeserver.NewKey(t))
		}, "not signed with the pinned key"},
		{"unsigned index", func(t *testing.T, p *published) {
			schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
			p.sign(t)
			if err := os.Remove(filepath.Join(p.dir, "index.sig")); err != nil {
				t.Fatal(err)
			}
		}, "404"},
		{"tampered file", func(t *testing.T, p *published) {
			schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
			p.sign(t)
			desc := filepath.Join(p.dir, "gateway", "Issues", "ticket", "description.xml")
			b, err := os.ReadFile(desc)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(desc, []byte(strings.Replace(string(b), "seat", "row", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not the file the index signs"},
		{"another scheme under the same key", func(t *testing.T, p *published) {
			desc := filepath.Join(p.dir, "description.xml")
			b, err := os.ReadFile(desc)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(desc, []byte(strings.Replace(string(b), "<Id>caddy-demo</Id>", "<Id>pbdf</Id>", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			p.sign(t)
		}, `names scheme "pbdf"`},
		{"garbage", func(t *testing.T, p *published) {
			p.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("\x00\xffnot a scheme at all\n"))
			}))
		}, "not signed with the pinned key"},
		{"an endless answer", func(t *testing.T, p *published) {
			p.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunk := make([]byte, 1<<20)
				for r.Context().Err() == nil {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}))
		}, "more than"},
		{"a server that never answers", func(t *testing.T, p *published) {
			p.f.Timeout = 100 * time.Millisecond
			p.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			}))
		}, "deadline exceeded"},
		{"a server that is down", func(t *testing.T, p *published) {
			p.remote.URL = "https://" + caddytest.RefusedAddr(t) + "/caddy-demo"
		}, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := publish(t)
			before := p.files(t)
			tc.setup(t, p)
			res, err := p.f.Fetch(context.Background(), p.cache, p.remote)
			if err == nil || !strings.Contains(err.Error(), tc.want) || res.Changed {
				t.Fatalf("fetch: %+v, %v; want an error with %q", res, err, tc.want)
			}
			after := p.files(t)
			if len(after) != len(before) {
				t.Errorf("the copy has %d files, had %d", len(after), len(before))
			}
			for path, b := range before {
				if after[path] != b {
					t.Errorf("%s changed", path)
				}
			}
			if entries, _ := filepath.Glob(filepath.Join(p.cache, ".fetch-*")); len(entries) > 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

// TestFetchConcurrent: two fetches into one cache at once both end well.
func TestFetchConcurrent(t *testing.T) {
	p := publish(t)
	schemeserver.AddCredentialType(t, p.dir, demoscheme.IssuerID, "ticket", "seat")
	p.sign(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.f.Fetch(context.Background(), p.cache, p.remote)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	parse(t, p.cache)
}

// TestDemoKeys: the private keys a demo scheme publishes (unsigned) are kept
// only if each belongs to its signed public key; a bad one is left out, the
// rest serve issuance. Keys of a scheme that is not a demo scheme are never
// read.
func TestDemoKeys(t *testing.T) {
	srv := schemeserver.New(t)
	served := t.TempDir()
	for _, id := range []string{"pbdf", "irma-demo"} {
		schemeserver.Copy(t, filepath.Join(schemeserver.Yivi(t), id), filepath.Join(served, id))
		srv.Serve(id, filepath.Join(served, id))
	}
	keys := filepath.Join(served, "irma-demo", "sidn-pbdf", "PrivateKeys")
	entries, err := os.ReadDir(keys)
	if err != nil || len(entries) == 0 {
		t.Fatalf("irma-demo.sidn-pbdf publishes no private keys: %v", err)
	}
	garbage := filepath.Join(keys, entries[0].Name())
	if err := os.WriteFile(garbage, []byte("<IssuerPrivateKey xmlns=\"http://www.zurich.ibm.com/security/idemix\"><Counter>0</Counter></IssuerPrivateKey>"), 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(served, "irma-demo", "MijnOverheid", "PrivateKeys", "2.xml"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(served, "irma-demo", "RU", "PrivateKeys", "2.xml")
	if err := os.WriteFile(wrong, other, 0o644); err != nil {
		t.Fatal(err)
	}
	// A private key in a scheme that is not a demo scheme.
	notDemo := filepath.Join(served, "pbdf", "sidn-pbdf", "PrivateKeys")
	if err := os.MkdirAll(notDemo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notDemo, "2.xml"), other, 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	f := &schemecache.Fetcher{Client: srv.Client()}
	all, _ := filepath.Glob(filepath.Join(served, "irma-demo", "*", "PrivateKeys", "*.xml"))
	for _, r := range srv.YiviRemotes() {
		res, err := f.Fetch(context.Background(), dir, r)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == "irma-demo" && res.PrivateKeys != len(all)-2 {
			t.Errorf("irma-demo: %d private keys, want %d (all but the two bad ones)", res.PrivateKeys, len(all)-2)
		}
	}
	for _, p := range []string{garbage, wrong} {
		rel, _ := filepath.Rel(served, p)
		if _, err := os.Stat(filepath.Join(dir, rel)); !os.IsNotExist(err) {
			t.Errorf("%s is in the cache: %v", rel, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pbdf", "sidn-pbdf", "PrivateKeys")); !os.IsNotExist(err) {
		t.Errorf("a private key of pbdf was fetched: %v", err)
	}

	conf := parse(t, dir)
	// Planted after the fetch: the ring still reads no key of pbdf.
	if err := os.MkdirAll(filepath.Join(dir, "pbdf", "sidn-pbdf", "PrivateKeys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pbdf", "sidn-pbdf", "PrivateKeys", "2.xml"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	ring := schemecache.NewDemoKeyRing(conf, map[irma.SchemeManagerIdentifier]string{
		irma.NewSchemeManagerIdentifier("irma-demo"): filepath.Join(dir, "irma-demo"),
		irma.NewSchemeManagerIdentifier("pbdf"):      filepath.Join(dir, "pbdf"),
	}, zap.NewNop())
	if ring.Len() != len(all)-2 {
		t.Errorf("the ring holds %d keys, want %d", ring.Len(), len(all)-2)
	}
	if sk, err := ring.Latest(irma.NewIssuerIdentifier("irma-demo.MijnOverheid")); err != nil || sk == nil {
		t.Errorf("no key of irma-demo.MijnOverheid: %v", err)
	}
	if _, err := ring.Latest(irma.NewIssuerIdentifier("pbdf.sidn-pbdf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key of pbdf.sidn-pbdf: %v", err)
	}
	if err := conf.AddPrivateKeyRing(ring); err != nil {
		t.Errorf("irmago refuses the ring: %v", err)
	}
}

// TestVerify: a copy passes only under the pinned key.
func TestVerify(t *testing.T) {
	p := publish(t)
	if _, err := schemecache.Verify(t.TempDir(), p.remote); !errors.Is(err, schemecache.ErrNoCopy) {
		t.Errorf("an empty directory: %v, want ErrNoCopy", err)
	}
	other := p.remote
	pk, err := signed.MarshalPemPublicKey(&schemeserver.NewKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	other.PublicKey = pk
	if _, err := schemecache.Verify(p.cache, other); err == nil || !strings.Contains(err.Error(), "not the pinned public key") {
		t.Errorf("under another key: %v", err)
	}
	if _, err := schemecache.Verify(p.cache, p.remote); err != nil {
		t.Errorf("under its key: %v", err)
	}
}
