package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testredis"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestSessions runs an issuance, a disclosure and an attribute-based
// signature session with the real wallet against the gateway, once per
// session store.
func TestSessions(t *testing.T) {
	t.Run("memory", func(t *testing.T) { runSessions(t, "") })
	t.Run("redis", func(t *testing.T) {
		addr := startRedis(t)
		runSessions(t, fmt.Sprintf("redis %s {\n\t\t\tdisable_tls\n\t\t}", addr))
		if n := redisCommand(t, addr, "DBSIZE"); n == ":0" {
			t.Error("the sessions left nothing in Redis: was it used?")
		}
	})
	t.Run("redis with TLS and ACL", func(t *testing.T) {
		// Only a TLS port, mutual TLS, and a user with a password: the
		// sessions work only if every setting reaches the Redis client.
		pki := newTestPKI(t)
		addr := testredis.Run(t, func(port int) []string {
			return []string{"--port", "0", "--tls-port", fmt.Sprint(port),
				"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey,
				"--tls-ca-cert-file", pki.caCert, "--tls-auth-clients", "yes",
				"--user", "default", "off", "--user", "gateway", "on", ">s3cret", "~*", "&*", "+@all"}
		})
		t.Setenv("CADDY_IRMA_TEST_REDIS_PASSWORD", "s3cret")
		runSessions(t, fmt.Sprintf(`redis %s {
			username gateway
			password {env.CADDY_IRMA_TEST_REDIS_PASSWORD}
			tls_ca_cert_file %s
			tls_client_cert_file %s
			tls_client_key_file %s
		}`, addr, pki.caCert, pki.clientCert, pki.clientKey))
	})
}

func runSessions(t *testing.T, store string) {
	g := newGateway(t)
	base, scheme := g.base, g.scheme
	app := g.start(t, store, `irma_endpoints
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname {http.request.uri.query.name}
				email alice@example.com
				over18 yes
				validity 30d
			}
		}
	}
	respond "not here" 404`)
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}

	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatalf("opening the wallet: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	email := scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeEmail)
	fullname := scheme.Attribute(demoscheme.CredentialPerson, demoscheme.AttributeFullname)

	t.Run("issuance through irma_issue", func(t *testing.T) {
		// As a developer does it: the wallet asks the page for the session.
		// Issuance pages pair by default: the wallet, as the page's client,
		// confirms the code.
		sess, err := wallet.FetchSession(ctx, http.DefaultClient, base+"/issue?name=Alice+Demo")
		if err != nil {
			t.Fatal(err)
		}
		if sess.Pairing == nil {
			t.Fatal("the issuance page does not ask for pairing")
		}
		res, err := w.RunSession(ctx, sess, wallet.Accept)
		if err != nil || res.Outcome != wallet.Success {
			t.Fatalf("issuance: %+v, %v", res, err)
		}
		creds, err := w.Credentials()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range creds {
			if c.Type == scheme.Credential(demoscheme.CredentialPerson) {
				for _, a := range c.Attributes {
					got[a.Type.Name()] = a.Value
				}
			}
		}
		want := map[string]string{"fullname": "Alice Demo", "email": "alice@example.com", "over18": "yes"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("wallet holds %s = %q, want %q", k, got[k], v)
			}
		}
	})

	t.Run("pairing with another code", func(t *testing.T) {
		// A page whose pairing code differs from what the app shows: the
		// session must not go on.
		sess, err := wallet.FetchSession(ctx, http.DefaultClient, base+"/issue?name=Mallory")
		if err != nil {
			t.Fatal(err)
		}
		sess.Pairing.Code = "0000x"
		res, err := w.RunSession(ctx, sess, wallet.Accept)
		if err == nil || res.Outcome == wallet.Success {
			t.Fatalf("a session paired with the wrong code went on: %+v", res)
		}
	})

	t.Run("issuance result", func(t *testing.T) {
		req := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
			CredentialTypeID: scheme.Credential(demoscheme.CredentialMembership),
			Attributes:       map[string]string{"club": "Caddy demo club", "level": "gold"},
		}})
		res := runServerSession(ctx, t, srv, w, req)
		if res.Type != irma.ActionIssuing {
			t.Errorf("result type %s", res.Type)
		}
	})

	t.Run("disclosure", func(t *testing.T) {
		res := runServerSession(ctx, t, srv, w, irma.NewDisclosureRequest(email, fullname))
		assertDisclosed(t, res.Disclosed, map[irma.AttributeTypeIdentifier]string{email: "alice@example.com", fullname: "Alice Demo"})
	})

	t.Run("signature", func(t *testing.T) {
		req := irma.NewSignatureRequest("I, the undersigned, agree.", email)
		res := runServerSession(ctx, t, srv, w, req)
		assertDisclosed(t, res.Disclosed, map[irma.AttributeTypeIdentifier]string{email: "alice@example.com"})
		sig := res.Signature
		if sig == nil || sig.Message != "I, the undersigned, agree." {
			t.Fatalf("signature %+v", sig)
		}
		if sig.Timestamp == nil {
			t.Fatal("the signature has no timestamp")
		}
		// Anyone can verify it later, with irmago's own verification.
		disclosed, status, err := sig.Verify(app.Configuration(), req)
		if err != nil || status != irma.ProofStatusValid {
			t.Fatalf("verifying the signature: %s, %v", status, err)
		}
		assertDisclosed(t, disclosed, map[irma.AttributeTypeIdentifier]string{email: "alice@example.com"})
		// A signature over another message does not verify.
		forged := *sig
		forged.Message = "I, the undersigned, disagree."
		if _, status, _ := forged.Verify(app.Configuration(), nil); status == irma.ProofStatusValid {
			t.Error("a signature with a changed message verified")
		}
	})

	t.Run("refusal", func(t *testing.T) {
		ptr, token, _, err := srv.StartSession(irma.NewDisclosureRequest(email), nil, "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Run(ctx, ptr, wallet.Refuse)
		if res == nil || res.Outcome != wallet.Refused || err == nil {
			t.Fatalf("refused session: %+v, %v", res, err)
		}
		result := waitResult(ctx, t, srv, token)
		if result.Status != irma.ServerStatusCancelled || result.ProofStatus == irma.ProofStatusValid {
			t.Errorf("refused session ended %s with proofs %s", result.Status, result.ProofStatus)
		}
	})
}

