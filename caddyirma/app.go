package caddyirma

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
	"github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
)

func init() {
	caddy.RegisterModule(new(App))
}

// Defaults of the irma app.
const (
	DefaultPathPrefix            = "/irma/"
	DefaultMaxSessionLifetime    = 15 * time.Minute
	DefaultSessionResultLifetime = 5 * time.Minute
	DefaultScanTimeout           = 2 * time.Minute
	DefaultSchemesUpdateInterval = time.Hour
)

// App is the irma app: one embedded IRMA server per Caddy process, the server
// that the Yivi app on a visitor's phone talks to. The handlers
// (irma_endpoints, irma_auth, irma_issue, irma_sign, irma_requestor_api) use
// it by name.
//
// The server survives config reloads that do not change its settings (or the
// schemes and keys it loaded), so sessions under way are not lost; otherwise
// the new server starts and the old one is stopped.
type App struct {
	// URL is the public URL of the IRMA endpoints: what the Yivi app on a
	// phone connects to, and what session QR codes point at. Its path is the
	// prefix under which the irma_endpoints handler serves them; a URL without
	// a path gets "/irma/". Required. It must be http or https; production
	// mode requires https.
	URL string `json:"url,omitempty"`

	// SchemesPath is a directory of local IRMA schemes that the server
	// trusts, one folder per scheme named by its identifier (such as the
	// demo scheme of 'caddy irma demo-scheme'), each checked against its own
	// pk.pem. Default: none, and then the default schemes.
	SchemesPath string `json:"schemes_path,omitempty"`

	// DefaultSchemes turns on or off irmago's default schemes: pbdf (the
	// credentials of the Yivi app, such as pbdf.sidn-pbdf.email.email) and
	// irma-demo. They are fetched from https://schemes.yivi.app into
	// DefaultSchemesPath when there is no copy there yet (a start with a copy
	// never waits for the network), verified against the public keys that
	// irmago pins for them, and updated like the other schemes. With
	// schemes_path as well, the server trusts both. Default: on without
	// schemes_path, off with it.
	DefaultSchemes *bool `json:"default_schemes,omitempty"`

	// DefaultSchemesPath is the directory that holds the copy of the default
	// schemes, a folder per scheme. The server writes there: it must be
	// writable, or filled beforehand by 'caddy irma schemes --dir <dir>'
	// (with schemes_update off the server then never fetches schemes).
	// Default: irma/schemes in Caddy's data directory, such as
	// $XDG_DATA_HOME/caddy/irma/schemes or ~/.local/share/caddy/irma/schemes.
	DefaultSchemesPath string `json:"default_schemes_path,omitempty"`

	// IssuerPrivateKeysPath is the directory of Idemix issuer private keys,
	// files named <scheme>.<issuer>.<counter>.xml. Optional; without it the
	// server can disclose and sign, but issue only the credentials of demo
	// schemes, whose private keys those schemes publish (irma-demo; in
	// development only, never in production). Keep it outside the schemes
	// directory: a schemes directory is what wallets copy.
	IssuerPrivateKeysPath string `json:"issuer_private_keys_path,omitempty"`

	// DisableSchemesUpdate turns off the periodic download of updates of the
	// schemes: of the default schemes, and of local schemes whose <Url> is
	// https. A scheme update takes effect without a restart; one that does
	// not verify is refused, and the scheme stays as it was. Updates are on
	// by default, as in irma server; turn them off for local schemes and
	// offline sites. Off, the default schemes are still fetched once if
	// there is no copy of them.
	DisableSchemesUpdate bool `json:"disable_schemes_update,omitempty"`

	// SchemesUpdateInterval is how often the schemes are updated, the first
	// time at start (without waiting for it). Whole minutes, at least one.
	// Default: 1h.
	SchemesUpdateInterval caddy.Duration `json:"schemes_update_interval,omitempty"`

	// MaxSessionLifetime is how long an IRMA session may take from its start
	// until the app has answered. Whole minutes, at least one. Default: 15m.
	MaxSessionLifetime caddy.Duration `json:"max_session_lifetime,omitempty"`

	// ScanTimeout is how long a session that a handler starts for a
	// visitor (a login, a signature, an issuance) waits for the Yivi app to
	// scan its QR code or open its link; a session never scanned then ends
	// (its page says so, and offers to try again), so that what an
	// anonymous client starts does not live for max_session_lifetime.
	// Sessions of the requestor API keep their own timeout. Whole seconds,
	// at least 10s and at most max_session_lifetime. Default: 2m.
	ScanTimeout caddy.Duration `json:"scan_timeout,omitempty"`

	// SessionResultLifetime is how long the result of a finished session is
	// kept for the requestor to fetch. Whole minutes, at least one.
	// Default: 5m.
	SessionResultLifetime caddy.Duration `json:"session_result_lifetime,omitempty"`

	// Production turns on irmago's production mode: sessions are not marked
	// as development sessions (the Yivi app refuses development sessions
	// unless it is in developer mode), and the URL must be https. The
	// gateway is strict with it too: Redis must use TLS and an irma_sign
	// upstream https (both unless on loopback), and irma_requestor_api
	// allows no unauthenticated issuance. Default: off.
	Production bool `json:"production,omitempty"`

	// Redis keeps IRMA sessions in Redis instead of in memory, so that
	// several Caddy instances can serve the same sessions; the gateway's
	// own marks (credential expiries, logouts, used requestor JWTs and
	// signature results) and session counts go there too, so that they
	// hold on all. One Redis server, or the master of Redis Sentinel.
	// Default: in memory.
	Redis *RedisConfig `json:"redis,omitempty"`

	// TimestampKeyFile is a PEM file with the Ed25519 key of a timestamp
	// (atum) service that the gateway hosts at the "timestamp" path under the
	// URL. Attribute-based signature sessions need the timestamp server that
	// the scheme names; set this for a local scheme whose timestamp server is
	// this gateway. Default: no timestamp service.
	TimestampKeyFile string `json:"timestamp_key_file,omitempty"`

	// JWTPrivateKeyFile is a PEM RSA private key (PKCS #1 or PKCS #8) that
	// signs session results as JWTs (RS256), as irma server's
	// jwt_privkey_file: the results posted to a callbackUrl or a
	// nextSession URL, and those of irma_requestor_api's /result-jwt and
	// /getproof, whose /publickey serves its public key. Default: none;
	// then such posts are refused unless AllowUnsignedCallbacks, and those
	// routes answer as irma server without a key.
	JWTPrivateKeyFile string `json:"jwt_privkey_file,omitempty"`

	// JWTIssuer is the iss of the session result JWTs. Default:
	// "irmaserver", as irma server's jwt_issuer.
	JWTIssuer string `json:"jwt_issuer,omitempty"`

	// AllowUnsignedCallbacks allows a callbackUrl or nextSession without
	// JWTPrivateKeyFile: the result is then posted as plain JSON,
	// which the receiver cannot tell from a forgery. As irma server's
	// allow_unsigned_callbacks. Default: off.
	AllowUnsignedCallbacks bool `json:"allow_unsigned_callbacks,omitempty"`

	// Policies are named disclosure policies that irma_auth routes and the
	// forward-auth endpoint refer to. Each is checked against the schemes
	// when the config loads. Default: none.
	Policies map[string]policy.Policy `json:"policies,omitempty"`

	// StaticSessions are session requests by name, as irma server's
	// static_sessions: a disclosure or signature request with a callbackUrl
	// (posted by the gateway, once) or a nextSession (which chains
	// disclosures and signatures only), either of which needs
	// jwt_privkey_file or allow_unsigned_callbacks. The pointer
	// {"irmaqr":"redirect","u":"<url>session/<name>"} starts a fresh session
	// of it whenever the Yivi app scans it, within session_limits; one
	// without a timeout waits scan_timeout for the app. Names: letters,
	// digits and _. Default: none.
	StaticSessions map[string]json.RawMessage `json:"static_sessions,omitempty"`

	// Login configures the session cookie and the identity JWT of
	// irma_auth. Default: all defaults (see LoginConfig).
	Login *LoginConfig `json:"login,omitempty"`

	// SessionLimits bounds the IRMA sessions that clients can make the
	// gateway start, per client and in total. Default: see SessionLimits.
	SessionLimits *SessionLimits `json:"session_limits,omitempty"`

	// Revocation makes the gateway the revocation authority of credential
	// types, with a SQL database (see RevocationConfig). Default: none; a
	// revocable credential type can then be neither issued nor revoked.
	Revocation *RevocationConfig `json:"revocation,omitempty"`

	// identityHeaders holds the normalized names of the identity header and
	// of the plain attribute headers: with the X-Irma- prefix, the gateway's
	// header namespace (shield.go), removed from every request first.
	identityHeaders headerSet
	storage         certmagic.Storage
	policyFlows     map[string]*loginFlow    // the login flow of each named policy
	staticSessions  map[string]staticSession // checked StaticSessions
	started         chan struct{}            // closed when Start has succeeded

	prefix          string
	serverURL       string
	sources         schemeSources
	schemes         *loadedSchemes
	irmaConf        *irma.Configuration
	serverConf      *server.Configuration
	poolKey         string
	timestamps      http.Handler
	timestampKey    ed25519.PrivateKey
	ownTimestampKey *timestamp.OwnKey
	irmagoLogger    *zap.Logger
	resultKey       *rsa.PrivateKey // signs result JWTs and callbacks, or nil
	resultIssuerSet bool            // JWTIssuer was configured, not defaulted
	ownsConf        bool            // irmaConf is this app's to close, not a running server's
	// schemeChecks: what a scheme update must have (requireSchemes).
	schemeChecksMu sync.Mutex
	schemeChecks   []func(*irma.Configuration) error
	srv            atomic.Pointer[runningServer]
	limiter        sessionlimit.Limiter
	clock          atomic.Pointer[func() time.Time] // SetClock's, or none: time.Now
	logger         *zap.Logger
	audit          *zap.Logger // irma.audit: the decisions (audit.go)
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "irma",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the settings and parses the schemes and keys. It works
// offline and starts nothing that outlives Cleanup.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.audit = a.logger.Named("audit")
	a.started = make(chan struct{})
	a.storage = ctx.Storage()
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("irma: metrics: %w", err)
	}
	repl := caddy.NewReplacer()
	for _, step := range []func(*caddy.Replacer) error{
		a.provisionURL,            // the public URL, and the prefix of the endpoints
		a.provisionDurations,      // session lifetimes, scheme updates
		a.provisionSchemes,        // the schemes (fetched the first time) and keys, parsed and checked
		a.provisionTimestamps,     // the timestamp service, with a key
		a.provisionServer,         // irmaserver's configuration, with Redis
		a.provisionRevocation,     // the revocation database and authorities
		a.provisionResultJWT,      // the key and issuer of result JWTs and callbacks
		a.provisionPolicies,       // named policies, checked against the schemes
		a.provisionStaticSessions, // static sessions, with their callbacks
		a.provisionLimits,         // how many sessions clients may start
		a.provisionLogin,          // cookies, identity JWT, a login flow per policy
	} {
		if err := step(repl); err != nil {
			return err
		}
	}
	var err error
	if a.poolKey, err = a.serverKey(); err != nil {
		return fmt.Errorf("irma: %w", err)
	}
	return nil
}

