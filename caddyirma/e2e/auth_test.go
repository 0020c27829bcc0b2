package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
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

func TestAuth(t *testing.T) {
	s := newAuthSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := newBrowser(t)

	t.Run("public", func(t *testing.T) {
		if resp, body := b.get(s.base+"/", nil); resp.StatusCode != 200 || body != "public" {
			t.Errorf("public page: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("JSON 401", func(t *testing.T) {
		resp, body := newBrowser(t).get(s.base+"/members/page", nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("unauthenticated: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var info sessionpage.Info
		if err := json.Unmarshal([]byte(body), &info); err != nil || info.SessionPtr == nil || info.SessionPtr.Type != irma.ActionDisclosing ||
			!strings.HasPrefix(info.SessionPtr.URL, s.base+"/irma/session/") || info.Frontend.StatusURL == "" || info.Frontend.Authorization == "" {
			t.Fatalf("401 JSON: %v %s", err, body)
		}
		// The requestor token is sealed in the pending cookie, and nowhere
		// else in what the browser gets.
		var pending *http.Cookie
		for _, c := range resp.Cookies() {
			if strings.HasPrefix(c.Name, "irma_session_pending_") {
				pending = c
			}
		}
		if pending == nil {
			t.Fatal("no pending cookie")
		}
		var p struct {
			Token string `json:"t"`
		}
		if err := storedCookieKeys(t, s).Open(pending.Name, pending.Value, &p, time.Now()); err != nil || p.Token == "" {
			t.Fatalf("opening the pending cookie: %v", err)
		}
		for name, vals := range resp.Header {
			if name != "Set-Cookie" && strings.Contains(strings.Join(vals, " "), p.Token) {
				t.Errorf("header %s holds the requestor token", name)
			}
		}
		if strings.Contains(body, p.Token) {
			t.Error("the 401 body holds the requestor token")
		}
		// The session waits scan_timeout (default 2m) for the app to scan it,
		// not max_session_lifetime.
		srv, err := s.app.Server()
		if err != nil {
			t.Fatal(err)
		}
		if req, err := srv.GetRequest(irma.RequestorToken(p.Token)); err != nil || req.Base().ClientTimeout != 120 {
			t.Errorf("the session's request: %v, %v", req, err)
		}
	})

	t.Run("login", func(t *testing.T) {
		res := b.login(ctx, alice, s.base+"/members/page")
		if len(res.Requests) != 1 || len(res.Requests[0].Disclose) != 1 {
			t.Fatalf("the wallet was asked %+v", res.Requests)
		}
		resp, body := b.get(s.base+"/members/page", nil)
		if resp.StatusCode != 200 || body != "upstream /members/page for alice@example.com" {
			t.Fatalf("after login: %d %q", resp.StatusCode, body)
		}
		// The login lasts no longer than the credential, though the cookie
		// lifetime is 100 days. The credential was asked to be valid a week;
		// IRMA counts validity in whole weeks from a weekly epoch, so it ends
		// on a day that depends on today's: compare with what the wallet holds.
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "irma_session" {
				session = c
			}
		}
		if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
			t.Fatalf("session cookie %+v", session)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("the response that sets the session cookie has Cache-Control %q", cc)
		}
		// IRMA rounds the credential's expiry to its weekly epochs, so on
		// some days "a week from now" is three days away: compare with the
		// expiry the wallet holds, not with a number of days.
		if want := credentialExpiry(t, alice, s.scheme.Credential(demoscheme.CredentialPerson)); !session.Expires.Equal(want) {
			t.Errorf("the login lasts until %s, the person credential until %s: not bounded by the credential's expiry", session.Expires, want)
		}
		got := s.upstream.lastSeen()
		if got.claims.Policy != "members" || got.claims.Subject == "" || got.claims.Attributes["caddy-demo.gateway.person.email"] != "alice@example.com" {
			t.Errorf("claims %+v", got.claims)
		}
		if len(got.claims.Attributes) != 1 {
			t.Errorf("the JWT carries attributes the route did not ask for: %v", got.claims.Attributes)
		}
		if got.header.Get("X-Irma-Attr-Email") != "alice@example.com" {
			t.Errorf("plain header %q", got.header.Get("X-Irma-Attr-Email"))
		}
		for _, c := range got.cookies {
			if strings.HasPrefix(c.Name, "irma_session") {
				t.Errorf("the gateway's cookie %s reached the upstream", c.Name)
			}
		}
		// Logged in: no new session, and the JWT is reused.
		first := got.header.Get("X-Irma-Identity")
		if resp, _ := b.get(s.base+"/members/other", nil); resp.StatusCode != 200 {
			t.Errorf("second request: %d", resp.StatusCode)
		}
		if again := s.upstream.lastSeen().header.Get("X-Irma-Identity"); again != first {
			t.Error("the JWT was signed again within its lifetime")
		}
	})

	t.Run("forged identity headers", func(t *testing.T) {
		forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
		resp, _ := b.get(s.base+"/members/page", map[string]string{
			"X-IRMA-IDENTITY": forged, "x_irma_identity": forged, "X-Irma_Identity": forged,
			"X-Irma-Attr-Email": "mallory@example.com", "x_irma_attr_email": "mallory@example.com",
		})
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		got := s.upstream.lastSeen()
		for name, vals := range got.header {
			for _, v := range vals {
				if v == forged || v == "mallory@example.com" {
					t.Errorf("forged header %s reached the upstream", name)
				}
			}
		}
		// Not logged in: the forged headers get a login, not the upstream.
		resp, _ = newBrowser(t).get(s.base+"/members/page", map[string]string{"X-Irma-Identity": forged})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged identity without login: %d", resp.StatusCode)
		}
	})

	t.Run("step-up", func(t *testing.T) {
		res := b.login(ctx, alice, s.base+"/adults/")
		// What is missing (over18), and the email the login holds, with its
		// value: one session binds the new credential to the same wallet.
		var names []string
		for _, d := range res.Disclosed {
			names = append(names, d.Type.Name())
		}
		if sort.Strings(names); strings.Join(names, " ") != "email over18" {
			t.Errorf("step-up disclosed %v", names)
		}
		if resp, body := b.get(s.base+"/adults/", nil); resp.StatusCode != 200 {
			t.Fatalf("after step-up: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != 200 {
			t.Error("the step-up lost the earlier login")
		}
	})

	t.Run("alternatives and expression", func(t *testing.T) {
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/club/")
		if resp, body := b.get(s.base+"/club/", nil); resp.StatusCode != 200 {
			t.Errorf("club: %d %s", resp.StatusCode, body)
		}
		b.login(ctx, alice, s.base+"/gold/")
		if resp, body := b.get(s.base+"/gold/", nil); resp.StatusCode != 200 || body != "gold member Caddy demo club" {
			t.Errorf("gold: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("wrong value", func(t *testing.T) {
		minor := s.newWallet(t, "bob@example.com", "no")
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/adults/")
		if err != nil {
			t.Fatal(err)
		}
		res, err := minor.RunSession(ctx, sess, wallet.Accept)
		if err == nil || res.Outcome == wallet.Success {
			t.Fatalf("a wallet with over18=no logged in to /adults/: %+v", res)
		}
		if resp, _ := b.get(s.base+"/adults/", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after a failed login: %d", resp.StatusCode)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/members/")
		if err != nil {
			t.Fatal(err)
		}
		if res, _ := alice.RunSession(ctx, sess, wallet.Refuse); res.Outcome != wallet.Refused {
			t.Fatalf("refusal: %+v", res)
		}
		resp, body := b.get(s.base+"/members/", nil)
		var info sessionpage.Info
		_ = json.Unmarshal([]byte(body), &info)
		if resp.StatusCode != http.StatusUnauthorized || info.SessionPtr == nil || info.SessionPtr.URL == sess.Pointer.URL {
			t.Errorf("after a cancelled session: %d, want a new session: %s", resp.StatusCode, body)
		}
	})

	t.Run("pending cookie replay", func(t *testing.T) {
		b := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, b.c, s.base+"/members/")
		if err != nil {
			t.Fatal(err)
		}
		pending := b.cookiePrefix(s.base, "irma_session_pending_")
		if pending == nil {
			t.Fatal("no pending cookie")
		}
		if _, err := alice.RunSession(ctx, sess, wallet.Accept); err != nil {
			t.Fatal(err)
		}
		if resp, _ := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		// Someone with a copy of the pending cookie gets nothing from it.
		thief := newBrowser(t)
		resp, _ := thief.get(s.base+"/members/", map[string]string{"Cookie": pending.Name + "=" + pending.Value})
		if resp.StatusCode == 200 || thief.cookie(s.base, "irma_session") != nil {
			t.Errorf("a replayed pending cookie logged in: %d", resp.StatusCode)
		}
	})

	t.Run("bad cookies", func(t *testing.T) {
		good := b.cookie(s.base, "irma_session")
		if good == nil {
			t.Fatal("no session cookie")
		}
		keys := storedCookieKeys(t, s)
		expired, err := keys.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(-time.Minute),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := sealedcookie.New([]byte(strings.Repeat("k", 32)))
		foreign, err := other.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(time.Hour),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// Control: the same key and a valid login open, so the 401s below
		// are the defects', not a cookie the test cannot make.
		valid, err := keys.Seal("irma_session", map[string]any{
			"id": "x", "a": map[string]string{"caddy-demo.gateway.person.email": "alice@example.com"},
			"exp": time.Now().Add(time.Hour),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + valid})
		if resp.StatusCode != http.StatusOK || body != "upstream /members/ for alice@example.com" {
			t.Errorf("a valid cookie sealed with the gateway's key: %d %q, want 200", resp.StatusCode, body)
		}
		tampered := []byte(good.Value)
		tampered[len(tampered)/2] ^= 1
		for name, value := range map[string]string{
			"tampered": string(tampered), "expired": expired, "unknown key": foreign, "garbage": "%%%", "empty": "",
		} {
			resp, _ := newBrowser(t).get(s.base+"/members/", map[string]string{"Cookie": "irma_session=" + value})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s cookie: %d, want 401", name, resp.StatusCode)
			}
		}
	})

	t.Run("unprotected routes", func(t *testing.T) {
		// Forged identity headers and the gateway's cookies reach no
		// upstream, protected or not; other cookies pass untouched.
		session := b.cookie(s.base, "irma_session")
		resp, body := newBrowser(t).get(s.base+"/open/x", map[string]string{
			"X-Irma-Identity": "forged", "x_irma_attr_email": "mallory@example.com",
			"Cookie": `pref={"a":1,"b":2}; irma_session=` + session.Value + `; irma_session_pending_00000000=x; other=1`,
		})
		if resp.StatusCode != 200 || body != "open" {
			t.Fatalf("open route: %d %q", resp.StatusCode, body)
		}
		got := s.upstream.lastSeen().header
		if got.Get("X-Irma-Identity") != "" || got.Get("X_irma_attr_email") != "" || got.Get("x_irma_attr_email") != "" {
			t.Errorf("forged headers reached an unprotected upstream: %v", got)
		}
		if c := strings.Join(got.Values("Cookie"), "; "); c != `pref={"a":1,"b":2}; other=1` {
			t.Errorf("the upstream got the cookies %q", c)
		}
	})

	t.Run("step-up with other values", func(t *testing.T) {
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/name/")
		if resp, body := b.get(s.base+"/name/", nil); resp.StatusCode != 200 || body != "name Alice Demo" {
			t.Fatalf("/name/: %d %q", resp.StatusCode, body)
		}
		// Someone else's wallet answers the step-up: its name differs.
		bob := s.newWalletLevel(t, "Bob", "bob@example.com", "silver")
		b.login(ctx, bob, s.base+"/both/")
		if resp, body := b.get(s.base+"/both/", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a step-up with another person's name: %d %q", resp.StatusCode, body)
		}
		// A silver member is no gold member.
		b2 := newBrowser(t)
		b2.login(ctx, bob, s.base+"/gold/")
		if resp, body := b2.get(s.base+"/gold/", nil); resp.StatusCode != http.StatusForbidden || body != "not gold" {
			t.Errorf("silver at /gold/: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("return to the URL asked for", func(t *testing.T) {
		// handle_path strips /app from the path; the login page must still
		// send the browser back to /app/x.
		resp, body := newBrowser(t).get(s.base+"/app/x?y=1", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"doneUrl":"/app/x?y=1"`) {
			t.Errorf("login page under handle_path: %d %.2000s", resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("login page Cache-Control %q", cc)
		}
	})

	t.Run("logout and return URLs", func(t *testing.T) {
		for ret, want := range map[string]string{
			"/members/":            "/members/",
			"//evil.example/":      "/",
			"/\\evil.example":      "/",
			"https://evil.example": "/",
			"/%2F%2Fevil.example":  "/",
			"":                     "/",
		} {
			b := newBrowser(t)
			resp, _ := b.send("POST", s.base+"/irma/logout?return="+url.QueryEscape(ret), map[string]string{"Sec-Fetch-Site": "same-origin"}, "")
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Errorf("logout?return=%q: %d to %q, want %q", ret, resp.StatusCode, resp.Header.Get("Location"), want)
			}
		}
		if resp, _ := b.send("POST", s.base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "same-origin"}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if b.cookie(s.base, "irma_session") != nil {
			t.Error("the session cookie survived the logout")
		}
		// A link on another site cannot log anyone out.
		if resp, _ := newBrowser(t).get(s.base+"/irma/logout", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site logout: %d", resp.StatusCode)
		}
		if resp, _ := b.get(s.base+"/members/page", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after logout: %d", resp.StatusCode)
		}
	})
}

// storedCookieKeys reads the session cookie keys that the gateway generated
// into Caddy's storage.
func storedCookieKeys(t *testing.T, s *authSite) *sealedcookie.KeyRing {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.scheme.Dir, "caddy", "caddy-irma", "session-cookie-keys"))
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for _, line := range strings.Fields(string(data)) {
		k, err := sealedcookie.ParseKey(line)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, k)
	}
	kr, err := sealedcookie.New(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestForwardAuth protects an app behind another proxy (Caddy's own
// forward_auth here; nginx and Traefik work alike, see examples/) with the
// gateway's /irma/auth endpoint, and logs in through /irma/login.
func TestForwardAuth(t *testing.T) {
	// The proxy: a second site in the same Caddy, on its own port.
	proxyLn := caddytest.Listen(t)
	proxy := "http://" + proxyLn.Addr()
	s := newAuthSiteWith(t, func(s *authSite) string {
		gateway := strings.TrimPrefix(s.base, "http://")
		up := strings.TrimPrefix(s.upstream.srv.URL, "http://")
		return fmt.Sprintf(`
http://127.0.0.1:%[1]d {
	%[4]s
	handle /irma/* {
		reverse_proxy %[2]s
	}
	handle {
		forward_auth %[2]s {
			uri /irma/auth?policy=members
			copy_headers X-Irma-Identity
		}
		reverse_proxy %[3]s
	}
}
`, proxyLn.Port, gateway, up, proxyLn.Bind())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")

	b := newBrowser(t)
	resp, body := b.get(proxy+"/app/page", nil)
	var answer struct {
		Error    string `json:"error"`
		LoginURL string `json:"login_url"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || resp.StatusCode != http.StatusUnauthorized ||
		answer.LoginURL != "/irma/login?policy=members&return=%2Fapp%2Fpage" || resp.Header.Get("X-Irma-Login") != answer.LoginURL {
		t.Fatalf("not logged in: %d %s %v", resp.StatusCode, body, err)
	}
	// A browser's page gets a page that goes to the login.
	resp, body = newBrowser(t).get(proxy+"/app/page", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "/irma/login?policy=members") {
		t.Errorf("page navigation: %d %.300s", resp.StatusCode, body)
	}

	b.login(ctx, alice, proxy+answer.LoginURL)
	resp, _ = b.get(proxy+answer.LoginURL, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page" {
		t.Fatalf("finishing the login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	forged := "eyJhbGciOiJub25lIn0.eyJhdHRyaWJ1dGVzIjp7fX0."
	resp, body = b.get(proxy+"/app/page", map[string]string{"X-Irma-Identity": forged})
	if resp.StatusCode != 200 || body != "upstream /app/page for alice@example.com" {
		t.Fatalf("after login: %d %q", resp.StatusCode, body)
	}
	if got := s.upstream.lastSeen(); got.claims.Policy != "members" || got.header.Get("X-Irma-Identity") == forged {
		t.Errorf("upstream saw %+v", got.claims)
	}
	// Unknown policies and open redirects.
	if resp, _ := b.get(s.base+"/irma/auth?policy=nope", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown policy: %d", resp.StatusCode)
	}
	// (A //host path is refused outright as ambiguous: see paths_test.go.)
	resp, _ = newBrowser(t).get(s.base+"/irma/auth?policy=members", map[string]string{"X-Forwarded-Uri": "https://evil.example/x"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Irma-Login") != "/irma/login?policy=members&return=%2F" {
		t.Errorf("open redirect through X-Forwarded-Uri: %d %q", resp.StatusCode, resp.Header.Get("X-Irma-Login"))
	}
}

// TestLoginSurvives checks that a login outlives a restart of Caddy (the
// keys are in Caddy's storage), and works with sessions in Redis, where the
// credential expiry that a login needs goes through Redis too.
func TestLoginSurvives(t *testing.T) {
	addr := startRedis(t)
	s := newAuthSiteStore(t, nil, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", addr))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	b := newBrowser(t)
	b.login(ctx, alice, s.base+"/members/")
	// The wallet has posted its proofs; the login has not picked them up.
	if n := redisCommand(t, addr, "KEYS *credential-expiry*"); n != "*1" {
		t.Errorf("the credential expiry of the session is not in Redis before the login: %s, want one key", n)
	}
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Fatalf("login with redis: %d %s", resp.StatusCode, body)
	}
	if n := redisCommand(t, addr, "KEYS *credential-expiry*"); n != "*0" {
		t.Errorf("the credential expiry stayed in Redis after the login took it: %s", n)
	}

	// A restart: a new process would read the same storage.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := caddytest.Load(s.config); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections() // those went to the stopped server
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Errorf("after a restart: %d %s", resp.StatusCode, body)
	}

	// Key rotation: a new key first, the stored one after it, and the
	// login goes on; without the old key, it is over.
	stored, err := os.ReadFile(filepath.Join(s.scheme.Dir, "caddy", "caddy-irma", "session-cookie-keys"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 64)))
	withKeys := func(keys string) string {
		return strings.Replace(s.config, "cookie_lifetime 2400h", "cookie_lifetime 2400h\n\t\t\tcookie_keys "+keys, 1)
	}
	if err := caddytest.Load(withKeys(fresh + " " + strings.TrimSpace(string(stored)))); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections()
	if resp, body := b.get(s.base+"/members/", nil); resp.StatusCode != 200 {
		t.Errorf("with a new key before the old one: %d %s", resp.StatusCode, body)
	}
	if err := caddytest.Load(withKeys(fresh)); err != nil {
		t.Fatal(err)
	}
	b.c.CloseIdleConnections()
	if resp, _ := b.get(s.base+"/members/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the key that sealed the cookie: %d, want 401", resp.StatusCode)
	}
}
