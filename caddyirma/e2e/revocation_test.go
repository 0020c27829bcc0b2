package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testclock"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testpostgres"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestRevocation: the gateway as the revocation authority of the revocable
// staff credential, on a real PostgreSQL, with the real wallet: it issues
// the credential with a revocation key (irma_issue, from a placeholder), a
// login under a policy that asks non-revocation succeeds, a requestor
// revokes it (POST /revocation; one without a revoke permission gets 403),
// the login stands until its next check (the policy's max age, on an
// injected clock) and then ends, the next login with the revoked
// credential is refused, and another holder's credential still logs in.
// The revocation reads that wallets and verifiers fetch are served, and
// bounded. With the sessions in memory, and in Redis (the revocation state
// is in the database either way).
func TestRevocation(t *testing.T) {
	dbStr := testpostgres.Start(t)
	t.Run("memory", func(t *testing.T) { runRevocation(t, dbStr, "") })
	t.Run("redis", func(t *testing.T) {
		runRevocation(t, dbStr, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", startRedis(t)))
	})
}

// runRevocation runs TestRevocation on a new gateway with store (a redis
// block, or nothing) in the irma option, on the database of dbStr, which
// an earlier run may have used.
func runRevocation(t *testing.T, dbStr, store string) {
	g := newGateway(t)
	staff := g.scheme.Credential(demoscheme.CredentialStaff)
	app := g.start(t, store+"\n\t\t"+fmt.Sprintf(`revocation {
			db_type postgres
			db_str "%s"
			credential %s {
				authority
			}
		}
		policy staff {
			require caddy-demo.gateway.staff.role=admin and caddy-demo.gateway.staff.name
			revocation 5m
		}
		policy plain {
			require caddy-demo.gateway.staff.role=admin
		}`, dbStr, staff), `irma_endpoints
	handle /pass {
		irma_issue {
			credential caddy-demo.gateway.staff {
				name {http.request.uri.query.name}
				role admin
				revocation_key {http.request.uri.query.name}-pass
			}
		}
	}
	irma_auth /staff/* staff
	irma_auth /plain/* plain
	respond /staff/* "staff {irma.attr.caddy-demo.gateway.staff.name}"
	respond /plain/* "plain {irma.attr.caddy-demo.gateway.staff.name}"
	handle_path /api/* {
		irma_requestor_api {
			requestor hr {
				auth token hr-token
				issue caddy-demo.gateway.staff
				revoke caddy-demo.gateway.staff
			}
			requestor other {
				auth token other-token
				disclose *
			}
		}
	}`)
	clock := testclock.New(time.Now())
	app.SetClock(clock.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	issue := func(name string) *wallet.Wallet {
		t.Helper()
		w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		sess, err := wallet.FetchSession(ctx, nil, g.base+"/pass?name="+name)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
			t.Fatalf("issuing %s's staff pass: %+v, %v", name, res, err)
		}
		return w
	}
	alice := issue("alice")

	b := newBrowser(t)
	res := b.login(ctx, alice, g.base+"/staff/")
	if len(res.Disclosed) != 2 {
		t.Fatalf("disclosed %+v", res.Disclosed)
	}
	if resp, body := b.get(g.base+"/staff/", nil); resp.StatusCode != http.StatusOK || body != "staff alice" {
		t.Fatalf("alice's login under the revocation policy: %d %s", resp.StatusCode, body)
	}
	// The revocation policy's login is a login for plain too.
	if resp, body := b.get(g.base+"/plain/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's login under the plain policy: %d %s", resp.StatusCode, body)
	}

	t.Run("revocation reads", func(t *testing.T) { checkRevocationReads(t, g, staff) })

	revoke := func(token, key string) (int, string) {
		t.Helper()
		body := fmt.Sprintf(`{"@context":"https://irma.app/ld/request/revocation/v1","type":"%s","revocationKey":"%s"}`, staff, key)
		code, b := postAs(t, g.base+"/api/revocation", body, "application/json", token)
		return code, string(b)
	}
	if code, body := revoke("other-token", "alice-pass"); code != http.StatusForbidden || !strings.Contains(body, "UNAUTHORIZED") {
		t.Fatalf("a requestor without revoke permission: %d %s, want 403 as irma server", code, body)
	}
	if code, body := revoke("hr-token", "nobody-pass"); code != http.StatusNotFound || !strings.Contains(body, "UNKNOWN_REVOCATION_KEY") {
		t.Fatalf("an unknown revocation key: %d %s", code, body)
	}
	if code, body := revoke("hr-token", "alice-pass"); code != http.StatusOK || body != "OK" {
		t.Fatalf("revoking alice's pass: %d %s", code, body)
	}

	// The login stands until its next check: the gateway cannot ask the
	// wallet in between.
	clock.Advance(4 * time.Minute)
	if resp, body := b.get(g.base+"/staff/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("within the max age: %d %s", resp.StatusCode, body)
	}
	// At the next check it ends: the policy asks a fresh proof.
	clock.Advance(2 * time.Minute)
	if resp, body := b.get(g.base+"/staff/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the max age: %d %s, want 401 (disclose again)", resp.StatusCode, body)
	}
	// A policy without the option keeps the login, as documented.
	if resp, body := b.get(g.base+"/plain/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the plain policy after the revocation: %d %s", resp.StatusCode, body)
	}

	// The revoked pass cannot log in again: the wallet learns of the
	// revocation from the session request, and has nothing to show.
	sess, err := wallet.FetchSession(ctx, b.c, g.base+"/staff/")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := alice.RunSession(ctx, sess, wallet.Accept); err == nil || res.Outcome == wallet.Success {
		t.Fatalf("a login with the revoked pass: %+v", res)
	}
	if resp, body := b.get(g.base+"/staff/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after the refused login: %d %s", resp.StatusCode, body)
	}
	if resp, body := newBrowser(t).get(g.base+"/staff/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a new visitor: %d %s", resp.StatusCode, body)
	}

	// Bob's pass, issued after by the requestor API with a revocationKey,
	// is not revoked.
	bob := issueByAPI(ctx, t, g, "bob")
	bb := newBrowser(t)
	bb.login(ctx, bob, g.base+"/staff/")
	if resp, body := bb.get(g.base+"/staff/", nil); resp.StatusCode != http.StatusOK || body != "staff bob" {
		t.Fatalf("bob's login: %d %s", resp.StatusCode, body)
	}
}

