package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// newChromium starts headless Chromium (Debian's chromium package, which
// .ci/run installs) for the test, with the options extra besides the
// tests' own.
func newChromium(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the browser tests (apt-get install chromium; .ci/run does): %v", err)
	}
	// Chromium's helper processes may still write to the profile for a
	// moment after the browser ends, which t.TempDir's cleanup would count
	// as a failure: the profile is removed here, after the browser is gone.
	profile, err := os.MkdirTemp("", "caddy-irma-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(900, 1100),
	)
	opts = append(opts, extra...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for i := 0; i < 50; i++ {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the Chromium profile %s", profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// TestBrowserLogin opens a protected page in real headless Chromium, reads
// the session pointer from the page, lets the wallet complete the session,
// and sees the browser land on the upstream's content; then a step-up that
// pairs: the wallet shows a code, the person types it into the page.
func TestBrowserLogin(t *testing.T) {
	s := newAuthSite(t)
	codes := make(chan string, 1)
	alice := s.newWalletPairing(t, "alice@example.com", "yes", func(code string) {
		select {
		case codes <- code:
		default: // the test reads one code; never block the wallet
		}
	})
	browser := newChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// What the page asks to follow the session: its statusevents stream.
	var mu sync.Mutex
	var asked []string
	chromedp.ListenTarget(browser, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			asked = append(asked, ev.Request.URL)
			mu.Unlock()
		}
	})
	if err := chromedp.Run(browser, network.Enable()); err != nil {
		t.Fatal(err)
	}

	var link, lang string
	if err := chromedp.Run(browser,
		chromedp.Navigate(s.base+"/members/page"),
		chromedp.WaitVisible(`#open`, chromedp.ByID),
		chromedp.Evaluate(`document.documentElement.lang`, &lang),
	); err != nil {
		t.Fatalf("opening the protected page: %v", err)
	}
	screenshot(t, browser, "login-page.png")
	if lang != "en" {
		t.Fatalf("login page: lang %q", lang)
	}
	// The QR code is what a phone scans: decode it from the pixels the
	// browser shows, as a camera would; it is the app link's.
	ptr := scanPage(t, browser)
	if res, err := alice.Run(ctx, ptr, wallet.Accept); err != nil {
		t.Fatalf("wallet: %+v, %v", res, err)
	}
	var body string
	if err := chromedp.Run(browser,
		chromedp.WaitVisible(`//body[contains(., "upstream /members/page for alice@example.com")]`, chromedp.BySearch),
		chromedp.Text("body", &body, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the browser did not land on the upstream: %v", err)
	}
	mu.Lock()
	followed := strings.Join(asked, "\n") + "\n"
	mu.Unlock()
	if !strings.Contains(followed, "/frontend/statusevents") || strings.Contains(followed, "/frontend/status\n") {
		t.Errorf("the page did not follow the session with statusevents alone; it asked:\n%s", followed)
	}

	// A session refused in the app: the page says so and offers a retry.
	if err := chromedp.Run(browser,
		chromedp.Navigate(s.base+"/gold/"),
		chromedp.WaitVisible(`#open`, chromedp.ByID),
		chromedp.AttributeValue(`#open`, "href", &link, nil, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	ptr, err := wallet.ParsePointer(link)
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := alice.Run(ctx, ptr, wallet.Refuse); res.Outcome != wallet.Refused {
		t.Fatalf("refusal: %+v", res)
	}
	var status, retry string
	if err := chromedp.Run(browser,
		chromedp.WaitVisible(`#retry a`, chromedp.ByQuery),
		chromedp.Text(`#status`, &status, chromedp.ByID),
		chromedp.AttributeValue(`#retry a`, "href", &retry, nil, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the page did not offer a retry: %v", err)
	}
	screenshot(t, browser, "cancelled.png")
	if !strings.Contains(status, "cancelled") || retry != "/gold/" {
		t.Errorf("after a refusal the page says %q and retries at %q", status, retry)
	}

	// Step-up with pairing: /adults/ asks a value, so the page pairs.
	if err := chromedp.Run(browser,
		chromedp.Navigate(s.base+"/adults/"),
		chromedp.WaitVisible(`#open`, chromedp.ByID),
		chromedp.AttributeValue(`#open`, "href", &link, nil, chromedp.ByID),
	); err != nil {
		t.Fatal(err)
	}
	if ptr, err = wallet.ParsePointer(link); err != nil {
		t.Fatal(err)
	}
	code, done := runUntilPairingCode(ctx, t, alice, ptr, codes)
	if err := chromedp.Run(browser,
		chromedp.WaitVisible(`#pairing-code`, chromedp.ByID),
		chromedp.SendKeys(`#pairing-code`, "0000", chromedp.ByID),
		chromedp.Click(`#pairing-box button`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[@id="pairing-error" and string-length(normalize-space(.)) > 0]`, chromedp.BySearch),
	); err != nil {
		t.Fatalf("a wrong pairing code: %v", err)
	}
	screenshot(t, browser, "pairing.png")
	if err := chromedp.Run(browser,
		chromedp.Evaluate(`document.getElementById("pairing-code").value = ""`, nil),
		chromedp.SendKeys(`#pairing-code`, code, chromedp.ByID),
		chromedp.Click(`#pairing-box button`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	awaitPaired(ctx, t, done)
	wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
	defer cancelWait()
	if err := chromedp.Run(wait,
		chromedp.WaitVisible(`//body[contains(., "upstream /adults/ for")]`, chromedp.BySearch),
	); err != nil {
		screenshot(t, browser, "adults-failed.png")
		t.Fatalf("the browser did not land on /adults/: %v", err)
	}
}

// decodeQR reads the QR code in a PNG.
func decodeQR(t testing.TB, png []byte) string {
	t.Helper()
	text, err := readQR(png)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// readQR reads the QR code in a PNG, or says why it cannot.
func readQR(png []byte) (string, error) {
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		return "", err
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", err
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		// gozxing's detector misses some codes that it reads as what they
		// are, a code alone on white (as canvasPNG draws them): a camera
		// would have read them.
		var pure error
		if res, pure = qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}); pure != nil {
			return "", fmt.Errorf("no QR code on the page: %w", err)
		}
	}
	return res.GetText(), nil
}

// screenshot saves what the browser shows, for a person to look at, when
// CADDY_IRMA_SCREENSHOTS names a directory.
func screenshot(t testing.TB, browser context.Context, name string) {
	dir := os.Getenv("CADDY_IRMA_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	if err := chromedp.Run(browser, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, name), png, 0o644)
}
