package caddyirma

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// No test reaches for the internet: the tests that use default schemes
// serve them from a local server (useSchemeServer); in all the others they
// come from a port where nothing listens.
func init() {
	schemeSource.remotes = func() []schemecache.Remote {
		remotes := schemecache.Defaults()
		for i := range remotes {
			remotes[i].URL = "https://127.0.0.1:1/" + remotes[i].ID
		}
		return remotes
	}
}

// useSchemeServer makes the default schemes the given remotes, fetched
// with the client of srv, until the test ends.
func useSchemeServer(t *testing.T, srv *schemeserver.Server, remotes ...schemecache.Remote) {
	t.Helper()
	saved := schemeSource
	schemeSource.remotes = func() []schemecache.Remote { return remotes }
	schemeSource.client = srv.Client()
	t.Cleanup(func() { schemeSource = saved })
}

// schemeSite is a test site whose irma app trusts default schemes from a
// local scheme server: by default the test scheme, under its own signing
// key, pinned as irmago pins the keys of the real ones.
type schemeSite struct {
	ln     *caddytest.Listener
	srv    *schemeserver.Server
	scheme *demoscheme.Scheme // the scheme served (its folder: served)
	served string             // the folder the server serves, which a test may sign anew
	dir    string             // Caddy's storage and log
	cache  string             // default_schemes_path
	keys   string             // issuer_private_keys_path, if any
	remote schemecache.Remote
}

// membersRoute protects /members/ with an attribute of the test scheme.
const membersRoute = "irma_auth /members/* {\n\t\trequire caddy-demo.gateway.person.email\n\t}"

