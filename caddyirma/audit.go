package caddyirma

import (
	"sort"

	irma "github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"
)

// The audit log: one line per decision (a login granted or refused, a
// step-up, a logout, a signature, an issuance, a requestor session, a
// static session), at
// INFO on the logger irma.audit with the message "decision". Its fields say
// what was decided, about whom and why, and never hold a value, a token or
// a cookie: attributes by type, the visitor by the per-site pseudonym that
// the identity JWT carries as sub, refusals by a fixed reason. A session
// that ends cancelled or timed out has its line when the gateway learns of
// it; an issuance, a requestor session and a static session have one when
// they start and one when they end (sessionwatch.go).

// Decisions and outcomes of the audit log.
const (
	decisionLogin     = "login"
	decisionStepUp    = "step_up"
	decisionLogout    = "logout"
	decisionSignature = "signature"
	decisionIssuance  = "issuance"
	decisionRequestor = "requestor_session"
	decisionStatic    = "static_session" // route: the static session's name

	auditGranted = "granted"
	auditRefused = "refused"
	auditStarted = "started" // an issuance, a requestor or a static session; its end is outcomeDone, -Cancelled or -Timeout
)

// auditEntry is one line of the audit log; empty fields are left out.
type auditEntry struct {
	decision, outcome, reason string
	policy, route             string
	attributes                []string // attribute types, never values
	subject                   string   // the per-site pseudonym
	requestor                 string   // the configured name of a requestor
	session                   irma.Action
	err                       error // why, where the reason needs it (never a value)
}

// log writes e to the audit logger l; a nil l (unit tests that build a
// flow without an app) writes nothing.
func (e auditEntry) log(l *zap.Logger) {
	if l == nil {
		return
	}
	fields := []zap.Field{zap.String("decision", e.decision), zap.String("outcome", e.outcome)}
	for _, f := range [...]struct{ key, value string }{
		{"reason", e.reason}, {"policy", e.policy}, {"route", e.route}, {"subject", e.subject}, {"requestor", e.requestor},
		{"session", string(e.session)},
	} {
		if f.value != "" {
			fields = append(fields, zap.String(f.key, f.value))
		}
	}
	if len(e.attributes) > 0 {
		sort.Strings(e.attributes)
		fields = append(fields, zap.Strings("attributes", e.attributes))
	}
	if e.err != nil {
		fields = append(fields, zap.Error(e.err))
	}
	l.Info("decision", fields...)
}

// attributeTypes are the keys of attrs (type identifiers to values).
func attributeTypes(attrs map[string]string) []string {
	types := make([]string, 0, len(attrs))
	for id := range attrs {
		types = append(types, id)
	}
	return types
}

// disclosedTypes are the types of the attributes a session disclosed.
func disclosedTypes(disclosed [][]*irma.DisclosedAttribute) []string {
	var types []string
	for _, con := range disclosed {
		for _, d := range con {
			if d != nil {
				types = append(types, d.Identifier.String())
			}
		}
	}
	return types
}

// issuedTypes are the types of the attributes an issuance request issues.
func issuedTypes(req *irma.IssuanceRequest) []string {
	var types []string
	for _, c := range req.Credentials {
		for name := range c.Attributes {
			types = append(types, c.CredentialTypeID.String()+"."+name)
		}
	}
	return types
}
