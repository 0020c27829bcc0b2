package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// axeVersion is the version of axe-core (npm) that TestPagesAccessible
// runs in the pages.
const axeVersion = "4.14.1"

// installAxe installs axe-core with npm and returns its browser script.
func installAxe(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(npmInstall(t, "axe-core", axeVersion), "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A phone's width and a desktop's.
var pageWidths = []struct {
	name          string
	width, height int64
	mobile        bool
}{
	{"phone", 390, 844, true},
	{"desktop", 1280, 900, false},
}

// TestPagesAccessible runs axe-core in real Chromium on every page a
// visitor meets, in every state the README shows, at a phone's width and
// a desktop's: the login page with its QR code, the page that asks for
// the pairing code, a cancelled session's (an error), an issuance that is
// done, the signing page and the signed one, the logout page, a refusal,
// and the login page without JavaScript. No serious or critical violation
// of WCAG 2.1 A and AA may remain. With CADDY_IRMA_SCREENSHOTS set (make
// screenshots), it saves each state's screenshot there, as the README
// shows them.
func TestPagesAccessible(t *testing.T) {
	axe := installAxe(t)
	g := newGateway(t)
	g.start(t, "", `irma_endpoints
	irma_auth /members/* {
		require caddy-demo.gateway.person.email
	}
	irma_auth /paired/* {
		require caddy-demo.gateway.person.fullname
		pairing on
	}
	irma_auth /club/* {
		require caddy-demo.gateway.person.email=nobody@example.com
		pairing off
	}
	handle /issue {
		irma_issue {
			credential caddy-demo.gateway.person {
				fullname "Alice Demo"
				email    alice@example.com
				over18   yes
			}
			pairing off
		}
	}
	handle /sign {
		irma_sign {
			message "I, Alice, agree to the terms."
			require caddy-demo.gateway.person.email
			pairing off
		}
	}
	respond "members only" 200`)
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, size := range pageWidths {
		t.Run(size.name, func(t *testing.T) {
			device := emulation.SetDeviceMetricsOverride(size.width, size.height, 1, size.mobile)
			p := &pageChecker{t: t, axe: axe, width: size.name, device: device}
			browser := newChromium(t)
			if err := chromedp.Run(browser, device); err != nil {
				t.Fatal(err)
			}
			p.visit(browser, "login", g.base+"/members/", `document.getElementById("qr").naturalWidth > 0`)
			p.focusVisible(browser)
			p.visit(browser, "issue", g.base+"/issue", `document.getElementById("qr").naturalWidth > 0`)
			p.run(w, p.scan(browser), wallet.Accept)
			p.check(browser, "done", `document.getElementById("status").textContent.indexOf("Done") === 0`)
			p.visit(browser, "sign", g.base+"/sign", `document.getElementById("qr").naturalWidth > 0`)
			p.run(w, p.scan(browser), wallet.Accept)
			p.check(browser, "signed", `!!document.querySelector("a[download]")`)
			// Alice's address is not the one asked: the app has none to
			// show, and the session ends cancelled.
			p.visit(browser, "club", g.base+"/club/", `document.getElementById("qr").naturalWidth > 0`)
			p.run(w, p.scan(browser), wallet.Accept)
			p.check(browser, "cancelled", `!document.getElementById("retry").hidden`)
			p.visit(browser, "pairing-start", g.base+"/paired/", `document.getElementById("qr").naturalWidth > 0`)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			ptr := p.scan(browser)
			go func() { defer close(done); _, _ = w.Run(ctx, ptr, wallet.Accept) }()
			p.check(browser, "pairing", `!document.getElementById("pairing-box").hidden`)
			cancel() // the person gives up in the app
			<-done
			p.visit(browser, "logout", g.base+"/irma/logout", `!!document.querySelector("form button")`)

			noscript := newChromium(t)
			if err := chromedp.Run(noscript, device, emulation.SetScriptExecutionDisabled(true)); err != nil {
				t.Fatal(err)
			}
			// Loaded without script, the page shows its <noscript> part; then
			// script is allowed again, for axe, which the page's own script,
			// skipped at load, does not follow.
			if err := chromedp.Run(noscript, chromedp.Navigate(g.base+"/members/"), emulation.SetScriptExecutionDisabled(false)); err != nil {
				t.Fatal(err)
			}
			p.check(noscript, "noscript", `!!document.querySelector("form[method=post] button") && document.getElementById("qr").naturalWidth === 0`)
		})
	}
}

// pageChecker runs axe-core in the pages of one width.
type pageChecker struct {
	t      *testing.T
	axe    string
	width  string
	device chromedp.Action // the width's emulation
}

// scan reads the page's QR code, and sets the width's emulation again,
// which the screenshot that scanPage takes ends.
func (p *pageChecker) scan(browser context.Context) *irma.Qr {
	p.t.Helper()
	ptr := scanPage(p.t, browser)
	if err := chromedp.Run(browser, p.device); err != nil {
		p.t.Fatal(err)
	}
	return ptr
}

// visit opens url and checks the page once ready says so.
func (p *pageChecker) visit(browser context.Context, state, url, ready string) {
	p.t.Helper()
	if err := chromedp.Run(browser, chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("%s: %v", state, err)
	}
	p.check(browser, state, ready)
}

// run has the wallet answer the session of ptr.
func (p *pageChecker) run(w *wallet.Wallet, ptr *irma.Qr, consent func(wallet.Request) bool) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), time.Minute)
	defer cancel()
	_, _ = w.Run(ctx, ptr, consent)
}

