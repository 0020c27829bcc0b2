package caddyirma

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

func init() {
	caddy.RegisterModule(RequestorAPI{})
	httpcaddyfile.RegisterHandlerDirective("irma_requestor_api", parseRequestorAPI)
	httpcaddyfile.RegisterDirectiveOrder("irma_requestor_api", httpcaddyfile.Before, "respond")
}

// RequestorAPI serves a requestor API compatible with `irma server`'s at the
// root of the path it is given (use handle_path for a prefix): POST
// /session, GET /session/{token}/status, /statusevents, /result,
// /result-jwt, /getproof, DELETE /session/{token}, GET /publickey, GET
// /health, POST /revocation (revocation.go), with the same JSON. Existing IRMA requestors can point at the gateway instead of
// an irma server. Requests without authentication are refused unless
// AllowUnauthenticated is set.
type RequestorAPI struct {
	// Requestors are the requestors that may start sessions, by name (the
	// iss of their JWTs). Default: none.
	Requestors map[string]RequestorConfig `json:"requestors,omitempty"`

	// AllowUnauthenticated accepts session requests without
	// authentication, with the permissions of Unauthenticated (in
	// production mode, without issuance). Default: off, every request must
	// authenticate.
	AllowUnauthenticated bool `json:"allow_unauthenticated,omitempty"`

	// Unauthenticated are the permissions of unauthenticated requests,
	// when allowed. Default: none.
	Unauthenticated *RequestorConfig `json:"unauthenticated,omitempty"`

	// JWTKeyFile is deprecated, and goes in the next release: set the irma
	// app's jwt_privkey_file, which signs the results posted to callback
	// URLs too. A PEM RSA private key that signs the result JWTs of
	// /result-jwt and /getproof, whose public key /publickey serves; it
	// must be the app's key if the app has one. Default: the app's key.
	JWTKeyFile string `json:"jwt_key_file,omitempty"`

	// JWTIssuer is deprecated, and goes in the next release: set the irma
	// app's jwt_issuer. The iss of the result JWTs of /result-jwt and
	// /getproof. Default: the app's jwt_issuer ("irmaserver" unless set).
	JWTIssuer string `json:"jwt_issuer,omitempty"`

	// MaxRequestAge is how old a requestor JWT may be (its iat). Default:
	// 5m, as irma server.
	MaxRequestAge caddy.Duration `json:"max_request_age,omitempty"`

	app           *App
	handler       *requestor.Handler
	releaseChains func()
}

