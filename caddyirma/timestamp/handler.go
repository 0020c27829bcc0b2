// Package timestamp is a small atum timestamp service (github.com/bwesterb/go-atum), the kind of
// server an IRMA scheme names in its <TimestampServer>: in an attribute-based signature session
// the wallet has the service sign the time together with a hash of the signature, and every
// verifier of the signature asks the same service whether the signing key is its own.
//
// # Protocol
//
// Relative to the URL the handler is mounted at (go-atum appends a slash if it is missing):
//   - GET / answers the server information (atum.ServerInfo).
//   - POST / takes an atum.Request and answers an atum.Response with a timestamp, or with an
//     error code (and then a 4xx status and the server information).
//   - GET /checkPublicKey?alg=ed25519&pk=<hex> answers an atum.PublicKeyCheckResponse: trusted
//     only for this service's own public key.
//
// Only Ed25519 is offered: irmago always asks for it, and XMSS[MT] keys are stateful, which a
// restartable gateway cannot keep safely.
//
// # Trust
//
// A timestamp carries its signing public key. Neither go-atum nor irmago trust that key by itself:
// go-atum's Timestamp.Verify asks <server URL>/checkPublicKey whether the key is trusted, and
// irmago first replaces the URL in the timestamp with the TimestampServer of the scheme of the
// disclosed credentials (irma.SignedMessage.VerifyTimestamp). So trust rests on the scheme's
// signature over that URL, and on the connection to it: serve this handler over HTTPS wherever
// signatures matter.
//
// # go-atum's cache
//
// go-atum keeps a process-wide cache of trusted keys and server information, by default a bolt
// database under the home directory (~/.cache/atum/cache.bolt), opened on every stamp request and
// every verification. Importing this package replaces that cache with an in-memory one (see
// MemoryCache), so no process of ours writes there. A process that requests timestamps (a wallet)
// or verifies them (an IRMA server) must import this package, or call atum.SetCache itself
// before its first session.
package timestamp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/bwesterb/go-atum"
	"github.com/bwesterb/go-atum/stamper"
	"github.com/bwesterb/go-pow"
)

const (
	// MaxNonceSize is the longest nonce the service signs, in bytes. irmago's nonces are SHA-256
	// hashes (32 bytes) and go-atum's own message hashing makes 64-byte nonces.
	MaxNonceSize = 64

	// AcceptableLag is how far a time a client asks to be put on its timestamp may lie from the
	// service's clock. go-atum's client only asks for a time when it has to compute a proof of
	// work, which this service never requires; the reference server (atumd) allows 60 seconds.
	AcceptableLag = 60 * time.Second

	// DefaultKeyTrustDuration is how long a verifier may cache that our public key is trusted.
	// Short, so that a regenerated key stops being trusted within the hour.
	DefaultKeyTrustDuration = time.Hour

	// maxBodySize bounds a stamp request: a maximal valid one is well under 1 KiB of JSON.
	maxBodySize = 4 << 10

	checkPublicKeyPath = "/checkPublicKey"
)

// Error codes for requests that the atum protocol has no code for. Clients print the code.
const (
	errInvalidRequest  atum.ErrorCode = "invalid request"
	errRequestTooLarge atum.ErrorCode = "request too large"
	errUnsupportedAlg  atum.ErrorCode = "unsupported signature algorithm: only ed25519 is offered"
	errMethod          atum.ErrorCode = "method not allowed"
)

// now is the clock, replaceable in tests.
var now = time.Now

// Option configures NewHandler.
type Option func(*handler)

// WithURL sets the URL written into each timestamp (atum.Timestamp.ServerUrl): the public URL of
// the service, the same one that the scheme's TimestampServer names. Without it the field is
// empty. irmago ignores it (it substitutes the scheme's URL), but go-atum's generic Verify uses it
// to find the service to ask whether the key is trusted, and fails without one.
func WithURL(u string) Option {
	return func(h *handler) { h.url = u }
}

// WithKeyTrustDuration sets how long verifiers may cache that the service's public key is
// trusted. The default is DefaultKeyTrustDuration; zero or negative values are ignored.
func WithKeyTrustDuration(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.trustDuration = d
		}
	}
}

type handler struct {
	key           ed25519.PrivateKey
	pub           ed25519.PublicKey
	url           string
	trustDuration time.Duration
}

// NewHandler returns an http.Handler that speaks the atum protocol at its root, signing with key.
// It panics if key is not an Ed25519 private key of the right length: keys come from LoadKey,
// which checks that, so a bad key here is a programming error.
func NewHandler(key ed25519.PrivateKey, opts ...Option) http.Handler {
	if len(key) != ed25519.PrivateKeySize {
		panic("timestamp: NewHandler: invalid ed25519 private key length")
	}
	h := &handler{
		key:           key,
		pub:           key.Public().(ed25519.PublicKey),
		trustDuration: DefaultKeyTrustDuration,
	}
	for _, opt := range opts {
		opt(h)
	}
	return h
}

