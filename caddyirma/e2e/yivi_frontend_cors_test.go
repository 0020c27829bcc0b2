package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// TestYiviFrontendCrossOrigin runs the official Yivi web frontend on
// another origin than the gateway (another port of 127.0.0.1), in headless
// Chromium: the page's own backend starts a disclosure session at the
// gateway's requestor API and fetches its result, and the frontend follows
// the session across origins at the gateway's /irma/session/ endpoints,
// which irma_endpoints' cors_origins opens to the page's origin, while the
// development wallet answers the session of the QR code it shows. Then,
// with the page's origin not configured (no cors_origins, and localhost in
// place of 127.0.0.1), the browser blocks the frontend: the wallet finishes
// the session, the page never learns it.
func TestYiviFrontendCrossOrigin(t *testing.T) {
	dist := installYiviFrontend(t)
	pages, err := filepath.Abs(filepath.Join("testdata", "yivi-frontend"))
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t)
	backend := &pageBackend{api: g.base + "/api/irma", requestorToken: "s3cret-token", sessions: map[string]irma.RequestorToken{}}
	pageSite := httptest.NewServer(backend.handler(dist, pages))
	defer pageSite.Close()
	site := func(endpoints string) string {
		return endpoints + `
	handle_path /api/irma/* {
		irma_requestor_api {
			requestor app {
				auth token s3cret-token
				disclose caddy-demo.gateway.person.email
				issue caddy-demo.gateway.person
			}
		}
	}`
	}
	app := g.start(t, "", site("irma_endpoints {\n\t\tcors_origins "+pageSite.URL+"\n\t}"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	srv, err := app.Server()
	if err != nil {
		t.Fatal(err)
	}
	issuance := irma.NewIssuanceRequest([]*irma.CredentialRequest{{CredentialTypeID: g.scheme.Credential(demoscheme.CredentialPerson),
		Attributes: map[string]string{"fullname": "Alice", "email": "alice@example.com", "over18": "yes"}}})
	runServerSession(ctx, t, srv, w, issuance)

	browser := newChromium(t)
	watch := watchBrowser(t, browser, strings.NewReplacer(g.base, "gateway:", pageSite.URL, "page:"))
	if err := chromedp.Run(browser, network.Enable()); err != nil {
		t.Fatal(err)
	}

	// The page's origin is configured: the session completes, and the
	// frontend learns it from the gateway's statusevents and fetches the
	// result from its own backend.
	wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
	defer cancelWait()
	started := startFrontendSession(t, wait, pageSite.URL+"/page/cross-origin.html")
	if !strings.HasPrefix(started.ptr.URL, g.base+"/irma/session/") {
		t.Fatalf("the session pointer %q is not at the gateway", started.ptr.URL)
	}
	if backend.requestorTokenOf(started.id) == "" || strings.Contains(started.raw, string(backend.requestorTokenOf(started.id))) {
		t.Fatalf("the page got the session's requestor token: %s", started.raw)
	}
	discloseEmailInFrontend(ctx, t, wait, w, frontendQR(t, wait, started.ptr))
	screenshot(t, browser, "yivi-frontend-cross-origin-done.png")
	clientPath := strings.TrimPrefix(started.ptr.URL, g.base)
	watch.followedToDone(t, "GET gateway:"+clientPath+"/frontend/statusevents -> 200", "GET page:/backend/session/"+started.id+"/result -> 200")
	if seen, _ := watch.seen(); strings.Contains(seen, "CORS") {
		t.Error("a request of the frontend failed CORS")
	}

	// An issuance pairs: the frontend posts its options and, once its
	// visitor typed the code that the app shows, pairingcompleted.
	pairing, cancelPairing := context.WithTimeout(browser, 30*time.Second)
	defer cancelPairing()
	crossOriginPairing(ctx, t, pairing, watch, pageSite.URL+"/page/cross-origin.html?issue", g)

	// The frontend's abort cancels the session at the gateway.
	wait, cancelAbort := context.WithTimeout(browser, 30*time.Second)
	defer cancelAbort()
	started = startFrontendSession(t, wait, pageSite.URL+"/page/cross-origin.html")
	frontendQR(t, wait, started.ptr) // it follows the session once it shows the QR code
	if err := chromedp.Run(wait, chromedp.Evaluate(`window.__yivi.abort()`, nil)); err != nil {
		t.Fatal(err)
	}
	for res, err := srv.GetSessionResult(backend.requestorTokenOf(started.id)); err != nil || res.Status != irma.ServerStatusCancelled; res, err = srv.GetSessionResult(backend.requestorTokenOf(started.id)) {
		if wait.Err() != nil {
			t.Fatalf("the frontend's abort did not cancel the session: %+v, %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := watch.await(wait, "DELETE gateway:"+strings.TrimPrefix(started.ptr.URL, g.base)+" -> "); !strings.HasSuffix(got, " -> 200") {
		t.Errorf("the frontend's DELETE: %q, want its answer, 200", got)
	}

	// The page's origin is not configured: the browser refuses the
	// frontend every answer of the gateway, so it never learns that the
	// wallet finished the session, and never fetches the result.
	for _, tc := range []struct{ name, endpoints string }{
		{"no cors_origins", "irma_endpoints"},
		{"localhost for 127.0.0.1", "irma_endpoints {\n\t\tcors_origins " + strings.Replace(pageSite.URL, "127.0.0.1", "localhost", 1) + "\n\t}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := caddytest.Load(g.config("", site(tc.endpoints))); err != nil {
				t.Fatal(err)
			}
			wait, cancelWait := context.WithTimeout(browser, 30*time.Second)
			defer cancelWait()
			started := startFrontendSession(t, wait, pageSite.URL+"/page/cross-origin.html")
			clientPath := strings.TrimPrefix(started.ptr.URL, g.base)
			if got := watch.await(wait, "GET gateway:"+clientPath+"/frontend/statusevents -> "); !strings.Contains(got, "-> failed") || !strings.Contains(got, "(CORS ") {
				t.Fatalf("the browser did not block the frontend's statusevents: %q", got)
			}
			results := backend.resultCount()
			if res, err := w.Run(ctx, started.ptr, wallet.Accept); err != nil || res.Outcome != wallet.Success {
				t.Fatalf("disclosure: %+v, %v", res, err)
			}
			if res, err := srv.GetSessionResult(backend.requestorTokenOf(started.id)); err != nil || res.Status != irma.ServerStatusDone {
				t.Fatalf("the session at the gateway: %+v, %v", res, err)
			}
			time.Sleep(3 * time.Second) // the frontend had learnt of DONE within 100 ms, and asked for the result
			var got string
			if err := chromedp.Run(wait, chromedp.Evaluate(`window.__result ? JSON.stringify(window.__result) : ""`, &got)); err != nil {
				t.Fatal(err)
			}
			if got != "" || backend.resultCount() != results {
				t.Errorf("the frontend got a result across origins it may not use: %q", got)
			}
			if seen, _ := watch.seen(); strings.Contains(seen, "GET gateway:"+clientPath+"/frontend/statusevents -> 200") ||
				strings.Contains(seen, "GET gateway:"+clientPath+"/frontend/status -> 200") {
				t.Error("the gateway answered the frontend across origins")
			}
		})
	}
}

// crossOriginPairing has the frontend of page run an issuance session with
// pairing across origins, answered by a new wallet.
func crossOriginPairing(ctx context.Context, t *testing.T, wait context.Context, watch *browserWatch, page string, g *gateway) {
	t.Helper()
	codes := make(chan string, 1)
	bob, err := wallet.Open(wallet.Options{Dir: t.TempDir(), SchemesPath: g.scheme.SchemesPath, OnPairingCode: func(code string) { codes <- code }})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	started := startFrontendSession(t, wait, page)
	scanned := frontendQR(t, wait, started.ptr)
	code, done := runUntilPairingCode(ctx, t, bob, scanned, codes)
	if err := chromedp.Run(wait,
		chromedp.WaitVisible(`.yivi-web-pairing-form`, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`(() => {
			const code = %q;
			document.querySelectorAll('.yivi-web-pairing-code input').forEach((e, i) => { e.value = code[i]; });
			document.querySelector('.yivi-web-pairing-form').requestSubmit();
		})()`, code), nil),
	); err != nil {
		t.Fatalf("pairing in the frontend: %v", err)
	}
	awaitPaired(ctx, t, done)
	if res, raw := frontendResult(t, wait); res.Status != irma.ServerStatusDone || res.Type != irma.ActionIssuing {
		t.Fatalf("the frontend's result: %s", raw)
	}
	seen, _ := watch.seen()
	clientPath := strings.TrimPrefix(started.ptr.URL, g.base)
	for _, want := range []string{"POST gateway:" + clientPath + "/frontend/options -> 200", "POST gateway:" + clientPath + "/frontend/pairingcompleted -> 2"} {
		if !strings.Contains(seen, want) {
			t.Errorf("the frontend never asked %q", want)
		}
	}
}

