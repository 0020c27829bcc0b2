package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/sealedcookie"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The development wallet refuses what it cannot honestly answer (a value it
// does not hold, a pairing code it was not shown), so a login through it
// never brings the gateway a result that the gateway itself must refuse.
// These tests bring it one: a session finished on the gateway's own IRMA
// server, by the real wallet, presented to a route in a pending-login cookie
// sealed with the gateway's key, as if the route had started it.

// pendingCookie is what the gateway's pending-login cookie holds
// (pendingSession in caddyirma/session.go), by its JSON names.
type pendingCookie struct {
	Token        string `json:"t"`
	Pointer      string `json:"u"`
	FrontendAuth string `json:"f"`
	PairingCode  string `json:"p,omitempty"`
	Route        string `json:"r"`
	Return       string `json:"ret"`
}

// pendingCookieName is the name of a route's pending cookie with the
// default cookie name: a route of a named policy is "policy:<name>".
func pendingCookieName(route string) string {
	sum := sha256.Sum256([]byte(route))
	return "irma_session_pending_" + hex.EncodeToString(sum[:4])
}

// refusalSite is an auth site with the gateway's cookie keys at hand.
type refusalSite struct {
	*authSite
	keys *sealedcookie.KeyRing
}

// finishedSession starts req on the gateway's embedded IRMA server, lets w
// complete it, and returns the session as a pending cookie holds it
// (without route and return path).
func (s *refusalSite) finishedSession(ctx context.Context, t *testing.T, w *wallet.Wallet, req irma.SessionRequest) pendingCookie {
	t.Helper()
	srv, err := s.app.Server()
	if err != nil {
		t.Fatal(err)
	}
	ptr, token, frontend, err := srv.StartSession(req, nil, "")
	if err != nil {
		t.Fatalf("starting a session: %v", err)
	}
	if res, err := w.Run(ctx, ptr, wallet.Accept); err != nil || res.Outcome != wallet.Success {
		t.Fatalf("the wallet did not complete the session: %+v, %v", res, err)
	}
	if res := waitResult(ctx, t, srv, token); res.Status != irma.ServerStatusDone || res.ProofStatus != irma.ProofStatusValid {
		t.Fatalf("the session ended %s with proofs %s", res.Status, res.ProofStatus)
	}
	return pendingCookie{Token: string(token), Pointer: ptr.URL, FrontendAuth: string(frontend.Authorization)}
}

// present asks for path with one cookie of the gateway, sealed with its
// key: as a script (JSON) or as a browser's page navigation.
func (s *refusalSite) present(t *testing.T, path, name string, p pendingCookie, asPage bool) (*http.Response, string) {
	t.Helper()
	value, err := s.keys.Seal(name, p, time.Now().Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	header := map[string]string{"Cookie": name + "=" + value}
	if asPage {
		header["Accept"] = "text/html"
		header["Sec-Fetch-Mode"] = "navigate"
	}
	return newBrowser(t).get(s.base+path, header)
}

// assertNoLogin checks that a response sets no session cookie and that the
// upstream saw no request since it had seen calls.
func (s *refusalSite) assertNoLogin(t *testing.T, resp *http.Response, calls int64) {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "irma_session" && c.Value != "" && c.MaxAge >= 0 {
			t.Errorf("the refusal set a session cookie")
		}
	}
	if n := s.upstream.calls.Load(); n != calls {
		t.Errorf("the upstream got %d requests during the refusal", n-calls)
	}
}

// assertRefused checks that a finished login was refused: a 403 that says
// so (JSON for a script, a page for a browser), and no login.
func (s *refusalSite) assertRefused(t *testing.T, resp *http.Response, body string, asPage bool, calls int64) {
	t.Helper()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403: %.300s", resp.StatusCode, body)
	}
	if asPage {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "Access refused") {
			t.Errorf("refusal page: %s %.300s", ct, body)
		}
	} else {
		var answer struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Error != "login_refused" {
			t.Errorf("refusal JSON: %v %.300s", err, body)
		}
	}
	s.assertNoLogin(t, resp, calls)
}

// assertLoggedIn checks that a response is the upstream's, with a session
// cookie.
func (s *refusalSite) assertLoggedIn(t *testing.T, resp *http.Response, body, want string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, want) {
		t.Fatalf("%d %.300s, want 200 %q", resp.StatusCode, body, want)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "irma_session" && c.Value != "" {
			return
		}
	}
	t.Fatal("no session cookie")
}

