package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtv4 "github.com/golang-jwt/jwt/v4"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// loginForced logs in with every step on an instance of its own, and
// checks the cookie and the JWTs across instances.
func (c *cluster) loginForced(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	a, b, cc := c.instances[0].base, c.instances[1].base, c.instances[2].base
	br := newBrowser(t)
	resp, body := br.get(a+"/members/page", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Instance") != "a" || !strings.Contains(body, `"start":"1"`) {
		t.Fatalf("the login page at a: %d %s %.300q", resp.StatusCode, resp.Header.Get("X-Instance"), body)
	}
	p, sess := begin(t, br, a+"/members/page", http.StatusUnauthorized)
	if res, err := w.RunSession(ctx, c.at(sess, b), wallet.Accept); err != nil {
		t.Fatalf("login with the wallet at b: %+v, %v", res, err)
	}
	if got := status(t, br, cc, p); got != "DONE" {
		t.Errorf("the status at c: %s", got)
	}
	// c takes the result (and the credential expiry that b recorded from
	// the proofs) and seals the cookie; a and b open it.
	if resp, body := br.get(cc+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the page at c after the login: %d %.300q", resp.StatusCode, body)
	}
	cookie := br.cookie(cc, "irma_session")
	for _, base := range []string{a, b} {
		if got := statusWith(t, base, "/members/page", cookie); got != http.StatusOK {
			t.Errorf("the cookie sealed at c, at %s: %d", base, got)
		}
	}
	// The JWT that a signs verifies with the JWKS of b and of c.
	if resp, _ := br.get(a+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the page at a: %d", resp.StatusCode)
	}
	seen := c.upstream.lastSeen()
	token := seen.header.Get("X-Irma-Identity")
	if seen.header.Get("X-Instance") != "a" || token == "" {
		t.Fatalf("the upstream's last request: from %q, JWT %q", seen.header.Get("X-Instance"), token)
	}
	for _, base := range []string{b, cc} {
		resp, jwks := br.get(base+"/irma/jwks.json", nil)
		if _, err := assertion.Verify(token, []byte(jwks), c.base, "caddy-irma", time.Now()); resp.StatusCode != http.StatusOK || err != nil {
			t.Errorf("a's JWT with the JWKS of %s: %d, %v", base, resp.StatusCode, err)
		}
	}
}

