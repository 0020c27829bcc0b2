package caddyirma

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/returnurl"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// What every handler that runs a session for a browser (irma_auth and the
// login endpoint, irma_sign, irma_issue) shares: the IRMA server behind a
// small interface, starting a session with pairing, looking up the
// session of a pending cookie, answering with the session page or JSON,
// and where the browser returns.

// irmaSessions is what the handlers need of the embedded IRMA server, as
// irmaserver.Server has it: an interface, so that the flows have unit tests
// without a server.
type irmaSessions interface {
	StartSession(req any, handler server.SessionHandler, requestor string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error)
	SetFrontendOptions(irma.RequestorToken, *irma.FrontendOptionsRequest) (*irma.SessionOptions, error)
	GetSessionResult(irma.RequestorToken) (*server.SessionResult, error)
	CancelSession(irma.RequestorToken) error
}

// backend is the irma app as the handlers' flows see it: its IRMA server
// and its store of marks.
type backend interface {
	irmaSessions
	marks() (marks.Store, error)
}

// Pairing modes: whether a session page asks for the pairing code that the
// Yivi app shows once it scanned the QR code.
const (
	// PairingAuto pairs when irmago recommends it: for issuance and
	// signature sessions, and for disclosures that ask for specific values.
	PairingAuto = "auto"
	PairingOn   = "on"
	PairingOff  = "off"
)

func checkPairing(mode string) error {
	switch mode {
	case "", PairingAuto, PairingOn, PairingOff:
		return nil
	}
	return fmt.Errorf("pairing %q: want auto, on or off", mode)
}

// startSession starts an IRMA session for a browser, with pairing if the
// mode asks for it, that ends if the Yivi app has not scanned it within
// scan; it returns what the page needs and the requestor token, which must
// never reach the browser.
func startSession(srv irmaSessions, prefix string, req irma.SessionRequest, pairing string, scan time.Duration) (sessionpage.Session, irma.RequestorToken, error) {
	rreq, err := withScanTimeout(req, scan)
	if err != nil {
		return sessionpage.Session{}, "", err
	}
	ptr, token, frontend, err := srv.StartSession(rreq, nil, "")
	if err != nil {
		return sessionpage.Session{}, "", fmt.Errorf("starting session: %w", err)
	}
	s := sessionpage.Session{Pointer: ptr, FrontendAuth: frontend.Authorization, PathPrefix: prefix}
	if pairing == PairingOn || ((pairing == "" || pairing == PairingAuto) && frontend.PairingRecommended) {
		// Set here, before the page shows the QR code: a phone that scans it
		// earlier than the page could ask for pairing would go unpaired.
		opts, err := srv.SetFrontendOptions(token, &irma.FrontendOptionsRequest{PairingMethod: irma.PairingMethodPin})
		if err != nil {
			_ = srv.CancelSession(token)
			return sessionpage.Session{}, "", fmt.Errorf("enabling pairing: %w", err)
		}
		s.PairingCode = opts.PairingCode
	}
	return s, token, nil
}

// withScanTimeout wraps req in the requestor request that carries how
// long the session waits for the Yivi app to scan it.
func withScanTimeout(req irma.SessionRequest, scan time.Duration) (irma.RequestorRequest, error) {
	base := irma.RequestorBaseRequest{ClientTimeout: int(scan / time.Second)}
	switch r := req.(type) {
	case *irma.DisclosureRequest:
		return &irma.ServiceProviderRequest{RequestorBaseRequest: base, Request: r}, nil
	case *irma.SignatureRequest:
		return &irma.SignatureRequestorRequest{RequestorBaseRequest: base, Request: r}, nil
	case *irma.IssuanceRequest:
		return &irma.IdentityProviderRequest{RequestorBaseRequest: base, Request: r}, nil
	}
	return nil, fmt.Errorf("starting session: a %T is no session request", req)
}

// pendingSession is what a pending cookie holds while a visitor runs a
// session (a login, a signature): enough to pick up the result, and to show
// the same page again. The requestor token is the key to the result:
// sealed, the browser never reads it.
type pendingSession struct {
	Token        string `json:"t"`
	Pointer      string `json:"u"`
	FrontendAuth string `json:"f"`
	PairingCode  string `json:"p,omitempty"`
	// Route identifies what the session was started for: a policy, or an
	// irma_sign handler.
	Route string `json:"r"`
	// Return is where to land when done: a checked same-site path.
	Return string `json:"ret"`
	// Started is when the session started, in Unix seconds: for the
	// session_duration_seconds metric.
	Started int64 `json:"s,omitempty"`
}

// newPending is the pending cookie's view of a session just started.
func newPending(s sessionpage.Session, token irma.RequestorToken, route, ret string) *pendingSession {
	return &pendingSession{Token: string(token), Pointer: s.Pointer.URL, FrontendAuth: string(s.FrontendAuth),
		PairingCode: s.PairingCode, Route: route, Return: ret, Started: time.Now().Unix()}
}

