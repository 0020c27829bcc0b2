package requestor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"
)

// tokenRequestor is a requestor authenticating with a token; only the token's hash is kept, so that
// comparing takes the same time whatever the lengths.
type tokenRequestor struct {
	name string
	hash [sha256.Size]byte
}

// initRequestors parses every requestor's key and validates its permissions, naming the requestor in errors.
func (h *Handler) initRequestors() error {
	var errs []error
	seen := map[[sha256.Size]byte]string{}
	for name, req := range h.cfg.Requestors {
		label := fmt.Sprintf("requestor %q", name)
		if err := h.validatePermissions(label, req.Permissions); err != nil {
			errs = append(errs, err)
		}
		h.perms[name] = req.Permissions
		if name == "" {
			if (req.AuthMethod != "" && req.AuthMethod != AuthNone) || req.Key != "" {
				errs = append(errs, errors.New(`requestor "": holds the permissions of unauthenticated requests: it takes no auth method and no key`))
			}
			continue
		}
		if req.Key == "" {
			errs = append(errs, fmt.Errorf("%s: no key", label))
			continue
		}
		switch req.AuthMethod {
		case AuthToken:
			sum := sha256.Sum256([]byte(req.Key))
			if other, dup := seen[sum]; dup {
				errs = append(errs, fmt.Errorf("%s: same token as requestor %q", label, other))
				continue
			}
			seen[sum] = name
			h.tokens = append(h.tokens, tokenRequestor{name: name, hash: sum})
		case AuthHMAC:
			key, err := base64Decode(strings.TrimSpace(req.Key))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: hmac key is not base64", label))
				continue
			}
			if len(key) == 0 {
				errs = append(errs, fmt.Errorf("%s: empty hmac key", label))
				continue
			}
			h.hmac[name] = key
		case AuthPublicKey:
			pk, err := jwt.ParseRSAPublicKeyFromPEM([]byte(req.Key))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: public key: %w", label, err))
				continue
			}
			h.rsa[name] = pk
		default:
			errs = append(errs, fmt.Errorf("%s: unsupported authentication method %q (supported: %s, %s, %s)",
				label, req.AuthMethod, AuthToken, AuthHMAC, AuthPublicKey))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("requestor: %w", err)
	}
	return nil
}

// base64Decode accepts any of the base64 encodings, as irma server does (in its order).
func base64Decode(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// authenticate finds the requestor of a session request, as irma server's authenticators do. applies is
// false when no method applies to the request (then irma server answers from the Content-Type alone).
func (h *Handler) authenticate(ctx context.Context, headers http.Header, body []byte) (applies bool, req irma.RequestorRequest, requestor string, rerr *irma.RemoteError) {
	fromJWT := func(token string, claims *jwt.RegisteredClaims) (irma.RequestorRequest, error) {
		parsed, err := irma.ParseRequestorJwt(claims.Subject, token)
		if err != nil {
			return nil, err
		}
		return parsed.RequestorRequest(), nil
	}
	fromJSON := func(body []byte) (irma.RequestorRequest, error) { return server.ParseSessionRequest(body) }
	return authenticateAs(ctx, h, headers, body, fromJSON, fromJWT, h.cfg.AllowUnauthenticated)
}

// authenticateAs finds the requestor of a request, as irma server's authenticators do, and parses the
// request: from JSON with a token in the Authorization header (or none, if unauthenticated is allowed),
// or from a requestor JWT (text/plain, HS256 or RS256) once verified. applies is false when no method
// applies.
func authenticateAs[T any](ctx context.Context, h *Handler, headers http.Header, body []byte,
	fromJSON func([]byte) (T, error), fromJWT func(string, *jwt.RegisteredClaims) (T, error), unauthenticated bool,
) (applies bool, req T, requestor string, rerr *irma.RemoteError) {
	auth := headers.Get("Authorization")
	ctype := headers.Get("Content-Type")
	jsonBody := strings.HasPrefix(ctype, "application/json")
	switch {
	case auth != "" && jsonBody, auth == "" && jsonBody && unauthenticated:
		if auth != "" {
			var ok bool
			if requestor, ok = h.tokenRequestor(auth); !ok {
				return true, req, "", server.RemoteError(server.ErrorUnauthorized, "")
			}
		}
		parsed, err := fromJSON(body)
		if err != nil {
			return true, req, "", server.RemoteError(server.ErrorInvalidRequest, err.Error())
		}
		return true, parsed, requestor, nil
	case auth == "" && strings.HasPrefix(ctype, "text/plain"):
		alg, err := jwtSignatureAlg(string(body))
		if err != nil {
			return false, req, "", nil
		}
		keys := h.hmac
		switch alg {
		case jwt.SigningMethodHS256.Name:
		case jwt.SigningMethodRS256.Name:
			keys = h.rsa
		default:
			return false, req, "", nil
		}
		token, claims, rerr := h.verifyRequestorJWT(ctx, body, keys)
		if rerr != nil {
			return true, req, "", rerr
		}
		parsed, err := fromJWT(token, claims)
		if err != nil {
			return true, req, "", server.RemoteError(server.ErrorInvalidRequest, err.Error())
		}
		return true, parsed, claims.Issuer, nil
	}
	return false, req, "", nil
}

// tokenRequestor compares auth with every token in constant time.
func (h *Handler) tokenRequestor(auth string) (string, bool) {
	sum := sha256.Sum256([]byte(auth))
	found := -1
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return h.tokens[found].name, true
}

// verifyRequestorJWT verifies a requestor JWT against keys, checks its iat,
// and records it as used (a requestor JWT counts once), returning it with
// its claims.
func (h *Handler) verifyRequestorJWT(ctx context.Context, body []byte, keys map[string]any) (string, *jwt.RegisteredClaims, *irma.RemoteError) {
	claims := &jwt.RegisteredClaims{}
	requestorJwt := strings.TrimSpace(string(body))
	if !compactJWT.MatchString(requestorJwt) {
		// Go's base64 skips line breaks: without this, copies of one JWT
		// with a newline in them would each count as new.
		return "", nil, server.RemoteError(server.ErrorInvalidRequest, "malformed requestor JWT")
	}
	// An iat in the future is refused by the parser, a missing one below.
	if _, err := jwt.ParseWithClaims(requestorJwt, claims, jwtKeyFunc(keys), jwt.WithIssuedAt()); err != nil {
		return "", nil, server.RemoteError(server.ErrorInvalidRequest, err.Error())
	}
	now := time.Now()
	if claims.IssuedAt == nil || claims.IssuedAt.Add(h.cfg.MaxRequestAge).Before(now) {
		return "", nil, server.RemoteError(server.ErrorUnauthorized, "jwt too old")
	}
	// irma server takes the same JWT again and again while its iat is fresh:
	// whoever saw one could start (and so receive) the same issuance. Here a
	// requestor JWT starts one session only.
	first, err := h.replays.First(ctx, replayKey(requestorJwt), claims.IssuedAt.Add(h.cfg.MaxRequestAge))
	if err != nil {
		h.log.Error("requestor JWT refused: the replay store does not answer", zap.Error(err))
		return "", nil, server.RemoteError(errorUnavailable, "the replay store does not answer")
	}
	if !first {
		return "", nil, server.RemoteError(server.ErrorUnauthorized, "jwt already used")
	}
	return requestorJwt, claims, nil
}

// compactJWT is a JWT in compact serialization, and nothing else.
var compactJWT = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// replayKey identifies a verified JWT whatever unused bits its signature's
// base64 carries: the signed part as written (any other spelling would not
// verify), and the signature as bytes.
func replayKey(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return token
	}
	return token[:i] + "." + string(sig)
}

