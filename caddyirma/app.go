// Package caddyirma is the Caddy face of caddy-irma: the irma app, which runs
// an embedded IRMA server (irmago's irmaserver), and the HTTP handlers that
// expose it on a site.
package caddyirma

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
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

	// SchemesPath is the directory of IRMA schemes (one folder per scheme,
	// such as pbdf or the local demo scheme) that the server trusts.
	// Required: the server never downloads schemes on its own at start.
	SchemesPath string `json:"schemes_path,omitempty"`

	// IssuerPrivateKeysPath is the directory of Idemix issuer private keys,
	// files named <scheme>.<issuer>.<counter>.xml. Optional; without it the
	// server can disclose and sign, but not issue. Keep it outside the schemes
	// directory: a schemes directory is what wallets copy.
	IssuerPrivateKeysPath string `json:"issuer_private_keys_path,omitempty"`

	// DisableSchemesUpdate turns off the periodic download of updates of the
	// schemes from their URLs. Updates are on by default, as in irma server;
	// turn them off for local schemes and offline sites.
	DisableSchemesUpdate bool `json:"disable_schemes_update,omitempty"`

	// SchemesUpdateInterval is how often the schemes are updated. Whole
	// minutes, at least one. Default: 1h.
	SchemesUpdateInterval caddy.Duration `json:"schemes_update_interval,omitempty"`

	// MaxSessionLifetime is how long an IRMA session may take from its start
	// until the app has answered. Whole minutes, at least one. Default: 15m.
	MaxSessionLifetime caddy.Duration `json:"max_session_lifetime,omitempty"`

	// SessionResultLifetime is how long the result of a finished session is
	// kept for the requestor to fetch. Whole minutes, at least one.
	// Default: 5m.
	SessionResultLifetime caddy.Duration `json:"session_result_lifetime,omitempty"`

	// Production turns on irmago's production mode: sessions are not marked
	// as development sessions (the Yivi app refuses development sessions
	// unless it is in developer mode), and the URL must be https. Default:
	// off.
	Production bool `json:"production,omitempty"`

	// Redis keeps IRMA sessions in Redis instead of in memory, so that
	// several Caddy instances can serve the same sessions. Default: in memory.
	Redis *RedisConfig `json:"redis,omitempty"`

	// TimestampKeyFile is a PEM file with the Ed25519 key of a timestamp
	// (atum) service that the gateway hosts at the "timestamp" path under the
	// URL. Attribute-based signature sessions need the timestamp server that
	// the scheme names; set this for a local scheme whose timestamp server is
	// this gateway. Default: no timestamp service.
	TimestampKeyFile string `json:"timestamp_key_file,omitempty"`

	// Policies are named disclosure policies that irma_auth routes and the
	// forward-auth endpoint refer to. Each is checked against the schemes
	// when the config loads. Default: none.
	Policies map[string]policy.Policy `json:"policies,omitempty"`

	// Login configures the session cookie and the identity JWT of
	// irma_auth. Default: all defaults (see LoginConfig).
	Login *LoginConfig `json:"login,omitempty"`

	// identityHeaders holds the normalized names of every header that the
	// gateway sets for upstreams: removed from every request first.
	identityHeaders sync.Map
	storage         certmagic.Storage
	namedAuth       map[string]*Auth // the login flow of each named policy
	started         chan struct{}    // closed when Start has succeeded

	prefix          string
	serverURL       string
	irmaConf        *irma.Configuration
	serverConf      *server.Configuration
	poolKey         string
	timestamps      http.Handler
	timestampKey    ed25519.PrivateKey
	ownTimestampKey *timestamp.OwnKey
	irmagoLogger    *zap.Logger
	ownsConf        bool // irmaConf is this app's to close, not a running server's
	srv             atomic.Pointer[runningServer]
	logger          *zap.Logger
}

