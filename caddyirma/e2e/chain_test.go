package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// nextSessions is a requestor's next-session server: irmaserver posts the
// result of a session to one of its paths and it answers with what the
// path says. It keeps every body it is posted, by path.
type nextSessions struct {
	url   string
	mu    sync.Mutex
	posts map[string][]string
}

func startNextSessions(t *testing.T, callback string) *nextSessions {
	n := &nextSessions{posts: map[string][]string{}}
	issue := fmt.Sprintf(`{"callbackUrl":%q,"request":{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Carol Chained","email":"carol.callback@example.com","over18":"yes"}}]}}`, callback)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		n.mu.Lock()
		n.posts[r.URL.Path] = append(n.posts[r.URL.Path], string(b))
		n.mu.Unlock()
		switch r.URL.Path {
		case "/issue": // after the disclosure, an issuance
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, issue)
		case "/email": // after the disclosure, another
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.fullname"]]]}`)
		case "/end": // no next session
			w.WriteHeader(http.StatusNoContent)
		case "/club": // a disclosure the requestor may not ask for
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.membership.club"]]]}`)
		default: // the requestor's server fails
			http.Error(w, "the requestor's server is broken", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	n.url = srv.URL
	return n
}

func (n *nextSessions) posted(path string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.posts[path]...)
}

// TestChainedSessions: a session request's nextSession chains sessions as
// irma server does. The requestor API starts a disclosure whose
// next-session URL the requestor's server answers with an issuance: the
// real wallet discloses, the gateway posts the signed result there, and
// the wallet goes on with the issuance without a new QR code; the
// issuance's own callback gets its result, and the first session's result
// names the next session. A next-session URL that answers 204 ends the
// chain after the first session; one that fails, or that answers with a
// session the requestor may not start, ends the wallet's session with the
// error, and no next session starts. In memory and in Redis.
func TestChainedSessions(t *testing.T) {
	withResultKey(t, testChains)
}