// check waits until ready holds in the page, saves its screenshot if
// asked, and fails the test with every serious or critical violation that
// axe-core finds. axe runs through the DevTools protocol, which the
// page's Content-Security-Policy does not govern.
func (p *pageChecker) check(browser context.Context, state, ready string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	// Asked again and again, not with chromedp.Poll, which fails when the
	// page navigates meanwhile (a done session's page goes on). The
	// DevTools protocol's evaluation runs without the page's own script
	// too (the noscript page).
	for {
		var ok bool
		err := chromedp.Run(ctx, chromedp.Evaluate(ready, &ok))
		if err == nil && ok {
			break
		}
		if ctx.Err() != nil {
			var status string
			_ = chromedp.Run(browser, chromedp.Evaluate(`document.getElementById("status") ? document.getElementById("status").textContent : document.title`, &status))
			p.t.Fatalf("%s (%s): the page never got ready (%s): %v; it says %q", state, p.width, ready, err, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	screenshot(p.t, browser, fmt.Sprintf("page-%s-%s.png", state, p.width))
	if err := chromedp.Run(ctx, p.device); err != nil { // which a screenshot may have ended
		p.t.Fatal(err)
	}
	var violations []struct {
		ID     string `json:"id"`
		Impact string `json:"impact"`
		Help   string `json:"help"`
		Nodes  []struct {
			Target []any `json:"target"`
		} `json:"nodes"`
	}
	run := p.axe + `;axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
		.then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({target: n.target}))})))`
	if err := chromedp.Run(ctx, chromedp.Evaluate(run, &violations, func(e *runtime.EvaluateParams) *runtime.EvaluateParams {
		return e.WithAwaitPromise(true)
	})); err != nil {
		p.t.Fatalf("%s (%s): axe-core: %v", state, p.width, err)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			b, _ := json.Marshal(v.Nodes)
			p.t.Errorf("%s (%s): %s %s: %s at %s", state, p.width, v.Impact, v.ID, v.Help, b)
		} else {
			p.t.Logf("%s (%s): %s %s: %s", state, p.width, v.Impact, v.ID, v.Help)
		}
	}
}

// focusVisible moves the keyboard focus through the page with Tab and
// checks that every control it reaches shows it: an outline.
func (p *pageChecker) focusVisible(browser context.Context) {
	p.t.Helper()
	seen := map[string]bool{}
	for range 6 {
		var focused struct {
			ID, Outline string
		}
		if err := chromedp.Run(browser, chromedp.KeyEvent(kb.Tab),
			chromedp.Evaluate(`({ID: document.activeElement.id || document.activeElement.tagName, Outline: getComputedStyle(document.activeElement).outlineStyle})`, &focused)); err != nil {
			p.t.Fatal(err)
		}
		if focused.ID == "BODY" {
			continue
		}
		seen[focused.ID] = true
		if focused.Outline == "none" || focused.Outline == "" {
			p.t.Errorf("%s: the keyboard focus on %s does not show", p.width, focused.ID)
		}
	}
	if !seen["open"] {
		p.t.Errorf("%s: Tab never reached the button that opens the Yivi app (reached %v)", p.width, seen)
	}
}

// TestReadmeScreenshots: every picture of the session page that the README
// shows is in the repository, as make screenshots leaves it.
func TestReadmeScreenshots(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := regexp.MustCompile(`\]\((caddyirma/e2e/screenshots/[^)]+\.png)\)`).FindAllStringSubmatch(string(readme), -1)
	if len(shown) != 8 {
		t.Errorf("the README shows %d screenshots, want 8 (4 states, 2 widths)", len(shown))
	}
	for _, m := range shown {
		if _, err := os.Stat(filepath.Join("..", "..", m[1])); err != nil {
			t.Errorf("the README shows %s: %v (make screenshots)", m[1], err)
		}
	}
}
