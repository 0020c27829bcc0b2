package requestor

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"go.uber.org/zap"
)

var (
	jsonType  = regexp.MustCompile("^application/json")
	plainType = regexp.MustCompile("^text/plain")
)

func (h *Handler) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	applies, rrequest, requestor, rerr := h.authenticate(r.Context(), r.Header, body)
	if refusal := h.refuse(w, r, applies, rerr, "session request"); refusal != "" {
		if refusal == refusedUnauthenticated {
			h.observe("", "unauthenticated", "")
		}
		return
	}

	action := rrequest.SessionRequest().Action()
	if allowed, reason := h.CanRequest(requestor, rrequest.SessionRequest()); !allowed {
		h.observe(requestor, "refused", action)
		h.log.Warn("requestor not authorized to do session", zap.String("requestor", requestor), zap.String("reason", reason))
		server.WriteError(w, server.ErrorUnauthorized, reason)
		return
	}
	base := rrequest.Base()
	if max := int(h.cfg.MaxTimeout / time.Second); max > 0 && base.ClientTimeout > max {
		h.observe(requestor, "refused", action)
		server.WriteError(w, server.ErrorInvalidRequest, fmt.Sprintf("timeout %d s: this server waits at most %d s for the app", base.ClientTimeout, max))
		return
	}
	if base.NextSession != nil {
		if rerr := h.checkNextSession(requestor, base.NextSession); rerr != nil {
			h.observe(requestor, "refused", action)
			server.WriteResponse(w, nil, rerr)
			return
		}
	}
	if base.CallbackURL != "" {
		if rerr := h.checkCallback(requestor, base.CallbackURL); rerr != nil {
			h.observe(requestor, "refused", action)
			server.WriteResponse(w, nil, rerr)
			return
		}
	}

	if h.cfg.Admit != nil && !h.cfg.Admit(w, r, requestor) {
		h.observe(requestor, "limited", action)
		return
	}
	qr, token, frontend, err := h.srv.StartSession(rrequest, nil, requestor)
	if err != nil {
		h.observe(requestor, "error", action)
		var redisErr *irmaserver.RedisError
		if errors.As(err, &redisErr) {
			h.log.Error("failed to start session", zap.Error(err))
			server.WriteError(w, errorUnavailable, "")
		} else {
			server.WriteError(w, server.ErrorInvalidRequest, err.Error())
		}
		return
	}
	h.observe(requestor, "started", action)
	h.log.Debug("session started", zap.String("requestor", requestor), zap.String("type", string(action)))
	server.WriteJson(w, server.SessionPackage{SessionPtr: qr, Token: token, FrontendRequest: frontend})
}

// readBody reads the body of a requestor's POST, at most MaxBodySize
// bytes; if it cannot, it answers 400 and returns false.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodySize))
	if err != nil {
		server.WriteError(w, server.ErrorInvalidRequest, err.Error())
		return nil, false
	}
	return body, true
}

// Why refuse answered a request.
const (
	refusedUnauthenticated = "unauthenticated"
	refusedContentType     = "content type"
)

// refuse answers a request (what, for the log) that its authentication
// refused (rerr), or that no authentication method applied to, as irma
// server does, and says why; "" if it may go on.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, applies bool, rerr *irma.RemoteError, what string) string {
	if rerr != nil {
		h.log.Info(what+" refused", zap.String("error", rerr.ErrorName), zap.String("message", rerr.Message))
		server.WriteResponse(w, nil, rerr)
		return refusedUnauthenticated
	}
	if applies {
		return ""
	}
	if ctype := r.Header.Get("Content-Type"); !jsonType.MatchString(ctype) && !plainType.MatchString(ctype) {
		server.WriteError(w, server.ErrorInvalidRequest, "Unsupported Content-Type: "+ctype)
		return refusedContentType
	}
	h.log.Info(what + " refused: unknown authentication method")
	server.WriteError(w, server.ErrorInvalidRequest, "request could not be authenticated")
	return refusedUnauthenticated
}

// observe tells Config.Observe how a session request ended.
func (h *Handler) observe(requestor, outcome string, action irma.Action) {
	if h.cfg.Observe != nil {
		h.cfg.Observe(requestor, outcome, action)
	}
}

