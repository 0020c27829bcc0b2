package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestPromisesIssue asserts the README's promises about irma_issue:
// redirect (where the browser goes when the session is done, and only a
// same-site path), pairing off, and an empty placeholder refused.
func TestPromisesIssue(t *testing.T) {
	g := newGateway(t)
	base := g.base
	issue := func(redirect string) string {
		return fmt.Sprintf(`irma_endpoints
	handle /issue/welcome {
		irma_issue {
			credential caddy-demo.gateway.membership {
				club "Caddy demo club"
				level gold
			}
			redirect %s
			pairing off
		}
	}
	handle /issue/unpaired {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname {http.request.uri.query.name}
				email alice@example.com
				over18 yes
			}
			pairing off
		}
	}
	handle /welcome {
		respond "welcome from {http.request.uri.query.from}"
	}
	respond "not here" 404`, redirect)
	}
	g.start(t, "", issue("/welcome?from=issue"))
	codes := make(chan string, 4)
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath, OnPairingCode: func(code string) {
		select {
		case codes <- code:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	holds := func(id string) string { t.Helper(); return heldValue(t, w, id) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("redirect is the issuance page's done URL", func(t *testing.T) {
		resp, body := newBrowser(t).get(base+"/issue/welcome", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("issuance page: %d %.300s", resp.StatusCode, body)
		}
		if got := pageConfig(t, body)["doneUrl"]; got != "/welcome?from=issue" {
			t.Errorf("the page goes to %q when done, want the redirect /welcome?from=issue", got)
		}
	})

	t.Run("redirect: the browser lands there when the session is done", func(t *testing.T) {
		browser := newChromium(t)
		var link string
		if err := chromedp.Run(browser,
			chromedp.Navigate(base+"/issue/welcome"),
			chromedp.WaitVisible(`#open`, chromedp.ByID),
			chromedp.AttributeValue(`#open`, "href", &link, nil, chromedp.ByID),
		); err != nil {
			t.Fatalf("opening the issuance page: %v", err)
		}
		ptr, err := wallet.ParsePointer(link)
		if err != nil {
			t.Fatalf("the page's app link %q: %v", link, err)
		}
		runUnpaired(ctx, t, w, ptr, codes)
		wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
		defer cancelWait()
		var location string
		if err := chromedp.Run(wait,
			chromedp.WaitVisible(`//body[contains(., "welcome from issue")]`, chromedp.BySearch),
			chromedp.Location(&location),
		); err != nil {
			t.Fatalf("the browser did not land on the redirect: %v", err)
		}
		if location != base+"/welcome?from=issue" {
			t.Errorf("the browser is at %s", location)
		}
		if holds("caddy-demo.gateway.membership.level") != "gold" {
			t.Error("the wallet holds no membership")
		}
	})

	t.Run("pairing off issues without pairing", func(t *testing.T) {
		resp, body := newBrowser(t).get(base+"/issue/unpaired?name=Alice+Demo", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		info := parseInfo(t, body)
		if info.SessionPtr.Type != irma.ActionIssuing || info.Frontend.PairingCode != "" || info.Frontend.PairingCompletedURL != "" {
			t.Errorf("pairing off, but the answer asks for pairing: %s", body)
		}
		runUnpaired(ctx, t, w, info.SessionPtr, codes)
		if got := holds("caddy-demo.gateway.person.fullname"); got != "Alice Demo" {
			t.Errorf("the wallet holds fullname %q", got)
		}
	})

	t.Run("a placeholder that comes out empty is a 400", func(t *testing.T) {
		if resp, body := newBrowser(t).get(base+"/issue/unpaired", nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("no name: %d %s", resp.StatusCode, body)
		}
	})

	// Last: a refused config leaves the running one alone, but this is
	// where the running one is no longer needed.
	t.Run("redirect that is not a same-site path is a config error naming it", func(t *testing.T) {
		for _, bad := range []string{"https://evil.example/welcome", "//evil.example/welcome", `/\evil.example`, "welcome"} {
			err := caddytest.Load(g.config("", issue(bad)))
			if err == nil {
				t.Errorf("redirect %s: the config loaded", bad)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, "redirect") || !strings.Contains(msg, fmt.Sprintf("%q", bad)) {
				t.Errorf("redirect %s: the error does not name it: %v", bad, err)
			}
		}
	})
}

// TestPromisesSign asserts the README's promises about irma_sign:
// message_body (the POSTed body is the message the wallet signs) and the
// refusal of a session started from another site.
func TestPromisesSign(t *testing.T) {
	g := newGateway(t)
	base := g.base
	app := g.start(t, "", `irma_endpoints
	handle /sign/body {
		irma_sign {
			message_body
			require caddy-demo.gateway.person.email
		}
	}
	respond "not here" 404`)
	alice := (&authSite{base: base, scheme: g.scheme, app: app}).newWallet(t, "alice@example.com", "yes")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	post := func(b *browser, header map[string]string, msg string) (*http.Response, string) {
		t.Helper()
		h := map[string]string{"Content-Type": "text/plain; charset=utf-8"}
		for k, v := range header {
			h[k] = v
		}
		return b.send("POST", base+"/sign/body", h, msg)
	}

	t.Run("message_body: the POSTed body is the message signed", func(t *testing.T) {
		msg := "I, Alice, agree to the terms.\n\n  Indented, with a € and a ✓, and a trailing newline.\n"
		b, _ := newRecordingBrowser(t, nil)
		resp, body := post(b, nil, msg)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("starting: %d %s", resp.StatusCode, body)
		}
		sess, err := wallet.ParseSession([]byte(body), base+"/sign/body")
		if err != nil || sess.Pointer.Type != irma.ActionSigning {
			t.Fatalf("the answer: %v %s", err, body)
		}
		res, err := alice.RunSession(ctx, sess, wallet.Accept)
		if err != nil {
			t.Fatalf("signing: %+v, %v", res, err)
		}
		if len(res.Requests) != 1 || res.Requests[0].Message != msg {
			t.Errorf("the wallet was asked to sign %q, want %q", res.Requests[0].Message, msg)
		}
		resp, body = b.get(base+"/sign/body", nil)
		var got caddyirma.SignResult
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != http.StatusOK || got.Signature == nil {
			t.Fatalf("the result: %d %v %.300s", resp.StatusCode, err, body)
		}
		if got.Signature.Message != msg {
			t.Errorf("the signature's message is %q, want %q", got.Signature.Message, msg)
		}
		// irmago's own verification: the signature is over its message,
		// and over no other.
		disclosed, status, err := got.Signature.Verify(app.Configuration(), nil)
		if err != nil || status != irma.ProofStatusValid {
			t.Fatalf("irmago's verification: %s %v", status, err)
		}
		var signedWith []string
		for _, con := range disclosed {
			for _, a := range con {
				if a.RawValue != nil {
					signedWith = append(signedWith, a.Identifier.String()+"="+*a.RawValue)
				}
			}
		}
		if len(signedWith) != 1 || signedWith[0] != "caddy-demo.gateway.person.email=alice@example.com" {
			t.Errorf("signed with %q", signedWith)
		}
		other := *got.Signature
		other.Message = strings.TrimSuffix(msg, "\n")
		if _, status, _ := other.Verify(app.Configuration(), nil); status == irma.ProofStatusValid {
			t.Error("the signature verifies over the message without its trailing newline")
		}
		if !got.Verification.Valid || got.Verification.Message != msg {
			t.Errorf("the gateway's verification: %+v", got.Verification)
		}
	})

	t.Run("message_body: only a POST", func(t *testing.T) {
		if resp, body := newBrowser(t).get(base+"/sign/body", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("a session started from another site is refused", func(t *testing.T) {
		self, _ := url.Parse(base)
		for _, tc := range []struct {
			name   string
			header map[string]string
			want   int
		}{
			{"foreign Origin", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			{"foreign Origin on the gateway's port", map[string]string{"Origin": "http://evil.example:" + self.Port()}, http.StatusForbidden},
			{"Sec-Fetch-Site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"same Origin", map[string]string{"Origin": base}, http.StatusOK},
			{"Sec-Fetch-Site same-origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": base}, http.StatusOK},
			{"no Origin (not a browser)", nil, http.StatusOK},
		} {
			resp, body := post(newBrowser(t), tc.header, "I owe you.")
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %d, want %d: %.200s", tc.name, resp.StatusCode, tc.want, body)
				continue
			}
			if tc.want == http.StatusForbidden {
				if len(resp.Header.Values("Set-Cookie")) != 0 {
					t.Errorf("%s: refused, but set %q", tc.name, resp.Header.Values("Set-Cookie"))
				}
				continue
			}
			if info := parseInfo(t, body); info.SessionPtr.Type != irma.ActionSigning {
				t.Errorf("%s: %s", tc.name, body)
			}
		}
	})
}
