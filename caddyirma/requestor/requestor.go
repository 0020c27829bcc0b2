// Package requestor serves a requestor API compatible with the one of `irma server` (irmago v1.3.0's
// requestorserver) on top of an embedded IRMA server, as a plain http.Handler that knows nothing of Caddy.
//
// Requestors start sessions with POST /session, authenticated as irma server authenticates them: a token in
// the Authorization header, or a requestor JWT signed with an HMAC key (HS256) or an RSA key (RS256). The
// requestor token returned is the credential for the session's status, result and cancellation routes.
package requestor

import (
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// DefaultMaxRequestAge is irma server's default maximum age of a requestor JWT (its max_request_age, 300 s).
const DefaultMaxRequestAge = 300 * time.Second

// DefaultMaxBodySize is irma server's limit on request bodies (server.PostSizeLimit, 10 MB).
const DefaultMaxBodySize = 10 << 20

// Authentication methods of requestors, named as in irma server's requestor configuration.
const (
	AuthToken     = "token"
	AuthHMAC      = "hmac"
	AuthPublicKey = "publickey"
	// AuthNone is accepted only for the "" requestor, whose permissions apply to unauthenticated requests.
	AuthNone = "none"
)

// Server is what the API needs of the IRMA server; *irmaserver.Server satisfies it.
type Server interface {
	StartSession(req any, handler server.SessionHandler, requestor string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error)
	GetSessionResult(irma.RequestorToken) (*server.SessionResult, error)
	GetRequest(irma.RequestorToken) (irma.RequestorRequest, error)
	CancelSession(irma.RequestorToken) error
}

// Config configures the requestor API.
type Config struct {
	// Requestors are the known requestors by name. The name is the `iss` (or `kid`) of its JWTs.
	// The "" requestor (auth method "" or "none", no key) holds the permissions of unauthenticated requests.
	Requestors map[string]Requestor
	// AllowUnauthenticated accepts session requests without authentication (plain JSON without an
	// Authorization header), with the permissions of the "" requestor (none if it is absent).
	// By default such requests are refused.
	AllowUnauthenticated bool
	// JWTIssuer is the `iss` of session result JWTs. Empty by default.
	JWTIssuer string
	// JWTKey signs session result JWTs (RS256) at /result-jwt and /getproof, and its public key is served
	// at /publickey. Without it those routes answer as irma server without a JWT key does.
	JWTKey *rsa.PrivateKey
	// SignedCallbacks says that the IRMA server signs the results it posts to a session request's
	// callbackUrl or nextSession URL (it has a JWT private key). Session requests with either are
	// accepted with it or AllowUnsignedCallbacks, from authenticated requestors only; otherwise
	// refused as irma server refuses them without a key.
	SignedCallbacks bool
	// AllowUnsignedCallbacks accepts a callbackUrl or nextSession although the IRMA server posts the
	// result unsigned, as irma server's allow_unsigned_callbacks.
	AllowUnsignedCallbacks bool
	// RefuseTarget, if set, says which URLs a session result may not be posted to (a callbackUrl or a
	// nextSession URL), such as the admin API of the server itself; such a request gets 400.
	RefuseTarget func(*url.URL) bool
	// MaxRequestAge is how old (by its `iat`) a requestor JWT may be. Default DefaultMaxRequestAge.
	MaxRequestAge time.Duration
	// MaxBodySize limits the POST body in bytes. Default DefaultMaxBodySize.
	MaxBodySize int64
	// URL is the IRMA server's URL; its host is the only host a session request may name in its "host"
	// field unless the requestor's Permissions.Hosts allow others. Empty: only requests without a host.
	URL string
	// Conf is the IRMA configuration (schemes) against which permissions are validated. Nil: syntax only.
	Conf *irma.Configuration
	// SkipPrivateKeysCheck skips checking, as irma server's skip_private_keys_check, that issue
	// permissions name credentials whose issuer private key is installed in Conf.
	SkipPrivateKeysCheck bool
	// Logger logs refusals (never tokens or keys). Default: no logging.
	Logger *zap.Logger
	// Replays keeps a requestor JWT from starting more than one session.
	// Default: a record in this process.
	Replays Replays
	// MaxTimeout, if set, is the longest timeout (how long a session waits
	// for the app) that a session request may ask; longer ones are refused.
	MaxTimeout time.Duration
	// Admit, if set, is asked before a session starts, with the name of its
	// requestor ("" for an unauthenticated one). If it returns false, it
	// has answered the request itself, and no session starts.
	Admit func(w http.ResponseWriter, r *http.Request, requestor string) bool
	// Observe, if set, is told how each session request ended: outcome is
	// started, unauthenticated, refused, limited or error; requestor is a
	// configured name ("" for unauthenticated and unauthenticated-outcome
	// requests, never a name the request merely claims); action is empty
	// unless the request was read.
	Observe func(requestor, outcome string, action irma.Action)
	// Revoke, if set, revokes for POST /revocation (requestors with a revoke
	// permission); unset, every revocation request is refused as
	// unauthorized.
	Revoke Revoker
	// Revocable, if set, says whether a credential type is revocable, and
	// if so, why the gateway cannot issue it (nil: it can, with a
	// revocationKey, which an issuance request must then give).
	Revocable func(irma.CredentialTypeIdentifier) (bool, error)
	// StatusEvents, if set, streams the status of a session at /session/{token}/statusevents as
	// server-sent events (irma server with SSE on), starting from status, which it just looked up.
	// Unset, that route answers as irma server without SSE.
	StatusEvents func(w http.ResponseWriter, r *http.Request, token irma.RequestorToken, status irma.ServerStatus)
}

// Requestor is one requestor's authentication and permissions.
type Requestor struct {
	// AuthMethod is "token", "hmac" or "publickey".
	AuthMethod string
	// Key is the token value ("token"), the base64 HMAC key ("hmac") or the PEM RSA public key ("publickey").
	Key string
	// Permissions say what the requestor may disclose, sign and issue.
	Permissions Permissions
}

// Permissions lists what a requestor may do, with irma server's wildcards: "*", "scheme.*", "scheme.issuer.*",
// "scheme.issuer.credential.*" (not for Issue) and exact identifiers (attributes for Disclose and Sign,
// credential types for Issue). Disclose also covers disclosures inside issuance sessions.
type Permissions struct {
	Disclose []string
	Sign     []string
	Issue    []string
	// Revoke are the credential types the requestor may revoke with POST
	// /revocation, as irma server's revoke_perms: patterns as Issue.
	Revoke []string
	// Hosts are the hosts the requestor may name in a session request's "host" field, as irma server's
	// host_perms: path.Match patterns, whose "*" matches dots too ("*.example.com" matches
	// "a.b.example.com"); a port is part of the host. The session pointer then names that host, and the
	// IRMA server answers the Yivi app only there ("Host mismatch" elsewhere). A request without "host"
	// asks for the host of Config.URL. Empty: only the host of Config.URL; set: only hosts that match,
	// that one included.
	Hosts []string
}

// Handler serves the requestor API. Build it with New.
type Handler struct {
	srv    Server
	cfg    Config
	log    *zap.Logger
	tokens []tokenRequestor
	hmac   map[string]any
	rsa    map[string]any
	perms  map[string]Permissions

	replays Replays
}

// New validates cfg and returns the requestor API serving srv.
func New(srv Server, cfg Config) (*Handler, error) {
	if srv == nil {
		return nil, errors.New("requestor: no IRMA server")
	}
	h := &Handler{
		srv:   srv,
		cfg:   cfg,
		log:   cfg.Logger,
		hmac:  map[string]any{},
		rsa:   map[string]any{},
		perms: map[string]Permissions{},
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.replays = cfg.Replays; h.replays == nil {
		h.replays = new(replayCache)
	}
	if h.cfg.MaxRequestAge == 0 {
		h.cfg.MaxRequestAge = DefaultMaxRequestAge
	}
	if h.cfg.MaxRequestAge < 0 {
		return nil, errors.New("requestor: max request age must not be negative")
	}
	if h.cfg.MaxBodySize == 0 {
		h.cfg.MaxBodySize = DefaultMaxBodySize
	}
	if h.cfg.MaxBodySize < 0 {
		return nil, errors.New("requestor: max body size must not be negative")
	}
	if err := h.initRequestors(); err != nil {
		return nil, err
	}
	return h, nil
}

// ServeHTTP routes as irma server's requestor API does, relative to the handler root.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/session" || path == "/session/":
		if !allow(w, r, http.MethodPost) {
			return
		}
		h.handleCreateSession(w, r)
		return
	case path == "/publickey":
		if allow(w, r, http.MethodGet) {
			h.handlePublicKey(w)
		}
		return
	case path == "/revocation":
		if allow(w, r, http.MethodPost) {
			h.handleRevocation(w, r) // revocation.go
		}
		return
	case path == "/health":
		if allow(w, r, http.MethodGet) {
			server.WriteString(w, "OK")
		}
		return
	case strings.HasPrefix(path, "/session/"):
		h.routeSession(w, r, strings.TrimPrefix(path, "/session/"))
		return
	}
	http.NotFound(w, r)
}

