package caddyirma

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"

	"github.com/caddy-irma/caddy-irma/caddyirma/policy"
)

// A named policy with a revocation option asks the wallet, at every
// disclosure, to prove that the credentials of its revocable types are not
// revoked (irmaserver checks the proofs against the accumulator that the
// gateway keeps as their revocation authority). The gateway cannot check a
// disclosed credential again without the wallet, so the proof counts for
// the policy's max age only, from the disclosure that made it: a login
// holds the time of its last proof per credential type (loginState's
// NonRevoked); a request under the policy after that ("the next check")
// finds the login stale and asks the visitor to disclose the policy again,
// with a fresh proof, which a revoked credential cannot make. The identity
// JWT of such a policy ends at the same time. Policies without the option
// count the login as it is: a revoked credential keeps what they granted
// until the login ends.

// now is the app's clock: time.Now, unless SetClock set another.
func (a *App) now() time.Time {
	if c := a.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

// SetClock sets the clock that the app's logins are timed by (their
// cookies, and the max age of non-revocation proofs), for tests that move
// time; nil restores time.Now. irmago keeps its own clock.
func (a *App) SetClock(now func() time.Time) {
	if now == nil {
		a.clock.Store(nil)
		return
	}
	a.clock.Store(&now)
}

// revocableTypes are the credential types of conf whose non-revocation p asks:
// none without its revocation option.
func revocableTypes(p policy.Policy, conf *irma.Configuration) []irma.CredentialTypeIdentifier {
	if p.Revocation == nil {
		return nil
	}
	return p.RevocableTypes(conf)
}

// checkPolicyRevocation checks that the app is the revocation authority of
// every credential type whose non-revocation a named policy asks: irmaserver
// would otherwise fetch revocation updates from the scheme's revocation
// server at every login.
func (a *App) checkPolicyRevocation() error {
	var errs []error
	for _, name := range sortedKeys(a.Policies) {
		for _, id := range revocableTypes(a.Policies[name], a.Configuration()) {
			if err := a.revocationAuthority(id); err != nil {
				errs = append(errs, fmt.Errorf("irma: policy %q: revocation: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// holds says whether login holds attributes of the credential type id.
func holds(login *loginState, id irma.CredentialTypeIdentifier) bool {
	prefix := id.String() + "."
	for attr := range login.Attributes {
		if strings.HasPrefix(attr, prefix) {
			return true
		}
	}
	return false
}

// nonRevocationUntil is when login stops satisfying the flow's policy for
// want of a fresh non-revocation proof: the end of the login for a policy
// without the revocation option; else the earliest last proof, plus the
// max age, of the revocable credential types of the policy whose attributes
// the login holds; noProof if one of those has no proof.
func (f *loginFlow) nonRevocationUntil(login *loginState) time.Time {
	until := login.Expires
	for _, id := range f.revocable {
		if !holds(login, id) {
			continue
		}
		proved, ok := login.NonRevoked[id.String()]
		if !ok {
			return noProof
		}
		if t := time.Unix(proved, 0).Add(f.policy.RevocationMaxAge()); t.Before(until) {
			until = t
		}
	}
	return until
}

// noProof is long past, and not the zero time, which an identity's Expires
// reads as "no end".
var noProof = time.Unix(1, 0)

// nonRevocationFresh says whether login's non-revocation proofs still count
// for the flow's policy at now.
func (f *loginFlow) nonRevocationFresh(login *loginState, now time.Time) bool {
	return len(f.revocable) == 0 || now.Before(f.nonRevocationUntil(login))
}

// need is what a session must disclose for login (nil: none) to satisfy
// the flow's policy: what is missing, counting the attributes of the
// credential types whose non-revocation the policy asks as missing if the
// login's proofs of them no longer count.
func (f *loginFlow) need(login *loginState, now time.Time) policy.Policy {
	if login == nil {
		return f.policy
	}
	held := toAttributes(login.Attributes)
	if !f.nonRevocationFresh(login, now) {
		for id := range held {
			if f.asksNonRevocation(id.CredentialTypeIdentifier()) {
				delete(held, id)
			}
		}
	}
	return f.policy.Missing(held)
}

// askNonRevocation makes req ask the non-revocation proofs of the policy.
// A stale login's request asks attributes that bindToLogin asks again:
// such a repeat, an attribute alone that the request must disclose anyway,
// goes.
func (f *loginFlow) askNonRevocation(req *irma.DisclosureRequest) {
	if len(f.revocable) == 0 {
		return
	}
	policy.AskNonRevocation(req, f.revocable)
	kept := make(irma.AttributeConDisCon, 0, len(req.Disclose))
	for i, discon := range req.Disclose {
		if len(discon) == 1 && len(discon[0]) == 1 && discon[0][0].Value == nil && repeated(req.Disclose[:i], discon[0][0].Type) {
			continue
		}
		kept = append(kept, discon)
	}
	req.Disclose = kept
}

// checkNonRevocation checks, besides irmaserver, that every attribute of a
// credential type whose non-revocation the policy asks came with a proof
// that is current (irmaserver marks one whose accumulator is older than the
// tolerance with NotRevokedBefore).
func (f *loginFlow) checkNonRevocation(res *server.SessionResult) error {
	if len(f.revocable) == 0 {
		return nil
	}
	for _, con := range res.Disclosed {
		for _, attr := range con {
			if !f.asksNonRevocation(attr.Identifier.CredentialTypeIdentifier()) {
				continue
			}
			if !attr.NotRevoked || attr.NotRevokedBefore != nil {
				return fmt.Errorf("%s: no current proof that the credential is not revoked", attr.Identifier.CredentialTypeIdentifier())
			}
		}
	}
	return nil
}

// repeated says whether discons must disclose the attribute id: one of
// them has it in its only option.
func repeated(discons irma.AttributeConDisCon, id irma.AttributeTypeIdentifier) bool {
	for _, discon := range discons {
		if len(discon) != 1 {
			continue
		}
		for _, a := range discon[0] {
			if a.Type == id {
				return true
			}
		}
	}
	return false
}

func (f *loginFlow) asksNonRevocation(id irma.CredentialTypeIdentifier) bool {
	for _, r := range f.revocable {
		if r == id {
			return true
		}
	}
	return false
}

// markNonRevoked records in next, the login that a session made of have,
// the non-revocation proofs that the session brought, at now; those of
// have carry over.
func (f *loginFlow) markNonRevoked(next, have *loginState, res *server.SessionResult, now time.Time) {
	if have != nil && len(have.NonRevoked) > 0 {
		next.NonRevoked = maps.Clone(have.NonRevoked)
	}
	for _, con := range res.Disclosed {
		for _, attr := range con {
			id := attr.Identifier.CredentialTypeIdentifier()
			if !attr.NotRevoked || attr.NotRevokedBefore != nil || !f.asksNonRevocation(id) {
				continue
			}
			if next.NonRevoked == nil {
				next.NonRevoked = map[string]int64{}
			}
			next.NonRevoked[id.String()] = now.Unix()
		}
	}
}

// unmarshalPolicyRevocation parses a policy's "revocation [<max age>]".
func unmarshalPolicyRevocation(d *caddyfile.Dispenser, name string, p *policy.Policy) error {
	if p.Revocation != nil {
		return d.Errf("irma: policy %q: revocation given twice", name)
	}
	p.Revocation = new(policy.Revocation)
	args := d.RemainingArgs()
	switch {
	case len(args) > 1:
		return d.Errf("irma: policy %q: revocation takes at most one value, a max age such as 10m", name)
	case len(args) == 1:
		v, err := caddy.ParseDuration(args[0])
		if err != nil || v <= 0 {
			return d.Errf("irma: policy %q: revocation %q: want a max age such as 10m", name, args[0])
		}
		p.Revocation.MaxAge = policy.Duration(v)
	}
	return nil
}
