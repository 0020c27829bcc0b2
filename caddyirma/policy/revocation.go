package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
)

// DefaultRevocationMaxAge is how long a non-revocation proof counts by
// default: irmago's default tolerance (irma.RevocationParameters), the age
// of an accumulator that irmago itself still takes as current.
const DefaultRevocationMaxAge = 10 * time.Minute

// MinRevocationMaxAge is the shortest max age: a visitor needs a moment to
// take the phone and disclose again.
const MinRevocationMaxAge = time.Minute

// Revocation asks a policy's logins to prove that their credentials are not
// revoked, for every credential type of the policy whose scheme supports
// revocation, and to prove it again after MaxAge: the gateway cannot check a
// disclosed credential again without the wallet, so a login under the
// policy satisfies it only for MaxAge after its last non-revocation proof;
// the next request after that must disclose again, and a revoked credential
// cannot.
type Revocation struct {
	// MaxAge is how long a non-revocation proof counts, from the disclosure
	// that made it. At least a minute. Default: DefaultRevocationMaxAge.
	MaxAge Duration `json:"max_age,omitempty"`
}

// Duration is a time.Duration that reads from JSON as a string such as
// "10m" or a number of nanoseconds, and writes as a string.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("duration: want a string such as \"10m\" or nanoseconds")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// RevocationMaxAge is how long a non-revocation proof counts for p: zero if
// p asks none.
func (p Policy) RevocationMaxAge() time.Duration {
	switch {
	case p.Revocation == nil:
		return 0
	case p.Revocation.MaxAge == 0:
		return DefaultRevocationMaxAge
	}
	return time.Duration(p.Revocation.MaxAge)
}

// RevocableTypes returns the credential types that p names whose scheme in
// conf supports revocation, once each, in order: those whose
// non-revocation p asks (if it asks any).
func (p Policy) RevocableTypes(conf *irma.Configuration) []irma.CredentialTypeIdentifier {
	var ids []irma.CredentialTypeIdentifier
	seen := map[irma.CredentialTypeIdentifier]bool{}
	for _, a := range p.AttributeTypes() {
		id := a.CredentialTypeIdentifier()
		if ct := conf.CredentialTypes[id]; !seen[id] && ct != nil && ct.RevocationSupported() {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// validateRevocation checks p's revocation option against conf.
func (p Policy) validateRevocation(conf *irma.Configuration) error {
	if p.Revocation == nil {
		return nil
	}
	if d := time.Duration(p.Revocation.MaxAge); d != 0 && d < MinRevocationMaxAge {
		return fmt.Errorf("revocation: max age %s: at least %s", d, MinRevocationMaxAge)
	}
	if len(p.RevocableTypes(conf)) == 0 {
		return errors.New("revocation: none of the policy's credential types supports revocation")
	}
	return nil
}

// AskNonRevocation makes req ask a non-revocation proof of each of ids
// that it discloses.
func AskNonRevocation(req *irma.DisclosureRequest, ids []irma.CredentialTypeIdentifier) {
	// Not req.Identifiers(): it caches its answer, and req may change yet.
	asked := map[irma.CredentialTypeIdentifier]struct{}{}
	_ = req.Disclose.Iterate(func(a *irma.AttributeRequest) error {
		asked[a.Type.CredentialTypeIdentifier()] = struct{}{}
		return nil
	})
	for _, id := range ids {
		if _, ok := asked[id]; !ok {
			continue
		}
		if req.Revocation == nil {
			req.Revocation = irma.NonRevocationParameters{}
		}
		req.Revocation[id] = &irma.NonRevocationRequest{}
	}
}