// TestRefusals presents finished sessions that must not log in to the
// routes of an auth site: a value other than the policy asks, a session of
// another route, a result of another type. Each case has a control in
// which the same construction with a result that counts logs in, so a
// refusal is the gateway's check, not a broken cookie.
func TestRefusals(t *testing.T) {
	site := newAuthSite(t)
	s := &refusalSite{authSite: site, keys: storedCookieKeys(t, site)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := s.newWallet(t, "alice@example.com", "yes")
	minor := s.newWallet(t, "bob@example.com", "no")
	over18 := s.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeOver18)
	adults := pendingCookieName("policy:adults")

	// A disclosure of over18 that asks no value: the wallet answers with
	// what it holds.
	disclosed := func(t *testing.T, w *wallet.Wallet) pendingCookie {
		p := s.finishedSession(ctx, t, w, irma.NewDisclosureRequest(over18))
		p.Route, p.Return = "policy:adults", "/adults/"
		return p
	}

	t.Run("control: over18=yes logs in", func(t *testing.T) {
		calls := s.upstream.calls.Load()
		resp, body := s.present(t, "/adults/", adults, disclosed(t, alice), false)
		s.assertLoggedIn(t, resp, body, "upstream /adults/")
		if n := s.upstream.calls.Load(); n != calls+1 {
			t.Errorf("the upstream got %d requests, want 1", n-calls)
		}
	})

	t.Run("another value", func(t *testing.T) {
		// The policy asks over18=yes; the session disclosed over18=no.
		for _, asPage := range []bool{false, true} {
			calls := s.upstream.calls.Load()
			resp, body := s.present(t, "/adults/", adults, disclosed(t, minor), asPage)
			s.assertRefused(t, resp, body, asPage, calls)
		}
	})

	t.Run("another route's session in this route's cookie", func(t *testing.T) {
		// A login that /members/ started (it asks the email address), in
		// the pending cookie of /adults/, naming /adults/: it discloses
		// nothing that /adults/ asks.
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/members/x")
		c := b.cookie(s.base, pendingCookieName("policy:members"))
		if c == nil {
			t.Fatal("/members/ set no pending cookie")
		}
		var p pendingCookie
		if err := s.keys.Open(c.Name, c.Value, &p, time.Now()); err != nil {
			t.Fatal(err)
		}
		p.Route, p.Return = "policy:adults", "/adults/"
		calls := s.upstream.calls.Load()
		resp, body := s.present(t, "/adults/", adults, p, false)
		s.assertRefused(t, resp, body, false, calls)
	})

	t.Run("another route's cookie", func(t *testing.T) {
		// /app/ and /members/ both ask the email address, on routes of
		// their own: a session that /app/ started does not log in at
		// /members/, neither in its own cookie nor renamed as the pending
		// cookie of /members/, though what it disclosed would satisfy it.
		b := newBrowser(t)
		b.login(ctx, alice, s.base+"/app/x")
		c := b.cookiePrefix(s.base, "irma_session_pending_")
		if c == nil {
			t.Fatal("/app/ set no pending cookie")
		}
		var p pendingCookie
		if err := s.keys.Open(c.Name, c.Value, &p, time.Now()); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Route, "route:") || c.Name != pendingCookieName(p.Route) {
			t.Fatalf("the pending cookie of /app/ is %s for route %q", c.Name, p.Route)
		}
		for name, cookie := range map[string]string{"its own": c.Name, "renamed": pendingCookieName("policy:members")} {
			calls := s.upstream.calls.Load()
			resp, body := s.present(t, "/members/x", cookie, p, false)
			// Not a login: a new session for /members/.
			var info sessionpage.Info
			if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusUnauthorized ||
				info.SessionPtr == nil || info.SessionPtr.URL == p.Pointer {
				t.Errorf("%s cookie at /members/: %d %.300s, want 401 with a new session", name, resp.StatusCode, body)
			}
			s.assertNoLogin(t, resp, calls)
		}
		// Control: at its own route the session logs in.
		resp, body := s.present(t, "/app/x", c.Name, p, false)
		s.assertLoggedIn(t, resp, body, "app /x")
	})

	t.Run("a signature", func(t *testing.T) {
		// An attribute-based signature that discloses over18=yes is no
		// login.
		sig := s.finishedSession(ctx, t, alice, irma.NewSignatureRequest("I am over 18.", over18))
		sig.Route, sig.Return = "policy:adults", "/adults/"
		calls := s.upstream.calls.Load()
		resp, body := s.present(t, "/adults/", adults, sig, false)
		s.assertRefused(t, resp, body, false, calls)

		// The same with the pointer of a finished disclosure whose
		// credential expiry is still unused: only the result's type is
		// left to refuse it.
		login := disclosed(t, alice)
		mixed := login
		mixed.Token = sig.Token
		resp, body = s.present(t, "/adults/", adults, mixed, true)
		s.assertRefused(t, resp, body, true, calls)
		// Control: the disclosure itself logs in.
		resp, body = s.present(t, "/adults/", adults, login, false)
		s.assertLoggedIn(t, resp, body, "upstream /adults/")
	})

	t.Run("an issuance", func(t *testing.T) {
		// An issuance that asked over18=yes to be disclosed first is no
		// login either.
		iss := s.finishedSession(ctx, t, alice, irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: s.scheme.Credential(demoscheme.CredentialMembership),
			Attributes:       map[string]string{"club": "Caddy demo club", "level": "silver"},
		}}, over18))
		iss.Route, iss.Return = "policy:adults", "/adults/"
		calls := s.upstream.calls.Load()
		resp, body := s.present(t, "/adults/", adults, iss, false)
		s.assertRefused(t, resp, body, false, calls)

		login := disclosed(t, alice)
		mixed := login
		mixed.Token = iss.Token
		resp, body = s.present(t, "/adults/", adults, mixed, false)
		s.assertRefused(t, resp, body, false, calls)
		resp, body = s.present(t, "/adults/", adults, login, false)
		s.assertLoggedIn(t, resp, body, "upstream /adults/")
	})
}

