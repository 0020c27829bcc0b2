package e2e

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

const callbackToken = "callback-requestor-token-7a2e"

// callbackAPI is a gateway whose requestor API lets the token requestor
// "app" issue and disclose caddy-demo.gateway.person, and anyone disclose
// it unauthenticated; the irma option has irmaExtra, and the server log
// goes to a JSON file.
type callbackAPI struct {
	api, log string
	wallet   *wallet.Wallet
	gateway  *gateway
}

func startCallbackAPI(t *testing.T, irmaExtra string) *callbackAPI {
	t.Helper()
	g := newGateway(t)
	c := &callbackAPI{api: g.base + "/api/irma", log: filepath.Join(t.TempDir(), "server.log"), gateway: g}
	config := g.config(irmaExtra, `irma_endpoints
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token `+callbackToken+`
				disclose caddy-demo.gateway.person.*
				issue caddy-demo.gateway.person
			}
			allow_unauthenticated {
				disclose caddy-demo.gateway.person.*
			}
		}
	}
	handle /metrics {
		metrics
	}`)
	config = strings.Replace(config, "admin off", "admin off\n\tlog {\n\t\toutput file "+c.log+"\n\t\tformat json\n\t}", 1)
	caddytest.Start(t, config)
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	c.wallet = w
	issuance := `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Carol","email":"carol.callback@example.com","over18":"yes"}}]}`
	c.run(t, issuance)
	return c
}

// run starts a session of body as the requestor app, runs it with the
// wallet, checks that it ended DONE, and returns its requestor token.
func (c *callbackAPI) run(t *testing.T, body string) irma.RequestorToken {
	t.Helper()
	code, b := postSession(t, c.api, body, "application/json", callbackToken)
	var s server.SessionPackage
	if err := json.Unmarshal(b, &s); err != nil || code != 200 || s.SessionPtr == nil {
		t.Fatalf("POST /session: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if res, err := c.wallet.Run(ctx, s.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("wallet: %+v, %v", res, err)
	}
	if code, b := c.get(t, "/session/"+string(s.Token)+"/status"); code != 200 || string(b) != `"DONE"` {
		t.Errorf("status: %d %s", code, b)
	}
	return s.Token
}

func (c *callbackAPI) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(c.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// receiver is a requestor's callback endpoint: it passes on each body it
// is posted.
func receiver(t *testing.T) (string, <-chan []byte) {
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/callback", bodies
}

func receive(t *testing.T, bodies <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-bodies:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
		return nil
	}
}

// withCallback is a disclosure of the email address whose result goes to
// url.
func withCallback(url string) string {
	return fmt.Sprintf(`{"callbackUrl":%q,"request":{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}}`, url)
}

// TestRequestorCallbacks: with the irma app's jwt_privkey_file, a session
// that the requestor API started with a callbackUrl posts its result,
// signed with the key that /publickey serves and issued by "irmaserver",
// once the real wallet has disclosed; a callback receiver that is down
// leaves the session DONE, and the failure in the log (without the
// session's token); an unauthenticated request may not ask for a callback.
// With the sessions in memory and in Redis.
func TestRequestorCallbacks(t *testing.T) {
	withResultKey(t, testCallbacks)
}

// withResultKey runs test with the irma app's jwt_privkey_file, with the
// sessions in memory and in Redis.
func withResultKey(t *testing.T, test func(t *testing.T, irmaExtra string)) {
	key := "jwt_privkey_file " + testkeys.WriteRSA(t)
	t.Run("memory", func(t *testing.T) { test(t, key) })
	t.Run("redis", func(t *testing.T) {
		test(t, key+fmt.Sprintf("\n\t\tredis %s {\n\t\t\tdisable_tls\n\t\t}", startRedis(t)))
	})
}

func testCallbacks(t *testing.T, irmaExtra string) {
	c := startCallbackAPI(t, irmaExtra)
	url, bodies := receiver(t)
	token := c.run(t, withCallback(url))
	pk := c.publicKey(t)
	if res := signedResult(t, receive(t, bodies), pk); res.Token != token || !disclosedCarol(res) {
		t.Errorf("callback result %+v", res)
	}
	// /result-jwt signs with the same key and issuer.
	_, resultJWT := c.get(t, "/session/"+string(token)+"/result-jwt")
	if _, err := jwt.Parse(string(resultJWT), func(*jwt.Token) (any, error) { return pk, nil }, jwt.WithIssuer("irmaserver")); err != nil {
		t.Errorf("result-jwt: %v", err)
	}

	down := c.run(t, withCallback("http://"+caddytest.RefusedAddr(t)+"/callback"))
	log := readLog(t, c.log, "failed to POST session result to callback URL")
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "failed to POST session result") && !strings.Contains(line, `"level":"warn"`) {
			t.Errorf("the failed callback is not a warning: %s", line)
		}
	}
	if strings.Contains(log, string(down)) || strings.Contains(log, string(token)) {
		t.Error("the log holds a requestor token")
	}

	code, b := postSession(t, c.api, withCallback(url), "application/json", "")
	if code != 403 || !strings.Contains(string(b), "for authenticated requestors only") {
		t.Errorf("unauthenticated callback: %d %s", code, b)
	}
}

// publicKey is the key of /publickey, which signs result JWTs and
// callbacks.
func (c *callbackAPI) publicKey(t *testing.T) *rsa.PublicKey {
	t.Helper()
	_, pub := c.get(t, "/publickey")
	pk, err := jwt.ParseRSAPublicKeyFromPEM(pub)
	if err != nil {
		t.Fatalf("publickey: %v: %s", err, pub)
	}
	return pk
}

// signedResult is the result in a callback body: a disclosure's result
// JWT that irmaserver signed with pk.
func signedResult(t *testing.T, body []byte, pk *rsa.PublicKey) server.SessionResult {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(string(body), claims, func(*jwt.Token) (any, error) { return pk, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("irmaserver"), jwt.WithSubject("disclosing_result")); err != nil {
		t.Fatalf("callback body %.200s: %v", body, err)
	}
	var res server.SessionResult
	if b, _ := json.Marshal(claims); json.Unmarshal(b, &res) != nil {
		t.Fatalf("callback claims %v", claims)
	}
	return res
}

// disclosedCarol says whether res is a valid disclosure, done, of the
// address that startCallbackAPI issued.
func disclosedCarol(res server.SessionResult) bool {
	return res.Status == irma.ServerStatusDone && res.ProofStatus == irma.ProofStatusValid && len(res.Disclosed) == 1 &&
		len(res.Disclosed[0]) == 1 && *res.Disclosed[0][0].RawValue == "carol.callback@example.com"
}

// TestRequestorUnsignedCallbacks: without a key, allow_unsigned_callbacks
// has the result posted as plain JSON.
func TestRequestorUnsignedCallbacks(t *testing.T) {
	c := startCallbackAPI(t, "allow_unsigned_callbacks")
	url, bodies := receiver(t)
	token := c.run(t, withCallback(url))
	var res server.SessionResult
	if body := receive(t, bodies); json.Unmarshal(body, &res) != nil || res.Token != token || len(res.Disclosed) != 1 ||
		*res.Disclosed[0][0].RawValue != "carol.callback@example.com" {
		t.Errorf("callback body %.300s", body)
	}
}

// readLog returns the log file once it holds marker.
func readLog(t *testing.T, file, marker string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), marker) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log has no line with %q:\n%s", marker, b)
		}
	}
}