// RedisConfig says how to reach Redis. Sessions are polled, never pushed,
// so nothing in caddy-irma depends on what irmago cannot do with Redis
// (session handlers, status channels and server-sent events).
type RedisConfig struct {
	// Address is host:port of the Redis server. Required.
	Address string `json:"address,omitempty"`
	// Username for Redis ACL authentication. Default: none.
	Username string `json:"username,omitempty"`
	// Password for Redis authentication; placeholders such as
	// {env.REDIS_PASSWORD} are replaced when the config loads. Default: none.
	Password string `json:"password,omitempty"`
	// DB is the Redis database number. Default: 0.
	DB int `json:"db,omitempty"`
	// DisableTLS makes plain connections. Default: TLS.
	DisableTLS bool `json:"disable_tls,omitempty"`
	// TLSCACertFile is a PEM file with the CA certificate that the Redis
	// server's certificate must chain to. Default: the system roots.
	TLSCACertFile string `json:"tls_ca_cert_file,omitempty"`
	// TLSClientCertFile is a PEM client certificate for mutual TLS, with
	// TLSClientKeyFile; needs TLSCACertFile. Default: none.
	TLSClientCertFile string `json:"tls_client_cert_file,omitempty"`
	// TLSClientKeyFile is the PEM private key of TLSClientCertFile.
	// Default: none.
	TLSClientKeyFile string `json:"tls_client_key_file,omitempty"`
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
	a.started = make(chan struct{})
	repl := caddy.NewReplacer()

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

	if a.SchemesPath == "" {
		return errors.New("irma: schemes_path is required: the directory of IRMA schemes to trust")
	}
	a.SchemesPath = repl.ReplaceAll(a.SchemesPath, "")
	a.IssuerPrivateKeysPath = repl.ReplaceAll(a.IssuerPrivateKeysPath, "")
	if a.irmaConf, err = loadSchemes(a.SchemesPath, a.IssuerPrivateKeysPath); err != nil {
		return err
	}
	a.ownsConf = true

	if a.TimestampKeyFile != "" {
		a.TimestampKeyFile = repl.ReplaceAll(a.TimestampKeyFile, "")
		key, err := timestamp.LoadKey(a.TimestampKeyFile)
		if err != nil {
			return fmt.Errorf("irma: timestamp_key_file %q: %w", a.TimestampKeyFile, err)
		}
		a.timestampKey = key
		a.timestamps = timestamp.NewHandler(key, timestamp.WithURL(a.serverURL+"timestamp"))
	}

	a.serverConf = &server.Configuration{
		IrmaConfiguration:     a.irmaConf,
		SchemesPath:           a.SchemesPath,
		IssuerPrivateKeysPath: a.IssuerPrivateKeysPath,
		DisableSchemesUpdate:  a.DisableSchemesUpdate,
		SchemesUpdateInterval: int(time.Duration(a.SchemesUpdateInterval) / time.Minute),
		URL:                   a.serverURL,
		MaxSessionLifetime:    int(time.Duration(a.MaxSessionLifetime) / time.Minute),
		SessionResultLifetime: int(time.Duration(a.SessionResultLifetime) / time.Minute),
		Production:            a.Production,
		Logger:                irmaLogs.Logger(),
		StoreType:             "memory",
	}
	if r := a.Redis; r != nil {
		if r.Address == "" {
			return errors.New("irma: redis: address is required")
		}
		if !r.DisableTLS && r.TLSCACertFile == "" && (r.TLSClientCertFile != "" || r.TLSClientKeyFile != "") {
			// irmago reads client certificates only together with a CA file.
			return errors.New("irma: redis: tls_client_cert_file and tls_client_key_file need tls_ca_cert_file")
		}
		if (r.TLSClientCertFile == "") != (r.TLSClientKeyFile == "") {
			return errors.New("irma: redis: tls_client_cert_file and tls_client_key_file go together")
		}
		if r.DisableTLS && (r.TLSCACertFile != "" || r.TLSClientCertFile != "") {
			return errors.New("irma: redis: disable_tls cannot be combined with TLS certificate files")
		}
		if r.DB < 0 {
			return fmt.Errorf("irma: redis: db %d: want a database number, 0 or more", r.DB)
		}
		if err := checkRedisTLSFiles(repl, r); err != nil {
			return err
		}
		a.serverConf.StoreType = "redis"
		a.serverConf.RedisSettings = &server.RedisSettings{
			Addr:                     repl.ReplaceAll(r.Address, ""),
			Username:                 repl.ReplaceAll(r.Username, ""),
			Password:                 repl.ReplaceAll(r.Password, ""),
			DB:                       r.DB,
			DisableTLS:               r.DisableTLS,
			TLSCertificateFile:       repl.ReplaceAll(r.TLSCACertFile, ""),
			TLSClientCertificateFile: repl.ReplaceAll(r.TLSClientCertFile, ""),
			TLSClientKeyFile:         repl.ReplaceAll(r.TLSClientKeyFile, ""),
		}
	}

	for name, p := range a.Policies {
		if name == "" || strings.ContainsAny(name, " \t{}") {
			return fmt.Errorf("irma: policy %q: not a valid name", name)
		}
		if err := p.Validate(a.irmaConf); err != nil {
			return fmt.Errorf("irma: policy %q: %w", name, err)
		}
	}
	if a.Login == nil {
		a.Login = new(LoginConfig)
	}
	if err := a.Login.provision(a.serverURL); err != nil {
		return fmt.Errorf("irma: %w", err)
	}
	a.identityHeaders.Store(normalizeHeader(a.Login.IdentityHeader), true)
	a.namedAuth = map[string]*Auth{}
	for name, p := range a.Policies {
		a.namedAuth[name] = &Auth{app: a, policy: p, name: name, route: "policy:" + name, logger: a.logger.Named("login")}
	}
	a.storage = ctx.Storage()

	a.poolKey, err = a.serverKey()
	if err != nil {
		return fmt.Errorf("irma: %w", err)
	}
	return nil
}

