package caddyirma

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// nextErrorWriter stands between irmaserver and the Yivi app where a
// session that chains a next one ends (the app's proofs or commitments).
// When irmaserver cannot start the next session it tells the app why in
// words of its transport, which name the requestor's next-session URL: an
// internal host, its path and query, its user name. The app, anyone's who
// scans a static session's code, gets a plain reason instead; the log keeps
// irmaserver's (without the URL's user info). Other answers pass as they
// are.
type nextErrorWriter struct {
	http.ResponseWriter
	code int
	buf  bytes.Buffer
}

// nextSessionUnavailable is what the app hears of a next-session URL that
// failed.
const nextSessionUnavailable = "the requestor's server did not give the next session"

func (w *nextErrorWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	if code != server.ErrorNextSession.Status {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *nextErrorWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.code == server.ErrorNextSession.Status {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// finish writes a held answer, its reason replaced if it is a next
// session's that names where it failed.
func (w *nextErrorWriter) finish() {
	if w.code != server.ErrorNextSession.Status {
		return
	}
	body := w.buf.Bytes()
	var e irma.RemoteError
	if json.Unmarshal(body, &e) == nil && e.ErrorName == string(server.ErrorNextSession.Type) &&
		!strings.HasPrefix(e.Message, "next session not authorized") {
		e.Message = nextSessionUnavailable
		if b, err := json.Marshal(e); err == nil {
			body = b
		}
	}
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(w.code)
	_, _ = w.ResponseWriter.Write(body)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *nextErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
