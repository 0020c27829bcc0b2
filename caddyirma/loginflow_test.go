package caddyirma

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// The login flow, on its own: a fake IRMA server that hands out the
// results a test gives it, the real cookies, marks and JWTs, and a clock
// the test sets. The end-to-end tests (caddyirma/e2e) run the same flow
// with the real server and wallet.

const (
	emailID  = "caddy-demo.gateway.person.email"
	over18ID = "caddy-demo.gateway.person.over18"
)

func TestLoginFlow(t *testing.T) {
	t.Run("anonymous", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		w, login, err := s.get(false)
		if login != nil || err != nil || w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `IRMA realm="caddy-irma"` ||
			w.Header().Get("Cache-Control") != "no-store" || !s.pending() {
			t.Fatalf("JSON: %v %v %d %v, pending %v", login, err, w.Code, w.Header(), s.pending())
		}
		var info sessionpage.Info
		if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || info.SessionPtr.URL != "https://gw.example/irma/session/client1" {
			t.Errorf("JSON answer %v: %s", err, w.Body)
		}
		if strings.Contains(w.Body.String(), "requestor1") {
			t.Error("the requestor token reached the browser")
		}
		if got := s.requested(1); !strings.Contains(got, emailID) {
			t.Errorf("asked %s", got)
		}
		w, _, _ = s.get(true)
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || w.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("page: %d %v", w.Code, w.Header())
		}
		if s.srv.n != 1 {
			t.Errorf("%d sessions started, want 1: the page shows the pending one", s.srv.n)
		}
	})

	t.Run("login", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(30*day), emailID, "alice@example.com")
		w, login, err := s.get(false)
		if err != nil || login == nil || login.Attributes[emailID] != "alice@example.com" || !login.Expires.Equal(s.clock.t.Add(12*time.Hour)) {
			t.Fatalf("login %+v, %v (%d %s)", login, err, w.Code, w.Body)
		}
		if s.pending() || s.cookies[s.flow.login.cookies.name] == nil {
			t.Errorf("cookies after the login: %v", s.cookies)
		}
		token, err := s.flow.token(login)
		if err != nil || strings.Count(token, ".") != 2 {
			t.Errorf("token %q, %v", token, err)
		}
		// Logged in: the next request passes without a session.
		if _, again, err := s.get(false); again == nil || err != nil || again.ID != login.ID || s.srv.n != 1 {
			t.Errorf("second request: %+v %v, %d sessions", again, err, s.srv.n)
		}
		// Until the login ends.
		s.clock.t = login.Expires
		if _, again, _ := s.get(false); again != nil || s.srv.n != 2 {
			t.Errorf("after the login ended: %+v, %d sessions", again, s.srv.n)
		}
	})

	t.Run("running and retried", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.end(1, &server.SessionResult{Status: irma.ServerStatusConnected, Type: irma.ActionDisclosing})
		if w, _, _ := s.get(false); w.Code != http.StatusUnauthorized || s.srv.n != 1 || !strings.Contains(w.Body.String(), "client1") {
			t.Errorf("while running: %d, %d sessions: %s", w.Code, s.srv.n, w.Body)
		}
		s.srv.end(1, &server.SessionResult{Status: irma.ServerStatusCancelled, Type: irma.ActionDisclosing})
		if w, _, _ := s.get(false); w.Code != http.StatusUnauthorized || s.srv.n != 2 || !strings.Contains(w.Body.String(), "client2") {
			t.Errorf("after a cancel: %d, %d sessions: %s", w.Code, s.srv.n, w.Body)
		}
	})

	// Results that must not log anyone in reach the flow here, as they
	// cannot through the wallet (which refuses to disclose what a request
	// does not ask for).
	refused := func(t *testing.T, s *flowSite) {
		t.Helper()
		w, login, err := s.get(false)
		if login != nil || err != nil || w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "login_refused") {
			t.Fatalf("want a refusal, got %+v %v %d %s", login, err, w.Code, w.Body)
		}
		if s.cookies[s.flow.login.cookies.name] != nil || s.pending() {
			t.Errorf("cookies after a refusal: %v", s.cookies)
		}
		if w, _, _ = s.get(true); w.Code != http.StatusUnauthorized {
			t.Errorf("after a refusal, a new login: %d", w.Code)
		}
	}
	t.Run("refused: another value", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, over18ID+"=yes")
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), over18ID, "no")
		refused(t, s)
	})
	t.Run("refused: too little", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID+" and "+over18ID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		refused(t, s)
	})
	t.Run("refused: another type", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		res, _ := s.srv.GetSessionResult("requestor1")
		res.Type = irma.ActionSigning
		refused(t, s)
	})
	t.Run("refused: invalid proofs", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		res, _ := s.srv.GetSessionResult("requestor1")
		res.ProofStatus = irma.ProofStatusExpired
		refused(t, s)
	})
	t.Run("refused: no credential expiry", func(t *testing.T) {
		// A result counts once: its mark is gone after the first use, as it
		// is when the proofs went to another gateway.
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		if _, ok, _ := takeCredentialExpiry(context.Background(), s.srv.store, "client1", time.Second); !ok {
			t.Fatal("no mark to take")
		}
		refused(t, s)
	})
	t.Run("proofs recorded after DONE", func(t *testing.T) {
		// The login page sees DONE from irmaserver a moment before the
		// gateway has recorded the proofs it accepted: the login waits.
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		expiry := s.clock.t.Add(time.Hour)
		s.srv.finish(t, 1, expiry, emailID, "alice@example.com")
		recorded, _, _ := s.srv.store.Take(context.Background(), credentialExpiryKey("client1"))
		_, _, _ = s.srv.store.Take(context.Background(), proofsAcceptedKey("client1"))
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = s.srv.store.Add(context.Background(), proofsAcceptedKey("client1"), nil, time.Hour)
			_ = s.srv.store.Put(context.Background(), credentialExpiryKey("client1"), recorded, time.Hour)
		}()
		if _, login, err := s.get(false); login == nil || err != nil || !login.Expires.Equal(expiry) {
			t.Errorf("login %+v, %v", login, err)
		}
	})
	t.Run("refused: proofs never accepted", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.flow.proofsWait = 50 * time.Millisecond
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		_, _, _ = s.srv.store.Take(context.Background(), credentialExpiryKey("client1"))
		_, _, _ = s.srv.store.Take(context.Background(), proofsAcceptedKey("client1"))
		refused(t, s)
	})
	t.Run("refused: expired credential", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t, emailID, "alice@example.com")
		refused(t, s)
	})
	t.Run("replayed pending cookie", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		kept := *s.cookies[s.flow.login.cookies.pendingName(s.flow.route)]
		if _, login, _ := s.get(false); login == nil {
			t.Fatal("no login")
		}
		thief := newFlowSite(t, 12*time.Hour, emailID)
		thief.flow, thief.srv, thief.clock = s.flow, s.srv, s.clock
		thief.cookies[kept.Name] = &kept
		refused(t, thief)
	})
	t.Run("another route's session", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		// The same cookie under this route's name, for another route.
		other := *s.flow
		other.route = "route:other"
		s.flow = &other
		if w, login, _ := s.get(false); login != nil || w.Code != http.StatusUnauthorized || s.srv.n != 2 {
			t.Errorf("another route's session logged in: %+v %d, %d sessions", login, w.Code, s.srv.n)
		}
	})
	t.Run("store down", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.broken = errors.New("redis: connection refused")
		if w, login, err := s.get(false); login != nil || statusOf(w, err) != http.StatusServiceUnavailable || !s.pending() {
			t.Errorf("with the store down: %+v %v, pending %v", login, err, s.pending())
		}
	})

	t.Run("step-up", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		_, first, _ := s.get(false)
		both := *s.flow
		r1, _ := policy.ParseRequirement(emailID)
		r2, _ := policy.ParseRequirement(over18ID + "=yes")
		both.policy = policy.Policy{Requirements: []policy.Requirement{r1, r2}}
		both.route = "route:both"
		s.flow = &both
		s.get(false)
		// What is missing, and what the login holds (its value is checked
		// afterwards): the one session binds the new credential to the
		// login's wallet.
		want := `[[[{"type":"` + over18ID + `","value":"yes","notNull":true}]],[[{"type":"` + emailID + `","notNull":true}]]]`
		if got := s.requested(2); got != want {
			t.Errorf("the step-up asks %s, want %s", got, want)
		}
		s.srv.finish(t, 2, s.clock.t.Add(time.Hour), over18ID, "yes", emailID, "alice@example.com")
		_, login, err := s.get(false)
		if err != nil || login == nil || login.ID != first.ID || len(login.Attributes) != 2 || !login.Expires.Equal(first.Expires) {
			t.Fatalf("stepped up: %+v %v (first %+v)", login, err, first)
		}
	})
	t.Run("step-up without the login's attributes", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		s.get(false)
		adults := *s.flow
		r, _ := policy.ParseRequirement(over18ID + "=yes")
		adults.policy = policy.Policy{Requirements: []policy.Requirement{r}}
		adults.route = "route:adults"
		s.flow = &adults
		s.get(false)
		s.srv.finish(t, 2, s.clock.t.Add(time.Hour), over18ID, "yes") // another wallet's
		w, login, _ := s.get(false)
		if login != nil || w.Code != http.StatusForbidden {
			t.Errorf("a step-up that shows nothing of the login: %+v %d", login, w.Code)
		}
	})
	t.Run("step-up with another person's value", func(t *testing.T) {
		s := newFlowSite(t, 12*time.Hour, emailID)
		s.get(false)
		s.srv.finish(t, 1, s.clock.t.Add(time.Hour), emailID, "alice@example.com")
		s.get(false)
		both := *s.flow
		both.policy = policy.Policy{Requirements: []policy.Requirement{{Options: []policy.Conjunction{{{Type: emailID}, {Type: over18ID}}}}}}
		both.route = "route:both"
		s.flow = &both
		s.get(false)
		s.srv.finish(t, 2, s.clock.t.Add(time.Hour), emailID, "mallory@example.com", over18ID, "yes")
		w, login, _ := s.get(false)
		if login != nil || w.Code != http.StatusForbidden {
			t.Errorf("a step-up that changes a value: %+v %d", login, w.Code)
		}
	})
}

