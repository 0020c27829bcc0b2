package caddyirma

import (
	"context"
	"errors"
	"sync"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/marks"
)

// The gateway's Prometheus metrics, on Caddy's /metrics beside its own.
//
// The collectors live once per process, as Caddy's reverse proxy keeps
// its own: a config reload gets a new registry, and the counters go on
// counting in it. Every label comes from a short list or from the config
// (policy, handler and requestor names); none ever holds an attribute
// value, a token, a client address or a pseudonym.
var metrics struct {
	once sync.Once

	sessionsStarted  *prometheus.CounterVec   // type, handler
	sessionsFinished *prometheus.CounterVec   // type, outcome, reason
	sessionDuration  *prometheus.HistogramVec // type
	logins           *prometheus.CounterVec   // policy, kind
	requests         *prometheus.CounterVec   // policy, decision
	jwts             *prometheus.CounterVec   // policy
	requestorCalls   *prometheus.CounterVec   // requestor, outcome
	storeErrors      *prometheus.CounterVec   // store
	sessionsLimited  prometheus.Counter
	schemeUpdates    *prometheus.CounterVec // outcome
	staticCallbacks  *prometheus.CounterVec // outcome
}

// Outcomes of a session, as the gateway sees its end.
const (
	outcomeDone      = "done"
	outcomeCancelled = "cancelled"
	outcomeTimeout   = "timeout"
	outcomeRefused   = "refused" // done, but the gateway does not take the result
)

// Why the gateway refuses a session's result: the reason label.
const (
	refusedAttributes = "attributes" // the disclosure does not satisfy the policy
	refusedUsed       = "used"       // the result was taken already, or its proofs never arrived
	refusedInvalid    = "invalid"    // the result does not verify, or a signature does not hold
)

func newMetrics() {
	const ns, sub = "caddy", "irma"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	metrics.sessionsStarted = counter("sessions_started_total", "IRMA sessions started, by type (disclosing, signing, issuing) and handler.", "type", "handler")
	metrics.sessionsFinished = counter("sessions_finished_total",
		"IRMA sessions whose end the gateway saw, by type and outcome (done, cancelled, timeout, refused); reason says why the gateway refused a result.",
		"type", "outcome", "reason")
	metrics.sessionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "session_duration_seconds",
		Help:    "Time from the start of an IRMA session to the gateway seeing its result, by type.",
		Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900},
	}, []string{"type"})
	metrics.logins = counter("logins_total", "Logins granted, by policy and kind (login, step_up).", "policy", "kind")
	metrics.requests = counter("requests_total", "Requests through irma_auth, by policy and decision (allowed, denied).", "policy", "decision")
	metrics.jwts = counter("jwts_minted_total", "Identity JWTs handed out (signed, or reused while fresh), by policy.", "policy")
	metrics.requestorCalls = counter("requestor_calls_total", "Session requests of the requestor API, by requestor (\"\" when unauthenticated) and outcome (started, unauthenticated, refused, limited, error).", "requestor", "outcome")
	metrics.storeErrors = counter("store_errors_total", "Errors of the stores (marks: the one-use marks; sessions: the IRMA sessions).", "store")
	metrics.sessionsLimited = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
		Name: "sessions_limited_total", Help: "Sessions refused with 429 by session_limits."})
	metrics.schemeUpdates = counter("scheme_updates_total",
		"Scheme update runs, by outcome (unchanged, applied, fetch_failed, load_failed, refused).", "outcome")
	metrics.staticCallbacks = counter("static_callbacks_total",
		"Results of static sessions posted to their callbackUrl, by outcome (posted, failed).", "outcome")
}

