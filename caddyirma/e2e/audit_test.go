package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The audit tour's values: they appear nowhere else.
const (
	auditName     = "Alice Auditname-5c1e"
	auditEmail    = "alice.audit-5c1e@example.com"
	bobName       = "Bob Auditname-9d2f"
	bobEmail      = "bob.audit-9d2f@example.com"
	auditClub     = "Auditclub-3b7a"
	auditSigner   = "Signer-8e4c"
	auditAPIToken = "audit-requestor-token-6f1d"
)

// auditSecrets gathers what the tour handles that no log line may hold.
type auditSecrets struct {
	k   *logKit
	b   *browser
	all []string
}

// cookies adds the values of every cookie that the browser holds.
func (a *auditSecrets) cookies() {
	u, _ := url.Parse(a.k.s.base)
	for _, c := range a.b.jar.Cookies(u) {
		a.all = append(a.all, c.Value)
	}
}

// start answers a GET of target in b with its JSON 401, keeps the
// session's secrets (pending cookie, requestor, client and frontend
// tokens) and returns its pointer.
func (a *auditSecrets) start(t *testing.T, b *browser, target string) *irma.Qr {
	t.Helper()
	resp, body := b.get(a.k.s.base+target, nil)
	info := parseInfo(t, body)
	u, _ := url.Parse(info.SessionPtr.URL)
	a.all = append(a.all, a.k.pendingSecrets(t, resp)...)
	a.all = append(a.all, string(info.Frontend.Authorization), path.Base(u.Path))
	return info.SessionPtr
}

// session starts a session at target, runs it with w and comes back to
// target.
func (a *auditSecrets) session(ctx context.Context, t *testing.T, w *wallet.Wallet, target string) *http.Response {
	t.Helper()
	a.start(t, a.b, target)
	a.b.login(ctx, w, a.k.s.base+target)
	a.cookies()
	resp, _ := a.b.get(a.k.s.base+target, nil)
	a.cookies()
	return resp
}

// TestAuditLog: a tour (a login, a step-up, a refused step-up, forward
// auth, a signature, an issuance, a requestor session, a refused first
// login, a login, a signature and an issuance refused in the app, a login
// and a requestor session that time out, a requestor with a wrong token,
// and a logout) writes one audit line per decision, and no line of the
// whole log at DEBUG (irmago's included) holds an attribute value, a
// cookie, a token, the identity JWT or the message signed. Caddy's
// reverse_proxy is left out: at DEBUG it logs the headers it sends
// upstream, identity headers among them (see the README). Caddy's
// /metrics counts the tour's sessions and decisions (checkTourMetrics).
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	file, tokenFile := filepath.Join(dir, "server.log"), filepath.Join(dir, "requestor.token")
	// At DEBUG, Caddy logs its whole config: keys belong in files.
	if err := os.WriteFile(tokenFile, []byte(auditAPIToken), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &logKit{server: file}
	k.s = newCatalogueSiteWith(t, "scan_timeout "+auditScanTimeout.String(), "log {\n\t\toutput file "+file+"\n\t\tformat json\n\t\tlevel DEBUG\n\t\texclude http.handlers.reverse_proxy\n\t}",
		`handle /audit/sign {
		irma_sign {
			message "I, {http.request.uri.query.who}, agree."
			require caddy-demo.gateway.person.fullname
			pairing off
		}
	}
	handle /metrics {
		metrics
	}
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor auditapp {
				auth token
				key_file `+tokenFile+`
				disclose caddy-demo.gateway.person.*
			}
		}
	}`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice := k.s.newWalletLevel(t, auditName, auditEmail, "gold")
	bob := k.s.newWalletLevel(t, bobName, bobEmail, "platinum")
	a := &auditSecrets{k: k, b: newBrowser(t), all: []string{auditName, auditEmail, bobName, bobEmail, auditClub, auditSigner, auditAPIToken}}
	before := scrape(t, k.s.base+"/metrics")
	timedOut := a.abandon(t, "/adults/x")

	if resp := a.session(ctx, t, alice, "/adults/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the login: %d", resp.StatusCode)
	}
	if resp := a.session(ctx, t, alice, "/members/x"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the step-up: %d", resp.StatusCode)
	}
	// Bob's wallet steps up Alice's login: other values, refused.
	if resp := a.session(ctx, t, bob, "/club/x"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the refused step-up: %d", resp.StatusCode)
	}
	resp, _ := a.b.get(k.s.base+"/irma/auth?policy=members", nil)
	jwt := resp.Header.Get("X-Irma-Identity")
	a.all = append(a.all, jwtSecrets(t, jwt)...)
	if resp := a.session(ctx, t, alice, "/audit/sign?who="+auditSigner); resp.StatusCode != http.StatusOK {
		t.Fatalf("the signature: %d", resp.StatusCode)
	}
	sess, err := wallet.FetchSession(ctx, a.b.c, k.s.base+"/issue?club="+auditClub)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := alice.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("the issuance: %+v, %v", res, err)
	}
	a.requestorSession(ctx, t, alice)
	a.refusedLogin(ctx, t, alice)
	a.refusedInApp(ctx, t, alice)
	a.requestorCalls(t)
	a.comeBack(t, timedOut)
	a.cookies()
	logout, _ := k.s.send(t, k.s.nextCase(), wireRequest{method: "POST", target: "/irma/logout",
		lines: []string{"Sec-Fetch-Site: same-origin", k.s.cookieLine(a.b)}})
	if logout.StatusCode != http.StatusSeeOther {
		t.Fatalf("the logout: %d", logout.StatusCode)
	}

	waitAudit(t, file, "issuance done", "issuance cancelled", "requestor_session done", "requestor_session timeout")
	after := scrape(t, k.s.base+"/metrics")

	mark := "X-Irma-Logged-After-" + k.s.nextCase()
	k.s.send(t, k.s.nextCase(), wireRequest{method: "POST", target: "/open/x", body: "hello", lines: []string{"Trailer: " + mark}})
	log := k.read(t, file, mark)
	for _, secret := range a.all {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("the log holds %.80q", secret)
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, secret) {
					t.Logf("%.600s", l)
				}
			}
		}
	}
	checkAuditLines(t, log, jwtSubject(t, jwt))
	checkTourMetrics(t, before, after, a.all)
}

