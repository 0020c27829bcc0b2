package policy

import (
	"errors"
	"fmt"
	"maps"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// Attributes is what a visitor has proven: attribute type -> IRMA raw value,
// the value as issued. Build it with FromResult.
type Attributes map[irma.AttributeTypeIdentifier]string

// FromResult returns the attributes that a finished IRMA disclosure session
// proved. It accepts only a session that is DONE, of type disclosing, without
// error, whose proof is VALID, and whose disclosed attributes are PRESENT with
// a value and a four-part identifier; attributes that are NULL (an optional
// attribute left empty) are skipped. Anything else is an error saying what,
// and so is one attribute disclosed twice with different values, or nothing
// disclosed at all. Errors never hold attribute values: they are personal
// data, and errors end up in logs.
//
// FromResult does not check that the result belongs to the visitor, nor
// which request it answers: the caller must get the result from the session
// it started, and then check the policy with SatisfiedBy.
func FromResult(res *server.SessionResult) (Attributes, error) {
	switch {
	case res == nil:
		return nil, errors.New("no session result")
	case res.Status != irma.ServerStatusDone:
		return nil, fmt.Errorf("session status %q: want %q", res.Status, irma.ServerStatusDone)
	case res.Err != nil:
		return nil, fmt.Errorf("session failed: %w", res.Err)
	case res.Type != irma.ActionDisclosing:
		return nil, fmt.Errorf("session type %q: want %q", res.Type, irma.ActionDisclosing)
	case res.ProofStatus != irma.ProofStatusValid:
		return nil, fmt.Errorf("proof status %q: want %q", res.ProofStatus, irma.ProofStatusValid)
	}
	attrs := Attributes{}
	for i, con := range res.Disclosed {
		for j, d := range con {
			if d == nil {
				return nil, fmt.Errorf("disclosed item %d, attribute %d: missing", i+1, j+1)
			}
			id := d.Identifier
			if err := checkAttributeID(id.String()); err != nil {
				return nil, fmt.Errorf("disclosed attribute %q: %w", id, err)
			}
			switch d.Status {
			case irma.AttributeProofStatusNull:
				if d.RawValue != nil {
					return nil, fmt.Errorf("disclosed attribute %s: status %s with a value", id, d.Status)
				}
				continue
			case irma.AttributeProofStatusPresent:
			default:
				return nil, fmt.Errorf("disclosed attribute %s: status %q: want %q", id, d.Status, irma.AttributeProofStatusPresent)
			}
			if d.RawValue == nil {
				return nil, fmt.Errorf("disclosed attribute %s: status %s without a value", id, d.Status)
			}
			if prev, ok := attrs[id]; ok && prev != *d.RawValue {
				return nil, fmt.Errorf("disclosed attribute %s: disclosed twice with different values", id)
			}
			attrs[id] = *d.RawValue
		}
	}
	if len(attrs) == 0 {
		return nil, errors.New("no attributes disclosed")
	}
	return attrs, nil
}

// Merge returns a new Attributes with those of a and b. Where both have an
// attribute, b's value wins: b is the newer disclosure (a step-up login on
// top of an earlier one), and a value a wallet proves now replaces one it
// proved before, as when a credential was renewed. A caller that must not
// combine two people's attributes should compare before merging (see
// Conflicts). Neither a nor b is modified.
func (a Attributes) Merge(b Attributes) Attributes {
	m := make(Attributes, len(a)+len(b))
	maps.Copy(m, a)
	maps.Copy(m, b)
	return m
}

// Conflicts returns the attribute types that a and b both hold with
// different values, in no particular order: a sign that two disclosures came
// from different credentials, or different people.
func (a Attributes) Conflicts(b Attributes) []irma.AttributeTypeIdentifier {
	var ids []irma.AttributeTypeIdentifier
	for id, v := range b {
		if w, ok := a[id]; ok && w != v {
			ids = append(ids, id)
		}
	}
	return ids
}

// SatisfiedBy reports whether a meets every requirement of p. A policy
// without requirements is satisfied by nothing: a route that requires
// nothing by mistake must deny, not grant.
func (p Policy) SatisfiedBy(a Attributes) bool {
	if len(p.Requirements) == 0 {
		return false
	}
	for _, r := range p.Requirements {
		if !r.SatisfiedBy(a) {
			return false
		}
	}
	return true
}

// SatisfiedBy reports whether some option of r is satisfied by a.
func (r Requirement) SatisfiedBy(a Attributes) bool {
	for _, c := range r.Options {
		if c.SatisfiedBy(a) {
			return true
		}
	}
	return false
}

// SatisfiedBy reports whether a has every attribute of c, each with the
// required value where c sets one (compared exactly, as IRMA raw values). An
// empty conjunction is satisfied by nothing, unlike in IRMA, where it makes
// an item optional.
//
// The attributes may come from different logins (see Merge), so a
// conjunction met here was not necessarily disclosed in one session.
func (c Conjunction) SatisfiedBy(a Attributes) bool {
	if len(c) == 0 {
		return false
	}
	for _, ar := range c {
		v, ok := a[irma.NewAttributeTypeIdentifier(ar.Type)]
		if !ok || ar.Value != nil && v != *ar.Value {
			return false
		}
	}
	return true
}

// Missing returns the requirements of p that a does not satisfy, in order,
// with their labels: what a step-up login must still ask, with
// Missing(a).DisclosureRequest(). It has no requirements if a satisfies p
// (and also if p has none, which SatisfiedBy refuses). The result shares no
// memory with p.
func (p Policy) Missing(a Attributes) Policy {
	m := Policy{Revocation: p.Revocation}
	for _, r := range p.Requirements {
		if !r.SatisfiedBy(a) {
			m.Requirements = append(m.Requirements, r.clone())
		}
	}
	return m
}
