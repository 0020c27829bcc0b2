//go:build cgo

package caddyirma

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/schemeserver"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// The schemes with the wallet of the Yivi app (irmago's client library):
// what the server issues and verifies after an update, and the real
// default schemes.

// openWallet opens a wallet that trusts the schemes in schemesPath.
func openWallet(t *testing.T, schemesPath string) *wallet.Wallet {
	t.Helper()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: schemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// runSession fetches the session that url starts (as a page's script
// would, with the client's cookies) and runs it with w.
func runSession(t *testing.T, client *http.Client, w *wallet.Wallet, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sess, err := wallet.FetchSession(ctx, client, url)
	if err != nil {
		t.Fatalf("the session of %s: %v", url, err)
	}
	if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
		t.Fatalf("the session of %s: %+v, %v", url, res, err)
	}
}

// TestSchemeUpdateWallet: after an update that adds a credential type and
// an issuer key, the server that ran before it issues a credential of the
// new type under the new key, and a route whose policy needs it (added by
// a reload, on the same server) lets the wallet in.
func TestSchemeUpdateWallet(t *testing.T) {
	s := newSchemeSite(t)
	tick, done := controlUpdates(t)
	caddytest.Start(t, s.caddyfile("schemes_update 1h", membersRoute))
	<-done
	srv, err := caddytest.App[*App](t, "irma").Server()
	if err != nil {
		t.Fatal(err)
	}
	addTicket(t, s, true)
	if r := runUpdate(tick, done); r.err != nil || !r.changed {
		t.Fatalf("update: %+v", r)
	}
	w := openWallet(t, filepath.Dir(s.served))
	ptr, _, _, err := srv.StartSession(irma.NewIssuanceRequest([]*irma.CredentialRequest{
		{CredentialTypeID: s.scheme.Credential("ticket"), Attributes: map[string]string{"seat": "12A"}},
	}), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.Run(context.Background(), ptr, wallet.Accept); err != nil {
		t.Fatalf("issuing a ticket: %+v, %v", res, err)
	}

	if err := caddytest.Load(s.caddyfile("schemes_update 1h", "irma_auth /tickets/* {\n\t\trequire caddy-demo.gateway.ticket.seat=12A\n\t}")); err != nil {
		t.Fatal(err)
	}
	if s2, _ := caddytest.App[*App](t, "irma").Server(); s2 != srv {
		t.Error("the reload replaced the IRMA server")
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	page := fmt.Sprintf("http://127.0.0.1:%d/tickets/", s.ln.Port)
	runSession(t, client, w, page)
	resp, err := client.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "next handler" {
		t.Errorf("after the login: %d %.200s", resp.StatusCode, body)
	}
}

// TestYiviSchemes: the real pbdf and irma-demo, served by a local server
// under irmago's real pinned keys, are installed on first start; policies
// on pbdf attributes work, and a misspelled one gives the usual error; in
// development the gateway issues irma-demo credentials with the private
// keys irma-demo publishes, and in production it refuses to.
func TestYiviSchemes(t *testing.T) {
	srv := schemeserver.New(t)
	srv.ServeYivi(t)
	useSchemeServer(t, srv, srv.YiviRemotes()...)
	s := &schemeSite{ln: caddytest.Listen(t), srv: srv, dir: t.TempDir(), cache: filepath.Join(t.TempDir(), "schemes")}
	const issue = "handle /issue {\n\t\tirma_issue {\n\t\t\tcredential irma-demo.sidn-pbdf.email {\n\t\t\t\temail alice@example.com\n\t\t\t}\n\t\t}\n\t}"
	const members = "irma_auth /members/* {\n\t\trequire pbdf.sidn-pbdf.email.email\n\t}"
	caddytest.Start(t, s.caddyfile("schemes_update off", members+"\n\t"+issue))
	s.loginStarts(t, "/members/")
	if logs := s.logs(t); !strings.Contains(logs, "installed IRMA scheme") || !strings.Contains(logs, "development mode; never in production") {
		t.Errorf("the log does not tell of the install and the demo keys:\n%.2000s", logs)
	}

	demo := t.TempDir()
	schemeserver.Copy(t, filepath.Join(schemeserver.Yivi(t), "irma-demo"), filepath.Join(demo, "irma-demo"))
	w := openWallet(t, demo)
	runSession(t, nil, w, fmt.Sprintf("http://127.0.0.1:%d/issue", s.ln.Port))
	creds, err := w.Credentials()
	if err != nil || len(creds) != 1 || creds[0].Type.String() != "irma-demo.sidn-pbdf.email" || creds[0].Attributes[0].Value != "alice@example.com" {
		t.Errorf("the wallet holds %+v, %v; want an irma-demo email credential", creds, err)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"production", strings.Replace(s.caddyfile("schemes_update off\n\t\tproduction", issue), "url http://", "url https://", 1),
			[]string{"irma_issue", "irma-demo.sidn-pbdf.email", "no private key"}},
		{"misspelled attribute", s.caddyfile("schemes_update off", strings.Replace(members, "email.email", "email.emial", 1)),
			[]string{"irma_auth", "pbdf.sidn-pbdf.email.emial"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadFails(t, tc.config, tc.want...)
		})
	}
}