func (a *App) provisionURL(repl *caddy.Replacer) error {
	if a.URL == "" {
		return errors.New("irma: url is required: the public URL of the IRMA endpoints, such as https://example.com/irma/")
	}
	u, err := url.Parse(repl.ReplaceAll(a.URL, ""))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("irma: url %q: want an absolute http or https URL without query, fragment or user info", a.URL)
	}
	if a.Production && u.Scheme != "https" {
		return fmt.Errorf("irma: url %q: production mode requires https", a.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultPathPrefix
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	a.prefix = u.Path
	a.serverURL = u.String()
	return nil
}

func (a *App) provisionDurations(*caddy.Replacer) error {
	for _, d := range []struct {
		name string
		val  *caddy.Duration
		def  time.Duration
	}{
		{"max_session_lifetime", &a.MaxSessionLifetime, DefaultMaxSessionLifetime},
		{"session_result_lifetime", &a.SessionResultLifetime, DefaultSessionResultLifetime},
		{"schemes_update_interval", &a.SchemesUpdateInterval, DefaultSchemesUpdateInterval},
	} {
		if *d.val == 0 {
			*d.val = caddy.Duration(d.def)
		}
		if v := time.Duration(*d.val); v < time.Minute || v%time.Minute != 0 {
			return fmt.Errorf("irma: %s %s: want whole minutes, at least 1m", d.name, v)
		}
	}
	if a.ScanTimeout == 0 {
		a.ScanTimeout = caddy.Duration(min(DefaultScanTimeout, time.Duration(a.MaxSessionLifetime)))
	}
	if v := time.Duration(a.ScanTimeout); v < 10*time.Second || v%time.Second != 0 || v > time.Duration(a.MaxSessionLifetime) {
		return fmt.Errorf("irma: scan_timeout %s: want whole seconds, at least 10s and at most max_session_lifetime (%s)", v, time.Duration(a.MaxSessionLifetime))
	}
	return nil
}

func (a *App) provisionTimestamps(repl *caddy.Replacer) error {
	if a.TimestampKeyFile == "" {
		return nil
	}
	a.TimestampKeyFile = repl.ReplaceAll(a.TimestampKeyFile, "")
	key, err := timestamp.LoadKey(a.TimestampKeyFile)
	if err != nil {
		return fmt.Errorf("irma: timestamp_key_file %q: %w", a.TimestampKeyFile, err)
	}
	a.timestampKey = key
	a.timestamps = timestamp.NewHandler(key, timestamp.WithURL(a.serverURL+"timestamp"))
	return nil
}

func (a *App) provisionServer(repl *caddy.Replacer) error {
	a.serverConf = &server.Configuration{
		IrmaConfiguration:     a.irmaConf,
		SchemesPath:           a.SchemesPath,
		IssuerPrivateKeysPath: a.IssuerPrivateKeysPath,
		// The app updates the schemes (schemeUpdater), not irmaserver.
		DisableSchemesUpdate:  true,
		URL:                   a.serverURL,
		MaxSessionLifetime:    int(time.Duration(a.MaxSessionLifetime) / time.Minute),
		SessionResultLifetime: int(time.Duration(a.SessionResultLifetime) / time.Minute),
		Production:            a.Production,
		Logger:                irmaLogs.Logger(),
		StoreType:             "memory",
	}
	if a.Redis != nil {
		settings, err := a.Redis.settings(repl)
		if err != nil {
			return err
		}
		for _, addr := range redisServers(settings) {
			if host, _, _ := net.SplitHostPort(addr); a.Production && settings.DisableTLS && !isLoopback(host) {
				// The sessions, with the attributes they disclose, would
				// cross the network in the clear.
				return fmt.Errorf("irma: redis %q: production mode requires TLS unless on loopback: drop disable_tls", addr)
			}
		}
		a.serverConf.StoreType, a.serverConf.RedisSettings = "redis", settings
	}
	return nil
}

func (a *App) provisionLogin(*caddy.Replacer) error {
	if a.Login == nil {
		a.Login = new(LoginConfig)
	}
	if err := a.Login.provision(a.serverURL); err != nil {
		return fmt.Errorf("irma: %w", err)
	}
	a.identityHeaders.add(a.Login.IdentityHeader)
	a.policyFlows = map[string]*loginFlow{}
	for name, p := range a.Policies {
		a.policyFlows[name] = a.newLoginFlow(p, "policy:"+name, name, "", "", a.logger.Named("login"))
	}
	return nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*runningServer)(nil)
)