// checkRedisTLSFiles reads the TLS files now, so that a bad one is a config
// error naming it (irmago would ignore a CA file without certificates).
func checkRedisTLSFiles(repl *caddy.Replacer, r *RedisConfig) error {
	if f := repl.ReplaceAll(r.TLSCACertFile, ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("irma: redis: tls_ca_cert_file %q: %w", f, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("irma: redis: tls_ca_cert_file %q: no PEM certificates in it", f)
		}
	}
	if cert, key := repl.ReplaceAll(r.TLSClientCertFile, ""), repl.ReplaceAll(r.TLSClientKeyFile, ""); cert != "" {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return fmt.Errorf("irma: redis: tls_client_cert_file %q and tls_client_key_file %q: %w", cert, key, err)
		}
	}
	return nil
}

// loadSchemes parses the schemes, and the issuer private keys if a path is
// given, checking every signature, offline.
func loadSchemes(schemesPath, keysPath string) (*irma.Configuration, error) {
	fi, err := os.Stat(schemesPath)
	if err != nil {
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("irma: schemes_path %q: not a directory", schemesPath)
	}
	// irmago logs what it skips to its package-wide logger: ours.
	irma.SetLogger(irmaLogs.Logger())
	// Not read-only: irmaserver refuses to start sessions on a read-only
	// configuration, even when it has everything the session needs.
	// Issuer private keys come from issuer_private_keys_path only, never from
	// the scheme folders, which wallets copy.
	conf, err := irma.NewConfiguration(schemesPath, irma.ConfigurationOptions{IgnorePrivateKeys: true})
	if err != nil {
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	if err := conf.ParseFolder(); err != nil {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: %w", schemesPath, err)
	}
	// irmago skips a scheme that fails to parse or whose signature does not
	// verify, with only a log line; a gateway must not run without it.
	for id, serr := range conf.DisabledSchemeManagers {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: scheme %s is invalid: %w", schemesPath, id, serr)
	}
	// A scheme whose signature does not verify is skipped without a word.
	dirs, _ := os.ReadDir(schemesPath)
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(schemesPath, d.Name(), "description.xml")); err != nil {
			continue
		}
		if _, ok := conf.SchemeManagers[irma.NewSchemeManagerIdentifier(d.Name())]; !ok {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: schemes_path %q: scheme %s did not load: its signature (index.sig, pk.pem) or its files are invalid", schemesPath, d.Name())
		}
	}
	if len(conf.SchemeManagers) == 0 {
		closeSchemes(conf)
		return nil, fmt.Errorf("irma: schemes_path %q: no schemes found (create the demo scheme with 'caddy irma demo-scheme')", schemesPath)
	}
	if keysPath != "" {
		if rel, err := filepath.Rel(schemesPath, keysPath); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: issuer_private_keys_path %q: inside schemes_path %q, which wallets copy: keep private keys outside it", keysPath, schemesPath)
		}
		ring, err := irma.NewPrivateKeyRingFolder(keysPath, conf)
		if err == nil {
			err = conf.AddPrivateKeyRing(ring)
		}
		if err != nil {
			closeSchemes(conf)
			return nil, fmt.Errorf("irma: issuer_private_keys_path %q: %w", keysPath, err)
		}
	}
	return conf, nil
}

// closeSchemes stops what irma.Configuration.ParseFolder started.
func closeSchemes(conf *irma.Configuration) {
	if conf.Scheduler != nil {
		conf.Scheduler.Stop()
	}
	if conf.Revocation != nil {
		_ = conf.Revocation.Close()
	}
}

