package caddyirma

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// When Redis, which holds the sessions and the marks that every instance
// shares, does not answer, a request that needs it cannot be served now but
// may be in a moment: it gets 503 with Retry-After and a page or JSON that
// says so, and the log one line that names the store. Never a 500 without
// a body, and never an answer that skipped what the store would have said
// (a logout, a result already used): the gateway fails closed.

// storeRetryAfter is how long a client is asked to wait when the store
// does not answer.
const storeRetryAfter = 5 * time.Second

// storeDown says whether err is, or wraps, a failure of the store of
// sessions and marks.
func storeDown(err error) bool {
	var redisErr *irmaserver.RedisError
	return errors.As(err, &redisErr) || errors.Is(err, marks.ErrUnavailable)
}

// answerStoreDown answers r with 503 if err is a failure of the store (see
// storeDown), logs it, and returns nil. Any other error it returns as it
// is, for Caddy to handle.
func answerStoreDown(w http.ResponseWriter, r *http.Request, logger *zap.Logger, err error) error {
	if err == nil || !storeDown(err) {
		return err
	}
	return answerUnavailable(w, r, logger, err)
}

// answerUnavailable answers r with 503 because the store did not answer
// (err says how), and logs it. It returns an error only if the page could
// not be made.
func answerUnavailable(w http.ResponseWriter, r *http.Request, logger *zap.Logger, err error) error {
	// A client that went away cancelled the call itself: debug, or a flood
	// of such clients would write an error a request.
	log := logger.Error
	if r.Context().Err() != nil {
		log = logger.Debug
	}
	log("request refused: the session store (Redis) failed", zap.Error(err))
	secs := int(storeRetryAfter / time.Second)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(secs))
	h.Set("Cache-Control", "no-store")
	if sessionpage.WantsPage(r) {
		return sessionpage.RenderMessage(w, http.StatusServiceUnavailable, sessionpage.Language(r), "unavailable", requestReturn(r))
	}
	sessionpage.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
		"error": "store_unavailable", "message": "the session store is not available: try again shortly", "retry_after": secs,
	})
	return nil
}

// serveStoreAware passes r to serve, an IRMA endpoint of irmaserver's,
// when the sessions are in Redis. irmaserver answers a failure of Redis
// (it does not answer; a master that a failover made a replica refuses
// writes) as 500 INTERNAL_ERROR, the one error of its session routes that
// is neither the request's nor the session's: such an answer becomes the
// 503 of answerUnavailable, for the Yivi app and the session page's status
// poll to try again. irmaserver logs the failure itself. Asking Redis
// afterwards would not do: a failover may have ended in between.
func serveStoreAware(w http.ResponseWriter, r *http.Request, logger *zap.Logger, serve func(http.ResponseWriter) error) error {
	held := &heldInternalError{ResponseWriter: w}
	err := serve(held)
	if held.status == 0 {
		return err
	}
	var answer irma.RemoteError
	if json.Unmarshal(held.body.Bytes(), &answer) == nil && answer.ErrorName == string(server.ErrorInternal.Type) {
		return answerUnavailable(w, r, logger, fmt.Errorf("irma endpoints: irmaserver answered %d %s: its store failed", held.status, answer.ErrorName))
	}
	w.WriteHeader(held.status)
	_, _ = w.Write(held.body.Bytes())
	return err
}

// heldInternalError passes a response on, unless its status is 500: then
// it keeps the status and the body, for serveStoreAware to decide.
type heldInternalError struct {
	http.ResponseWriter
	status  int // 500 once held
	decided bool
	body    bytes.Buffer
}

func (h *heldInternalError) WriteHeader(code int) {
	if h.decided {
		return
	}
	h.decided = true
	if code == http.StatusInternalServerError {
		h.status = code
		return
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *heldInternalError) Write(b []byte) (int, error) {
	if !h.decided {
		h.WriteHeader(http.StatusOK)
	}
	if h.status != 0 {
		return h.body.Write(b)
	}
	return h.ResponseWriter.Write(b)
}

func (h *heldInternalError) Unwrap() http.ResponseWriter { return h.ResponseWriter }