// Replays says whether a requestor JWT is used for the first time. One
// that every instance of a gateway shares (in the Redis of the sessions)
// keeps a JWT from starting a session on each instance behind a balancer.
type Replays interface {
	// First records key until expires and says whether it was new. Of
	// concurrent callers with one key, one gets true. An error means that
	// it cannot say: the JWT is refused.
	First(ctx context.Context, key string, expires time.Time) (bool, error)
}

// errorUnavailable answers a requestor whose JWT cannot be checked now.
var errorUnavailable = server.Error{Type: "SERVICE_UNAVAILABLE", Status: http.StatusServiceUnavailable,
	Description: "The server cannot check the request now; try again shortly"}

// replayCache is the Replays of one process: the default.
type replayCache struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time
	now  func() time.Time
}

// First implements Replays.
func (c *replayCache) First(_ context.Context, jwt string, expires time.Time) (bool, error) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	key := sha256.Sum256([]byte(jwt))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[[32]byte]time.Time{}
	}
	if len(c.seen) > 1000 {
		for k, exp := range c.seen {
			if exp.Before(now) {
				delete(c.seen, k)
			}
		}
	}
	if exp, ok := c.seen[key]; ok && exp.After(now) {
		return false, nil
	}
	c.seen[key] = expires
	return true, nil
}

// jwtKeyFunc picks the key of the requestor named by the JWT's kid header, or else by its iss, as irma
// server does, and records that name as the issuer.
func jwtKeyFunc(keys map[string]any) jwt.Keyfunc {
	return func(token *jwt.Token) (any, error) {
		kid, ok := token.Header["kid"]
		if !ok {
			kid = token.Claims.(*jwt.RegisteredClaims).Issuer
		}
		name, ok := kid.(string)
		if !ok {
			return nil, errors.New("requestor name was not a string")
		}
		token.Claims.(*jwt.RegisteredClaims).Issuer = name
		if key, ok := keys[name]; ok {
			return key, nil
		}
		return nil, fmt.Errorf("unknown requestor: %s", name)
	}
}

func jwtSignatureAlg(j string) (string, error) {
	token, _, err := new(jwt.Parser).ParseUnverified(j, &jwt.RegisteredClaims{})
	if err != nil {
		return "", err
	}
	return token.Method.Alg(), nil
}
