package caddyirma

import (
	"fmt"

	irma "github.com/privacybydesign/irmago/irma"

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