// registerMetrics registers the gateway's collectors with reg, Caddy's
// registry of this config; again with the same registry is no error.
func registerMetrics(reg *prometheus.Registry) error {
	metrics.once.Do(newMetrics)
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{
		metrics.sessionsStarted, metrics.sessionsFinished, metrics.sessionDuration, metrics.logins, metrics.requests,
		metrics.jwts, metrics.requestorCalls, metrics.storeErrors, metrics.sessionsLimited, metrics.schemeUpdates,
		metrics.staticCallbacks,
	} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

// The helpers below do nothing before registerMetrics made the collectors
// (in unit tests that build handlers without an app).

func countSessionStarted(action irma.Action, handler string) {
	if metrics.sessionsStarted != nil {
		metrics.sessionsStarted.WithLabelValues(string(action), handler).Inc()
	}
}

// countSessionEnd counts a session whose end the gateway saw: outcome is
// one of the outcome constants, reason one of the refused constants for
// outcomeRefused and empty otherwise. started is zero if unknown.
func countSessionEnd(action irma.Action, outcome, reason string, started time.Time) {
	if metrics.sessionsFinished == nil {
		return
	}
	metrics.sessionsFinished.WithLabelValues(string(action), outcome, reason).Inc()
	if !started.IsZero() {
		metrics.sessionDuration.WithLabelValues(string(action)).Observe(time.Since(started).Seconds())
	}
}

// sessionEndOutcome is the outcome label of a session that ended without
// a result: cancelled or timed out.
func sessionEndOutcome(status irma.ServerStatus) string {
	if status == irma.ServerStatusTimeout {
		return outcomeTimeout
	}
	return outcomeCancelled
}

func countLogin(policy string, stepUp bool) {
	if metrics.logins == nil {
		return
	}
	kind := "login"
	if stepUp {
		kind = "step_up"
	}
	metrics.logins.WithLabelValues(policy, kind).Inc()
}

// flowCounters are the per-request counters of one flow's policy, with
// their labels resolved once, when the flow is made: a request only adds
// to them. Zero (in unit tests that build a flow by hand) counts nothing.
type flowCounters struct {
	allowed, denied, jwts prometheus.Counter
}

// newFlowCounters returns the counters of policy; it makes the collectors
// if registerMetrics has not yet.
func newFlowCounters(policy string) flowCounters {
	metrics.once.Do(newMetrics)
	return flowCounters{
		allowed: metrics.requests.WithLabelValues(policy, "allowed"),
		denied:  metrics.requests.WithLabelValues(policy, "denied"),
		jwts:    metrics.jwts.WithLabelValues(policy),
	}
}

// request counts a request through irma_auth, allowed or denied.
func (c flowCounters) request(allowed bool) {
	switch {
	case c.allowed == nil:
	case allowed:
		c.allowed.Inc()
	default:
		c.denied.Inc()
	}
}

// jwt counts an identity JWT handed out.
func (c flowCounters) jwt() {
	if c.jwts != nil {
		c.jwts.Inc()
	}
}

func countRequestorCall(requestor, outcome string) {
	if metrics.requestorCalls != nil {
		metrics.requestorCalls.WithLabelValues(requestor, outcome).Inc()
	}
}

func countStoreError(store string) {
	if metrics.storeErrors != nil {
		metrics.storeErrors.WithLabelValues(store).Inc()
	}
}

func countSessionLimited() {
	if metrics.sessionsLimited != nil {
		metrics.sessionsLimited.Inc()
	}
}

func countSchemeUpdate(outcome string) {
	if metrics.schemeUpdates != nil {
		metrics.schemeUpdates.WithLabelValues(outcome).Inc()
	}
}

func countStaticCallback(outcome string) {
	if metrics.staticCallbacks != nil {
		metrics.staticCallbacks.WithLabelValues(outcome).Inc()
	}
}

// countingMarks counts the errors of a store of marks.
type countingMarks struct{ marks.Store }

func (s countingMarks) count(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		countStoreError("marks")
	}
	return err
}

func (s countingMarks) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.count(s.Store.Put(ctx, key, value, ttl))
}

func (s countingMarks) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	added, err := s.Store.Add(ctx, key, value, ttl)
	return added, s.count(err)
}

func (s countingMarks) Take(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := s.Store.Take(ctx, key)
	return v, ok, s.count(err)
}

func (s countingMarks) Has(ctx context.Context, key string) (bool, error) {
	ok, err := s.Store.Has(ctx, key)
	return ok, s.count(err)
}
