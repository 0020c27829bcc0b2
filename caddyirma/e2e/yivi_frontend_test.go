package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// yiviFrontendVersion is the version of the official Yivi web frontend
// (@privacybydesign/yivi-frontend) that TestYiviFrontend installs with npm.
const yiviFrontendVersion = "0.1.3"

// installYiviFrontend installs the official frontend bundle with npm and
// returns the directory that holds yivi.js.
func installYiviFrontend(t *testing.T) string {
	t.Helper()
	dist := filepath.Join(npmInstall(t, "@privacybydesign/yivi-frontend", yiviFrontendVersion), "dist")
	if _, err := os.Stat(filepath.Join(dist, "yivi.js")); err != nil {
		t.Fatalf("npm installed the frontend without its browser bundle: %v", err)
	}
	return dist
}

// npmInstall installs pkg@version with npm into a directory of the test's
// and returns the package's directory. It is never committed; a failing
// install fails the test.
func npmInstall(t *testing.T, pkg, version string) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is needed to install %s (Node.js and npm; see .ci/run): %v", pkg, err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir, pkg+"@"+version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s@%s failed (the npm registry must be reachable): %v\n%s", pkg, version, err, out)
	}
	return filepath.Join(dir, "node_modules", filepath.FromSlash(pkg))
}

// TestYiviFrontend runs the official Yivi web frontend in headless Chromium
// against the gateway's irma server-compatible requestor API, on the same
// origin: the frontend starts a disclosure session with a requestor token,
// shows the QR code, follows the session, and fetches the result, while the
// development wallet answers the session it shows.
func TestYiviFrontend(t *testing.T) {
	dist := installYiviFrontend(t)
	page, err := filepath.Abs(filepath.Join("testdata", "yivi-frontend"))
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t)
	base, scheme := g.base, g.scheme
	g.start(t, "", fmt.Sprintf(`irma_endpoints
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token s3cret-token
				disclose caddy-demo.gateway.person.*
				issue caddy-demo.gateway.person
			}
		}
	}
	handle_path /yivi-frontend/* {
		root * %[1]s
		file_server
	}
	handle_path /page/* {
		root * %[2]s
		file_server
	}`, dist, page))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Alice gets her person credential through the requestor API.
	issuance := `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Alice","email":"alice@example.com","over18":"yes"}}]}`
	code, body := postSession(t, base+"/api/irma", issuance, "application/json", "s3cret-token")
	var issued struct {
		SessionPtr *irma.Qr `json:"sessionPtr"`
	}
	if err := json.Unmarshal(body, &issued); err != nil || code != 200 || issued.SessionPtr == nil {
		t.Fatalf("POST /session (issuance): %d %s", code, body)
	}
	if res, err := w.Run(ctx, issued.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("issuance: %+v, %v", res, err)
	}

	// What the frontend asks of the gateway, and what it says in the console.
	browser := newChromium(t)
	watch := watchBrowser(t, browser, strings.NewReplacer(base, ""))

	if err := chromedp.Run(browser, network.Enable()); err != nil {
		t.Fatal(err)
	}

	// The page starts the session; its answer holds the pointer the QR code shows.
	wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
	defer cancelWait()
	started := startFrontendSession(t, wait, base+"/page/index.html")
	var session struct {
		FrontendRequest struct {
			PairingHint bool `json:"pairingHint"`
		} `json:"frontendRequest"`
	}
	if err := json.Unmarshal([]byte(started.raw), &session); err != nil || session.FrontendRequest.PairingHint {
		t.Errorf("a plain disclosure asks for pairing: %s (%v)", started.raw, err)
	}

	// The QR code the frontend draws is the pointer the gateway handed out.
	scanned := frontendQR(t, wait, started.ptr)
	screenshot(t, browser, "yivi-frontend-qr.png")

	// The wallet discloses; the frontend sees the session end and fetches the result.
	if result, done := discloseEmailInFrontend(ctx, t, wait, w, scanned); string(result.Token) != started.id {
		t.Fatalf("the frontend's result is of another session: %s", done)
	}
	screenshot(t, browser, "yivi-frontend-done.png")

	// How it followed the session: with the server-sent events of
	// frontend/statusevents, as from irma server with SSE on, which brought
	// it DONE; it never fell back to polling frontend/status. No pairing.
	watch.followedToDone(t, "/frontend/statusevents -> 200", "/api/irma/session/"+started.id+"/result -> 200")
	seen, _ := watch.seen()
	if strings.Contains(seen, "/frontend/status -> ") {
		t.Error("the frontend polled frontend/status: it did not follow the session with statusevents")
	}
	for _, unwanted := range []string{"/frontend/options", "/frontend/pairingcompleted"} {
		if strings.Contains(seen, unwanted) {
			t.Errorf("the frontend asked %q for a session without pairing", unwanted)
		}
	}
}

