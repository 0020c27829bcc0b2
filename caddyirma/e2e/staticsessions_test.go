package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testkeys"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestStaticSessions: a static session of the irma option, as irma
// server's static_sessions. The real wallet scans the same pointer
// {"irmaqr":"redirect","u":".../irma/session/door"} twice, and each scan
// runs a fresh session whose result, signed with the app's key, reaches
// the callbackUrl with the disclosed address; the audit log has the start
// and the end of each. An unknown name is not
// found, another site's page starts no session, and the starts count
// against session_limits: with per_client 2, the third is refused (429).
// With the sessions in memory and in Redis.
func TestStaticSessions(t *testing.T) {
	withResultKey(t, testStaticSessions)
}

func testStaticSessions(t *testing.T, irmaExtra string) {
	url, bodies := receiver(t)
	c := startCallbackAPI(t, irmaExtra+fmt.Sprintf("\n\t\tstatic_session door `%s`\n\t\tsession_limits {\n\t\t\tper_client 2\n\t\t}", withCallback(url)))
	static := strings.TrimSuffix(c.api, "/api/irma") + "/irma/session/"
	ptr, err := wallet.ParsePointer(`{"irmaqr":"redirect","u":"` + static + `door"}`)
	if err != nil {
		t.Fatal(err)
	}
	pk := c.publicKey(t)
	tokens := map[irma.RequestorToken]bool{}
	for scan := 1; scan <= 2; scan++ {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		res, err := c.wallet.Run(ctx, ptr, wallet.Accept)
		cancel()
		if err != nil {
			t.Fatalf("scan %d: %+v, %v", scan, res, err)
		}
		result := signedResult(t, receive(t, bodies), pk)
		if !disclosedCarol(result) {
			t.Errorf("scan %d: callback result %+v", scan, result)
		}
		tokens[result.Token] = true
	}
	if len(tokens) != 2 {
		t.Errorf("two scans ran the sessions %v: want two of their own", tokens)
	}
	// The audit log has each start, and each end once the gateway's
	// watch of the session saw it.
	for _, outcome := range []string{"started", "done"} {
		line := `"decision":"static_session","outcome":"` + outcome + `","route":"door","session":"disclosing"`
		for deadline := time.Now().Add(10 * time.Second); strings.Count(readLog(t, c.log, line), line) < 2; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the audit log has not two lines with %s", line)
			}
		}
	}
	post := func(name string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", static+name, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After") + " " + string(b)
	}
	if code, body := post("window"); code != http.StatusNotFound {
		t.Errorf("an unknown static session: %d %s", code, body)
	}
	if code, body := post("door", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("another site's page: %d %s", code, body)
	}
	if code, body := post("door"); code != http.StatusTooManyRequests || !strings.Contains(body, "too_many_sessions") || strings.HasPrefix(body, " ") {
		t.Errorf("a third session for the same client: %d %s", code, body)
	}
	select {
	case b := <-bodies:
		t.Errorf("a callback without a session: %.200s", b)
	default:
	}
}

// TestStaticSessionEnds: the gateway posts the result of a static session
// that the person refused (CANCELLED) to its callbackUrl, once; a static
// session with a nextSession chains a disclosure after it, whose request
// the operator's next-session URL answers, but not an issuance, which no
// requestor's permissions allow.
func TestStaticSessionEnds(t *testing.T) {
	url, bodies := receiver(t)
	next := startNextSessions(t, url)
	statics := fmt.Sprintf("\n\t\tstatic_session door `%s`", withCallback(url)) +
		fmt.Sprintf("\n\t\tstatic_session hall `{\"nextSession\":{\"url\":%q},\"request\":{\"@context\":\"https://irma.app/ld/request/disclosure/v2\",\"disclose\":[[[\"caddy-demo.gateway.person.email\"]]]}}`", next.url+"/email") +
		fmt.Sprintf("\n\t\tstatic_session vault `{\"nextSession\":{\"url\":%q},\"request\":{\"@context\":\"https://irma.app/ld/request/disclosure/v2\",\"disclose\":[[[\"caddy-demo.gateway.person.email\"]]]}}`", next.url+"/issue")
	c := startCallbackAPI(t, "jwt_privkey_file "+testkeys.WriteRSA(t)+statics)
	static := strings.TrimSuffix(c.api, "/api/irma") + "/irma/session/"
	scan := func(name string, consent func(wallet.Request) bool) (*wallet.Result, error) {
		t.Helper()
		ptr, err := wallet.ParsePointer(`{"irmaqr":"redirect","u":"` + static + name + `"}`)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		return c.wallet.Run(ctx, ptr, consent)
	}

	posted := `caddy_irma_static_callbacks_total{outcome="posted"}`
	before := scrape(t, strings.TrimSuffix(c.api, "/api/irma")+"/metrics").value(posted)
	if res, err := scan("door", wallet.Refuse); res.Outcome != wallet.Refused {
		t.Fatalf("refusing: %+v, %v", res, err)
	}
	claims := jwt.MapClaims{}
	body := receive(t, bodies)
	if _, err := jwt.ParseWithClaims(string(body), claims, func(*jwt.Token) (any, error) { return c.publicKey(t), nil },
		jwt.WithIssuer("irmaserver"), jwt.WithSubject("disclosing_result")); err != nil || claims["status"] != string(irma.ServerStatusCancelled) {
		t.Errorf("the refused session's callback %.300s: %v", body, err)
	}

	res, err := scan("hall", wallet.Accept)
	if err != nil || len(res.Requests) != 2 || len(next.posted("/email")) != 1 {
		t.Errorf("a chain after a static session: %+v, %v", res, err)
	}
	res, err = scan("vault", wallet.Accept)
	if err == nil || !strings.Contains(err.Error(), "must be a disclosure or a signature, not issuing") || len(res.Issued) != 0 {
		t.Errorf("an issuance after a static session: %+v, %v", res, err)
	}
	select {
	case b := <-bodies:
		t.Errorf("a second callback: %.200s", b)
	default:
	}
	// The metrics are the process's: other tests' static sessions count too.
	if after := scrape(t, strings.TrimSuffix(c.api, "/api/irma")+"/metrics").value(posted); after != before+1 {
		t.Errorf("static_callbacks_total posted: %v, then %v: want one more", before, after)
	}
}
