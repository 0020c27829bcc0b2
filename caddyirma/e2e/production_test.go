package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestProductionHTTPS runs the gateway as a real site runs it: on https
// with a certificate from Caddy's own CA (tls internal), in production
// mode, on a scheme that names the gateway's timestamp service at its https
// URL; and the wallet as the Yivi app is out of the box, developer mode
// off, trusting Caddy's CA and nothing else for it. Issuance (irma_issue),
// a login in a real browser from the QR code its page shows, a login and a
// step-up by script, a signature (irma_sign, timestamped over https) and a
// session of the requestor API with an authenticated requestor all
// complete. (What production mode refuses at load, an http url and
// unauthenticated issuance, is in caddyirma/loaderrors_test.go.)
func TestProductionHTTPS(t *testing.T) {
	up := newRecordingUpstream(t)
	g := newGatewayFor(t, "https")
	app, base, roots := g.startHTTPS(t, `production
		policy members {
			require caddy-demo.gateway.person.email
		}
		policy adults {
			require caddy-demo.gateway.person.over18=yes
		}`, fmt.Sprintf(`irma_auth /members/* members
	irma_auth /adults/* adults
	handle /members/* {
		reverse_proxy %[1]s
	}
	handle /adults/* {
		reverse_proxy %[1]s
	}
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname {http.request.uri.query.name}
				email {http.request.uri.query.email}
				over18 yes
			}
		}
	}
	handle /sign {
		irma_sign {
			message "I, {http.request.uri.query.name}, agree."
			require caddy-demo.gateway.person.email
		}
	}
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token s3cret-token
				disclose caddy-demo.gateway.person.*
				issue caddy-demo.gateway.membership
			}
		}
	}
	respond "public"`, up.addr()))
	trustInProcess(t, roots)
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath, Production: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, jar := newRecordingBrowser(t, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}})
	onHTTPS := func(t *testing.T, what string, ptr *irma.Qr) {
		t.Helper()
		if ptr == nil || !strings.HasPrefix(ptr.URL, base+"/irma/session/") {
			t.Fatalf("%s: the session pointer %+v is not on %s", what, ptr, base)
		}
	}
	// runPage has the wallet perform the session that the page at path
	// starts.
	runPage := func(t *testing.T, path string) {
		t.Helper()
		sess, err := wallet.FetchSession(ctx, b.c, base+path)
		if err != nil {
			t.Fatal(err)
		}
		onHTTPS(t, path, sess.Pointer)
		if res, err := w.RunSession(ctx, sess, wallet.Accept); err != nil {
			t.Fatalf("%s: %+v, %v", path, res, err)
		}
	}

	t.Run("issuance (irma_issue)", func(t *testing.T) {
		runPage(t, "/issue?name=Alice+Demo&email=alice@example.com")
		if got := heldValue(t, w, "caddy-demo.gateway.person.email"); got != "alice@example.com" {
			t.Fatalf("the wallet holds email %q", got)
		}
	})

	t.Run("login in a browser, from the QR code on the page", func(t *testing.T) {
		// Chromium trusts Caddy's CA: it accepts the certificates that the
		// CA's intermediate signed.
		resp, _ := b.get(base+"/", nil)
		if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 || len(resp.TLS.VerifiedChains[0]) != 3 {
			t.Fatalf("the site's certificate chain: %+v", resp.TLS)
		}
		spki := sha256.Sum256(resp.TLS.VerifiedChains[0][1].RawSubjectPublicKeyInfo)
		chrome := newChromium(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
		if err := chromedp.Run(chrome,
			chromedp.Navigate(base+"/members/page"),
			chromedp.WaitVisible(`#open`, chromedp.ByID),
		); err != nil {
			t.Fatalf("opening the protected page: %v", err)
		}
		ptr := scanPage(t, chrome)
		onHTTPS(t, "the QR code", ptr)
		if res, err := w.Run(ctx, ptr, wallet.Accept); err != nil {
			t.Fatalf("the login: %+v, %v", res, err)
		}
		// The session cookie is __Host- and Secure: Chromium keeps it only
		// so, over https.
		if err := chromedp.Run(chrome,
			chromedp.WaitVisible(`//body[contains(., "upstream /members/page")]`, chromedp.BySearch),
		); err != nil {
			t.Fatalf("the browser did not land on the upstream: %v", err)
		}
	})

	t.Run("login and step-up by script", func(t *testing.T) {
		resp, body := b.get(base+"/members/x", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous: %d %s", resp.StatusCode, body)
		}
		onHTTPS(t, "the 401", parseInfo(t, body).SessionPtr)
		// The upstream checks each JWT with the keys that the gateway
		// publishes on https.
		for _, step := range []struct{ path, policy, attr, value string }{
			{"/members/x", "members", "caddy-demo.gateway.person.email", "alice@example.com"},
			{"/adults/x", "adults", "caddy-demo.gateway.person.over18", "yes"},
		} {
			b.login(ctx, w, base+step.path)
			resp, body := b.get(base+step.path, nil)
			if resp.StatusCode != http.StatusOK || body != "upstream "+step.path {
				t.Fatalf("%s after the login: %d %q", step.path, resp.StatusCode, body)
			}
			claims := verifyWithJWKS(t, up.headers().Get(caddyirma.DefaultIdentityHeader), fetchJWKS(t, b, base), base)
			if claims.Policy != step.policy || claims.Attributes[step.attr] != step.value {
				t.Errorf("%s: claims %+v", step.path, claims)
			}
		}
		names := map[string]bool{}
		for _, c := range jar.all() {
			names[c.Name] = true
			if !c.Secure || !strings.HasPrefix(c.Name, "__Host-") || c.Domain != "" || c.Path != "/" {
				t.Errorf("cookie %s: want Secure, __Host-, no Domain, Path /", describeCookie(c))
			}
		}
		if !names["__Host-"+caddyirma.DefaultCookieName] {
			t.Errorf("cookies set: %v", names)
		}
	})

	t.Run("signature (irma_sign), timestamped over https", func(t *testing.T) {
		runPage(t, "/sign?name=Alice")
		resp, body := b.get(base+"/sign?name=Alice", nil)
		var got caddyirma.SignResult
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != http.StatusOK || got.Signature == nil {
			t.Fatalf("after signing: %d %v %s", resp.StatusCode, err, body)
		}
		if ts := got.Signature.Timestamp; ts == nil || ts.ServerUrl != base+"/irma/timestamp" {
			t.Errorf("the signature's timestamp %+v, want one from %s/irma/timestamp", ts, base)
		}
		if v := got.Verification; v == nil || !v.Valid || v.Message != "I, Alice, agree." {
			t.Errorf("verification %+v", v)
		}
		if _, status, err := got.Signature.Verify(app.Configuration(), nil); status != irma.ProofStatusValid || err != nil {
			t.Errorf("irmago's verification: %s %v", status, err)
		}
	})

	t.Run("requestor API with an authenticated requestor", func(t *testing.T) {
		issuance := `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.membership","attributes":{"club":"Caddy demo club","level":"gold"}}]}`
		header := map[string]string{"Content-Type": "application/json"}
		if resp, body := b.send("POST", base+"/api/irma/session", header, issuance); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "INVALID_REQUEST") {
			t.Errorf("an unauthenticated issuance: %d %s, want 400 INVALID_REQUEST", resp.StatusCode, body)
		}
		header["Authorization"] = "s3cret-token"
		resp, body := b.send("POST", base+"/api/irma/session", header, issuance)
		var started struct {
			SessionPtr *irma.Qr            `json:"sessionPtr"`
			Token      irma.RequestorToken `json:"token"`
		}
		if err := json.Unmarshal([]byte(body), &started); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /session: %d %v %s", resp.StatusCode, err, body)
		}
		onHTTPS(t, "the requestor API", started.SessionPtr)
		if res, err := w.Run(ctx, started.SessionPtr, wallet.Accept); err != nil {
			t.Fatalf("issuance: %+v, %v", res, err)
		}
		resp, body = b.send("GET", base+"/api/irma/session/"+string(started.Token)+"/result", nil, "")
		var res server.SessionResult
		if err := json.Unmarshal([]byte(body), &res); err != nil || resp.StatusCode != http.StatusOK ||
			res.Status != irma.ServerStatusDone || res.ProofStatus != irma.ProofStatusValid {
			t.Fatalf("result: %d %v %s", resp.StatusCode, err, body)
		}
		if got := heldValue(t, w, "caddy-demo.gateway.membership.level"); got != "gold" {
			t.Errorf("the wallet holds level %q", got)
		}
	})
}