// requestorSession starts a disclosure over the requestor API and runs it
// with w.
func (a *auditSecrets) requestorSession(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	t.Helper()
	ptr := a.requestorStart(t, auditDisclosure)
	if res, err := w.Run(ctx, ptr, wallet.Accept); err != nil {
		t.Fatalf("the requestor session: %+v, %v", res, err)
	}
}

// jwtSubject is the sub of a JWT.
func jwtSubject(t *testing.T, token string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var claims struct{ Sub string }
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Sub == "" {
		t.Fatalf("the JWT's payload: %v %s", err, payload)
	}
	return claims.Sub
}

// auditLine is a line of irma.audit.
type auditLine struct {
	Logger, Msg, Decision, Outcome, Reason, Policy, Route, Subject, Requestor, Session string
	Attributes                                                                         []string
}

// auditWant is a line that the tour's audit log must hold.
type auditWant struct {
	decision, outcome, policy string
	attributes                []string
	subject                   bool // the subject of the tour's login
	check                     func(auditLine) bool
}

// checkAuditLines: one line per decision of the tour, with its fields (a
// decision and outcome that the tour has twice: two rows, two lines).
func checkAuditLines(t *testing.T, log, subject string) {
	t.Helper()
	var lines []auditLine
	for _, l := range strings.Split(log, "\n") {
		var line auditLine
		if json.Unmarshal([]byte(l), &line) == nil && line.Logger == "irma.audit" {
			lines = append(lines, line)
		}
	}
	issued := []string{"caddy-demo.gateway.membership.club", "caddy-demo.gateway.membership.level"}
	auditapp := func(l auditLine) bool { return l.Requestor == "auditapp" && l.Session == "disclosing" }
	firstLogin := func(l auditLine) bool {
		return l.Subject == "" && l.Reason == "" && strings.HasPrefix(l.Route, "policy:")
	}
	want := []auditWant{
		{"login", "granted", "adults", []string{"caddy-demo.gateway.person.over18"}, true, nil},
		{"step_up", "granted", "members", []string{"caddy-demo.gateway.person.email", "caddy-demo.gateway.person.fullname", "caddy-demo.gateway.person.over18"}, true, nil},
		{"step_up", "refused", "club", nil, true, func(l auditLine) bool { return strings.Contains(l.Reason, "other values") }},
		{"signature", "granted", "", []string{"caddy-demo.gateway.person.fullname"}, false, nil},
		{"issuance", "started", "", issued, false, nil},
		{"issuance", "started", "", issued, false, nil},
		{"issuance", "done", "", issued, false, nil},
		{"issuance", "cancelled", "", issued, false, nil},
		{"requestor_session", "started", "", nil, false, auditapp},
		{"requestor_session", "started", "", nil, false, auditapp},
		{"requestor_session", "done", "", nil, false, auditapp},
		{"requestor_session", "timeout", "", nil, false, auditapp},
		{"requestor_session", "unauthenticated", "", nil, false, func(l auditLine) bool { return l.Requestor == "" && l.Session == "" }},
		{"login", "refused", "club", []string{"caddy-demo.gateway.membership.level"}, false,
			func(l auditLine) bool {
				return l.Subject == "" && strings.Contains(l.Reason, "do not satisfy the policy")
			}},
		{"login", "cancelled", "members", nil, false, firstLogin},
		{"login", "timeout", "adults", nil, false, firstLogin},
		{"signature", "cancelled", "", nil, false, func(l auditLine) bool { return strings.HasPrefix(l.Route, "sign:") }},
		{"logout", "granted", "", nil, true, nil},
	}
	same := func(w auditWant, decision, outcome, policy string) bool {
		return w.decision == decision && w.outcome == outcome && w.policy == policy
	}
	for _, w := range want {
		var found []auditLine
		for _, l := range lines {
			if same(w, l.Decision, l.Outcome, l.Policy) {
				found = append(found, l)
			}
		}
		if n := len(slices.DeleteFunc(slices.Clone(want), func(v auditWant) bool { return !same(w, v.decision, v.outcome, v.policy) })); len(found) != n {
			t.Errorf("%s %s %s: %d audit lines, want %d: %+v", w.decision, w.outcome, w.policy, len(found), n, lines)
			continue
		}
		for _, l := range found {
			if l.Msg != "decision" || (w.attributes != nil && !slices.Equal(l.Attributes, w.attributes)) ||
				(w.subject && l.Subject != subject) || (w.check != nil && !w.check(l)) {
				t.Errorf("%s %s: %+v, want attributes %v, subject %v", w.decision, w.outcome, l, w.attributes, fmt.Sprint(w.subject))
			}
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d audit lines, want %d: %+v", len(lines), len(want), lines)
	}
}