// TestUnpairedWalletBlocked checks the pairing of a route that asks a
// value: a wallet that connects to the session but whose pairing nobody
// confirmed gets nowhere, and the browser gets no login. The code itself is
// compared by the page (or, for a script, by its client): irmaserver's
// frontend endpoints take no code, only the frontend authorization, and
// hold the session in PAIRING until it comes. The gateway's part is to
// turn pairing on for the session and to keep the authorization from
// anyone but the browser that started it.
func TestUnpairedWalletBlocked(t *testing.T) {
	site := newAuthSite(t)
	s := &refusalSite{authSite: site, keys: storedCookieKeys(t, site)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	codes := make(chan string, 1)
	alice := s.newWalletPairing(t, "alice@example.com", "yes", func(code string) {
		select {
		case codes <- code:
		default: // the test reads the first code only
		}
	})
	srv, err := s.app.Server()
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	sess, err := wallet.FetchSession(ctx, b.c, s.base+"/adults/")
	if err != nil {
		t.Fatal(err)
	}
	if sess.Pairing == nil {
		t.Error("/adults/ asks a value but does not pair")
	}
	c := b.cookie(s.base, pendingCookieName("policy:adults"))
	if c == nil {
		t.Fatal("no pending cookie for /adults/")
	}
	var p pendingCookie
	if err := s.keys.Open(c.Name, c.Value, &p, time.Now()); err != nil {
		t.Fatal(err)
	}
	status := func() irma.ServerStatus {
		t.Helper()
		res, err := srv.GetSessionResult(irma.RequestorToken(p.Token))
		if err != nil {
			t.Fatal(err)
		}
		return res.Status
	}

	// The wallet scans the QR code, as a phone that is not the visitor's
	// could, and shows its code; nobody confirms it.
	type outcome struct {
		res *wallet.Result
		err error
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan outcome, 1)
	go func() {
		res, err := alice.Run(runCtx, sess.Pointer, wallet.Accept)
		done <- outcome{res, err}
	}()
	select {
	case <-codes:
	case o := <-done:
		t.Fatalf("the session ended without pairing: %s, %v, server status %s", o.res.Outcome, o.err, status())
	case <-ctx.Done():
		t.Fatal("the wallet never showed a pairing code")
	}
	if got := status(); got != irma.ServerStatusPairing {
		t.Fatalf("session status %s after the wallet connected, want PAIRING", got)
	}

	// Confirming the pairing takes the browser's frontend authorization:
	// none, or another session's, does not do.
	other, err := wallet.FetchSession(ctx, newBrowser(t).c, s.base+"/adults/")
	if err != nil || other.Pairing == nil {
		t.Fatalf("a second session: %+v, %v", other, err)
	}
	for name, auth := range map[string]string{"no": "", "another session's": other.Pairing.Authorization} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sess.Pairing.CompletedURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("pairing confirmed with %s authorization: %d", name, resp.StatusCode)
		}
		if got := status(); got != irma.ServerStatusPairing {
			t.Errorf("session status %s after a confirmation with %s authorization, want PAIRING", got, name)
		}
	}

	// The browser is still shown the same session, and not logged in.
	calls := s.upstream.calls.Load()
	resp, body := b.get(s.base+"/adults/", nil)
	var info sessionpage.Info
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusUnauthorized ||
		info.SessionPtr == nil || info.SessionPtr.URL != sess.Pointer.URL {
		t.Errorf("while pairing: %d %.300s, want 401 with the same session", resp.StatusCode, body)
	}
	s.assertNoLogin(t, resp, calls)

	// The wallet gives up; the session never got to DONE.
	stop()
	select {
	case o := <-done:
		if o.res.Outcome != wallet.Cancelled {
			t.Errorf("the unpaired wallet's session: %+v, %v, want cancelled", o.res, o.err)
		}
	case <-ctx.Done():
		t.Fatal("the wallet did not return after its context was cancelled")
	}
	if res := waitResult(ctx, t, srv, irma.RequestorToken(p.Token)); res.Status == irma.ServerStatusDone || res.Disclosed != nil {
		t.Errorf("the unpaired session ended %s with %v", res.Status, res.Disclosed)
	}
	resp, body = b.get(s.base+"/adults/", nil)
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusUnauthorized ||
		info.SessionPtr == nil || info.SessionPtr.URL == sess.Pointer.URL {
		t.Errorf("after the unpaired session: %d %.300s, want 401 with a new session", resp.StatusCode, body)
	}
	s.assertNoLogin(t, resp, calls)

	// Control: once the frontend confirms the code that the wallet shows,
	// the same wallet logs in.
	b.login(ctx, alice, s.base+"/adults/")
	resp, body = b.get(s.base+"/adults/", nil)
	s.assertLoggedIn(t, resp, body, "upstream /adults/")
}
