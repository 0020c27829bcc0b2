package caddyirma

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
	"github.com/caddy-irma/caddy-irma/caddyirma/schemecache"
)

// updateResult is what came of one periodic update of the schemes.
type updateResult struct {
	err     error
	changed bool
}

// controlUpdates puts the periodic scheme updates in the test's hands
// until it ends: each send on tick runs one, and what came of each update
// (the first runs at start) arrives on done.
func controlUpdates(t *testing.T) (tick chan<- time.Time, done <-chan updateResult) {
	t.Helper()
	ticks, results := make(chan time.Time), make(chan updateResult, 16)
	savedAfter, savedUpdated := schemesUpdateAfter, schemesUpdated
	schemesUpdateAfter = func(time.Duration) <-chan time.Time { return ticks }
	schemesUpdated = func(err error, changed bool) { results <- updateResult{err, changed} }
	t.Cleanup(func() { schemesUpdateAfter, schemesUpdated = savedAfter, savedUpdated })
	return ticks, results
}

// runUpdate runs one periodic update and returns what came of it.
func runUpdate(tick chan<- time.Time, done <-chan updateResult) updateResult {
	tick <- time.Now()
	return <-done
}

// TestSchemeUpdates: while the gateway runs, an update that adds a
// credential type and an issuer key takes effect at the next scheme update,
// on the same IRMA server; a bad update is refused, and the schemes stay as
// they were. scheme_updates_total counts each by its outcome.
func TestSchemeUpdates(t *testing.T) {
	s := newSchemeSite(t)
	tick, done := controlUpdates(t)
	caddytest.Start(t, s.caddyfile("schemes_update 1h", membersRoute))
	app := caddytest.App[*App](t, "irma")
	if r := <-done; r.err != nil || r.changed {
		t.Fatalf("the update at start: %+v, want nothing new", r)
	}
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	updates := countUpdates(t)
	v1 := filepath.Join(t.TempDir(), "v1")
	schemeserver.Copy(t, s.served, v1)
	conf := app.Configuration()

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
		want  string
	}{
		{"tampered index", func(t *testing.T) {
			addTicket(t, s, false)
			index := filepath.Join(s.served, "index")
			b, err := os.ReadFile(index)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(index, bytes.Replace(b, []byte("ticket"), []byte("tickets"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not signed with the pinned key"},
		{"wrong signing key", func(t *testing.T) {
			schemeserver.AddCredentialType(t, s.served, demoscheme.IssuerID, "ticket", "seat")
			schemeserver.Sign(t, s.served, schemeserver.NewKey(t))
		}, "not signed with the pinned key"},
		{"garbage", func(t *testing.T) {
			s.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("<html>garbage</html>"))
			}))
		}, "not signed with the pinned key"},
		{"a server that never answers", func(t *testing.T) {
			schemeSource.timeout = 100 * time.Millisecond
			s.srv.Override(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		}, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			defer func() {
				s.srv.Override(nil)
				schemeSource.timeout = 0
				if err := os.RemoveAll(s.served); err != nil {
					t.Fatal(err)
				}
				schemeserver.Copy(t, v1, s.served)
			}()
			r := runUpdate(tick, done)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) || r.changed {
				t.Fatalf("update: %+v, want a refusal with %q", r, tc.want)
			}
			if app.Configuration() != conf {
				t.Error("a refused update changed the schemes in use")
			}
			if _, err := schemecache.Verify(s.cache, s.remote); err != nil {
				t.Errorf("the copy no longer verifies: %v", err)
			}
			s.loginStarts(t, "/members/")
		})
	}
	if !strings.Contains(s.logs(t), "keeping the copy there is") {
		t.Error("the refusals were not logged")
	}
	updates.want("fetch_failed", 4)

	// A good update: a credential type and an issuer key more.
	addTicket(t, s, true)
	if r := runUpdate(tick, done); r.err != nil || !r.changed {
		t.Fatalf("update: %+v, want new schemes", r)
	}
	conf = app.Configuration()
	iss := s.scheme.Issuer()
	if conf.CredentialTypes[s.scheme.Credential("ticket")] == nil {
		t.Fatal("the update did not bring the credential type ticket")
	}
	if pk, err := conf.PublicKey(iss, 1); err != nil || pk == nil {
		t.Errorf("the update did not bring public key 1: %v", err)
	}
	if sk, err := conf.PrivateKeys.Latest(iss); err != nil || sk.Counter != 1 {
		t.Errorf("the issuer key in use: %v, want counter 1", err)
	}
	if s2, _ := app.Server(); s2 != srv {
		t.Error("the update replaced the IRMA server")
	}
	if _, _, _, err := srv.StartSession(irma.NewDisclosureRequest(s.scheme.Attribute("ticket", "seat")), nil, ""); err != nil {
		t.Errorf("a session for the new credential type: %v", err)
	}
	// Nothing new: nothing changes.
	if r := runUpdate(tick, done); r.err != nil || r.changed || app.Configuration() != conf {
		t.Errorf("an update without news: %+v", r)
	}
	updates.want("applied", 1)
	updates.want("unchanged", 1)

	// A reload with a policy on the new credential type loads, on the same
	// server.
	if err := caddytest.Load(s.caddyfile("schemes_update 1h", membersRoute+"\n\tirma_auth /tickets/* {\n\t\trequire caddy-demo.gateway.ticket.seat\n\t}")); err != nil {
		t.Fatal(err)
	}
	if s2, _ := caddytest.App[*App](t, "irma").Server(); s2 != srv {
		t.Error("the reload replaced the IRMA server")
	}
	s.loginStarts(t, "/tickets/")
}