// routeSession serves /session/{token}[/...]. Like irma server (whose token middleware runs before its
// method routing), a malformed token is refused before the method is checked.
func (h *Handler) routeSession(w http.ResponseWriter, r *http.Request, rest string) {
	raw, sub, _ := strings.Cut(rest, "/")
	token, err := irma.ParseRequestorToken(raw)
	if err != nil {
		server.WriteError(w, server.ErrorInvalidRequest, err.Error())
		return
	}
	switch sub {
	case "":
		if allow(w, r, http.MethodDelete) {
			h.handleDelete(w, token)
		}
	case "status":
		if allow(w, r, http.MethodGet) {
			h.handleStatus(w, token)
		}
	case "statusevents":
		if allow(w, r, http.MethodGet) {
			h.handleStatusEvents(w, r, token)
		}
	case "result":
		if allow(w, r, http.MethodGet) {
			h.handleResult(w, token)
		}
	case "result-jwt":
		if allow(w, r, http.MethodGet) {
			h.handleJWTResult(w, token)
		}
	case "getproof":
		if allow(w, r, http.MethodGet) {
			h.handleJWTProofs(w, token)
		}
	default:
		http.NotFound(w, r)
	}
}

// allow answers 405 with an empty body, as irma server's router, unless r uses method.
func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	w.WriteHeader(http.StatusMethodNotAllowed)
	return false
}

var _ http.Handler = (*Handler)(nil)