// frontendSession is what the page's frontend got when it started a
// session (its JSON in raw): the pointer, and the token, which names the
// session for its result (a requestor token from the requestor API, an id
// of its own from a page's backend).
type frontendSession struct {
	raw string
	ptr *irma.Qr
	id  string
}

// startFrontendSession opens the page, whose frontend has its backend
// start a session, and returns what the backend answered.
func startFrontendSession(t *testing.T, wait context.Context, page string) frontendSession {
	t.Helper()
	var started string
	if err := chromedp.Run(wait,
		chromedp.Navigate(page),
		chromedp.Poll(`(window.__error && JSON.stringify({error: window.__error})) || (window.__session && JSON.stringify(window.__session))`, &started, chromedp.WithPollingInterval(100*time.Millisecond)),
	); err != nil {
		t.Fatalf("the frontend did not start a session: %v", err)
	}
	var session struct {
		Error      string          `json:"error"`
		SessionPtr json.RawMessage `json:"sessionPtr"`
		Token      string          `json:"token"`
	}
	if err := json.Unmarshal([]byte(started), &session); err != nil || session.Error != "" || len(session.SessionPtr) == 0 {
		t.Fatalf("the frontend's session: %s (%v)", started, err)
	}
	ptr, err := wallet.ParsePointer(string(session.SessionPtr))
	if err != nil {
		t.Fatalf("sessionPtr %s: %v", session.SessionPtr, err)
	}
	return frontendSession{raw: started, ptr: ptr, id: session.Token}
}

