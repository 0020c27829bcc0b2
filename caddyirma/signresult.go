package caddyirma

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
	"github.com/caddy-irma/caddy-irma/caddyirma/signature"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"
)

// What irma_sign does with a finished signature session: verify the
// signature, post it to the upstream, and hand it to the visitor, once.

// SignResult is what irma_sign answers when the signature is done (as JSON),
// and what it POSTs to the upstream.
type SignResult struct {
	// Signature is the IRMA attribute-based signature, as irmago makes it.
	Signature *irma.SignedMessage `json:"signature"`
	// Verification is what /irma/verify says of it.
	Verification *signature.Result `json:"verification"`
}

// resume picks up a finished signature session.
func (h *Sign) resume(w http.ResponseWriter, r *http.Request, p *pendingSession, ret string, now time.Time) error {
	cookies := &h.app.Login.cookies
	pending := cookies.pendingName(h.route)
	state, res, err := lookUpPending(h.backend, p)
	switch {
	case err != nil:
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_sign: %w", err))
	case state == pendingRunning:
		var req irma.SessionRequest
		if sessionpage.WantsPage(r) { // a script's JSON lists nothing: no look-up for it
			req = h.runningRequest(p)
		}
		return h.respond(w, r, p.session(irma.ActionSigning, h.app.PathPrefix()), ret, req)
	case state == pendingGone:
		cookies.clear(w, pending)
		return caddyhttp.Error(http.StatusGone, errors.New("irma_sign: the signature session is gone; start again"))
	case state == pendingEnded:
		outcome := sessionEndOutcome(res.Status)
		countSessionEnd(irma.ActionSigning, outcome, "", p.started())
		auditEntry{decision: decisionSignature, outcome: outcome, route: h.route}.log(h.app.audit)
		cookies.clear(w, pending)
		return caddyhttp.Error(http.StatusConflict, fmt.Errorf("irma_sign: the signature session ended %s", res.Status))
	}
	cookies.clear(w, pending)
	// A result is fetched, and posted upstream, once: not again for
	// whoever kept a copy of the pending cookie.
	if first, err := h.takeMark(r.Context(), p); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("irma_sign: %w", err))
	} else if !first {
		countSessionEnd(irma.ActionSigning, outcomeRefused, refusedUsed, p.started())
		auditEntry{decision: decisionSignature, outcome: auditRefused, reason: "the signature was fetched already", route: h.route}.log(h.app.audit)
		return caddyhttp.Error(http.StatusGone, errors.New("irma_sign: the signature was fetched already"))
	}
	if res.Type != irma.ActionSigning || res.Signature == nil || res.ProofStatus != irma.ProofStatusValid {
		countSessionEnd(irma.ActionSigning, outcomeRefused, refusedInvalid, p.started())
		auditEntry{decision: decisionSignature, outcome: auditRefused, reason: "no valid signature (" + string(res.ProofStatus) + ")",
			route: h.route, attributes: disclosedTypes(res.Disclosed)}.log(h.app.audit)
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("irma_sign: the session gave no valid signature (%s)", res.ProofStatus))
	}
	sigJSON, err := json.Marshal(res.Signature)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	verification, err := signature.Verify(h.app.Configuration(), sigJSON, nil, now)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("irma_sign: verifying the signature: %w", err))
	}
	countSessionEnd(irma.ActionSigning, outcomeDone, "", p.started())
	auditEntry{decision: decisionSignature, outcome: auditGranted, route: h.route, attributes: disclosedTypes(res.Disclosed)}.log(h.app.audit)
	result := &SignResult{Signature: res.Signature, Verification: verification}
	if h.Upstream != "" {
		h.post(r.Context(), result)
	}
	w.Header().Set("Cache-Control", "no-store")
	if !sessionpage.WantsPage(r) {
		sessionpage.WriteJSON(w, http.StatusOK, result)
		return nil
	}
	pretty, err := json.MarshalIndent(res.Signature, "", "  ")
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return sessionpage.RenderSigned(w, sessionpage.Language(r), res.Signature.Message, pretty, h.app.PathPrefix()+"verify")
}

// post sends a finished signature to the upstream.
func (h *Sign) post(ctx context.Context, result *SignResult) {
	b, err := json.Marshal(result)
	if err != nil {
		h.logger.Error("encoding the signature for the upstream", zap.Error(err))
		return
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, h.Upstream, bytes.NewReader(b))
	if err != nil {
		h.logger.Error("posting the signature to the upstream", zap.Error(err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		h.logger.Error("posting the signature to the upstream", zap.String("upstream", h.Upstream), zap.Error(err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		h.logger.Error("the upstream refused the signature", zap.String("upstream", h.Upstream), zap.Int("status", resp.StatusCode))
	}
}

// runningRequest is the request of the running session of p, for its page
// to list again; nil if the server cannot say.
func (h *Sign) runningRequest(p *pendingSession) irma.SessionRequest {
	type requests interface {
		GetRequest(irma.RequestorToken) (irma.RequestorRequest, error)
	}
	if s, ok := h.backend.(requests); ok {
		if rreq, err := s.GetRequest(irma.RequestorToken(p.Token)); err == nil && rreq != nil {
			return rreq.SessionRequest()
		}
	}
	return nil
}
