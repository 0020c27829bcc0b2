package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testkeys"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRequestorFeaturesLikeIRMAServer runs the same requests, with the
// same real wallet, against the gateway and against irma server itself
// (irmago v1.3.0's `yivi irma server`, built for the test), and compares
// what a requestor sees of each: a chained disclose-then-issue session
// (what the wallet is asked, both sessions' results, the signed result
// posted to the next-session URL, the next session's callback), a chain
// that ends (204), a next-session URL that fails and a next session the
// requestor may not start (the app's error, the session's end), a static
// session scanned twice (a fresh session each time, its callback) and
// chained, and the error for an empty next-session URL.
func TestRequestorFeaturesLikeIRMAServer(t *testing.T) {
	gw := startCompared(t)
	is := startComparedIRMAServer(t, gw.c)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s *comparedServer) []string
	}{
		{"chain", comparedChain},
		{"chain ends", func(t *testing.T, s *comparedServer) []string { return s.chainOutcome(t, "/end") }},
		{"next-session URL fails", func(t *testing.T, s *comparedServer) []string { return s.chainOutcome(t, "/broken") }},
		{"next session not permitted", func(t *testing.T, s *comparedServer) []string { return s.chainOutcome(t, "/club") }},
		{"static session", comparedStatic},
		{"empty next-session URL", func(t *testing.T, s *comparedServer) []string {
			// irma server answers the error and then starts the session
			// anyway, its package after the error in the body (it does not
			// return after the error); the requestor reads the error.
			code, b := postSession(t, s.api, `{"nextSession":{"url":""},"request":`+emailDisclosure+`}`, "application/json", callbackToken)
			var e irma.RemoteError
			err := json.NewDecoder(strings.NewReader(string(b))).Decode(&e)
			return []string{fmt.Sprint(code), fmt.Sprintf("%+v %v", e, err)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, got := tc.run(t, is), tc.run(t, gw)
			t.Logf("both:\n  %s", strings.Join(got, "\n  "))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the gateway:\n  %s\nirma server:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

const emailDisclosure = `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`

// comparedServer is one of the two: its requestor API, the base of its
// session URLs (where static sessions are), its result JWT key, and the
// requestor's servers that it posts to.
type comparedServer struct {
	c        *callbackAPI
	api      string
	sessions string
	pk       any
	next     *nextSessions
	callback string
	bodies   <-chan []byte
}

// startCompared is the gateway: the requestor API of startCallbackAPI,
// with a result JWT key and the static sessions door and hall.
func startCompared(t *testing.T) *comparedServer {
	s := &comparedServer{}
	s.callback, s.bodies = receiver(t)
	s.next = startNextSessions(t, s.callback)
	s.c = startCallbackAPI(t, "jwt_privkey_file "+testkeys.WriteRSA(t)+
		fmt.Sprintf("\n\t\tstatic_session door `%s`", withCallback(s.callback))+
		fmt.Sprintf("\n\t\tstatic_session hall `{\"nextSession\":{\"url\":%q},\"request\":%s}`", s.next.url+"/email", emailDisclosure))
	s.api, s.sessions = s.c.api, strings.TrimSuffix(s.c.api, "/api/irma")+"/irma/session/"
	s.pk = s.c.publicKey(t)
	return s
}

// startComparedIRMAServer is irma server with the same requestor, key
// and static sessions, on the same scheme, for the same wallet.
func startComparedIRMAServer(t *testing.T, gw *callbackAPI) *comparedServer {
	s := &comparedServer{c: &callbackAPI{wallet: gw.wallet}}
	s.callback, s.bodies = receiver(t)
	s.next = startNextSessions(t, s.callback)
	port := caddytest.PortToTry(t)
	s.api = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.c.api = s.api
	var static map[string]json.RawMessage
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{"door":%s,"hall":{"nextSession":{"url":%q},"request":%s}}`,
		withCallback(s.callback), s.next.url+"/email", emailDisclosure)), &static); err != nil {
		t.Fatal(err)
	}
	runIRMAServer(t, s.api, map[string]any{
		"url": s.api + "/", "no_auth": false, "listen_addr": "127.0.0.1", "port": port, "no_tls": true,
		"schemes_path": gw.gateway.scheme.SchemesPath, "privkeys": gw.gateway.scheme.PrivateKeysPath, "schemes_update": 0,
		"jwt_privkey_file": testkeys.WriteRSA(t),
		// Global permissions apply to every requestor and to the next
		// sessions of static sessions: the person's attributes only.
		"disclose_perms": []string{"caddy-demo.gateway.person.*"}, "sign_perms": []string{"caddy-demo.gateway.person.*"},
		"issue_perms": []string{},
		"requestors": map[string]any{"app": map[string]any{"auth_method": "token", "key": callbackToken,
			"disclose_perms": []string{"caddy-demo.gateway.person.*"}, "issue_perms": []string{"caddy-demo.gateway.person"}}},
		"static_sessions": static,
		// The demo scheme's revocable type: irma server starts only when
		// it knows where its revocation server is (none of this test's
		// sessions needs it).
		"revocation_settings": map[string]any{"caddy-demo.gateway.staff": map[string]string{"revocation_server_url": "https://127.0.0.1:1/"}},
	})
	s.sessions = s.api + "/irma/session/"
	_, pub := s.c.get(t, "/publickey")
	var err error
	if s.pk, err = jwt.ParseRSAPublicKeyFromPEM(pub); err != nil {
		t.Fatalf("irma server's publickey: %v: %s", err, pub)
	}
	return s
}

// claims verifies a posted result JWT and says what a requestor reads of
// it: its issuer, subject, status, and the values disclosed.
func (s *comparedServer) claims(t *testing.T, body []byte) string {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(string(body), claims, func(*jwt.Token) (any, error) { return s.pk, nil },
		jwt.WithValidMethods([]string{"RS256"})); err != nil {
		return fmt.Sprintf("a result that does not verify: %v: %.100s", err, body)
	}
	var res server.SessionResult
	b, _ := json.Marshal(claims)
	_ = json.Unmarshal(b, &res)
	return fmt.Sprintf("posted: iss %v, sub %v, %s", claims["iss"], claims["sub"], resultSummary(&res))
}

// resultSummary is what a requestor reads of a result, tokens aside.
func resultSummary(res *server.SessionResult) string {
	var values []string
	for _, con := range res.Disclosed {
		for _, attr := range con {
			if attr.RawValue != nil {
				values = append(values, attr.Identifier.String()+"="+*attr.RawValue)
			}
		}
	}
	return fmt.Sprintf("%s %s %s %v next:%v", res.Type, res.Status, res.ProofStatus, values, res.NextSession != "")
}

func (s *comparedServer) result(t *testing.T, token irma.RequestorToken) string {
	t.Helper()
	var res server.SessionResult
	code, b := s.c.get(t, "/session/"+string(token)+"/result")
	if code != 200 || json.Unmarshal(b, &res) != nil {
		return fmt.Sprintf("result: %d %s", code, b)
	}
	return "result: " + resultSummary(&res)
}

// walletSummary is what the wallet was asked and how it ended.
func walletSummary(res *wallet.Result, err error) string {
	var asked []string
	for _, r := range res.Requests {
		asked = append(asked, string(r.Type))
	}
	outcome := string(res.Outcome)
	for _, phrase := range []string{"Error starting next session", "next session not authorized"} {
		if err != nil && strings.Contains(err.Error(), phrase) {
			outcome += ": " + phrase
		}
	}
	return fmt.Sprintf("wallet: asked %v, %s", asked, outcome)
}

func comparedChain(t *testing.T, s *comparedServer) []string {
	token, res, err := s.c.chain(t, s.next.url+"/issue")
	out := []string{walletSummary(res, err), s.result(t, token)}
	if posts := s.next.posted("/issue"); len(posts) == 1 {
		out = append(out, s.claims(t, []byte(posts[0])))
	} else {
		out = append(out, fmt.Sprintf("%d posts to the next-session URL", len(posts)))
	}
	var first server.SessionResult
	if _, b := s.c.get(t, "/session/"+string(token)+"/result"); json.Unmarshal(b, &first) == nil && first.NextSession != "" {
		out = append(out, "next "+s.result(t, first.NextSession))
	}
	return append(out, "callback "+s.claims(t, receive(t, s.bodies)))
}

// chainOutcome runs a chain to the next-session server's path and says
// how it ended, once its status no longer changes (the app cancels a
// session that it cannot go on with).
func (s *comparedServer) chainOutcome(t *testing.T, path string) []string {
	token, res, err := s.c.chain(t, s.next.url+path)
	out := []string{walletSummary(res, err), fmt.Sprintf("%d posts", len(s.next.posted(path)))}
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if last = s.result(t, token); strings.Contains(last, string(irma.ServerStatusDone)) || strings.Contains(last, string(irma.ServerStatusCancelled)) {
			break
		}
	}
	return append(out, last)
}

func comparedStatic(t *testing.T, s *comparedServer) []string {
	var out []string
	tokens := map[string]bool{}
	for _, name := range []string{"door", "door", "hall"} {
		req, _ := http.NewRequest(http.MethodPost, s.sessions+name, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ptr irma.Qr
		err = json.NewDecoder(resp.Body).Decode(&ptr)
		resp.Body.Close()
		out = append(out, fmt.Sprintf("POST %s: %d %s %v", name, resp.StatusCode, ptr.Type, err == nil && strings.HasPrefix(ptr.URL, s.sessions)))
		if err != nil {
			continue
		}
		tokens[ptr.URL] = true
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		res, err := s.c.wallet.Run(ctx, &ptr, wallet.Accept)
		cancel()
		out = append(out, walletSummary(res, err))
		if name == "door" {
			out = append(out, "callback "+s.claims(t, receive(t, s.bodies)))
		}
	}
	return append(out, fmt.Sprintf("%d sessions", len(tokens)), fmt.Sprintf("%d posts to the next-session URL", len(s.next.posted("/email"))))
}

// runIRMAServer runs irma server (yivi v1.3.0, built for the test) with
// conf as its configuration file until the test ends, and waits until it
// answers at url.
func runIRMAServer(t *testing.T, url string, conf map[string]any) {
	t.Helper()
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "irmaserver.yml") // YAML reads JSON
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(yiviBinary(t), "irma", "server", "--config", file)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	startProcess(t, "irma server", cmd, regexp.MustCompile(`Server listening at (\S+)`))
	caddytest.WaitHTTP(t, url+"/health")
}