// browserWatch keeps what a page asks (each request with its answer, or why
// it failed, CORS errors included) and what it says in the console.
type browserWatch struct {
	mu                sync.Mutex
	requests, console []string
}

// watchBrowser starts watching browser; trim shortens the URLs it records
// (the test's origins to names). It logs what it saw when the test fails,
// or ends verbose.
func watchBrowser(t *testing.T, browser context.Context, trim *strings.Replacer) *browserWatch {
	b := &browserWatch{}
	requests := map[network.RequestID]string{}
	chromedp.ListenTarget(browser, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests[ev.RequestID] = ev.Request.Method + " " + trim.Replace(ev.Request.URL)
		case *network.EventResponseReceived:
			if strings.HasPrefix(ev.Response.URL, "data:") {
				break
			}
			b.requests = append(b.requests, fmt.Sprintf("%s -> %d", requests[ev.RequestID], ev.Response.Status))
		case *network.EventLoadingFailed:
			failure := fmt.Sprintf("%s -> failed: %s", requests[ev.RequestID], ev.ErrorText)
			if ev.CorsErrorStatus != nil {
				failure += fmt.Sprintf(" (CORS %s %s)", ev.CorsErrorStatus.CorsError, ev.CorsErrorStatus.FailedParameter)
			}
			b.requests = append(b.requests, failure)
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			b.console = append(b.console, string(ev.Type)+": "+strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			b.console = append(b.console, "exception: "+ev.ExceptionDetails.Error())
		}
	})
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			requests, console := b.seen()
			t.Logf("requests:\n  %s", strings.ReplaceAll(requests, "\n", "\n  "))
			t.Logf("console:\n  %s", strings.ReplaceAll(console, "\n", "\n  "))
		}
	})
	return b
}

// seen returns the requests and the console lines so far, one a line.
func (b *browserWatch) seen() (requests, console string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.requests, "\n"), strings.Join(b.console, "\n")
}