// session returns the page's view of a pending session of the given kind.
func (p *pendingSession) session(action irma.Action, prefix string) sessionpage.Session {
	return sessionpage.Session{
		Pointer:      &irma.Qr{URL: p.Pointer, Type: action},
		FrontendAuth: irma.FrontendAuthorization(p.FrontendAuth),
		PathPrefix:   prefix,
		PairingCode:  p.PairingCode,
	}
}

// started is when the session started; zero if the cookie does not say.
func (p *pendingSession) started() time.Time {
	if p.Started == 0 {
		return time.Time{}
	}
	return time.Unix(p.Started, 0)
}

// clientToken returns the client token of the session: the last part of
// its pointer URL.
func (p *pendingSession) clientToken() string { return p.Pointer[strings.LastIndex(p.Pointer, "/")+1:] }

// pendingState is where a pending session stands.
type pendingState int

const (
	pendingGone    pendingState = iota // unknown to the server: expired, or from before a restart
	pendingRunning                     // still going: show the same page again
	pendingDone                        // DONE: the result is there
	pendingEnded                       // cancelled or timed out
)

// lookUpPending looks up the session of a pending cookie. An error means
// the store failed (Redis, say): the session may well be done, so callers
// keep the pending cookie for a retry.
func lookUpPending(srv irmaSessions, p *pendingSession) (pendingState, *server.SessionResult, error) {
	res, err := srv.GetSessionResult(irma.RequestorToken(p.Token))
	var unknown *irmaserver.UnknownSessionError
	switch {
	case errors.As(err, &unknown) || (err == nil && res == nil):
		return pendingGone, nil, nil
	case err != nil:
		countStoreError("sessions")
		return 0, nil, fmt.Errorf("session result: %w", err)
	}
	switch res.Status {
	case irma.ServerStatusInitialized, irma.ServerStatusPairing, irma.ServerStatusConnected:
		return pendingRunning, res, nil
	case irma.ServerStatusDone:
		return pendingDone, res, nil
	}
	return pendingEnded, res, nil
}

// showSession answers a request with a running session: the session page
// for a browser's page navigation (with pageCode), and for any other
// client JSON that tells it how to run the session itself (with
// jsonCode). Neither may be stored by a cache: the page holds the session.
func showSession(w http.ResponseWriter, r *http.Request, jsonCode, pageCode int, page sessionpage.Page) error {
	w.Header().Set("Cache-Control", "no-store")
	if !sessionpage.WantsPage(r) {
		info, err := sessionpage.NewInfo(page.Session)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		sessionpage.WriteJSON(w, jsonCode, info)
		return nil
	}
	page.Lang, page.Site = sessionpage.Language(r), sessionpage.SiteName(r.Host)
	return sessionpage.RenderStatus(w, pageCode, page)
}

// deferStart answers r with the session page before any session exists,
// and returns true, unless r may make the gateway start one now (see
// startsSession). The page's script starts the session with a JSON request
// to the same URL, which the handler answers as for any script.
func deferStart(w http.ResponseWriter, r *http.Request, appURL string, code int, page sessionpage.Page) (bool, error) {
	if startsSession(r, appURL) {
		return false, nil
	}
	w.Header().Set("Cache-Control", "no-store")
	page.Lang, page.Site = sessionpage.Language(r), sessionpage.SiteName(r.Host)
	return true, sessionpage.RenderStart(w, code, page)
}

// startsSession says whether r may make the gateway start a session now:
// a script of the site itself, or a program, that asks for JSON (not
// another site's request, a subresource, a prefetch or a preflight); or a
// POST navigation that another site did not send (the page's button,
// without script). Anything else gets the page that starts the session
// from its script: so a crawler, a link preview, a prefetch or another
// site's <img> starts none, and spends none of the visitor's session
// limit.
func startsSession(r *http.Request, appURL string) bool {
	if r.Header.Get("Sec-Purpose") != "" || r.Header.Get("Purpose") != "" || r.Header.Get("X-Moz") != "" {
		return false // a prefetch or prerender
	}
	source, _ := sourceOf(r, appURL)
	if source == sourceForeign {
		return false
	}
	if sessionpage.WantsPage(r) {
		return r.Method == http.MethodPost
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return false
	}
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" && dest != "empty" {
		return false // an image, a script, a style sheet...
	}
	for _, accept := range r.Header.Values("Accept") {
		if strings.Contains(accept, "application/json") || strings.Contains(accept, "+json") {
			return true
		}
	}
	return false
}

// returnTo is where a browser goes back to after a session: the same-site
// path raw, or / if raw is empty or anything else.
func returnTo(raw string) string {
	ret, err := returnurl.Check(raw)
	if err != nil {
		return "/"
	}
	return ret
}

// requestReturn is where a browser returns to after a session that r
// started: the URL the browser asked for, not the one that rewrite or
// handle_path made of it.
func requestReturn(r *http.Request) string {
	uri := r.URL.RequestURI()
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		uri = orig.URL.RequestURI()
	}
	return returnTo(uri)
}
