package caddyirma

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionpage"
)

// Defaults of the session limits.
const (
	DefaultSessionsPerClient       = 30
	DefaultSessionsPerClientWindow = 10 * time.Minute
	DefaultMaxSessions             = 10000
	// maxTrackedClients bounds the memory of the per-client bound itself.
	maxTrackedClients = 100000
)

// SessionLimits bounds the IRMA sessions that clients can make the gateway
// start for them: login sessions of irma_auth and /irma/login, signature
// sessions of irma_sign, issuance sessions of irma_issue, and the sessions
// of static_sessions that the Yivi app starts. Each session is
// state that the IRMA server keeps until it ends or times out, whoever
// asked for it. A request beyond a bound gets 429 with Retry-After, and no
// session. Only a request that asks for a session starts one and counts
// (see startsSession): a browser's page navigation, another site's
// request, a subresource or a prefetch starts none. With Redis, the
// instances that share it count together, so the bounds hold for all of
// them at once; if Redis cannot answer, no session starts (503). Without
// Redis, the bounds are per Caddy process.
type SessionLimits struct {
	// PerClient is how many sessions one client address may start within
	// any PerClientWindow (a sliding window). The address is Caddy's client
	// IP, which honours the servers' trusted_proxies. Default: 30.
	PerClient int `json:"per_client,omitempty"`

	// PerClientWindow is the window of PerClient. Default: 10m.
	PerClientWindow caddy.Duration `json:"per_client_window,omitempty"`

	// Total is how many sessions all clients together may start within any
	// max_session_lifetime: so at most as many are waiting at once. Default:
	// 10000.
	Total int `json:"total,omitempty"`
}

// provisionLimits fills in the defaults of the session limits, checks
// them, and makes the limiter.
func (a *App) provisionLimits(*caddy.Replacer) error {
	if a.SessionLimits == nil {
		a.SessionLimits = new(SessionLimits)
	}
	s := a.SessionLimits
	if s.PerClient == 0 {
		s.PerClient = DefaultSessionsPerClient
	}
	if s.PerClientWindow == 0 {
		s.PerClientWindow = caddy.Duration(DefaultSessionsPerClientWindow)
	}
	if s.Total == 0 {
		s.Total = DefaultMaxSessions
	}
	if s.PerClient < 0 || s.Total < 0 || s.PerClientWindow < 0 {
		return fmt.Errorf("irma: session_limits: per_client %d, per_client_window %s, total %d: want positive numbers",
			s.PerClient, time.Duration(s.PerClientWindow), s.Total)
	}
	bounds := sessionlimit.Bounds{
		PerClient: s.PerClient, Window: time.Duration(s.PerClientWindow),
		Total: s.Total, TotalWindow: time.Duration(a.MaxSessionLifetime),
	}
	if a.Redis != nil {
		a.limiter = sharedLimiter{app: a, bounds: bounds}
		return nil
	}
	a.limiter = &sessionlimit.Memory{Bounds: bounds, MaxClients: maxTrackedClients}
	return nil
}

// sharedLimiter counts the sessions in the Redis of the app's running IRMA
// server, which every instance that shares the Redis counts in: looked up
// per call, as appServer does, since the handlers are provisioned before
// the server runs and a reload may hand them another.
type sharedLimiter struct {
	app    *App
	bounds sessionlimit.Bounds
}

// Allow implements sessionlimit.Limiter.
func (l sharedLimiter) Allow(ctx context.Context, client string) (bool, time.Duration, error) {
	rs := l.app.srv.Load()
	if rs == nil || rs.limitCounts == nil {
		return false, 0, errors.New("the IRMA server is not running")
	}
	counter := sessionlimit.Redis{Bounds: l.bounds, Client: rs.limitCounts, Prefix: rs.redisPrefix + redisKeyPrefix + "session-limits:"}
	return counter.Allow(ctx, client)
}

// ipv6ClientBits is how much of an IPv6 address names one client to the
// session limits: a /64, the least that a home line or a server gets, and
// whose other addresses its holder may all use.
const ipv6ClientBits = 64

// clientOf is who r's client is to the session limits: Caddy's client IP
// (which honours trusted_proxies), an IPv4 address as itself also when it
// comes mapped into IPv6, and an IPv6 address by its /64.
func clientOf(r *http.Request) string {
	client, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if client == "" {
		client, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	addr, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return addr.String()
	}
	prefix, _ := addr.Prefix(ipv6ClientBits)
	return prefix.String()
}

// admitSession answers 429, and returns false, if r's client may not start
// another session now; and 503 as when the store does not answer
// (unavailable.go), and false, if the limiter cannot tell.
func admitSession(w http.ResponseWriter, r *http.Request, limiter sessionlimit.Limiter, logger *zap.Logger) bool {
	if limiter == nil {
		return true
	}
	ok, wait, err := limiter.Allow(r.Context(), clientOf(r))
	if err != nil {
		// No session that the bounds cannot account for: closed, not open.
		_ = answerUnavailable(w, r, logger, fmt.Errorf("irma: session limits: %w", err))
		return false
	}
	if ok {
		return true
	}
	secs := int(wait.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	// Debug: a flood would otherwise write a line per request.
	logger.Debug("session refused: too many sessions", zap.Int("retry_after", secs))
	countSessionLimited()
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Cache-Control", "no-store")
	if sessionpage.WantsPage(r) {
		_ = sessionpage.RenderMessage(w, http.StatusTooManyRequests, sessionpage.Language(r), "busy", requestReturn(r))
		return false
	}
	sessionpage.WriteJSON(w, http.StatusTooManyRequests, map[string]any{"error": "too_many_sessions", "retry_after": secs})
	return false
}

// unmarshalCaddyfile parses the session_limits block of the irma global
// option:
//
//	session_limits {
//		per_client <number> [<window>]
//		total      <number>
//	}
func (s *SessionLimits) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("irma: session_limits: unexpected argument %q", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch name := d.Val(); name {
		case "per_client":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("irma: session_limits: per_client takes a number and an optional window, such as 30 10m")
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n <= 0 {
				return d.Errf("irma: session_limits: per_client %q: want a positive number", args[0])
			}
			s.PerClient = n
			if len(args) == 2 {
				if err := durationArg(d, "per_client window", args[1], &s.PerClientWindow); err != nil {
					return err
				}
			}
		case "total":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("irma: session_limits: total %q: want a positive number", v)
			}
			s.Total = n
		default:
			return d.Errf("irma: session_limits: unknown setting %q", name)
		}
	}
	return nil
}
