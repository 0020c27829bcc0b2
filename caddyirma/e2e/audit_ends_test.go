package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The audit tour's sessions that give nothing: refused by the gateway,
// refused in the app, or never scanned.

// auditScanTimeout is the tour's scan_timeout: how long a session that no
// wallet scans lasts.
const auditScanTimeout = 10 * time.Second

// abandoned is a login that a browser started and no wallet scans.
type abandoned struct {
	b      *browser
	target string
	at     time.Time
}

// abandon starts a login at target in a browser of its own.
func (a *auditSecrets) abandon(t *testing.T, target string) abandoned {
	t.Helper()
	l := abandoned{b: newBrowser(t), target: target, at: time.Now()}
	a.start(t, l.b, target)
	return l
}

// comeBack returns to the abandoned login's target once its session has
// timed out: the gateway learns that it did, and starts another.
func (a *auditSecrets) comeBack(t *testing.T, l abandoned) {
	t.Helper()
	time.Sleep(time.Until(l.at.Add(auditScanTimeout + time.Second)))
	a.start(t, l.b, l.target)
}

// refusedLogin presents to /club/ a finished session in which w disclosed
// its membership level without being asked a value (gold, where the club
// asks platinum), in the pending cookie of /club/: a first login that the
// gateway refuses.
func (a *auditSecrets) refusedLogin(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	t.Helper()
	s := &refusalSite{authSite: a.k.s.authSite, keys: storedCookieKeys(t, a.k.s.authSite)}
	level := s.scheme.Attribute(demoscheme.CredentialMembership, "level")
	p := s.finishedSession(ctx, t, w, irma.NewDisclosureRequest(level))
	p.Route, p.Return = "policy:club", "/club/"
	name := pendingCookieName(p.Route)
	value, err := s.keys.Seal(name, p, time.Now().Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	a.all = append(a.all, value, p.Token, p.FrontendAuth, path.Base(p.Pointer))
	if resp, body := newBrowser(t).get(s.base+"/club/x", map[string]string{"Cookie": name + "=" + value}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the refused login: %d %.300s", resp.StatusCode, body)
	}
}

// refusedInApp runs a login, a signature and an issuance that w refuses in
// the app; the browsers of the login and the signature come back, and the
// gateway learns of the issuance by itself.
func (a *auditSecrets) refusedInApp(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	t.Helper()
	refuse := func(ptr *irma.Qr, pairing *wallet.Pairing) {
		t.Helper()
		if res, _ := w.RunSession(ctx, &wallet.Session{Pointer: ptr, Pairing: pairing}, wallet.Refuse); res.Outcome != wallet.Refused {
			t.Fatalf("the wallet did not refuse %s: %+v", ptr.URL, res)
		}
	}
	login := newBrowser(t)
	refuse(a.start(t, login, "/members/x"), nil)
	a.start(t, login, "/members/x") // another session
	// Not the tour's signer: at DEBUG, Caddy's error log holds the URI of
	// the answer (409), and with it the query that the message quotes.
	sign, unsigned := newBrowser(t), "/audit/sign?who=Nobody"
	refuse(a.start(t, sign, unsigned), nil)
	if resp, body := sign.get(a.k.s.base+unsigned, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("the signature refused in the app: %d %.300s", resp.StatusCode, body)
	}
	issue, err := wallet.FetchSession(ctx, newBrowser(t).c, a.k.s.base+"/issue?club="+auditClub)
	if err != nil {
		t.Fatal(err)
	}
	a.all = append(a.all, path.Base(issue.Pointer.URL))
	refuse(issue.Pointer, issue.Pairing)
}

// requestorCalls makes a requestor call that authenticates with a wrong
// token, and starts a requestor session that asks the app to scan it
// within a second, which no wallet does.
func (a *auditSecrets) requestorCalls(t *testing.T) {
	t.Helper()
	const wrong = "wrong-requestor-token-2a9c"
	a.all = append(a.all, wrong)
	if code, body := postSession(t, a.k.s.base+"/api/irma", auditDisclosure, "application/json", wrong); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("a wrong requestor token: %d %s", code, body)
	}
	a.requestorStart(t, `{"timeout":1,"request":`+auditDisclosure+`}`)
}

// requestorStart starts a session with body over the requestor API, keeps
// its secrets and returns its pointer.
func (a *auditSecrets) requestorStart(t *testing.T, body string) *irma.Qr {
	t.Helper()
	code, b := postSession(t, a.k.s.base+"/api/irma", body, "application/json", auditAPIToken)
	var started struct {
		SessionPtr      *irma.Qr                       `json:"sessionPtr"`
		Token           string                         `json:"token"`
		FrontendRequest struct{ Authorization string } `json:"frontendRequest"`
	}
	if err := json.Unmarshal(b, &started); err != nil || started.SessionPtr == nil {
		t.Fatalf("POST /session: %d %s", code, b)
	}
	a.all = append(a.all, started.Token, started.FrontendRequest.Authorization, path.Base(started.SessionPtr.URL))
	return started.SessionPtr
}

// auditDisclosure is the disclosure that the tour's requestor asks.
const auditDisclosure = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`

// waitAudit waits until the log file holds a line of each decision and
// outcome in want ("issuance done"): the gateway learns of the end of an
// issuance or a requestor session by reading its status now and then.
func waitAudit(t *testing.T, file string, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(3 * sessionWatchPeriod); ; time.Sleep(100 * time.Millisecond) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, w := range want {
			decision, outcome, _ := strings.Cut(w, " ")
			if !strings.Contains(string(b), `"decision":"`+decision+`","outcome":"`+outcome+`"`) {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit line %q", missing)
		}
	}
}

// sessionWatchPeriod is how often the gateway reads the status of a
// session that it watches (sessionWatchEvery in caddyirma/sessionwatch.go).
const sessionWatchPeriod = 2 * time.Second