// updateCounts reads scheme_updates_total by outcome from where
// countUpdates was called.
type updateCounts struct {
	t      *testing.T
	before map[string]float64
}

func countUpdates(t *testing.T) updateCounts {
	t.Helper()
	c := updateCounts{t: t, before: map[string]float64{}}
	for _, outcome := range []string{"fetch_failed", "applied", "unchanged"} {
		c.before[outcome] = schemeUpdatesCounted(outcome)
	}
	return c
}

// want checks that outcome was counted n times since.
func (c updateCounts) want(outcome string, n float64) {
	c.t.Helper()
	if got := schemeUpdatesCounted(outcome) - c.before[outcome]; got != n {
		c.t.Errorf("scheme_updates_total{outcome=%q} went up by %v, want %v", outcome, got, n)
	}
}

// schemeUpdatesCounted is the value of scheme_updates_total{outcome}.
func schemeUpdatesCounted(outcome string) float64 {
	var m dto.Metric
	if err := metrics.schemeUpdates.WithLabelValues(outcome).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// addTicket adds the credential type ticket (one attribute, seat) to the
// served scheme, and with key a public key 1 (the key pair of counter 0
// under counter 1) whose private key goes to issuer_private_keys_path; it
// signs the result under the scheme's key.
func addTicket(t *testing.T, s *schemeSite, key bool) {
	t.Helper()
	schemeserver.AddCredentialType(t, s.served, demoscheme.IssuerID, "ticket", "seat")
	if key {
		recount := func(from, to string) {
			b, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte("<Counter>0</Counter>"), []byte("<Counter>1</Counter>"), 1)
			if err := os.WriteFile(to, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		recount(filepath.Join(s.served, demoscheme.IssuerID, "PublicKeys", "0.xml"), filepath.Join(s.served, demoscheme.IssuerID, "PublicKeys", "1.xml"))
		recount(s.scheme.PrivateKeyFile(), filepath.Join(s.scheme.PrivateKeysPath, s.scheme.ID+"."+demoscheme.IssuerID+".1.xml"))
	}
	s.sign(t)
}

// logs returns what Caddy logged so far.
func (s *schemeSite) logs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReloadNewSchemes: a reload after the schemes on disk changed keeps
// the running IRMA server, and its sessions, and hands it the new schemes.
func TestReloadNewSchemes(t *testing.T) {
	g := newGateway(t)
	app := g.start(t, "")
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	conf := app.Configuration()
	_, token, _, err := srv.StartSession(irma.NewDisclosureRequest(g.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	// The scheme signed anew, naming another timestamp server.
	if _, err := demoscheme.Ensure(demoscheme.Options{Dir: g.scheme.Dir, TimestampServer: g.url() + "other-timestamp", KeyBits: g.scheme.KeyBits}); err != nil {
		t.Fatal(err)
	}
	if err := caddytest.Load(g.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	app2 := caddytest.App[*App](t, "irma")
	if srv2, _ := app2.Server(); srv2 != srv {
		t.Error("the reload replaced the IRMA server")
	}
	if res, err := srv.GetSessionResult(token); err != nil || res.Status != irma.ServerStatusInitialized {
		t.Errorf("the session after the reload: %+v, %v", res, err)
	}
	got := app2.Configuration()
	if got == conf || got.SchemeManagers[irma.NewSchemeManagerIdentifier(g.scheme.ID)].TimestampServer != g.url()+"other-timestamp" {
		t.Error("the server does not use the new scheme")
	}
	// A reload without changes keeps the schemes in use.
	if err := caddytest.Load(g.caddyfile("")); err != nil {
		t.Fatal(err)
	}
	if caddytest.App[*App](t, "irma").Configuration() != got {
		t.Error("a reload without changes replaced the schemes")
	}
}

// TestLocalSchemeUpdates: a local scheme whose <Url> is https is updated
// from there, checked against its own pk.pem, in schemes_path.
func TestLocalSchemeUpdates(t *testing.T) {
	l := startLocalSchemeSite(t, "")
	served, local, app, tick, done := l.served, l.local, l.app, l.tick, l.done
	schemeserver.AddCredentialType(t, served, demoscheme.IssuerID, "ticket", "seat")
	schemeserver.Sign(t, served, schemeserver.LoadKey(t, local.SigningKeyFile))
	if r := runUpdate(tick, done); r.err != nil || !r.changed {
		t.Fatalf("update: %+v", r)
	}
	if app.Configuration().CredentialTypes[local.Credential("ticket")] == nil {
		t.Error("the server does not know the new credential type")
	}
	if _, err := os.Stat(filepath.Join(local.SchemeDir, demoscheme.IssuerID, "Issues", "ticket", "description.xml")); err != nil {
		t.Errorf("schemes_path does not hold the update: %v", err)
	}
	// The same update under another key is refused.
	schemeserver.AddCredentialType(t, served, demoscheme.IssuerID, "pass", "gate")
	schemeserver.Sign(t, served, schemeserver.NewKey(t))
	if r := runUpdate(tick, done); r.err == nil || r.changed {
		t.Errorf("an update under another key: %+v", r)
	}
}

// localSchemeSite is a gateway on a local scheme of its own, "local",
// whose <Url> is the test's scheme server, serving a copy (served) that a
// test changes; tick runs an update, done reports it.
type localSchemeSite struct {
	*schemeSite
	local  *demoscheme.Scheme
	served string
	app    *App
	tick   chan<- time.Time
	done   <-chan updateResult
}

// startLocalSchemeSite starts the gateway of a localSchemeSite with the
// site lines route, and waits for the update at its start.
func startLocalSchemeSite(t *testing.T, route string) *localSchemeSite {
	t.Helper()
	l := &localSchemeSite{schemeSite: newSchemeSite(t)}
	l.local = newScheme(t, "local", l.srv.URL+"/local")
	l.served = filepath.Join(t.TempDir(), "local")
	schemeserver.Copy(t, l.local.SchemeDir, l.served)
	l.srv.Serve("local", l.served)
	l.cache, l.keys = "", l.local.PrivateKeysPath
	l.tick, l.done = controlUpdates(t)
	caddytest.Start(t, l.caddyfile("schemes_update 1h\n\t\tschemes_path "+l.local.SchemesPath, route))
	l.app = caddytest.App[*App](t, "irma")
	if r := <-l.done; r.err != nil || r.changed {
		t.Fatalf("the update at start: %+v", r)
	}
	return l
}