// TestLoginFlowWeekdays proves the bound of a login by its credential on
// every day of the week: IRMA rounds a credential's signing date down to
// its weekly epochs (which begin on Thursdays, 00:00 UTC), and its expiry
// to whole weeks from there, so a credential issued for "a week" may
// expire in three days. A login lasts to the first of the cookie lifetime
// and that expiry, never past it, and never ends before it begins.
func TestLoginFlowWeekdays(t *testing.T) {
	// irmago's rounding (MetadataAttribute.setSigningDate, setExpiryDate).
	issued := func(at time.Time, validity time.Duration) time.Time {
		signing := irma.FloorToEpochBoundary(at)
		weeks := int64(at.Add(validity).Sub(signing) / (irma.ExpiryFactor * time.Second))
		return signing.Add(time.Duration(weeks*irma.ExpiryFactor) * time.Second)
	}
	seen := map[time.Weekday]bool{}
	for d := range 7 {
		for _, hour := range []int{0, 11, 23} {
			now := time.Date(2026, 11, 30+d, hour, 30, 0, 0, time.UTC)
			seen[now.Weekday()] = true
			credExpiry := issued(now, 7*day)
			if !credExpiry.After(now) || credExpiry.After(now.Add(7*day)) {
				t.Fatalf("%s: a week's credential expires %s", now.Format(time.RFC1123), credExpiry)
			}
			for _, c := range []struct {
				lifetime time.Duration
				want     time.Time
			}{
				{100 * day, credExpiry},                               // the credential ends it
				{time.Hour, earliest(now.Add(time.Hour), credExpiry)}, // the cookie, or an epoch's end
			} {
				s := newFlowSite(t, c.lifetime, emailID)
				s.clock.t = now
				s.get(false)
				s.srv.finish(t, 1, credExpiry, emailID, "alice@example.com")
				_, login, err := s.get(false)
				if err != nil || login == nil {
					t.Fatalf("%s, lifetime %s: no login: %v", now.Format(time.RFC1123), c.lifetime, err)
				}
				cookie := s.cookies[s.flow.login.cookies.name]
				if !login.Expires.Equal(c.want) || !cookie.Expires.Equal(c.want) {
					t.Errorf("%s, lifetime %s: the login ends %s, its cookie %s, want %s",
						now.Format(time.RFC1123), c.lifetime, login.Expires, cookie.Expires, c.want)
				}
			}
		}
	}
	if len(seen) != 7 {
		t.Fatalf("ran on %d weekdays", len(seen))
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestLoginFlowPairing: the flow starts sessions with the pairing its
// route asks for.
func TestLoginFlowPairing(t *testing.T) {
	for mode, want := range map[string]bool{PairingOn: true, PairingOff: false, PairingAuto: false} {
		s := newFlowSite(t, time.Hour, emailID)
		s.flow.pairing = mode
		w, _, _ := s.get(false)
		var info sessionpage.Info
		if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
			t.Fatal(err)
		}
		// A client that runs the session itself shows the code to its user.
		if got := info.Frontend.PairingCode == "1234" && info.Frontend.PairingCompletedURL != ""; got != want {
			t.Errorf("pairing %s: the JSON says pairing %v, want %v", mode, got, want)
		}
		p := s.flow.login.cookies.readPending(&http.Request{Header: http.Header{"Cookie": {s.cookies[s.flow.login.cookies.pendingName(s.flow.route)].String()}}}, s.flow.route, s.clock.t)
		if p == nil || (p.PairingCode != "") != want {
			t.Errorf("pairing %s: pending %+v, want pairing %v", mode, p, want)
		}
	}
}