// TestProductionWalletRefusesDevelopment is the other side: a wallet with
// developer mode off (the Yivi app out of the box) refuses the sessions of
// a gateway that is not in production mode, even on https with a
// certificate it trusts, and the gateway hears of it; a development wallet
// performs the same session.
func TestProductionWalletRefusesDevelopment(t *testing.T) {
	g := newGatewayFor(t, "https")
	app, _, roots := g.startHTTPS(t, "", "irma_endpoints")
	trustInProcess(t, roots)
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	issuance := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: g.scheme.Credential(demoscheme.CredentialMembership),
		Attributes:       map[string]string{"club": "Caddy demo club", "level": "gold"},
	}})

	prod, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath, Production: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	ptr, token, _, err := srv.StartSession(issuance, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := prod.Run(ctx, ptr, wallet.Accept)
	if err == nil || res.Outcome == wallet.Success || !strings.Contains(err.Error(), "developer mode") {
		t.Fatalf("a production wallet on a development gateway: %+v, %v; want a refusal that names developer mode", res, err)
	}
	if result := waitResult(ctx, t, srv, token); result.Status == irma.ServerStatusDone {
		t.Errorf("the refused session ended %s", result.Status)
	}
	if creds, err := prod.Credentials(); err != nil || len(creds) != 0 {
		t.Errorf("the production wallet holds %v (%v)", creds, err)
	}

	dev, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	runServerSession(ctx, t, srv, dev, issuance)
}

// trustInProcess makes irmago and go-atum in this process trust the
// certificates that roots vouch for, until the test ends: what
// SSL_CERT_FILE does for a wallet of its own process. (A test cannot use
// SSL_CERT_FILE: Go reads the system roots once per process.) irmago's
// transport takes its TLS settings from irma.SetTLSClientConfig; go-atum,
// with which the wallet gets a signature's timestamp, posts with
// http.DefaultClient. The cleanup runs after the wallets' (cleanups run last
// first), so no wallet uses a setting that is being undone.
func trustInProcess(t *testing.T, roots *x509.CertPool) {
	t.Helper()
	irma.SetTLSClientConfig(&tls.Config{RootCAs: roots})
	saved := http.DefaultTransport
	trusting := saved.(*http.Transport).Clone()
	trusting.TLSClientConfig = &tls.Config{RootCAs: roots}
	http.DefaultTransport = trusting
	t.Cleanup(func() {
		http.DefaultTransport = saved
		trusting.CloseIdleConnections()
		irma.SetTLSClientConfig(nil)
	})
}
