package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// upstream is an app behind the gateway that verifies every identity JWT
// against the gateway's JWKS, as examples/upstream does, and records what
// it got.
type upstream struct {
	t       *testing.T
	jwksURL string
	issuer  string
	srv     *httptest.Server

	mu   sync.Mutex
	last seen
	// calls counts the requests that reached the upstream.
	calls atomic.Int64
}

type seen struct {
	claims  *assertion.Claims
	header  http.Header
	cookies []*http.Cookie
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		u.mu.Lock()
		u.last = seen{header: r.Header.Clone(), cookies: r.Cookies()}
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/open/") {
			fmt.Fprint(w, "open")
			return
		}
		resp, err := http.Get(u.jwksURL)
		if err != nil {
			http.Error(w, "jwks: "+err.Error(), http.StatusBadGateway)
			return
		}
		jwks, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		claims, err := assertion.Verify(r.Header.Get("X-Irma-Identity"), jwks, u.issuer, "caddy-irma", time.Now())
		if err != nil {
			http.Error(w, "identity: "+err.Error(), http.StatusUnauthorized)
			return
		}
		u.mu.Lock()
		u.last = seen{claims: claims, header: r.Header.Clone(), cookies: r.Cookies()}
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream %s for %s", r.URL.Path, claims.Attributes["caddy-demo.gateway.person.email"])
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) lastSeen() seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// authSite is a gateway with protected routes in front of an upstream.
type authSite struct {
	config   string // its Caddyfile
	base     string
	scheme   *demoscheme.Scheme
	upstream *upstream
	app      *caddyirma.App
}

func newAuthSite(t *testing.T) *authSite { return newAuthSiteWith(t, nil) }

// newAuthSiteWith also serves the sites that extra returns.
func newAuthSiteWith(t *testing.T, extra func(s *authSite) string) *authSite {
	return newAuthSiteStore(t, extra, "")
}

// newAuthSiteStore also adds store to the irma option (a redis block), and
// globals to the global options.
func newAuthSiteStore(t *testing.T, extra func(s *authSite) string, store string, globals ...string) *authSite {
	ln := caddytest.Listen(t)
	port, base := ln.Port, "http://"+ln.Addr()
	s := &authSite{base: base, scheme: testscheme.New(t, base+"/irma/timestamp"), upstream: newUpstream(t)}
	s.upstream.jwksURL = base + "/irma/jwks.json"
	s.upstream.issuer = base
	up := strings.TrimPrefix(s.upstream.srv.URL, "http://")
	var more string
	if extra != nil {
		more = extra(s)
	}
	config := fmt.Sprintf(`{
	admin off
	storage file_system %[6]s
	%[10]s
	irma {
		url %[2]s/irma/
		schemes_path %[3]s
		issuer_private_keys_path %[4]s
		timestamp_key_file %[5]s
		schemes_update off
		policy members {
			require caddy-demo.gateway.person.email {
				label en "Your email address"
				label nl "Uw e-mailadres"
			}
		}
		policy adults {
			require caddy-demo.gateway.person.over18=yes
		}
		login {
			cookie_lifetime 2400h
		}
		%[8]s
	}
}

http://127.0.0.1:%[1]d {
	%[9]s
	# At the top of the site, irma_auth brings the IRMA endpoints along.
	irma_auth /members/* members {
		header caddy-demo.gateway.person.email X-Irma-Attr-Email
	}
	irma_auth /adults/* adults
	handle /members/* {
		reverse_proxy %[7]s
	}
	handle /adults/* {
		reverse_proxy %[7]s
	}
	handle /club/* {
		irma_auth {
			require caddy-demo.gateway.membership.level=platinum or caddy-demo.gateway.membership.club
		}
		reverse_proxy %[7]s
	}
	handle /gold/* {
		irma_auth {
			require caddy-demo.gateway.membership.level
		}
		@gold expression {irma.attr.caddy-demo.gateway.membership.level} == "gold"
		respond @gold "gold member {irma.attr.caddy-demo.gateway.membership.club}"
		respond "not gold" 403
	}
	handle /open/* {
		reverse_proxy %[7]s
	}
	irma_auth /name/* {
		require caddy-demo.gateway.person.fullname
	}
	irma_auth /both/* {
		require caddy-demo.gateway.person.fullname and caddy-demo.gateway.person.over18
	}
	handle /name/* {
		respond "name {irma.attr.caddy-demo.gateway.person.fullname}"
	}
	handle /both/* {
		respond "both {irma.attr.caddy-demo.gateway.person.fullname}"
	}
	handle_path /app/* {
		irma_auth {
			require caddy-demo.gateway.person.email
		}
		respond "app {path}"
	}
	respond "public"
}
`, port, base, s.scheme.SchemesPath, s.scheme.PrivateKeysPath, s.scheme.TimestampKeyFile, filepath.Join(s.scheme.Dir, "caddy"), up, store, ln.Bind(), strings.Join(globals, "\n\t")) + more
	caddytest.Start(t, config)
	s.config = config
	s.app = caddytest.App[*caddyirma.App](t, "irma")
	return s
}

