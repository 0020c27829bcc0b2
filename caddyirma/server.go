package caddyirma

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/go-redis/redis/v8"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
	"github.com/caddy-irma/caddy-irma/caddyirma/statusevents"
	"github.com/caddy-irma/caddy-irma/caddyirma/timestamp"
)

// irmaLogs is where irmago's log output goes: to the logger of the irma app
// that started last.
var irmaLogs = logbridge.New(false)

// servers holds the running IRMA servers of this process, shared across
// config reloads by key.
var servers = caddy.NewUsagePool()

// memoryMarks is the store of marks when the sessions are in memory: one
// per process, not per IRMA server, so that a reload that starts another
// server (changed settings) forgets no logout.
var memoryMarks = marks.New(marks.Config{})

// runningServer is an irmaserver with what it was built from, the store
// of the marks its sessions leave, and what keeps its schemes up to date;
// it is destructed when the last app using it is cleaned up.
type runningServer struct {
	*irmaserver.Server
	settings *server.Configuration // irmaserver's own, which it reads the schemes from
	conf     atomic.Pointer[irma.Configuration]
	handler  http.Handler
	marks    marks.Store
	schemes  *schemeUpdater
	// limitCounts is a client of the sessions' Redis with a connection pool
	// of its own, for the session limits, which every anonymous request
	// asks: a flood of those, or of their failures while Redis is down
	// (after which go-redis waits up to a second before it dials again),
	// then spends that pool, not the one of the sessions and marks. Nil: the
	// sessions are in memory.
	limitCounts *redis.Client
	redisPrefix string        // irmago's prefix of the keys in Redis
	stopped     chan struct{} // closed by Destruct: the session watchers stop
	// events streams the status of sessions (statusstream.go); tokens
	// maps the client tokens of the sessions started here to their
	// requestor tokens, with the sessions in memory (else nil).
	events *statusevents.Hub
	tokens *sessionTokens
	// revocation is the parse of the schemes that holds the revocation
	// storage of every configuration the server runs on (openRevocation),
	// or nil.
	revocation *irma.Configuration
}

// redisKeyPrefix goes before the keys of the gateway's own state in Redis
// (marks, session limits), after irmago's prefix.
const redisKeyPrefix = "caddy-irma:"

// Destruct implements caddy.Destructor.
func (s *runningServer) Destruct() error {
	close(s.stopped)
	s.events.Close()
	s.schemes.close()
	if s.revocation != nil {
		s.revocation.Scheduler.Stop() // no accumulator re-signed while it closes
	}
	s.Stop()
	closeSchemes(s.conf.Load())
	closeRevocation(s.revocation)
	if s.limitCounts != nil {
		_ = s.limitCounts.Close()
	}
	return nil
}

// setConf makes the server use conf from now on, and returns the one it
// used. irmaserver reads its schemes from its settings at every use, with
// nothing to hold it back while they change; the pointer is stored in one
// atomic step (with release semantics), so that a request reads either
// the old configuration or the new one, complete.
func (s *runningServer) setConf(conf *irma.Configuration) *irma.Configuration {
	attachRevocation(conf, s.revocation)
	atomic.StorePointer((*unsafe.Pointer)(unsafe.Pointer(&s.settings.IrmaConfiguration)), unsafe.Pointer(conf))
	return s.conf.Swap(conf)
}