// serverKey identifies a server by everything that would make a new one
// differ from a running one: the settings and the schemes and keys on disk.
func (a *App) serverKey() (string, error) {
	h := sha256.New()
	settings, err := json.Marshal(a.serverConf)
	if err != nil {
		return "", err
	}
	h.Write(settings)
	ids := make([]string, 0, len(a.irmaConf.SchemeManagers))
	for id := range a.irmaConf.SchemeManagers {
		ids = append(ids, id.String())
	}
	sort.Strings(ids)
	for _, id := range ids {
		// The signed index holds the hash of every file of the scheme.
		index, err := os.ReadFile(filepath.Join(a.SchemesPath, id, "index"))
		if err != nil {
			return "", fmt.Errorf("schemes_path %q: scheme %s: %w", a.SchemesPath, id, err)
		}
		fmt.Fprintf(h, "\x00scheme %s %x\n", id, sha256.Sum256(index))
	}
	if a.IssuerPrivateKeysPath != "" {
		entries, err := os.ReadDir(a.IssuerPrivateKeysPath)
		if err != nil {
			return "", fmt.Errorf("issuer_private_keys_path %q: %w", a.IssuerPrivateKeysPath, err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(a.IssuerPrivateKeysPath, e.Name()))
			if err != nil {
				continue // not a key file irmago reads either
			}
			fmt.Fprintf(h, "\x00key %s %x\n", e.Name(), sha256.Sum256(b))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// irmaLogs is where irmago's log output goes: to the logger of the irma app
// that started last.
var irmaLogs = logbridge.New(false)

// servers holds the running IRMA servers of this process, shared across
// config reloads by key.
var servers = caddy.NewUsagePool()

// runningServer is an irmaserver with what it was built from; it is
// destructed when the last app using it is cleaned up.
type runningServer struct {
	*irmaserver.Server
	conf     *irma.Configuration
	handler  http.Handler
	expiries expiryStore
}

// Destruct implements caddy.Destructor.
func (s *runningServer) Destruct() error {
	s.Stop()
	closeSchemes(s.conf)
	return nil
}

// Start starts the IRMA server, or takes over the one that an earlier config
// with the same settings started.
func (a *App) Start() error {
	// Keys live in Caddy's storage: loaded (or made, once) here, not in
	// Provision, which `caddy validate` runs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Login.start(ctx, a.storage); err != nil {
		return fmt.Errorf("irma: %w", err)
	}

	// irmago logs while it starts to the new config's logger; if the start
	// fails, the server that keeps running logs where it did before.
	a.irmagoLogger = a.logger.Named("irmago")
	prevLogger := irmaLogs.Swap(a.irmagoLogger)
	v, loaded, err := servers.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		if a.Redis != nil {
			// go-redis retries a silent address for many seconds; say at
			// once that it is unreachable.
			c, err := net.DialTimeout("tcp", a.serverConf.RedisSettings.Addr, 5*time.Second)
			if err != nil {
				return nil, fmt.Errorf("failed to connect to Redis: %w", err)
			}
			c.Close()
		}
		conf := *a.serverConf
		srv, err := irmaserver.New(&conf)
		if err != nil {
			return nil, err
		}
		rs := &runningServer{Server: srv, conf: a.irmaConf, handler: srv.HandlerFunc()}
		// Expiries live as long as the sessions whose logins need them.
		ttl := time.Duration(a.MaxSessionLifetime) + time.Duration(a.SessionResultLifetime)
		if conf.StoreType == "redis" {
			client, err := conf.RedisClient() // the client irmaserver made, cached
			if err != nil {
				srv.Stop()
				return nil, err
			}
			rs.expiries = &redisExpiries{client: client, ttl: ttl}
		} else {
			rs.expiries = newMemoryExpiries(ttl)
		}
		return rs, nil
	})
	if err != nil {
		irmaLogs.SetTarget(prevLogger)
		if a.Redis != nil {
			return fmt.Errorf("irma: starting the IRMA server with redis at %q: %w", a.Redis.Address, err)
		}
		return fmt.Errorf("irma: starting the IRMA server: %w", err)
	}
	if a.timestampKey != nil {
		// Verifying a signature asks the timestamp server whether it trusts
		// the key in the timestamp; the server is this gateway, whose public
		// URL need not route back to itself, so it knows the answer already.
		a.ownTimestampKey = timestamp.TrustOwnKey(a.serverURL+"timestamp", a.timestampKey.Public().(ed25519.PublicKey))
	}
	rs := v.(*runningServer)
	if loaded {
		// The running server keeps its own parse of the same schemes.
		closeSchemes(a.irmaConf)
		a.irmaConf = rs.conf
	}
	a.ownsConf = false
	a.srv.Store(rs)
	close(a.started)
	a.logger.Info("irma server ready",
		zap.String("url", a.serverURL),
		zap.Bool("reused", loaded),
		zap.String("store", a.serverConf.StoreType))
	return nil
}