// requestorReplay starts a session with a requestor JWT at a, and sends the
// same JWT to b and c; the session runs with the wallet at b, its result
// is fetched at c, and its result JWT from a verifies with b's public key.
func (c *cluster) requestorReplay(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	a, b, cc := c.instances[0].base, c.instances[1].base, c.instances[2].base
	email := c.scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)
	signed, err := irma.SignSessionRequest(irma.NewDisclosureRequest(email), jwtv4.SigningMethodHS256, c.hmacKey, "app")
	if err != nil {
		t.Fatal(err)
	}
	post := func(base string) (*http.Response, []byte) {
		resp, err := http.Post(base+"/api/session", "text/plain", strings.NewReader(signed))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := post(a)
	var started struct {
		SessionPtr *irma.Qr            `json:"sessionPtr"`
		Token      irma.RequestorToken `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &started) != nil || started.SessionPtr == nil {
		t.Fatalf("the JWT at a: %d %.300s", resp.StatusCode, body)
	}
	for _, base := range []string{b, cc} {
		if resp, body := post(base); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "jwt already used") {
			t.Errorf("the same JWT at %s: %d %.300s; want 403, jwt already used", base, resp.StatusCode, body)
		}
	}
	if res, err := w.RunSession(ctx, c.at(&wallet.Session{Pointer: started.SessionPtr}, b), wallet.Accept); err != nil {
		t.Fatalf("the session with the wallet at b: %+v, %v", res, err)
	}
	var result struct {
		Status    string `json:"status"`
		Disclosed [][]struct {
			RawValue string `json:"rawvalue"`
		} `json:"disclosed"`
	}
	_, body = get(t, cc+"/api/session/"+string(started.Token)+"/result")
	if err := json.Unmarshal(body, &result); err != nil || result.Status != "DONE" || len(result.Disclosed) != 1 || result.Disclosed[0][0].RawValue != "alice@example.com" {
		t.Errorf("the result at c: %v %.300s", err, body)
	}
	// The result as a JWT from a, which the public key of b verifies.
	_, token := get(t, a+"/api/session/"+string(started.Token)+"/result-jwt")
	_, pub := get(t, b+"/api/publickey")
	key, err := jwtv5.ParseRSAPublicKeyFromPEM(pub)
	if err != nil {
		t.Fatalf("b's public key: %v: %.300s", err, pub)
	}
	if parsed, err := jwtv5.Parse(string(token), func(*jwtv5.Token) (any, error) { return key, nil }, jwtv5.WithValidMethods([]string{"RS256"})); err != nil || !parsed.Valid {
		t.Errorf("a's result JWT with b's public key: %v", err)
	}
}

// signOnce has the wallet sign, started at a, answered at b, polled and
// taken at c; a copy of the pending cookie takes nothing more at a or b.
// The signature's timestamp, from whichever instance the balancer chose,
// verifies at each.
func (c *cluster) signOnce(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	a, b, cc := c.instances[0].base, c.instances[1].base, c.instances[2].base
	br := newBrowser(t)
	p, sess := begin(t, br, a+"/sign", http.StatusOK)
	pending := br.cookiePrefix(a, "irma_session_pending_")
	if pending == nil {
		t.Fatal("no pending cookie")
	}
	if res, err := w.RunSession(ctx, c.at(sess, b), wallet.Accept); err != nil {
		t.Fatalf("signing with the wallet at b: %+v, %v", res, err)
	}
	if got := status(t, br, cc, p); got != "DONE" {
		t.Errorf("the status at c: %s", got)
	}
	resp, body := br.get(cc+"/sign", nil)
	var got struct {
		Signature    json.RawMessage `json:"signature"`
		Verification struct {
			Valid     bool `json:"valid"`
			Timestamp any  `json:"timestamp"`
		} `json:"verification"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || !got.Verification.Valid || got.Verification.Timestamp == nil {
		t.Fatalf("the signature at c: %d %.300q", resp.StatusCode, body)
	}
	for _, base := range []string{a, b} {
		if resp, _ := newBrowser(t).get(base+"/sign", map[string]string{"Cookie": pending.Name + "=" + pending.Value}); resp.StatusCode != http.StatusGone {
			t.Errorf("a copy of the pending cookie at %s: %d, want 410", base, resp.StatusCode)
		}
		resp, err := http.Post(base+"/irma/verify", "application/json", strings.NewReader(string(got.Signature)))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Valid bool `json:"valid"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || !v.Valid {
			t.Errorf("the signature verified at %s: %v %+v", base, err, v)
		}
	}
}

// killDuringLogin starts a login at c, kills c, and has the wallet and the
// browser go on through the balancer. Before, a login was made, and
// another logged out at c: both stay as they were on a and b.
func (c *cluster) killDuringLogin(ctx context.Context, t *testing.T, w *wallet.Wallet) {
	a, b, victim := c.instances[0].base, c.instances[1].base, c.instances[2]
	kept := newBrowser(t)
	kept.login(ctx, w, c.base+"/members/page")
	if resp, _ := kept.get(c.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a login before the kill: %d", resp.StatusCode)
	}
	gone := newBrowser(t)
	gone.login(ctx, w, victim.base+"/members/page")
	if resp, _ := gone.get(victim.base+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a login at c: %d", resp.StatusCode)
	}
	copied := gone.cookie(victim.base, "irma_session")
	if resp, _ := gone.send("POST", victim.base+"/irma/logout", map[string]string{"Origin": victim.base}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout at c: %d", resp.StatusCode)
	}

	br := newBrowser(t)
	p, sess := begin(t, br, victim.base+"/members/page", http.StatusUnauthorized)
	victim.kill(t)
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("the wallet through the balancer, c dead: %+v, %v", res, err)
	}
	if got := status(t, br, c.base, p); got != "DONE" {
		t.Errorf("the status through the balancer: %s", got)
	}
	if resp, body := br.get(c.base+"/members/page", nil); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Instance") == "c" {
		t.Errorf("the login's page: %d from %q: %.300q", resp.StatusCode, resp.Header.Get("X-Instance"), body)
	}
	for _, base := range []string{a, b} {
		if got := statusWith(t, base, "/members/page", kept.cookie(c.base, "irma_session")); got != http.StatusOK {
			t.Errorf("the login of before the kill, at %s: %d", base, got)
		}
		if got := statusWith(t, base, "/members/page", copied); got != http.StatusUnauthorized {
			t.Errorf("the login logged out at c, at %s: %d, want 401", base, got)
		}
	}
}

// limitsPerVisitor has a visitor start sessions through the balancer until
// the per_client bound (20) refuses one: the instances count in Redis
// together, and count the visitor's address, which the balancer passes on
// (trusted_proxies), not the balancer's. Another visitor still gets a
// session.
func (c *cluster) limitsPerVisitor(t *testing.T) {
	try := func(from string) (int, string) {
		client := clientFrom(from)
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest("GET", c.base+"/members/page", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Instance")
	}
	served := map[string]bool{}
	for i := range 20 {
		code, name := try("127.0.0.2")
		if code != http.StatusUnauthorized {
			t.Fatalf("session %d of 20, at %s: %d", i+1, name, code)
		}
		served[name] = true
	}
	if code, name := try("127.0.0.2"); code != http.StatusTooManyRequests {
		t.Errorf("session 21 of 20, at %s: %d, want 429", name, code)
	}
	if code, name := try("127.0.0.3"); code != http.StatusUnauthorized {
		t.Errorf("another visitor, at %s: %d, want a session", name, code)
	}
	if len(served) != len(c.instances) {
		t.Errorf("the sessions were started by %v, want every instance", served)
	}
}

// get is the status and the body of a GET of url.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