// pageBackend is the site of a web app on another origin than the
// gateway: it serves the app's pages and the Yivi frontend, starts the
// page's sessions at the gateway's requestor API with its requestor token,
// and fetches their results, so that neither that token nor a session's
// requestor token reaches the browser (the page names its session by an id
// of the backend's).
type pageBackend struct {
	api, requestorToken string

	mu       sync.Mutex
	sessions map[string]irma.RequestorToken // by the page's id
	results  int                            // results handed to the page
}

func (b *pageBackend) handler(dist, pages string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /yivi-frontend/", http.StripPrefix("/yivi-frontend/", http.FileServer(http.Dir(dist))))
	mux.Handle("GET /page/", http.StripPrefix("/page/", http.FileServer(http.Dir(pages))))
	mux.HandleFunc("POST /backend/session", b.start)
	mux.HandleFunc("GET /backend/session/{id}/result", b.result)
	return mux
}

// start starts a disclosure of the email address at the gateway, or with
// ?issue an issuance of a person credential.
func (b *pageBackend) start(w http.ResponseWriter, r *http.Request) {
	request := `{"@context":"https://irma.app/ld/request/disclosure/v2","disclose":[[["caddy-demo.gateway.person.email"]]]}`
	if r.URL.Query().Has("issue") {
		request = `{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"caddy-demo.gateway.person","attributes":{"fullname":"Bob","email":"bob@example.com","over18":"yes"}}]}`
	}
	var started struct {
		SessionPtr      json.RawMessage     `json:"sessionPtr"`
		Token           irma.RequestorToken `json:"token"`
		FrontendRequest json.RawMessage     `json:"frontendRequest"`
	}
	if err := b.ask(r.Context(), "POST", "/session", request, &started); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	id := rand.Text()
	b.mu.Lock()
	b.sessions[id] = started.Token
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"sessionPtr": started.SessionPtr, "token": id, "frontendRequest": started.FrontendRequest})
}

// result hands the page the result of its session, without its token.
func (b *pageBackend) result(w http.ResponseWriter, r *http.Request) {
	token := b.requestorTokenOf(r.PathValue("id"))
	if token == "" {
		http.NotFound(w, r)
		return
	}
	var res server.SessionResult
	if err := b.ask(r.Context(), "GET", "/session/"+string(token)+"/result", "", &res); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	res.Token = ""
	b.mu.Lock()
	b.results++
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// backendClient is the page backend's client of the gateway: a connection
// for each request, so that none outlives a reload of the gateway's config
// (a reload's old server may still hold a kept-alive one), and a bound on
// each, so that a gateway that does not answer fails the page at once.
var backendClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// ask sends a request to the gateway's requestor API and decodes its JSON answer into v.
func (b *pageBackend) ask(ctx context.Context, method, path, body string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, b.api+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", b.requestorToken)
	resp, err := backendClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, answer)
	}
	return json.Unmarshal(answer, v)
}

func (b *pageBackend) requestorTokenOf(id string) irma.RequestorToken {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[id]
}

func (b *pageBackend) resultCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.results
}