// Stop releases this app's use of the IRMA server.
func (a *App) Stop() error {
	if a.srv.Swap(nil) == nil {
		return nil
	}
	irmaLogs.Release(a.irmagoLogger)
	if a.ownTimestampKey != nil {
		a.ownTimestampKey.Release()
	}
	_, err := servers.Delete(a.poolKey)
	return err
}

// Cleanup frees what Provision loaded if the app never started.
func (a *App) Cleanup() error {
	if a.ownsConf {
		closeSchemes(a.irmaConf)
		a.ownsConf = false
	}
	return nil
}

// Server returns the running IRMA server, or an error if the app has not
// started or has stopped.
func (a *App) Server() (*irmaserver.Server, error) {
	if err := a.waitStarted(context.Background()); err != nil {
		return nil, err
	}
	rs := a.srv.Load()
	if rs == nil {
		return nil, errors.New("irma: the IRMA server is not running")
	}
	return rs.Server, nil
}

// startWait bounds how long a request waits for the app to start: Caddy
// starts its apps in no particular order, so the first requests may arrive
// while the IRMA server is still starting.
const startWait = 15 * time.Second

// waitStarted returns once the app has started, or an error if it does not
// start in time.
func (a *App) waitStarted(ctx context.Context) error {
	select {
	case <-a.started:
		return nil
	default:
	}
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-a.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("irma: the IRMA server has not started")
	}
}

// Configuration returns the parsed schemes the server trusts. Valid from
// Provision on.
func (a *App) Configuration() *irma.Configuration { return a.irmaConf }

// PathPrefix returns the path under which the IRMA endpoints live, with a
// trailing slash, such as "/irma/".
func (a *App) PathPrefix() string { return a.prefix }

// irmaApp returns the irma app of ctx, for the handler called who.
func irmaApp(ctx caddy.Context, who string) (*App, error) {
	app, err := ctx.App("irma")
	if err != nil {
		return nil, fmt.Errorf("%s: loading the irma app: %w", who, err)
	}
	return app.(*App), nil
}

// shield makes r safe to pass on: without identity headers that a client
// sent, and without the gateway's cookies (kept in r's context for the
// gateway's own handlers).
//
// It works once per request: the identity headers that irma_auth sets on
// the way in must survive an irma_endpoints route after it.
func (a *App) shield(r *http.Request) *http.Request {
	if r.Context().Value(shieldedKey{}) != nil {
		return r
	}
	a.stripIdentityHeaders(r)
	r = a.Login.hideCookies(r)
	return r.WithContext(context.WithValue(r.Context(), shieldedKey{}, true))
}

// shieldedKey marks, in a request's context, that shield has done its work.
type shieldedKey struct{}

// stripIdentityHeaders removes from r every header the gateway sets for
// upstreams, in any spelling, so that no client can forge one.
func (a *App) stripIdentityHeaders(r *http.Request) {
	for name := range r.Header {
		if _, ours := a.identityHeaders.Load(normalizeHeader(name)); ours {
			delete(r.Header, name)
		}
	}
}

// takeOnce returns, and forgets, what the one-use store holds under key:
// by a client token, when the first credential disclosed in that session
// expires; by signatureKey, the mark of a signature not yet fetched. The
// store is Redis when the sessions are, so every instance sees one use.
func (a *App) takeOnce(ctx context.Context, key string) (time.Time, bool, error) {
	rs := a.srv.Load()
	if rs == nil {
		return time.Time{}, false, errors.New("the IRMA server is not running")
	}
	return rs.expiries.take(ctx, key)
}

// signatureKey is where the store that holds credential expiries keeps the
// mark of a signature session whose result has not been fetched yet.
func signatureKey(clientToken string) string { return "signature-" + clientToken }

// markSignature records that the signature session with the client token
// has a result to fetch, once.
func (a *App) markSignature(ctx context.Context, clientToken string) error {
	rs := a.srv.Load()
	if rs == nil {
		return errors.New("the IRMA server is not running")
	}
	return rs.expiries.put(ctx, signatureKey(clientToken), time.Now())
}

// ServerURL returns the public URL of the IRMA endpoints, with a trailing
// slash.
func (a *App) ServerURL() string { return a.serverURL }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*runningServer)(nil)
)
