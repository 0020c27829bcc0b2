package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestLoginPageSaysWhatItAsks: in Chromium, the login page names the site
// and lists what the route's policy asks, in the language the browser
// asks for (English and Dutch): an alternative from the scheme's names
// ("Email address ..., or Club ..."), a required value ("Over 18: yes"),
// and the operator's label where the Caddyfile gives one; and it still
// does, with the QR code, once its script has started the session.
func TestLoginPageSaysWhatItAsks(t *testing.T) {
	g := newGateway(t)
	g.start(t, "", `irma_endpoints
	irma_auth /members/* {
		require caddy-demo.gateway.person.email or caddy-demo.gateway.membership.club
		require caddy-demo.gateway.person.over18=yes
		require caddy-demo.gateway.person.fullname {
			label en "Your name, as on the <member> list"
			label nl "Uw naam, zoals op de <leden>lijst"
		}
	}
	respond "members only" 200`)
	for _, tc := range []struct {
		lang  string
		items []string
	}{
		{"en", []string{
			"127.0.0.1 asks you to show with the Yivi app:",
			"Email address (Demo person, Caddy IRMA demo issuer), or Club (Demo membership, Caddy IRMA demo issuer)",
			"Over 18: yes (Demo person, Caddy IRMA demo issuer)",
			"Your name, as on the <member> list",
		}},
		{"nl-NL,nl;q=0.9", []string{
			"127.0.0.1 vraagt u met de Yivi-app te laten zien:",
			"E-mailadres (Demo-persoon, Caddy IRMA-demo-uitgever), of Club (Demo-lidmaatschap, Caddy IRMA-demo-uitgever)",
			"Ouder dan 18: yes (Demo-persoon, Caddy IRMA-demo-uitgever)",
			"Uw naam, zoals op de <leden>lijst",
		}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			browser := newChromium(t)
			ctx, cancel := context.WithTimeout(browser, 30*time.Second)
			defer cancel()
			var shown []string
			var qr bool
			if err := chromedp.Run(ctx,
				network.Enable(),
				network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": tc.lang}),
				chromedp.Navigate(g.base+"/members/"),
				// The script starts the session and shows its QR code.
				chromedp.Poll(`document.getElementById("qr").complete && document.getElementById("qr").naturalWidth > 0`, &qr),
				chromedp.Evaluate(`[document.getElementById("asks").innerText].concat(Array.from(document.querySelectorAll("ul.asks li"), li => li.innerText))`, &shown),
			); err != nil {
				t.Fatalf("the login page: %v", err)
			}
			screenshot(t, browser, "login-asks-"+tc.lang[:2]+".png")
			if strings.Join(shown, "\n") != strings.Join(tc.items, "\n") {
				t.Errorf("the page says:\n  %s\nwant:\n  %s", strings.Join(shown, "\n  "), strings.Join(tc.items, "\n  "))
			}
		})
	}
}
