package requestor

import (
	"errors"
	"net/url"
	"strings"

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
	return h.checkResultPost(requestor, "callbackUrl", callbackURL)
}

// checkNextSession says whether requestor may chain a session after this
// one: when the session is done, the IRMA server posts its result to
// nextURL, which answers with the next session request (or 204 No Content
// for none), and the app goes on with it without a new QR code. The POST
// goes where the callback's goes, so the same rules apply.
func (h *Handler) checkNextSession(requestor string, next *irma.NextSessionData) *irma.RemoteError {
	if next.URL == "" {
		// irma server's words (400 INVALID_REQUEST).
		return server.RemoteError(server.ErrorInvalidRequest, "nextSession provided with empty URL")
	}
	return h.checkResultPost(requestor, "nextSession", next.URL)
}

// checkResultPost checks a URL to which the IRMA server will post a
// session's result, named field in the session request.
func (h *Handler) checkResultPost(requestor, field, target string) *irma.RemoteError {
	if requestor == "" {
		return server.RemoteError(server.ErrorUnauthorized, field+": the session result is posted for authenticated requestors only")
	}
	if !h.cfg.SignedCallbacks && !h.cfg.AllowUnsignedCallbacks {
		// irma server's words and status (501 UNSUPPORTED).
		return server.RemoteError(server.ErrorUnsupported, field+" provided but no JWT private key is installed: either install JWT or enable allow_unsigned_callbacks in configuration")
	}
	u, err := CheckResultURL(target)
	if err != nil {
		return server.RemoteError(server.ErrorInvalidRequest, field+": "+err.Error())
	}
	if h.cfg.RefuseTarget != nil && h.cfg.RefuseTarget(u) {
		return server.RemoteError(server.ErrorInvalidRequest, field+": the gateway does not post results there")
	}
	return nil
}

// CheckResultURL checks a URL to which a session's result is posted (a
// callbackUrl or a nextSession URL), and returns it parsed: an absolute
// http or https URL without a query or fragment. irmaserver posts to the
// URL with a "/" added at its end, which would land in the query or the
// fragment (never sent): the POST would go to the exact path before it,
// such as Caddy's admin /stop.
func CheckResultURL(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("want an absolute http or https URL")
	}
	if strings.ContainsAny(target, "?#") {
		return nil, errors.New(`a URL with a query (?) or a fragment (#) is not posted where it says: irma server adds a "/" at its end`)
	}
	return u, nil
}

// AuthorizeNext says whether requestor may start request as the next
// session of a chain, and if not, why: as CanRequest, for an
// authenticated requestor that may still chain sessions (the API's
// settings may have changed since the chain began). It is the embedded
// server's NextSessionAuthorization. irmaserver hands it only the session
// request: the next session's own clientTimeout, callbackUrl and
// nextSession are as the requestor's next-session URL answered.
func (h *Handler) AuthorizeNext(requestor string, request irma.SessionRequest) (bool, string) {
	if _, known := h.perms[requestor]; !known || requestor == "" {
		return false, "requestor unknown to this requestor API"
	}
	if !h.cfg.SignedCallbacks && !h.cfg.AllowUnsignedCallbacks {
		return false, "chained sessions need a JWT private key or allow_unsigned_callbacks"
	}
	return h.CanRequest(requestor, request)
}
