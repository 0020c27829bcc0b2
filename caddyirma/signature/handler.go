package signature

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"strings"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
)

// Request bodies: a JSON body is a signature plus a short wrapper; a form URL-encodes the signature,
// which may triple its size.
const (
	maxJSONBody = MaxSize + 64<<10
	maxFormBody = 3*MaxSize + 64<<10
)

//go:embed page.html
var pageFS embed.FS

var pageTemplate = template.Must(template.ParseFS(pageFS, "page.html"))

// now is the clock of the handler; tests replace it.
var now = time.Now

// Handler verifies signatures at the URL where it is mounted:
//
//   - POST with Content-Type application/json: the body is the signature, or
//     {"signature": <signature>, "message": "<expected message>"} (the signature as JSON or as a
//     JSON string). 200 with a Result for a signature that parsed, valid or not; 400 with
//     {"error": ...} for malformed input; 413 for a body too large.
//   - GET: a form where a person pastes a signature and, optionally, the expected message. It posts
//     (application/x-www-form-urlencoded, fields signature and message) to the same URL and gets a
//     page with the result. An empty message field means none is expected.
//
// conf returns the current scheme configuration; nil answers 503. Verification changes nothing, so
// a cross-site post does no harm: the handler needs no CSRF protection.
func Handler(conf func() *irma.Configuration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			writePage(w, r, http.StatusOK, pageData{Form: true})
			return
		case http.MethodPost:
		default:
			h.Set("Allow", "GET, HEAD, POST")
			writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil {
			mt = ""
		}
		switch mt {
		case "application/json":
			serveJSON(w, r, conf)
		case "application/x-www-form-urlencoded":
			serveForm(w, r, conf)
		default:
			writeJSONError(w, http.StatusUnsupportedMediaType, "content type must be application/json or application/x-www-form-urlencoded")
		}
	})
}

func serveJSON(w http.ResponseWriter, r *http.Request, conf func() *irma.Configuration) {
	body, err := readBody(w, r, maxJSONBody)
	if err != nil {
		writeJSONError(w, statusFor(err), err.Error())
		return
	}
	sig, expected, err := unwrap(body)
	if err != nil {
		writeJSONError(w, statusFor(err), err.Error())
		return
	}
	c := conf()
	if c == nil {
		writeJSONError(w, http.StatusServiceUnavailable, "schemes not loaded")
		return
	}
	res, err := Verify(c, sig, expected, now())
	if err != nil {
		writeJSONError(w, statusFor(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func serveForm(w http.ResponseWriter, r *http.Request, conf func() *irma.Configuration) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writePage(w, r, http.StatusRequestEntityTooLarge, pageData{Form: true, Problem: "The signature is too large."})
			return
		}
		writePage(w, r, http.StatusBadRequest, pageData{Form: true, Problem: "The form could not be read."})
		return
	}
	sig, msg := r.PostForm.Get("signature"), r.PostForm.Get("message")
	data := pageData{Form: true, Signature: sig, Message: msg}
	var expected *string
	if msg != "" {
		expected = &msg
	}
	c := conf()
	if c == nil {
		data.Problem = "Signatures cannot be verified right now."
		writePage(w, r, http.StatusServiceUnavailable, data)
		return
	}
	res, err := Verify(c, []byte(sig), expected, now())
	if err == nil && res.Status == StatusUnmatchedMessage && strings.Contains(msg, "\r\n") {
		// Browsers send the line breaks of a textarea as CRLF, whatever was pasted.
		lf := strings.ReplaceAll(msg, "\r\n", "\n")
		res, err = Verify(c, []byte(sig), &lf, now())
	}
	if err != nil {
		data.Problem = "This is not a signature: " + err.Error()
		writePage(w, r, statusFor(err), data)
		return
	}
	data.Result = res
	writePage(w, r, http.StatusOK, data)
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, errors.New("reading the request body failed")
	}
	return buf.Bytes(), nil
}

// unwrap tells the wrapper {"signature": {...} or "...", "message": "..."} from a bare signature,
// whose "signature" member is the list of proofs.
func unwrap(body []byte) (sig []byte, expected *string, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, nil, errors.New("body is not a JSON object")
	}
	inner := bytes.TrimSpace(top["signature"])
	if len(inner) == 0 || (inner[0] != '{' && inner[0] != '"') {
		return body, nil, nil // a bare signature, or not a signature: Verify says which
	}
	for k := range top {
		if k != "signature" && k != "message" {
			return nil, nil, errors.New("unknown member " + strconvQuote(k))
		}
	}
	if inner[0] == '"' {
		var s string
		if err := json.Unmarshal(inner, &s); err != nil {
			return nil, nil, errors.New("signature: not a JSON string")
		}
		inner = []byte(s)
	}
	if m, ok := top["message"]; ok && !bytes.Equal(bytes.TrimSpace(m), []byte("null")) {
		var s string
		if err := json.Unmarshal(m, &s); err != nil {
			return nil, nil, errors.New("message: not a JSON string")
		}
		expected = &s
	}
	return inner, expected, nil
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func statusFor(err error) int {
	if errors.Is(err, ErrTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// pageData is what page.html shows.
type pageData struct {
	Nonce     string
	Form      bool
	Signature string // as pasted, to correct it
	Message   string
	Problem   string // input that is not a signature
	Result    *Result
}

func writePage(w http.ResponseWriter, r *http.Request, code int, data pageData) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	data.Nonce = base64.RawURLEncoding.EncodeToString(nonce[:])
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+data.Nonce+"'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