// await returns the first request recorded that starts with prefix (its
// method and URL, say), waiting for one while wait lasts; "" if none came.
func (b *browserWatch) await(wait context.Context, prefix string) string {
	for {
		b.mu.Lock()
		for _, r := range b.requests {
			if strings.HasPrefix(r, prefix) {
				b.mu.Unlock()
				return r
			}
		}
		b.mu.Unlock()
		select {
		case <-wait.Done():
			return ""
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// followedToDone checks that the page asked each of asked (a request with
// its answer, as seen records it), and that its frontend learnt of DONE
// from a server event.
func (b *browserWatch) followedToDone(t *testing.T, asked ...string) {
	t.Helper()
	seen, said := b.seen()
	for _, want := range asked {
		if !strings.Contains(seen, want) {
			t.Errorf("the frontend never asked %q", want)
		}
	}
	if !strings.Contains(said, "Server event: Remote state changed to 'DONE'") {
		t.Error("the frontend did not learn of DONE from a server event")
	}
}

// frontendQR returns the session pointer of the QR code that the frontend
// shows in #yivi, which must be want. It is read from the canvas's pixels, not from a
// screenshot: capturing an element resizes Chromium's viewport for a
// moment, the frontend answers every resize by drawing its QR code anew
// (checkUserAgent), and a loop of screenshots could then catch an empty
// canvas forever. The canvas is not there at once, nor drawn on at once:
// it looks again until a code is there (as a camera would), for as long as
// wait lasts.
func frontendQR(t *testing.T, wait context.Context, want *irma.Qr) *irma.Qr {
	t.Helper()
	if err := chromedp.Run(wait, chromedp.WaitVisible(`#yivi canvas`, chromedp.ByQuery)); err != nil {
		t.Fatalf("the frontend shows no QR code: %v", err)
	}
	var text string
	var decodeErr error
	for text == "" {
		qrPNG, err := canvasPNG(wait, `#yivi canvas`)
		if err != nil {
			t.Fatalf("the frontend's QR code: %v (last: %v)", err, decodeErr)
		}
		text, decodeErr = readQR(qrPNG)
		if text == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	ptr, err := wallet.ParsePointer(text)
	if err != nil || *ptr != *want {
		t.Fatalf("the QR code holds %q (%v), the session %+v", text, err, want)
	}
	return ptr
}

// frontendResult waits until the page's frontend has its result
// (window.__result), and returns it with its JSON; a frontend that failed
// (window.__error) fails the test.
func frontendResult(t *testing.T, wait context.Context) (server.SessionResult, string) {
	t.Helper()
	var done string
	if err := chromedp.Run(wait,
		chromedp.Poll(`(window.__error && JSON.stringify({error: window.__error})) || (window.__result && JSON.stringify(window.__result))`, &done, chromedp.WithPollingInterval(100*time.Millisecond)),
	); err != nil {
		t.Fatalf("the frontend did not finish: %v", err)
	}
	var result struct {
		Error string `json:"error"`
		server.SessionResult
	}
	if err := json.Unmarshal([]byte(done), &result); err != nil || result.Error != "" {
		t.Fatalf("the frontend's result: %s (%v)", done, err)
	}
	return result.SessionResult, done
}

// discloseEmailInFrontend has w disclose alice@example.com in the session
// of ptr, and returns the result that the page's frontend then gets, which
// must be that: done, valid.
func discloseEmailInFrontend(ctx context.Context, t *testing.T, wait context.Context, w *wallet.Wallet, ptr *irma.Qr) (server.SessionResult, string) {
	t.Helper()
	if res, err := w.Run(ctx, ptr, wallet.Accept); err != nil {
		t.Fatalf("disclosure: %+v, %v", res, err)
	}
	result, done := frontendResult(t, wait)
	if result.Status != irma.ServerStatusDone || result.ProofStatus != irma.ProofStatusValid || len(result.Disclosed) != 1 ||
		len(result.Disclosed[0]) != 1 || result.Disclosed[0][0].RawValue == nil || *result.Disclosed[0][0].RawValue != "alice@example.com" {
		t.Fatalf("the frontend's result: %s", done)
	}
	return result, done
}

// canvasPNG returns what a canvas on the page holds, as a PNG at twice its
// size (gozxing misses some codes at the size they are drawn) inside a white
// quiet zone, without resizing the page as a screenshot would.
func canvasPNG(ctx context.Context, selector string) ([]byte, error) {
	var dataURL string
	js := fmt.Sprintf(`(() => {
		const src = document.querySelector(%q);
		const pad = 32, c = document.createElement('canvas');
		c.width = 2 * src.width + 2 * pad;
		c.height = 2 * src.height + 2 * pad;
		const g = c.getContext('2d');
		g.fillStyle = '#fff';
		g.fillRect(0, 0, c.width, c.height);
		g.imageSmoothingEnabled = false;
		g.drawImage(src, pad, pad, 2 * src.width, 2 * src.height);
		return c.toDataURL('image/png');
	})()`, selector)
	if err := chromedp.Run(ctx, chromedp.Evaluate(js, &dataURL)); err != nil {
		return nil, err
	}
	b64, ok := strings.CutPrefix(dataURL, "data:image/png;base64,")
	if !ok {
		return nil, fmt.Errorf("the canvas gave no PNG: %.40q", dataURL)
	}
	return base64.StdEncoding.DecodeString(b64)
}
