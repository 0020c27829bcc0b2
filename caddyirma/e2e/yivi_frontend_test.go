package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	req, _ := http.NewRequest("POST", base+"/api/irma/session", strings.NewReader(issuance))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "s3cret-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var issued struct {
		SessionPtr *irma.Qr `json:"sessionPtr"`
	}
	if err := json.Unmarshal(body, &issued); err != nil || resp.StatusCode != 200 || issued.SessionPtr == nil {
		t.Fatalf("POST /session (issuance): %d %s", resp.StatusCode, body)
	}
	if res, err := w.Run(ctx, issued.SessionPtr, wallet.Accept); err != nil {
		t.Fatalf("issuance: %+v, %v", res, err)
	}

	// What the frontend asks of the gateway, and what it says in the console.
	browser := newChromium(t)
	var mu sync.Mutex
	var requests, console []string
	statuses := map[network.RequestID]string{}
	chromedp.ListenTarget(browser, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			statuses[ev.RequestID] = ev.Request.Method + " " + strings.TrimPrefix(ev.Request.URL, base)
		case *network.EventResponseReceived:
			if strings.HasPrefix(ev.Response.URL, "data:") {
				break
			}
			requests = append(requests, fmt.Sprintf("%s -> %d", statuses[ev.RequestID], ev.Response.Status))
		case *network.EventLoadingFailed:
			requests = append(requests, fmt.Sprintf("%s -> failed: %s", statuses[ev.RequestID], ev.ErrorText))
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			console = append(console, string(ev.Type)+": "+strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			console = append(console, "exception: "+ev.ExceptionDetails.Error())
		}
	})
	logBrowser := func() {
		mu.Lock()
		defer mu.Unlock()
		t.Logf("requests:\n  %s", strings.Join(requests, "\n  "))
		t.Logf("console:\n  %s", strings.Join(console, "\n  "))
	}
	defer func() {
		if t.Failed() {
			logBrowser()
		}
	}()

	// The page starts the session; its answer holds the pointer the QR code shows.
	wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
	defer cancelWait()
	var started string
	if err := chromedp.Run(wait,
		network.Enable(),
		chromedp.Navigate(base+"/page/index.html"),
		chromedp.Poll(`(window.__error && JSON.stringify({error: window.__error})) || (window.__session && JSON.stringify(window.__session))`, &started, chromedp.WithPollingInterval(100*time.Millisecond)),
	); err != nil {
		t.Fatalf("the frontend did not start a session: %v", err)
	}
	var session struct {
		Error           string              `json:"error"`
		SessionPtr      json.RawMessage     `json:"sessionPtr"`
		Token           irma.RequestorToken `json:"token"`
		FrontendRequest struct {
			Authorization string `json:"authorization"`
			PairingHint   bool   `json:"pairingHint"`
		} `json:"frontendRequest"`
	}
	if err := json.Unmarshal([]byte(started), &session); err != nil || session.Error != "" || len(session.SessionPtr) == 0 {
		t.Fatalf("the frontend's session: %s (%v)", started, err)
	}
	if session.FrontendRequest.PairingHint {
		t.Errorf("a plain disclosure asks for pairing: %s", started)
	}
	ptr, err := wallet.ParsePointer(string(session.SessionPtr))
	if err != nil {
		t.Fatalf("sessionPtr %s: %v", session.SessionPtr, err)
	}

	// The QR code the frontend draws is the pointer the gateway handed out.
	// It is read from the canvas's pixels, not from a screenshot: capturing
	// an element resizes Chromium's viewport for a moment, the frontend
	// answers every resize by drawing its QR code anew (checkUserAgent), and
	// a loop of screenshots could then catch an empty canvas forever. The
	// canvas is not there at once, nor drawn on at once: look again until
	// a code is there (as a camera would), for as long as wait lasts.
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
	screenshot(t, browser, "yivi-frontend-qr.png")
	scanned, err := wallet.ParsePointer(text)
	if err != nil || *scanned != *ptr {
		t.Fatalf("the QR code holds %+v (%v), the session %+v", scanned, err, ptr)
	}

	// The wallet discloses; the frontend sees the session end and fetches the result.
	if res, err := w.Run(ctx, scanned, wallet.Accept); err != nil {
		t.Fatalf("disclosure: %+v, %v", res, err)
	}
	var done string
	if err := chromedp.Run(wait,
		chromedp.Poll(`(window.__error && JSON.stringify({error: window.__error})) || (window.__result && JSON.stringify(window.__result))`, &done, chromedp.WithPollingInterval(100*time.Millisecond)),
	); err != nil {
		t.Fatalf("the frontend did not finish: %v", err)
	}
	screenshot(t, browser, "yivi-frontend-done.png")
	var result struct {
		Error string `json:"error"`
		server.SessionResult
	}
	if err := json.Unmarshal([]byte(done), &result); err != nil || result.Error != "" {
		t.Fatalf("the frontend's result: %s (%v)", done, err)
	}
	if result.Status != irma.ServerStatusDone || result.ProofStatus != irma.ProofStatusValid || result.Token != session.Token ||
		len(result.Disclosed) != 1 || len(result.Disclosed[0]) != 1 || result.Disclosed[0][0].RawValue == nil || *result.Disclosed[0][0].RawValue != "alice@example.com" {
		t.Fatalf("the frontend's result: %s", done)
	}

	// How it followed the session: with the server-sent events of
	// frontend/statusevents, as from irma server with SSE on, which brought
	// it DONE; it never fell back to polling frontend/status. No pairing.
	mu.Lock()
	seen := strings.Join(requests, "\n")
	said := strings.Join(console, "\n")
	mu.Unlock()
	for _, want := range []string{"/frontend/statusevents -> 200", "/api/irma/session/" + string(session.Token) + "/result -> 200"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the frontend never asked %q", want)
		}
	}
	if strings.Contains(seen, "/frontend/status -> ") {
		t.Error("the frontend polled frontend/status: it did not follow the session with statusevents")
	}
	if !strings.Contains(said, "Server event: Remote state changed to 'DONE'") {
		t.Error("the frontend did not learn of DONE from a server event")
	}
	for _, unwanted := range []string{"/frontend/options", "/frontend/pairingcompleted"} {
		if strings.Contains(seen, unwanted) {
			t.Errorf("the frontend asked %q for a session without pairing", unwanted)
		}
	}
	if testing.Verbose() {
		logBrowser()
	}
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