// serverInfo is what the service publishes. It requires no proof of work: clients would pay it
// on every signature for no gain, as abuse of a demo gateway's stamping costs one Ed25519
// signature per request. It also keeps clients independent of go-atum's cache: the client only
// learns about a required proof of work from an error response, stores it in the cache, and
// retries once, so with a cache that does not store, every request would fail.
func serverInfo() *atum.ServerInfo {
	return &atum.ServerInfo{
		MaxNonceSize:        MaxNonceSize,
		AcceptableLag:       int64(AcceptableLag / time.Second),
		DefaultSigAlg:       atum.Ed25519,
		RequiredProofOfWork: map[atum.SignatureAlgorithm]pow.Request{},
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "", "/":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			writeJSON(w, http.StatusOK, serverInfo())
		case http.MethodPost:
			h.stamp(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			writeError(w, http.StatusMethodNotAllowed, errMethod)
		}
	case checkPublicKeyPath:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.checkPublicKey(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, errMethod)
		}
	default:
		http.NotFound(w, r)
	}
}

// stamp answers a stamp request. Errors keep the protocol's shape (an atum.Response with an error
// code and the server information) because go-atum's client reads the body whatever the status.
func (h *handler) stamp(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, errRequestTooLarge)
			return
		}
		writeError(w, http.StatusBadRequest, errInvalidRequest)
		return
	}
	status, resp := h.process(body)
	writeJSON(w, status, resp)
}

// process turns a request body into a status and response. It is separate from the HTTP plumbing
// so the fuzz test can reach it directly.
func (h *handler) process(body []byte) (int, *atum.Response) {
	fail := func(code atum.ErrorCode) (int, *atum.Response) {
		resp := &atum.Response{Info: serverInfo()}
		resp.SetError(code)
		return http.StatusBadRequest, resp
	}

	var req atum.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(errInvalidRequest)
	}
	if len(req.Nonce) == 0 {
		return fail(atum.ErrorMissingNonce)
	}
	if len(req.Nonce) > MaxNonceSize {
		return fail(atum.ErrorNonceTooLong)
	}
	// The protocol lets a server fall back to its default for an algorithm it lacks; we refuse
	// instead, so that a client asking for XMSS[MT]'s post-quantum security is not handed
	// Ed25519 without noticing.
	if req.PreferredSigAlg != nil && *req.PreferredSigAlg != atum.Ed25519 {
		return fail(errUnsupportedAlg)
	}

	t := now().Unix()
	if req.Time != nil {
		// Compare without subtracting, which could overflow on a hostile int64.
		lag := int64(AcceptableLag / time.Second)
		if *req.Time < t-lag || *req.Time > t+lag {
			return fail(atum.ErrorCodeLag)
		}
		t = *req.Time
	}
	// A proof of work, if a client sends one, is ignored: none is required (see serverInfo).

	ts := stamper.CreateEd25519Timestamp(h.key, h.pub, t, req.Nonce)
	ts.ServerUrl = h.url
	return http.StatusOK, &atum.Response{Stamp: &ts}
}

// checkPublicKey tells a verifier whether a public key is ours. A well-formed question about any
// other key, or another algorithm, is answered "not trusted"; a malformed one is a 400.
func (h *handler) checkPublicKey(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "malformed query", http.StatusBadRequest)
		return
	}
	algs, pks := q["alg"], q["pk"]
	if len(algs) != 1 || len(pks) != 1 {
		http.Error(w, "exactly one alg and one pk query parameter required", http.StatusBadRequest)
		return
	}
	pk, err := hex.DecodeString(pks[0])
	if err != nil {
		http.Error(w, "pk is not hexadecimal", http.StatusBadRequest)
		return
	}
	trusted := atum.SignatureAlgorithm(algs[0]) == atum.Ed25519 && bytes.Equal(pk, h.pub)
	writeJSON(w, http.StatusOK, &atum.PublicKeyCheckResponse{
		Trusted: trusted,
		// go-atum refuses a key whose Expires lies before the timestamp's time; answering
		// "now plus the trust duration" covers every timestamp we issued so far.
		Expires: now().Add(h.trustDuration).UTC(),
	})
}

func writeError(w http.ResponseWriter, status int, code atum.ErrorCode) {
	resp := &atum.Response{Info: serverInfo()}
	resp.SetError(code)
	writeJSON(w, status, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types are marshalled here; failing is a bug, not bad input.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}