// newWallet opens a wallet holding a person credential (valid a week) and
// a membership.
func (s *authSite) newWallet(t *testing.T, email, over18 string) *wallet.Wallet {
	return s.newWalletPairing(t, email, over18, nil)
}

// newWalletLevel opens a wallet whose person is called name and whose
// membership has the given level.
func (s *authSite) newWalletLevel(t *testing.T, name, email, level string) *wallet.Wallet {
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: s.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	s.issueAll(t, w, map[string]string{"fullname": name, "email": email, "over18": "yes"}, level)
	return w
}

// newWalletPairing is newWallet with a pairing code callback.
func (s *authSite) newWalletPairing(t *testing.T, email, over18 string, onPairingCode func(string)) *wallet.Wallet {
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: s.scheme.SchemesPath, OnPairingCode: onPairingCode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	s.issue(t, w, email, over18)
	return w
}

// issue gives w a person credential (valid a week) and a gold membership.
func (s *authSite) issue(t testing.TB, w *wallet.Wallet, email, over18 string) {
	t.Helper()
	s.issueAll(t, w, map[string]string{"fullname": "Alice Demo", "email": email, "over18": over18}, "gold")
}

func (s *authSite) issueAll(t testing.TB, w *wallet.Wallet, person map[string]string, level string) {
	t.Helper()
	week := irma.Timestamp(time.Now().Add(irma.ExpiryFactor * time.Second)) // IRMA rounds it down to its weekly epochs
	srv, err := s.app.Server()
	if err != nil {
		t.Fatal(err)
	}
	ptr, _, _, err := srv.StartSession(irma.NewIssuanceRequest([]*irma.CredentialRequest{
		{CredentialTypeID: s.scheme.Credential(demoscheme.CredentialPerson), Validity: &week,
			Attributes: person},
		{CredentialTypeID: s.scheme.Credential(demoscheme.CredentialMembership),
			Attributes: map[string]string{"club": "Caddy demo club", "level": level}},
	}), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.Run(context.Background(), ptr, wallet.Accept); err != nil {
		t.Fatalf("issuing: %+v, %v", res, err)
	}
}

// heldValue returns the value of the attribute id that w holds, or "".
func heldValue(t testing.TB, w *wallet.Wallet, id string) string {
	t.Helper()
	creds, err := w.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		for _, a := range c.Attributes {
			if a.Type.String() == id {
				return a.Value
			}
		}
	}
	return ""
}

// credentialExpiry returns when w's credential of type id expires, as IRMA
// rounded it.
func credentialExpiry(t testing.TB, w *wallet.Wallet, id irma.CredentialTypeIdentifier) time.Time {
	t.Helper()
	creds, err := w.Credentials()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		if c.Type == id {
			return c.Expires
		}
	}
	t.Fatalf("the wallet holds no %s", id)
	return time.Time{}
}

// browser is an HTTP client with cookies that asks for JSON, as a script
// does.
type browser struct {
	t   testing.TB
	c   *http.Client
	jar *cookiejar.Jar
}

func newBrowser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(url string, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// login runs the disclosure that url asks for with w, and returns what the
// wallet was asked.
func (b *browser) login(ctx context.Context, w *wallet.Wallet, url string) *wallet.Result {
	b.t.Helper()
	sess, err := wallet.FetchSession(ctx, b.c, url)
	if err != nil {
		b.t.Fatalf("fetching the login session of %s: %v", url, err)
	}
	res, err := w.RunSession(ctx, sess, wallet.Accept)
	if err != nil {
		b.t.Fatalf("login session for %s: %+v, %v", url, res, err)
	}
	return res
}

// cookiePrefix returns the first cookie whose name starts with prefix.
func (b *browser) cookiePrefix(base, prefix string) *http.Cookie {
	u, _ := url.Parse(base)
	for _, c := range b.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	return nil
}

func (b *browser) cookie(base, name string) *http.Cookie {
	u, _ := url.Parse(base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}