// newServer starts the IRMA server of the app's settings, with the store
// of marks beside its sessions: in Redis when they are, else the process's.
func (a *App) newServer() (caddy.Destructor, error) {
	if a.Redis != nil {
		// go-redis retries a silent address for many seconds; say at once
		// that it is unreachable.
		if err := dialAny(redisServers(a.serverConf.RedisSettings)); err != nil {
			return nil, fmt.Errorf("failed to connect to Redis: %w", err)
		}
		if len(a.serverConf.RedisSettings.SentinelAddrs) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := askSentinels(ctx, a.serverConf.RedisSettings); err != nil {
				return nil, fmt.Errorf("asking the sentinels for the master: %w", err)
			}
		}
	}
	rev, err := a.openRevocation()
	if err != nil {
		return nil, err
	}
	attachRevocation(a.irmaConf, rev)
	conf := *a.serverConf
	srv, err := irmaserver.New(&conf)
	if err != nil {
		closeRevocation(rev)
		return nil, err
	}
	srv.NextSessionAuthorization = authorizeNextSession
	rs := &runningServer{Server: srv, settings: &conf, handler: srv.HandlerFunc(), marks: memoryMarks,
		stopped: make(chan struct{}), events: statusevents.New(), revocation: rev}
	rs.conf.Store(a.irmaConf)
	if conf.StoreType != "redis" {
		// A session runs at most its scan timeout (at most the lifetime)
		// and then its lifetime.
		rs.tokens = newSessionTokens(2 * time.Duration(conf.MaxSessionLifetime) * time.Minute)
	}
	rs.events.MaxDuration = 2 * time.Duration(conf.MaxSessionLifetime) * time.Minute
	if conf.StoreType == "redis" {
		client, err := conf.RedisClient() // the client irmaserver made, cached
		if err != nil {
			srv.Stop()
			return nil, err
		}
		rs.marks = marks.New(marks.Config{Redis: client.Client, Prefix: client.KeyPrefix + redisKeyPrefix})
		rs.limitCounts, rs.redisPrefix = ownClient(conf.RedisSettings, client.Client), client.KeyPrefix
	}
	rs.schemes = &schemeUpdater{sources: a.sources, rs: rs, fingerprint: a.schemes.fingerprint, fetches: a.schemes.fetches}
	rs.schemes.logger.Store(a.logger.Named("schemes"))
	rs.schemes.app.Store(a)
	if !a.DisableSchemesUpdate {
		rs.schemes.start(time.Duration(a.SchemesUpdateInterval))
	}
	return rs, nil
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
	v, loaded, err := servers.LoadOrNew(a.poolKey, a.newServer)
	if err != nil {
		irmaLogs.SetTarget(prevLogger)
		if a.Redis != nil {
			return fmt.Errorf("irma: starting the IRMA server with %s: %w", a.Redis.describe(), err)
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
		// The running server takes the schemes of this config if they
		// changed on disk; else it keeps its own parse of the same.
		rs.schemes.logger.Store(a.logger.Named("schemes"))
		rs.schemes.app.Store(a)
		if !rs.schemes.adopt(a.schemes) {
			closeSchemes(a.irmaConf)
			a.irmaConf = rs.conf.Load()
		}
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

// appServer is the running IRMA server of an app, looked up per call: the
// handlers are provisioned before the server runs, and a reload may hand
// them another. It is the backend of the session flows and the requestor
// API.
type appServer struct{ app *App }

func (s appServer) server() (*runningServer, error) {
	rs := s.app.srv.Load()
	if rs == nil {
		return nil, errors.New("irma: the IRMA server is not running")
	}
	return rs, nil
}

func (s appServer) marks() (marks.Store, error) {
	rs, err := s.server()
	if err != nil {
		return nil, err
	}
	return countingMarks{rs.marks}, nil
}

func (s appServer) StartSession(req any, handler server.SessionHandler, requestor string) (*irma.Qr, irma.RequestorToken, *irma.FrontendSessionRequest, error) {
	rs, err := s.server()
	if err != nil {
		return nil, "", nil, err
	}
	return rs.StartSession(req, handler, requestor)
}

func (s appServer) SetFrontendOptions(t irma.RequestorToken, req *irma.FrontendOptionsRequest) (*irma.SessionOptions, error) {
	rs, err := s.server()
	if err != nil {
		return nil, err
	}
	return rs.SetFrontendOptions(t, req)
}

func (s appServer) GetSessionResult(t irma.RequestorToken) (*server.SessionResult, error) {
	rs, err := s.server()
	if err != nil {
		return nil, err
	}
	return rs.GetSessionResult(t)
}

func (s appServer) GetRequest(t irma.RequestorToken) (irma.RequestorRequest, error) {
	rs, err := s.server()
	if err != nil {
		return nil, err
	}
	return rs.GetRequest(t)
}

func (s appServer) CancelSession(t irma.RequestorToken) error {
	rs, err := s.server()
	if err != nil {
		return err
	}
	return rs.CancelSession(t)
}

// irmaApp returns the irma app of ctx, for the handler called who.
func irmaApp(ctx caddy.Context, who string) (*App, error) {
	app, err := ctx.App("irma")
	if err != nil {
		return nil, fmt.Errorf("%s: loading the irma app: %w", who, err)
	}
	return app.(*App), nil
}

// markTTL is how long the marks of a session are kept: as long as the
// session and its result live.
func (a *App) markTTL() time.Duration {
	return time.Duration(a.MaxSessionLifetime) + time.Duration(a.SessionResultLifetime)
}

// Interface guards
var (
	_ caddy.Destructor = (*runningServer)(nil)
	_ backend          = appServer{}
	_ requestor.Server = appServer{}
)

// Configuration returns the parsed schemes the server trusts: those it
// runs on once it has started, which change when the schemes are updated.
// Valid from Provision on.
func (a *App) Configuration() *irma.Configuration {
	if rs := a.srv.Load(); rs != nil {
		return rs.conf.Load()
	}
	return a.irmaConf
}

// PathPrefix returns the path under which the IRMA endpoints live, with a
// trailing slash, such as "/irma/".
func (a *App) PathPrefix() string { return a.prefix }

// ServerURL returns the public URL of the IRMA endpoints, with a trailing
// slash.
func (a *App) ServerURL() string { return a.serverURL }
