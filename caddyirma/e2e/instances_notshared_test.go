package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jwtv4 "github.com/golang-jwt/jwt/v4"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/assertion"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestInstancesNotShared: what breaks when instances of one gateway do not
// share what the README says they must. Three instances with the same url
// and schemes: a, with Redis and its own storage (and so keys generated in
// it), the timestamp key and a result JWT key; b, with the same Redis but a
// storage, and so keys, of its own, another timestamp key and another
// result JWT key, and no trusted proxies; c, with a's storage (and so a's
// keys) and timestamp key, but its sessions in memory. The public URL
// leads to a, except the timestamp service's key check, which b answers.
func TestInstancesNotShared(t *testing.T) {
	balancer := caddytest.Listen(t)
	public := "http://" + balancer.Addr()
	scheme := testscheme.New(t, public+"/irma/timestamp")
	up := newUpstream(t)
	up.issuer = public
	otherTimestampKey := filepath.Join(t.TempDir(), "timestamp.key")
	if err := timestamp.GenerateKeyFile(otherTimestampKey); err != nil {
		t.Fatal(err)
	}
	redis := testredis.Start(t)
	shared := t.TempDir()
	in := instance{public: public, scheme: scheme, upstream: strings.TrimPrefix(up.srv.URL, "http://"), hmacKey: make([]byte, 32)}
	a := instance{name: "a", storage: shared, timestampKey: scheme.TimestampKeyFile, redis: redis, resultKey: newResultKey(t)}
	b := instance{name: "b", storage: t.TempDir(), timestampKey: otherTimestampKey, redis: redis, resultKey: newResultKey(t), untrusting: true}
	c := instance{name: "c", storage: shared, timestampKey: scheme.TimestampKeyFile}
	var bases []string
	for _, i := range []instance{a, b, c} {
		i.public, i.scheme, i.upstream, i.hmacKey = in.public, in.scheme, in.upstream, in.hmacKey
		bases = append(bases, i.start(t).base)
	}
	atA, atB, atC := bases[0], bases[1], bases[2]
	up.jwksURL = atA + "/irma/jwks.json"
	caddytest.Start(t, fmt.Sprintf(`{
	admin off
}
%s {
	%s
	@check path /irma/timestamp/checkPublicKey
	reverse_proxy @check %s
	reverse_proxy %s
}
`, public, balancer.Bind(), strings.TrimPrefix(atB, "http://"), strings.TrimPrefix(atA, "http://")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	issuance, err := wallet.FetchSession(ctx, nil, atA+"/issue?email=alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.RunSession(ctx, issuance, wallet.Accept); err != nil {
		t.Fatalf("issuance at a: %+v, %v", res, err)
	}
	// A login made at a, and its identity JWT.
	br := newBrowser(t)
	br.login(ctx, w, atA+"/members/page")
	if resp, body := br.get(atA+"/members/page", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a login at a: %d %.300q", resp.StatusCode, body)
	}
	cookie := br.cookie(atA, "irma_session")
	token := up.lastSeen().header.Get("X-Irma-Identity")

	t.Run("other cookie keys: the login is asked for again", func(t *testing.T) {
		resp, body := newBrowser(t).get(atB+"/members/page", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "sessionPtr") {
			t.Errorf("a's cookie at b: %d %.300q; want 401 with a new session", resp.StatusCode, body)
		}
		// A login started at a and finished at b starts over.
		nb := newBrowser(t)
		nb.login(ctx, w, atA+"/members/page")
		if resp, body := nb.get(atB+"/members/page", nil); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "sessionPtr") {
			t.Errorf("a login started at a, at b: %d %.300q; want 401 with a new session", resp.StatusCode, body)
		}
	})
	t.Run("another JWT key: the upstream refuses the JWTs of one of them", func(t *testing.T) {
		_, jwks := br.get(atB+"/irma/jwks.json", nil)
		if _, err := assertion.Verify(token, []byte(jwks), public, "caddy-irma", time.Now()); err == nil {
			t.Error("a's JWT verified with b's JWKS")
		}
	})
	t.Run("a storage shared: the generated keys are too", func(t *testing.T) {
		if got := statusWith(t, atC, "/members/page", cookie); got != http.StatusOK {
			t.Errorf("a's cookie at c, which shares a's storage: %d", got)
		}
	})
	t.Run("no Redis shared: sessions and logouts stay on their instance", func(t *testing.T) {
		_, sess := begin(t, newBrowser(t), atA+"/members/page", http.StatusUnauthorized)
		ptr := *sess.Pointer
		ptr.URL = atC + strings.TrimPrefix(ptr.URL, public)
		if res, err := w.Run(ctx, &ptr, wallet.Accept); err == nil || !strings.Contains(err.Error(), "SESSION_UNKNOWN") {
			t.Errorf("a's session with the wallet at c: %+v, %v; want an error, SESSION_UNKNOWN", res, err)
		}
		if resp, _ := br.send("POST", atA+"/irma/logout", map[string]string{"Origin": atA}, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout at a: %d", resp.StatusCode)
		}
		if got := statusWith(t, atA, "/members/page", cookie); got != http.StatusUnauthorized {
			t.Errorf("the login logged out, at a: %d, want 401", got)
		}
		if got := statusWith(t, atC, "/members/page", cookie); got != http.StatusOK {
			t.Errorf("the login logged out at a, at c (no Redis): %d; want 200, c never heard of the logout", got)
		}
	})
	t.Run("no Redis shared: a requestor JWT starts a session on each instance", func(t *testing.T) {
		signed, err := irma.SignSessionRequest(irma.NewDisclosureRequest(scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)),
			jwtv4.SigningMethodHS256, in.hmacKey, "app")
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range []string{atA, atC} {
			if resp, body := newBrowser(t).send("POST", base+"/api/session", map[string]string{"Content-Type": "text/plain"}, signed); resp.StatusCode != http.StatusOK {
				t.Errorf("the JWT at %s: %d %.300q; want 200, each instance has its own record", base, resp.StatusCode, body)
			}
		}
	})
	t.Run("another result JWT key: the result JWT of one does not verify with the key of the other", func(t *testing.T) {
		signed, err := irma.SignSessionRequest(irma.NewDisclosureRequest(scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeFullname)),
			jwtv4.SigningMethodHS256, in.hmacKey, "app")
		if err != nil {
			t.Fatal(err)
		}
		resp, body := newBrowser(t).send("POST", atA+"/api/session", map[string]string{"Content-Type": "text/plain"}, signed)
		var started struct {
			Token string `json:"token"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &started) != nil {
			t.Fatalf("a session at a: %d %.300q", resp.StatusCode, body)
		}
		code, token := get(t, atA+"/api/session/"+started.Token+"/result-jwt")
		for _, c := range []struct {
			base  string
			valid bool
		}{{atA, true}, {atB, false}} {
			_, pub := get(t, c.base+"/api/publickey")
			key, err := jwtv5.ParseRSAPublicKeyFromPEM(pub)
			if err != nil {
				t.Fatalf("the public key of %s: %v", c.base, err)
			}
			_, err = jwtv5.Parse(string(token), func(*jwtv5.Token) (any, error) { return key, nil }, jwtv5.WithValidMethods([]string{"RS256"}))
			if (err == nil) != c.valid {
				t.Errorf("a's result JWT (%d) with the public key of %s: %v, want valid %v", code, c.base, err, c.valid)
			}
		}
	})
	t.Run("no trusted proxy: per_client counts the proxy for every visitor", func(t *testing.T) {
		// A balancer at 127.0.0.6, which b does not trust, passes on
		// visitors at other addresses: b counts them all as 127.0.0.6.
		balancer := clientFrom("127.0.0.6")
		defer balancer.CloseIdleConnections()
		for i := range 21 {
			req, _ := http.NewRequest("GET", atB+"/members/page", nil)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			resp, err := balancer.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := http.StatusUnauthorized; i == 20 {
				if resp.StatusCode != http.StatusTooManyRequests {
					t.Errorf("visitor 21 of 20: %d, want 429", resp.StatusCode)
				}
			} else if resp.StatusCode != want {
				t.Fatalf("visitor %d of 20: %d, want a session", i+1, resp.StatusCode)
			}
		}
	})
	t.Run("another timestamp key: signatures of one do not verify on the other", func(t *testing.T) {
		sb := newBrowser(t)
		sess, err := wallet.FetchSession(ctx, sb.c, atA+"/sign")
		if err != nil {
			t.Fatal(err)
		}
		if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
			t.Fatalf("signing at a: %+v, %v", res, err)
		}
		resp, body := sb.get(atA+"/sign", nil)
		var got struct {
			Signature    json.RawMessage `json:"signature"`
			Verification struct {
				Valid bool `json:"valid"`
			} `json:"verification"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || !got.Verification.Valid {
			t.Fatalf("the signature at a: %d %.300q", resp.StatusCode, body)
		}
		// b does not know a's key, and asks the public URL, where b
		// answers for the timestamp service.
		resp, body = sb.send("POST", atB+"/irma/verify", map[string]string{"Content-Type": "application/json"}, string(got.Signature))
		var v struct {
			Valid  bool   `json:"valid"`
			Status string `json:"status"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Valid || v.Status != "INVALID_TIMESTAMP" {
			t.Errorf("a's signature at b: %d %.300q; want not valid, INVALID_TIMESTAMP", resp.StatusCode, body)
		}
	})
}
