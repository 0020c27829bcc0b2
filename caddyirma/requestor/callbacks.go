package requestor

import (
	"net/url"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// checkCallback says whether requestor may have the IRMA server post the
// session's result to callbackURL when the session ends, and if not, the
// error to answer. The IRMA server makes that POST, to wherever the URL
// points, from inside the gateway's network: only a configured requestor
// may ask for it, as irma server allows callbacks only to the requestors
// it authenticates.
func (h *Handler) checkCallback(requestor, callbackURL string) *irma.RemoteError {
	if requestor == "" {
		return server.RemoteError(server.ErrorUnauthorized, "callbackUrl: session callbacks are for authenticated requestors only")
	}
	if !h.cfg.SignedCallbacks && !h.cfg.AllowUnsignedCallbacks {
		// irma server's words and status (501 UNSUPPORTED).
		return server.RemoteError(server.ErrorUnsupported, "callbackUrl provided but no JWT private key is installed: either install JWT or enable allow_unsigned_callbacks in configuration")
	}
	u, err := url.Parse(callbackURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return server.RemoteError(server.ErrorInvalidRequest, "callbackUrl: want an absolute http or https URL")
	}
	return nil
}
