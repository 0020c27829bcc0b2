package requestor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// Revoker revokes the credentials of a type that were issued with a
// revocation key (all of them, or the one issued at issued if that is not
// zero), as irmaserver.Server.Revoke; it returns irma.ErrUnknownRevocationKey
// when the key issued nothing.
type Revoker func(credType irma.CredentialTypeIdentifier, key string, issued time.Time) error

// handleRevocation serves POST /revocation as irma server does: a
// revocation request as JSON with a token in the Authorization header, or
// as a requestor JWT (text/plain, HS256 or RS256, its request under
// "revrequest"); the requestor needs a revoke permission for the credential
// type. It answers "OK" (text/plain) once the credential is revoked.
func (h *Handler) handleRevocation(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	applies, req, requestor, rerr := h.authenticateRevocation(r.Context(), r.Header, body)
	if h.refuse(w, r, applies, rerr, "revocation request") != "" {
		return
	}
	ok, reason := canRevoke(h.perms[requestor].Revoke, req.CredentialType)
	if ok && h.cfg.Revocable != nil {
		// A wildcard permission also matches what the gateway cannot revoke.
		if revocable, err := h.cfg.Revocable(req.CredentialType); !revocable || err != nil {
			ok, reason = false, req.CredentialType.String()+": not revocable here"
		}
	}
	if !ok || h.cfg.Revoke == nil {
		h.log.Warn("requestor not authorized to revoke", zap.String("requestor", requestor), zap.String("credential_type", req.CredentialType.String()))
		server.WriteError(w, server.ErrorUnauthorized, reason)
		return
	}
	var issued time.Time
	if req.Issued != 0 {
		issued = time.Unix(0, req.Issued)
	}
	if err := h.cfg.Revoke(req.CredentialType, req.Key, issued); err != nil {
		if errors.Is(err, irma.ErrUnknownRevocationKey) {
			server.WriteError(w, server.ErrorUnknownRevocationKey, "")
			return
		}
		// The storage's errors may name the database: logged, not shown.
		h.log.Error("revocation failed", zap.String("requestor", requestor), zap.String("credential_type", req.CredentialType.String()), zap.Error(err))
		server.WriteError(w, server.ErrorRevocation, "")
		return
	}
	h.log.Info("credential revoked", zap.String("requestor", requestor), zap.String("credential_type", req.CredentialType.String()))
	server.WriteString(w, "OK")
}

// authenticateRevocation finds the requestor of a revocation request, as
// irma server's authenticators do (see authenticate); an unauthenticated
// request is never accepted, whatever AllowUnauthenticated says.
func (h *Handler) authenticateRevocation(ctx context.Context, headers http.Header, body []byte) (bool, *irma.RevocationRequest, string, *irma.RemoteError) {
	return authenticateAs(ctx, h, headers, body, ParseRevocationRequest, parseRevocationJWT, false)
}

// ParseRevocationRequest parses a revocation request in JSON, as irma
// server reads one: {"@context": "https://irma.app/ld/request/revocation/v1",
// "type": <credential type>, "revocationKey": <key>, "issued": <unix ns>},
// with a credential type of three parts and a key that is not empty.
func ParseRevocationRequest(body []byte) (*irma.RevocationRequest, error) {
	req := new(irma.RevocationRequest)
	if err := json.Unmarshal(body, req); err != nil {
		return nil, err
	}
	return req, checkRevocationRequest(req)
}

// parseRevocationJWT reads the revocation request of a verified requestor
// JWT (irma.RevocationJwt: the request under "revrequest").
func parseRevocationJWT(token string, _ *jwt.RegisteredClaims) (*irma.RevocationRequest, error) {
	claims := &struct {
		jwt.RegisteredClaims
		Request *irma.RevocationRequest `json:"revrequest"`
	}{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return nil, err
	}
	if claims.Request == nil {
		return nil, errors.New("no revocation request (revrequest) in the JWT")
	}
	return claims.Request, checkRevocationRequest(claims.Request)
}

// checkRevocationRequest checks what irma server checks (the @context),
// and what it leaves to the database to find out.
func checkRevocationRequest(req *irma.RevocationRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if parts := strings.Split(req.CredentialType.String(), "."); len(parts) != 3 || slices.Contains(parts, "") {
		return errors.New("type: want a credential type, scheme.issuer.credential")
	}
	if req.Key == "" {
		return errors.New("revocationKey is required")
	}
	if err := CheckRevocationKey(req.Key); err != nil {
		return err
	}
	switch {
	case req.Issued < 0:
		return errors.New("issued: want a time in Unix nanoseconds")
	}
	return nil
}

// MaxRevocationKeyLength is the longest revocation key, in bytes, that the
// API takes in an issuance or a revocation request.
const MaxRevocationKeyLength = 256

// CheckRevocationKey checks a revocation key as the gateway takes it, at
// issuance and at revocation: at most MaxRevocationKeyLength bytes of
// UTF-8 without control characters (nor U+FFFD, which stands for invalid
// UTF-8). The database would store a NUL or
// invalid UTF-8 otherwise only after the wallet consented, or fold two
// keys into one. The key is not in the error.
func CheckRevocationKey(key string) error {
	switch {
	case len(key) > MaxRevocationKeyLength:
		return errors.New("revocationKey is too long")
	case !utf8.ValidString(key) || strings.ContainsRune(key, utf8.RuneError):
		// JSON decoding turns invalid UTF-8 into U+FFFD, folding keys.
		return errors.New("revocationKey is not UTF-8")
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return errors.New("revocationKey holds a control character")
	}
	return nil
}

// canRevoke says whether perms allow revoking cred, with irma server's
// wildcards; the reason of a refusal is irma server's.
func canRevoke(perms []string, cred irma.CredentialTypeIdentifier) (bool, string) {
	if len(perms) == 0 {
		return false, ""
	}
	if slices.Contains(perms, "*") ||
		slices.Contains(perms, cred.Root()+".*") ||
		slices.Contains(perms, cred.IssuerIdentifier().String()+".*") ||
		slices.Contains(perms, cred.String()) {
		return true, ""
	}
	return false, cred.String()
}

// canIssueRevocable checks the revocation keys of an issuance request: not
// longer than MaxRevocationKeyLength, and, with Config.Revocable set, one
// for each revocable credential type, which the gateway must be the
// revocation authority of (irmaserver ignores the key of a credential type
// that is not revocable).
func (h *Handler) canIssueRevocable(creds []*irma.CredentialRequest) (bool, string) {
	for _, cred := range creds {
		if err := CheckRevocationKey(cred.RevocationKey); err != nil {
			return false, err.Error()
		}
		if h.cfg.Revocable == nil {
			continue
		}
		revocable, err := h.cfg.Revocable(cred.CredentialTypeID)
		switch {
		case !revocable:
		case err != nil:
			return false, err.Error()
		case cred.RevocationKey == "":
			return false, "revocationKey is required for " + cred.CredentialTypeID.String()
		}
	}
	return true, ""
}