// RequestorConfig is one requestor: how it authenticates and what it may
// ask.
type RequestorConfig struct {
	// AuthMethod is "token", "hmac" or "publickey", as in irma server.
	// Required for a requestor.
	AuthMethod string `json:"auth_method,omitempty"`
	// Key is the token, the base64 HMAC key, or the PEM RSA public key.
	// Placeholders such as {env.TOKEN} are replaced. Key or KeyFile is
	// required for a requestor.
	Key string `json:"key,omitempty"`
	// KeyFile is a file that holds the key instead of Key.
	KeyFile string `json:"key_file,omitempty"`
	// Disclose is what the requestor may ask to disclose, also within
	// issuance sessions, with irma server's wildcards: "*", "scheme.*",
	// "scheme.issuer.*", "scheme.issuer.credential.*" and exact attribute
	// ids. Default: nothing.
	Disclose []string `json:"disclose,omitempty"`
	// Sign is what the requestor may ask to sign with, as Disclose.
	// Default: nothing.
	Sign []string `json:"sign,omitempty"`
	// Issue is which credential types the requestor may issue: "*",
	// "scheme.*", "scheme.issuer.*" and exact credential type ids.
	// Default: nothing.
	Issue []string `json:"issue,omitempty"`
	// Revoke is which credential types the requestor may revoke with POST
	// /revocation, as irma server's revoke_perms, with the patterns of
	// Issue; the irma app must be their revocation authority (its
	// revocation settings). Never for unauthenticated requests. Default:
	// nothing.
	Revoke []string `json:"revoke,omitempty"`
	// Hosts are the hosts that a session request may name in its "host"
	// field (the host the Yivi app must then use), as irma server's
	// host_perms: path.Match patterns such as "*.example.com" (whose "*"
	// matches dots too; a port is part of the host). Set, a request
	// without "host" (the host of the irma app's url) must match one too.
	// Default: only the host of the irma app's url.
	Hosts []string `json:"hosts,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (RequestorAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.irma_requestor_api",
		New: func() caddy.Module { return new(RequestorAPI) },
	}
}

// Provision checks the requestors and keys.
func (h *RequestorAPI) Provision(ctx caddy.Context) error {
	app, err := irmaApp(ctx, "irma_requestor_api")
	if err != nil {
		return err
	}
	h.app = app
	repl := caddy.NewReplacer()
	cfg := requestor.Config{
		Requestors:             map[string]requestor.Requestor{},
		AllowUnauthenticated:   h.AllowUnauthenticated,
		MaxRequestAge:          time.Duration(h.MaxRequestAge),
		URL:                    app.ServerURL(),
		Conf:                   app.Configuration(),
		Logger:                 ctx.Logger(),
		SignedCallbacks:        app.resultKey != nil,
		AllowUnsignedCallbacks: app.AllowUnsignedCallbacks,
		RefuseTarget:           adminTarget,
	}
	if cfg.JWTKey, cfg.JWTIssuer, err = h.resultJWT(app, repl, cfg.Logger); err != nil {
		return err
	}
	for name, rc := range h.Requestors {
		if name == "" {
			return errors.New("irma_requestor_api: a requestor needs a name")
		}
		r, err := rc.requestor(repl)
		if err != nil {
			return fmt.Errorf("irma_requestor_api: requestor %q: %w", name, err)
		}
		cfg.Requestors[name] = r
	}
	if h.Unauthenticated != nil {
		if app.Production && len(h.Unauthenticated.Issue) > 0 {
			// As irma server refuses to start: anyone who reaches the API
			// could issue credentials under the gateway's keys.
			return errors.New("irma_requestor_api: allow_unauthenticated with issue permissions in production mode: authenticate the requestors that issue")
		}
		cfg.Requestors[""] = requestor.Requestor{AuthMethod: requestor.AuthNone, Permissions: h.Unauthenticated.permissions()}
	}
	if err := app.requestorRevocation(&cfg, h.Requestors, h.Unauthenticated); err != nil {
		return err
	}
	cfg.Replays = jwtReplays{appServer{app}}
	cfg.MaxTimeout = time.Duration(app.MaxSessionLifetime)
	cfg.Admit = func(w http.ResponseWriter, r *http.Request, requestor string) bool {
		// Anyone may ask for an unauthenticated session: it counts against
		// the session limits, as a login does. A requestor's are its own.
		return requestor != "" || admitSession(w, r, app.limiter, cfg.Logger)
	}
	cfg.Observe = func(requestor, outcome string, action irma.Action) {
		countRequestorCall(requestor, outcome)
		auditEntry{decision: decisionRequestor, outcome: outcome, requestor: requestor, session: action}.log(app.audit)
		if outcome == "started" {
			countSessionStarted(action, "irma_requestor_api")
		}
	}
	cfg.StatusEvents = func(w http.ResponseWriter, r *http.Request, token irma.RequestorToken, status irma.ServerStatus) {
		if rs := app.srv.Load(); rs != nil {
			rs.streamRequestorStatus(w, r, token, status)
			return
		}
		sessionpage.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "unavailable"})
	}
	key := chainKey(cfg)
	if h.handler, err = requestor.New(requestorSessions{appServer{app}, key}, cfg); err != nil {
		return fmt.Errorf("irma_requestor_api: %w", err)
	}
	h.releaseChains = registerChains(key, h.handler)
	return nil
}

func (rc RequestorConfig) requestor(repl *caddy.Replacer) (requestor.Requestor, error) {
	key := repl.ReplaceAll(rc.Key, "")
	if rc.KeyFile != "" {
		if key != "" {
			return requestor.Requestor{}, errors.New("key and key_file given: use one")
		}
		b, err := os.ReadFile(repl.ReplaceAll(rc.KeyFile, ""))
		if err != nil {
			return requestor.Requestor{}, fmt.Errorf("key_file: %w", err)
		}
		key = string(b)
	}
	return requestor.Requestor{AuthMethod: rc.AuthMethod, Key: key,
		Permissions: rc.permissions()}, nil
}

func (rc RequestorConfig) permissions() requestor.Permissions {
	return requestor.Permissions{Disclose: rc.Disclose, Sign: rc.Sign, Issue: rc.Issue, Revoke: rc.Revoke, Hosts: rc.Hosts}
}

// jwtReplays keeps the requestor JWTs used in the store of marks: in the
// Redis of the sessions when they are there, so that a JWT starts one
// session on all the instances that share it.
type jwtReplays struct{ backend backend }

// First implements requestor.Replays.
func (r jwtReplays) First(ctx context.Context, key string, expires time.Time) (bool, error) {
	store, err := r.backend.marks()
	if err != nil {
		return false, err
	}
	ttl := time.Until(expires)
	if ttl <= 0 {
		return false, nil // too old to be used at all
	}
	sum := sha256.Sum256([]byte(key))
	return store.Add(ctx, "requestor-jwt:"+hex.EncodeToString(sum[:]), nil, ttl)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *RequestorAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if err := h.app.waitStarted(r.Context()); err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	h.handler.ServeHTTP(w, r)
	return nil
}

// parseRequestorAPI sets up irma_requestor_api from Caddyfile tokens.
// Syntax:
//
//	irma_requestor_api [<matcher>] {
//		requestor <name> {
//			auth     token|hmac|publickey <key>
//			key_file <file>
//			disclose <pattern> ...
//			sign     <pattern> ...
//			issue    <pattern> ...
//			revoke   <credential type pattern> ...
//			host     <host pattern> ...
//		}
//		allow_unauthenticated [{
//			disclose <pattern> ...
//			sign     <pattern> ...
//			issue    <pattern> ...
//			host     <host pattern> ...
//		}]
//		jwt_key_file    <RSA PEM file>   # deprecated: the irma option's jwt_privkey_file
//		jwt_issuer      <iss>            # deprecated: the irma option's jwt_issuer
//		max_request_age <duration>
//	}
func parseRequestorAPI(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	a := new(RequestorAPI)
	if err := a.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return a, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *RequestorAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("irma_requestor_api: unexpected argument %q", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if name != "requestor" && seen[name] {
			return d.Errf("irma_requestor_api: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "requestor":
			var rname string
			if err = oneArg(d, &rname); err != nil {
				return err
			}
			if _, dup := h.Requestors[rname]; dup {
				return d.Errf("irma_requestor_api: requestor %q given twice", rname)
			}
			var rc RequestorConfig
			if err = rc.unmarshal(d, true); err != nil {
				return err
			}
			if h.Requestors == nil {
				h.Requestors = map[string]RequestorConfig{}
			}
			h.Requestors[rname] = rc
		case "allow_unauthenticated":
			h.AllowUnauthenticated = true
			if d.NextArg() {
				return d.Errf("irma_requestor_api: allow_unauthenticated takes a block, not %q", d.Val())
			}
			rc := new(RequestorConfig)
			if err = rc.unmarshal(d, false); err != nil {
				return err
			}
			h.Unauthenticated = rc
		case "jwt_key_file":
			err = oneArg(d, &h.JWTKeyFile)
		case "jwt_issuer":
			err = oneArg(d, &h.JWTIssuer)
		case "max_request_age":
			var v string
			if err = oneArg(d, &v); err == nil {
				err = durationArg(d, name, v, &h.MaxRequestAge)
			}
		default:
			return d.Errf("irma_requestor_api: unknown setting %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (rc *RequestorConfig) unmarshal(d *caddyfile.Dispenser, auth bool) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch name := d.Val(); name {
		case "auth":
			if !auth {
				return d.Err("irma_requestor_api: unauthenticated requests have no auth")
			}
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("irma_requestor_api: auth takes a method (token, hmac, publickey) and a key")
			}
			rc.AuthMethod = args[0]
			if len(args) == 2 {
				rc.Key = args[1]
			}
		case "key_file":
			if err := oneArg(d, &rc.KeyFile); err != nil {
				return err
			}
		case "disclose":
			rc.Disclose = append(rc.Disclose, d.RemainingArgs()...)
		case "sign":
			rc.Sign = append(rc.Sign, d.RemainingArgs()...)
		case "issue":
			rc.Issue = append(rc.Issue, d.RemainingArgs()...)
		case "revoke":
			rc.Revoke = append(rc.Revoke, d.RemainingArgs()...)
		case "host":
			rc.Hosts = append(rc.Hosts, d.RemainingArgs()...)
		default:
			return d.Errf("irma_requestor_api: unknown requestor setting %q", name)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*RequestorAPI)(nil)
	_ caddy.CleanerUpper          = (*RequestorAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*RequestorAPI)(nil)
	_ caddyfile.Unmarshaler       = (*RequestorAPI)(nil)
)