// irmaServer is what the tests use of the embedded server.
type irmaServer interface {
	StartSession(req any, handler server.SessionHandler, requestor string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error)
	GetSessionResult(irma.RequestorToken) (*server.SessionResult, error)
}

// runServerSession starts a session on the server, has the wallet perform
// it, and returns the server's result, which must be DONE and VALID.
func runServerSession(ctx context.Context, t *testing.T, srv irmaServer, w *wallet.Wallet, req irma.SessionRequest) *server.SessionResult {
	t.Helper()
	ptr, token, _, err := srv.StartSession(req, nil, "")
	if err != nil {
		t.Fatalf("starting session: %v", err)
	}
	res, err := w.Run(ctx, ptr, wallet.Accept)
	if err != nil || res.Outcome != wallet.Success {
		t.Fatalf("wallet: %+v, %v", res, err)
	}
	result := waitResult(ctx, t, srv, token)
	if result.Status != irma.ServerStatusDone || result.ProofStatus != irma.ProofStatusValid {
		t.Fatalf("session ended %s with proofs %s (%v)", result.Status, result.ProofStatus, result.Err)
	}
	return result
}

// waitResult polls the result until the session is finished, as everything
// in caddy-irma does: Redis mode has no status channels.
func waitResult(ctx context.Context, t *testing.T, srv irmaServer, token irma.RequestorToken) *server.SessionResult {
	t.Helper()
	for {
		res, err := srv.GetSessionResult(token)
		if err != nil {
			t.Fatalf("session result: %v", err)
		}
		if res.Status.Finished() {
			return res
		}
		select {
		case <-ctx.Done():
			t.Fatalf("session did not finish: %s", res.Status)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func assertDisclosed(t *testing.T, disclosed [][]*irma.DisclosedAttribute, want map[irma.AttributeTypeIdentifier]string) {
	t.Helper()
	got := map[irma.AttributeTypeIdentifier]string{}
	for _, con := range disclosed {
		for _, a := range con {
			if a.Status != irma.AttributeProofStatusPresent || a.RawValue == nil {
				t.Errorf("attribute %s: status %s", a.Identifier, a.Status)
				continue
			}
			got[a.Identifier] = *a.RawValue
		}
	}
	if len(got) != len(want) {
		t.Errorf("disclosed %v, want %v", got, want)
	}
	for id, v := range want {
		if got[id] != v {
			t.Errorf("disclosed %s = %q, want %q", id, got[id], v)
		}
	}
}

// startRedis runs a plain redis-server for the test and returns its
// address.
func startRedis(t *testing.T) string { return testredis.Start(t) }

// redisCommand sends an inline command and returns the first line of the
// answer.
func redisCommand(t *testing.T, addr, cmd string) string { return testredis.Command(t, addr, cmd) }
