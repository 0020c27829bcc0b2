package caddyirma

import (
	"errors"
	"fmt"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

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
// mode asks for it, and returns what the page needs and the requestor
// token, which must never reach the browser.
func (a *App) startSession(req irma.SessionRequest, pairing string) (sessionpage.Session, irma.RequestorToken, error) {
	srv, err := a.Server()
	if err != nil {
		return sessionpage.Session{}, "", err
	}
	ptr, token, frontend, err := srv.StartSession(req, nil, "")
	if err != nil {
		return sessionpage.Session{}, "", fmt.Errorf("starting session: %w", err)
	}
	s := sessionpage.Session{Pointer: ptr, FrontendAuth: frontend.Authorization, PathPrefix: a.PathPrefix()}
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

// pendingState is where a pending session stands.
type pendingState int

const (
	pendingGone    pendingState = iota // unknown to the server: expired, or from before a restart
	pendingRunning                     // still going: show the same page again
	pendingDone                        // DONE: the result is there
	pendingEnded                       // cancelled or timed out
)

// pendingResult looks up the session of a pending cookie. An error means
// the store failed (Redis, say): the session may well be done, so callers
// keep the pending cookie for a retry.
func (a *App) pendingResult(p *pendingLogin) (pendingState, *server.SessionResult, error) {
	srv, err := a.Server()
	if err != nil {
		return 0, nil, err
	}
	res, err := srv.GetSessionResult(irma.RequestorToken(p.Token))
	var unknown *irmaserver.UnknownSessionError
	switch {
	case errors.As(err, &unknown) || (err == nil && res == nil):
		return pendingGone, nil, nil
	case err != nil:
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

// session returns the page's view of a pending session of the given kind.
func (p *pendingLogin) session(action irma.Action, prefix string) sessionpage.Session {
	return sessionpage.Session{
		Pointer:      &irma.Qr{URL: p.Pointer, Type: action},
		FrontendAuth: irma.FrontendAuthorization(p.FrontendAuth),
		PathPrefix:   prefix,
		PairingCode:  p.PairingCode,
	}
}