func testChains(t *testing.T, irmaExtra string) {
	c := startCallbackAPI(t, irmaExtra)
	callback, callbacks := receiver(t)
	next := startNextSessions(t, callback)
	pk := c.publicKey(t)

	t.Run("disclose then issue", func(t *testing.T) {
		token, res, err := c.chain(t, next.url+"/issue")
		if err != nil || len(res.Requests) != 2 || res.Requests[0].Type != irma.ActionDisclosing || res.Requests[1].Type != irma.ActionIssuing ||
			len(res.Issued) != 1 || !strings.Contains(fmt.Sprint(res.Issued[0].Attributes), "Carol Chained") {
			t.Fatalf("the wallet's chain: %+v, %v", res, err)
		}
		posts := next.posted("/issue")
		if len(posts) != 1 {
			t.Fatalf("the next-session URL was posted %d times", len(posts))
		}
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(posts[0], claims, func(*jwt.Token) (any, error) { return pk, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("irmaserver"), jwt.WithSubject("disclosing_result")); err != nil {
			t.Fatalf("the posted result %.200s: %v", posts[0], err)
		}
		var first server.SessionResult
		if b, _ := json.Marshal(claims); json.Unmarshal(b, &first) != nil || first.Token != token || first.ProofStatus != irma.ProofStatusValid ||
			len(first.Disclosed) != 1 || *first.Disclosed[0][0].RawValue != "carol.callback@example.com" {
			t.Errorf("the posted result: %+v", first)
		}
		// The first session's result names the next, which the requestor follows with its token.
		var result server.SessionResult
		if code, b := c.get(t, "/session/"+string(token)+"/result"); code != 200 || json.Unmarshal(b, &result) != nil ||
			result.Status != irma.ServerStatusDone || result.NextSession == "" {
			t.Fatalf("the first session's result: %d %s", code, b)
		}
		var issued server.SessionResult
		if code, b := c.get(t, "/session/"+string(result.NextSession)+"/result"); code != 200 || json.Unmarshal(b, &issued) != nil ||
			issued.Status != irma.ServerStatusDone || issued.Type != irma.ActionIssuing ||
			len(issued.Disclosed) != 1 || *issued.Disclosed[0][0].RawValue != "carol.callback@example.com" {
			t.Fatalf("the next session's result: %d %s", code, b)
		}
		// The issuance's callback, from the requestor's next request, is posted as any other.
		claims = jwt.MapClaims{}
		body := receive(t, callbacks)
		if _, err := jwt.ParseWithClaims(string(body), claims, func(*jwt.Token) (any, error) { return pk, nil },
			jwt.WithIssuer("irmaserver"), jwt.WithSubject("issuing_result")); err != nil || claims["token"] != string(result.NextSession) {
			t.Errorf("the next session's callback %.200s: %v", body, err)
		}
		// The gateway follows the chained session to its end, as one the
		// requestor started: the audit log has the first issuance (Carol's
		// credential) and this one.
		done := `"decision":"requestor_session","outcome":"done","requestor":"app","session":"issuing"`
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if n := strings.Count(readLog(t, c.log, done), done); n == 2 {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the audit log has %d done issuances, want 2", n)
			}
		}
	})

	t.Run("ends", func(t *testing.T) {
		token, res, err := c.chain(t, next.url+"/end")
		if err != nil || len(res.Requests) != 1 {
			t.Fatalf("the wallet: %+v, %v", res, err)
		}
		if len(next.posted("/end")) != 1 {
			t.Error("the result was not posted to the next-session URL")
		}
		var result server.SessionResult
		if code, b := c.get(t, "/session/"+string(token)+"/result"); code != 200 || json.Unmarshal(b, &result) != nil ||
			result.Status != irma.ServerStatusDone || result.NextSession != "" {
			t.Errorf("the session's result: %d %s", code, b)
		}
	})

	for _, tc := range []struct{ name, url, want string }{
		{"next-session URL fails", next.url + "/broken", "Error starting next session"},
		{"next-session URL down", "http://" + caddytest.RefusedAddr(t) + "/next", "Error starting next session"},
		{"next session not permitted", next.url + "/club", "next session not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, res, err := c.chain(t, tc.url)
			if err == nil || res.Outcome == wallet.Success || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the wallet: %+v, %v; want an error with %q", res, err, tc.want)
			}
			// The app learns that the next session failed, not where: the
			// requestor's URL stays in the gateway's log.
			u, _ := url.Parse(tc.url)
			if strings.Contains(err.Error(), u.Host) || strings.Contains(err.Error(), u.Path) {
				t.Errorf("the wallet's error names the next-session URL: %v", err)
			}
			// The app cancels the session it could not go on with.
			var result server.SessionResult
			for deadline := time.Now().Add(10 * time.Second); result.Status != irma.ServerStatusCancelled && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if code, b := c.get(t, "/session/"+string(token)+"/result"); code != 200 || json.Unmarshal(b, &result) != nil || result.NextSession != "" {
					t.Fatalf("the session's result: %d %s", code, b)
				}
			}
			if result.Status != irma.ServerStatusCancelled {
				t.Errorf("the session is %s, not CANCELLED", result.Status)
			}
		})
	}

	code, b := postSession(t, c.api, `{"nextSession":{"url":"`+next.url+`/issue"},"request":{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}}`, "application/json", "")
	if code != 403 || !strings.Contains(string(b), "for authenticated requestors only") {
		t.Errorf("an unauthenticated chain: %d %s", code, b)
	}
}

// chain starts a disclosure of the email address as the requestor app,
// chained to nextURL, and runs it with the wallet, which agrees to all.
func (c *callbackAPI) chain(t *testing.T, nextURL string) (irma.RequestorToken, *wallet.Result, error) {
	t.Helper()
	body := fmt.Sprintf(`{"nextSession":{"url":%q},"request":{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}}`, nextURL)
	code, b := postSession(t, c.api, body, "application/json", callbackToken)
	var s server.SessionPackage
	if err := json.Unmarshal(b, &s); err != nil || code != 200 || s.SessionPtr == nil {
		t.Fatalf("POST /session: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := c.wallet.Run(ctx, s.SessionPtr, wallet.Accept)
	return s.Token, res, err
}