// issueByAPI issues name's staff pass through the requestor API, with a
// revocationKey; one without is refused before a session starts.
func issueByAPI(ctx context.Context, t *testing.T, g *gateway, name string) *wallet.Wallet {
	t.Helper()
	post := func(key string) (int, []byte) {
		body := fmt.Sprintf(`{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.staff","attributes":{"name":"%s","role":"admin"}%s}]}`, name, key)
		return postSession(t, g.base+"/api", body, "application/json", "hr-token")
	}
	if code, body := post(""); code != http.StatusForbidden || !strings.Contains(string(body), "revocationKey is required") {
		t.Fatalf("an issuance without a revocationKey: %d %s", code, body)
	}
	code, body := post(`,"revocationKey":"` + name + `-pass"`)
	var started struct {
		SessionPtr *irma.Qr `json:"sessionPtr"`
	}
	if err := json.Unmarshal(body, &started); err != nil || code != http.StatusOK || started.SessionPtr == nil {
		t.Fatalf("POST /session: %d %s", code, body)
	}
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if res, err := w.Run(ctx, started.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("issuing %s's pass: %+v, %v", name, res, err)
	}
	return w
}

// checkRevocationReads fetches the revocation state of staff from the
// gateway as irmago's revocation client does (a verifier, or a wallet
// whose session did not bring enough), and checks the bounds of the
// routes.
func checkRevocationReads(t *testing.T, g *gateway, staff irma.CredentialTypeIdentifier) {
	conf, err := irma.NewConfiguration(g.scheme.SchemesPath, irma.ConfigurationOptions{ReadOnly: true, IgnorePrivateKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.ParseFolder(); err != nil {
		t.Fatal(err)
	}
	defer conf.Scheduler.Stop()
	client := irma.RevocationClient{Conf: conf, Settings: irma.RevocationSettings{staff: {RevocationServerURL: g.base + "/irma"}}}
	update, err := client.FetchUpdateLatest(staff, 0, 16)
	if err != nil {
		t.Fatalf("the update a wallet fetches: %v", err)
	}
	pk, err := conf.PublicKey(staff.IssuerIdentifier(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := update.Verify(pk); err != nil || len(update.Events) == 0 {
		t.Fatalf("the update does not verify against the issuer's key: %v (%d events)", err, len(update.Events))
	}
	if updates, err := client.FetchUpdatesLatest(staff, 16); err != nil || updates[0] == nil {
		t.Fatalf("the updates a verifier fetches: %v %v", updates, err)
	}
	for path, want := range map[string]int{
		"/irma/revocation/" + staff.String() + "/update/0":                  http.StatusBadRequest, // irmaserver: every event
		"/irma/revocation/" + staff.String() + "/update/513":                http.StatusBadRequest,
		"/irma/revocation/" + staff.String() + "/events/0/0/16":             http.StatusOK,
		"/irma/revocation/" + staff.String() + "/events/0/0/1048576":        http.StatusBadRequest,
		"/irma/revocation/" + staff.String() + "/events/0/16/32":            http.StatusNotFound,
		"/irma/revocation/caddy-demo.gateway.person/update/16":              http.StatusNotFound, // not revocable here
		"/irma/revocation/" + staff.String() + "/updateevents":              http.StatusNotFound,
		"/irma/revocation/" + staff.String() + "/issuancerecord/0":          http.StatusNotFound,
		"/irma/revocation/" + staff.String() + "/update/16/0?x=" + "%2e%2e": http.StatusOK,
	} {
		resp, err := http.Get(g.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The route that other issuers post issuance records to is state-changing: not served.
	resp, err := http.Post(g.base+"/irma/revocation/"+staff.String()+"/issuancerecord/0", "application/octet-stream", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST issuancerecord: %d, want 404", resp.StatusCode)
	}
}