func (h *Handler) handleStatus(w http.ResponseWriter, token irma.RequestorToken) {
	res, err := h.srv.GetSessionResult(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	server.WriteJson(w, res.Status)
}

// handleStatusEvents streams the session's status with Config.StatusEvents, as irma server does with SSE
// on; without it, it answers as irma server without server-sent events (its default): 500 SSE_DISABLED for a
// known session, 501 UNSUPPORTED for an unknown one.
func (h *Handler) handleStatusEvents(w http.ResponseWriter, r *http.Request, token irma.RequestorToken) {
	res, err := h.srv.GetSessionResult(token)
	if h.cfg.StatusEvents != nil {
		if err != nil {
			h.mapError(w, err)
			return
		}
		h.cfg.StatusEvents(w, r, token, res.Status)
		return
	}
	if err != nil {
		server.WriteResponse(w, nil, &irma.RemoteError{
			Status:      server.ErrorUnsupported.Status,
			ErrorName:   string(server.ErrorUnsupported.Type),
			Description: server.ErrorUnsupported.Description,
		})
		return
	}
	server.WriteResponse(w, nil, &irma.RemoteError{
		Status:      http.StatusInternalServerError,
		Description: "Server sent events disabled",
		ErrorName:   "SSE_DISABLED",
	})
}

func (h *Handler) handleDelete(w http.ResponseWriter, token irma.RequestorToken) {
	if err := h.srv.CancelSession(token); err != nil {
		h.mapError(w, err)
	}
}

func (h *Handler) handleResult(w http.ResponseWriter, token irma.RequestorToken) {
	res, err := h.srv.GetSessionResult(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	if res.LegacySession {
		server.WriteJson(w, res.Legacy())
		return
	}
	server.WriteJson(w, res)
}

func (h *Handler) handleJWTResult(w http.ResponseWriter, token irma.RequestorToken) {
	if h.cfg.JWTKey == nil {
		server.WriteError(w, server.ErrorUnknown, "JWT signing not supported")
		return
	}
	res, err := h.srv.GetSessionResult(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	request, err := h.srv.GetRequest(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	j, err := server.ResultJwt(res, h.cfg.JWTIssuer, request.Base().ResultJwtValidity, h.cfg.JWTKey)
	if err != nil {
		h.log.Error("failed to sign session result JWT", zap.Error(err))
		server.WriteError(w, server.ErrorUnknown, err.Error())
		return
	}
	server.WriteString(w, j)
}

// handleJWTProofs serves the irma_api_server-compatible result JWT of /getproof.
func (h *Handler) handleJWTProofs(w http.ResponseWriter, token irma.RequestorToken) {
	if h.cfg.JWTKey == nil {
		server.WriteError(w, server.ErrorUnknown, "JWT signing not supported")
		return
	}
	res, err := h.srv.GetSessionResult(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	claims := jwt.MapClaims{}
	switch res.Type {
	case irma.ActionDisclosing:
		claims["sub"] = "disclosure_result"
	case irma.ActionSigning:
		claims["sub"] = "abs_result"
	case irma.ActionIssuing:
		claims["sub"] = "issue_result"
	default:
		server.WriteError(w, server.ErrorInvalidRequest, "")
		return
	}
	now := time.Now().Unix()
	claims["iat"] = now
	if h.cfg.JWTIssuer != "" {
		claims["iss"] = h.cfg.JWTIssuer
	}
	claims["status"] = res.ProofStatus
	request, err := h.srv.GetRequest(token)
	if err != nil {
		h.mapError(w, err)
		return
	}
	if validity := request.Base().ResultJwtValidity; validity != 0 {
		claims["exp"] = now + int64(validity)
	}
	attrs := make(map[irma.AttributeTypeIdentifier]string, len(res.Disclosed))
	for _, set := range res.Disclosed {
		for _, attr := range set {
			attrs[attr.Identifier] = attr.Value[""]
		}
	}
	claims["attributes"] = attrs
	if res.Signature != nil {
		claims["signature"] = res.Signature
	}
	j, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(h.cfg.JWTKey)
	if err != nil {
		h.log.Error("failed to sign session result JWT", zap.Error(err))
		server.WriteError(w, server.ErrorUnknown, err.Error())
		return
	}
	server.WriteString(w, j)
}

func (h *Handler) handlePublicKey(w http.ResponseWriter) {
	if h.cfg.JWTKey == nil {
		server.WriteError(w, server.ErrorUnsupported, "")
		return
	}
	der, err := x509.MarshalPKIXPublicKey(&h.cfg.JWTKey.PublicKey)
	if err != nil {
		server.WriteError(w, server.ErrorUnknown, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// mapError answers SESSION_UNKNOWN for an unknown session and INTERNAL_ERROR otherwise, as irma server.
func (h *Handler) mapError(w http.ResponseWriter, err error) {
	var unknown *irmaserver.UnknownSessionError
	if errors.As(err, &unknown) {
		server.WriteError(w, server.ErrorSessionUnknown, "")
		return
	}
	// The error may name the session's token: log only its type.
	h.log.Error("session store failed", zap.String("error_type", fmt.Sprintf("%T", err)))
	server.WriteError(w, server.ErrorInternal, "")
}
