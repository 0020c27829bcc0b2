package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestBrowserDeferredStart: a login page starts its session from its
// script, so that clients that run none (crawlers, link previews) start
// none. With per_client 2: five page navigations without script, and
// another site's images and prefetch in the visitor's browser, start
// nothing; Chromium without JavaScript logs in through the page's button
// (session 1); Chromium with JavaScript gets a QR code (session 2); the
// next page's script is refused, and the page says so.
func TestBrowserDeferredStart(t *testing.T) {
	s := newAuthSiteStore(t, nil, "session_limits {\n\t\t\tper_client 2 10m\n\t\t}")
	for range 5 {
		resp, body := newBrowser(t).get(s.base+"/members/", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
		if resp.StatusCode != 401 || !strings.Contains(body, `"start":"1"`) || strings.Contains(body, "data:image") {
			t.Fatalf("a page navigation without script: %d %.300s", resp.StatusCode, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Another site's page with 35 images of protected pages, and a prefetch
	// of one, in the visitor's browser: none starts a session, so none
	// spends the visitor's bound.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString(`<!doctype html><link rel="prefetch" href="` + s.base + `/members/p">`)
		for i := range 35 {
			fmt.Fprintf(&b, `<img src="%s/members/?n=%d">`, s.base, i)
		}
		b.WriteString(`<p id="done">loaded</p>`)
		_, _ = w.Write([]byte(b.String()))
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1) // another site than 127.0.0.1
	visitor := newChromium(t)
	if err := chromedp.Run(visitor, chromedp.Navigate(evilURL), chromedp.WaitVisible(`#done`, chromedp.ByID),
		chromedp.Poll(`Array.from(document.images).every(i => i.complete)`, nil)); err != nil {
		t.Fatalf("another site's page: %v", err)
	}

	// Without JavaScript: the button posts, the answer shows the QR code,
	// and after the app, the visitor opens the page again.
	alice := s.newWallet(t, "alice@example.com", "yes")
	noscript := newChromium(t)
	if err := chromedp.Run(noscript,
		emulation.SetScriptExecutionDisabled(true),
		chromedp.Navigate(s.base+"/members/"),
		chromedp.WaitVisible(`noscript button, form[method=post] button`, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the page without script: %v", err)
	}
	screenshot(t, noscript, "noscript-start.png")
	if err := chromedp.Run(noscript,
		chromedp.Click(`form[method=post] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#qr`, chromedp.ByID),
	); err != nil {
		t.Fatalf("the page's button: %v", err)
	}
	ptr := scanPage(t, noscript)
	if res, err := alice.Run(ctx, ptr, wallet.Accept); err != nil {
		t.Fatalf("wallet: %+v, %v", res, err)
	}
	if err := chromedp.Run(noscript,
		chromedp.Navigate(s.base+"/members/"),
		chromedp.WaitVisible(`//body[contains(., "upstream /members/ for alice@example.com")]`, chromedp.BySearch),
	); err != nil {
		t.Fatalf("the browser without script did not log in: %v", err)
	}

	// With JavaScript: the page's script starts the second session.
	browser := newChromium(t)
	if err := chromedp.Run(browser, chromedp.Navigate(s.base+"/name/"), chromedp.WaitVisible(`#open`, chromedp.ByID)); err != nil {
		t.Fatalf("the page's script did not start a session: %v", err)
	}
	if ptr := scanPage(t, browser); ptr.Type != irma.ActionDisclosing {
		t.Errorf("session pointer %+v", ptr)
	}
	// A third is over the bound: the page says so, and offers a retry.
	var status string
	if err := chromedp.Run(browser,
		chromedp.Navigate(s.base+"/both/"),
		chromedp.WaitVisible(`#retry a`, chromedp.ByQuery),
		chromedp.Text(`#status`, &status, chromedp.ByID),
	); err != nil {
		t.Fatalf("the page over the bound: %v", err)
	}
	screenshot(t, browser, "busy.png")
	if !strings.Contains(status, "Too many Yivi sessions") {
		t.Errorf("over the bound the page says %q", status)
	}
}

// scanPage reads the QR code that the page shows, as a phone's camera
// would, once its image has loaded, and checks it against the app link.
func scanPage(t testing.TB, browser context.Context) *irma.Qr {
	t.Helper()
	var png []byte
	var link string
	if err := chromedp.Run(browser,
		chromedp.Poll(`document.getElementById("qr").complete && document.getElementById("qr").naturalWidth > 0`, nil),
		// At twice the size the page shows: gozxing misses about one code
		// in a hundred at 256 pixels (the content decides; at 512 it reads
		// them all).
		chromedp.ScreenshotScale(`.qr`, 2, &png, chromedp.ByQuery),
		chromedp.AttributeValue(`#open`, "href", &link, nil, chromedp.ByID),
	); err != nil {
		t.Fatalf("the page's QR code: %v", err)
	}
	scanned := decodeQR(t, png)
	ptr, err := wallet.ParsePointer(scanned)
	if err != nil {
		t.Fatalf("the QR code holds %q: %v", scanned, err)
	}
	if fromLink, err := wallet.ParsePointer(link); err != nil || *fromLink != *ptr {
		t.Fatalf("the QR code (%+v) and the app link (%+v, %v) differ", ptr, fromLink, err)
	}
	return ptr
}