func newSchemeSite(t *testing.T) *schemeSite {
	t.Helper()
	ln := caddytest.Listen(t)
	s := &schemeSite{ln: ln, srv: schemeserver.New(t), dir: t.TempDir(), cache: filepath.Join(t.TempDir(), "schemes")}
	s.scheme = testscheme.New(t, s.url()+"timestamp")
	s.keys = s.scheme.PrivateKeysPath
	s.served = filepath.Join(t.TempDir(), s.scheme.ID)
	schemeserver.Copy(t, s.scheme.SchemeDir, s.served)
	s.srv.Serve(s.scheme.ID, s.served)
	pk, err := os.ReadFile(filepath.Join(s.scheme.SchemeDir, "pk.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.remote = s.srv.Remote(s.scheme.ID, pk)
	useSchemeServer(t, s.srv, s.remote)
	return s
}

func (s *schemeSite) url() string { return fmt.Sprintf("http://127.0.0.1:%d/irma/", s.ln.Port) }

// caddyfile returns the site with the lines irmaExtra added to the irma
// option, and the directives site before the final respond.
func (s *schemeSite) caddyfile(irmaExtra, site string) string {
	if s.keys != "" {
		irmaExtra = "issuer_private_keys_path " + s.keys + "\n\t\t" + irmaExtra
	}
	if s.cache != "" {
		irmaExtra = "default_schemes_path " + s.cache + "\n\t\t" + irmaExtra
	}
	return fmt.Sprintf(`{
	admin off
	storage file_system %[2]s/caddy
	log {
		output file %[2]s/caddy.log
		format json
		level INFO
	}
	irma {
		url %[3]s
		%[4]s
	}
}

http://127.0.0.1:%[1]d {
	%[6]s
	irma_endpoints
	%[5]s
	respond "next handler"
}
`, s.ln.Port, s.dir, s.url(), irmaExtra, site, s.ln.Bind())
}

// sign publishes the served folder as a new version, under the scheme's
// signing key.
func (s *schemeSite) sign(t *testing.T) {
	t.Helper()
	schemeserver.Sign(t, s.served, schemeserver.LoadKey(t, s.scheme.SigningKeyFile))
}

// loginStarts asserts that the protected route starts a login session.
func (s *schemeSite) loginStarts(t *testing.T, path string) {
	t.Helper()
	code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d%s", s.ln.Port, path), map[string]string{"Accept": "application/json"})
	if code != http.StatusUnauthorized || !strings.Contains(body, `"sessionPtr"`) {
		t.Errorf("GET %s: %d %.300s; want a login session", path, code, body)
	}
}

// newScheme makes a test scheme of the given identifier, whose <Url> is
// schemeURL ("": one that never resolves).
func newScheme(t *testing.T, id, schemeURL string) *demoscheme.Scheme {
	t.Helper()
	dir := t.TempDir()
	priv, pub := testscheme.KeyPair()
	if err := demoscheme.InstallIssuerKeyPair(dir, id, priv, pub); err != nil {
		t.Fatal(err)
	}
	s, err := demoscheme.Ensure(demoscheme.Options{Dir: dir, SchemeID: id, SchemeURL: schemeURL, TimestampServer: "https://timestamp.invalid/", KeyBits: testscheme.KeyBits})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDefaultSchemesFirstStart: the first start fetches the default
// schemes into the cache, verified against the pinned keys, into Caddy's
// data directory unless default_schemes_path says otherwise; the next
// start with the server down uses the copy and does not go online; a
// first start without network fails, saying what to do.
func TestDefaultSchemesFirstStart(t *testing.T) {
	s := newSchemeSite(t)
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	cache := s.cache
	s.cache = ""
	config := s.caddyfile("schemes_update off", membersRoute)
	s.cache = cache
	caddytest.Start(t, config)
	app := caddytest.App[*App](t, "irma")
	want := filepath.Join(data, "caddy", "irma", "schemes")
	if app.DefaultSchemesPath != want {
		t.Errorf("default_schemes_path %q, want %q", app.DefaultSchemesPath, want)
	}
	if _, err := schemecache.Verify(want, s.remote); err != nil {
		t.Errorf("no copy of the scheme in the data directory: %v", err)
	}
	s.loginStarts(t, "/members/")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	// The server is down: a start with a copy does not ask it anything.
	s.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	before := s.srv.Requests()
	caddytest.Start(t, config)
	s.loginStarts(t, "/members/")
	if n := s.srv.Requests() - before; n != 0 {
		t.Errorf("a start with a copy made %d requests to the scheme server", n)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	// No copy and no network: the error says what to do.
	down := s.remote
	down.URL = "https://" + caddytest.RefusedAddr(t) + "/caddy-demo"
	useSchemeServer(t, s.srv, down)
	loadFails(t, s.caddyfile("schemes_update off", ""),
		"no copy of scheme caddy-demo", s.cache, "connection refused", "caddy irma schemes", "default_schemes_path", "schemes_path")
}

// TestDefaultSchemesStartWithoutWaiting: with updates on, a start with a
// copy does not wait for the scheme server, even one that never answers.
func TestDefaultSchemesStartWithoutWaiting(t *testing.T) {
	s := newSchemeSite(t)
	caddytest.Start(t, s.caddyfile("schemes_update off", membersRoute))
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{}, 1)
	s.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	load := func(what, config string) {
		t.Helper()
		loaded := make(chan error, 1)
		go func() { loaded <- caddytest.Load(config) }()
		select {
		case err := <-loaded:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("the %s waits for the scheme server", what)
		}
	}
	load("start", s.caddyfile("", membersRoute))
	defer func() {
		if err := caddy.Stop(); err != nil {
			t.Error(err)
		}
	}()
	s.loginStarts(t, "/members/")
	<-asked // the update at start, which goes on without holding anything up
	// Nor does a reload wait for the update under way.
	load("reload", s.caddyfile("", membersRoute+"\n\tirma_auth /adults/* {\n\t\trequire caddy-demo.gateway.person.over18=yes\n\t}"))
	s.loginStarts(t, "/adults/")
}

// TestSchemesConfig: settings of the schemes that cannot work are refused
// when the config loads, naming what is wrong.
func TestSchemesConfig(t *testing.T) {
	s := newSchemeSite(t)
	local := testscheme.New(t, s.url()+"timestamp")
	for _, tc := range []struct {
		name, irma string
		want       []string
	}{
		{"no schemes", "default_schemes off", []string{"default_schemes off", "no schemes_path"}},
		{"path of schemes that are off", "schemes_path " + local.SchemesPath, []string{"default_schemes_path", "default_schemes on"}},
		{"the same scheme twice", "schemes_path " + local.SchemesPath + "\n\t\tdefault_schemes on",
			[]string{local.SchemesPath, "holds scheme caddy-demo", "default_schemes off"}},
		{"unknown attribute", "policy p {\n\t\t\trequire caddy-demo.gateway.person.shoesize\n\t\t}", []string{`policy "p"`, "caddy-demo.gateway.person.shoesize"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, s.caddyfile("schemes_update off\n\t\t"+tc.irma, ""), tc.want...)
		})
	}

	// Local schemes and the default schemes together.
	other := newScheme(t, "other", "")
	caddytest.Start(t, s.caddyfile("schemes_update off\n\t\tschemes_path "+other.SchemesPath+"\n\t\tdefault_schemes on",
		"irma_auth /both/* {\n\t\trequire other.gateway.person.email and caddy-demo.gateway.person.over18\n\t}"))
	s.loginStarts(t, "/both/")
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	// A cache that holds a scheme besides the default ones: it was not
	// checked against a pinned key.
	schemeserver.Copy(t, other.SchemeDir, filepath.Join(s.cache, other.ID))
	loadFails(t, s.caddyfile("schemes_update off", ""), "scheme other is not one of them (caddy-demo)", "move it to schemes_path")
}
