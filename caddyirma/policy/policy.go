// Package policy is the disclosure policy of a protected route: which IRMA
// attributes a visitor must disclose with the Yivi app. It parses the compact
// expressions of the Caddyfile, checks a policy against the trusted schemes,
// builds the IRMA disclosure request, reads what a finished session proved,
// and tells whether that satisfies the policy or what a step-up login must
// still ask. It knows nothing of Caddy or HTTP.
//
// A Policy maps onto IRMA's condiscon (a conjunction of disjunctions of
// conjunctions): every Requirement must be met, by any one of its options,
// each option being attributes disclosed together.
package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	irma "github.com/privacybydesign/irmago/irma"
)

// Limits on a policy. They keep a mistaken configuration from building IRMA
// requests that no wallet can show sensibly, and bound the work of parsing.
const (
	// MaxExpressionLength is the longest requirement expression, in bytes.
	MaxExpressionLength = 4 << 10
	// MaxRequirements is the most requirements in one policy.
	MaxRequirements = 32
	// MaxOptions is the most options (alternatives) in one requirement.
	MaxOptions = 32
	// MaxAttributes is the most attributes in one option.
	MaxAttributes = 32
	// MaxLabelLength is the longest label text, in bytes.
	MaxLabelLength = 256
)

// Policy is what a route requires: every requirement must be met. A policy
// without requirements is invalid and satisfied by nothing, so that a route
// that forgot its requirements denies rather than grants.
type Policy struct {
	// Requirements are the items the visitor must disclose, at least one.
	Requirements []Requirement `json:"requirements,omitempty"`

	// Revocation, if set, asks proofs that the disclosed credentials are
	// not revoked, and again after a max age (see Revocation). Default:
	// none asked.
	Revocation *Revocation `json:"revocation,omitempty"`
}

// Requirement is one item the visitor must disclose (an outer conjunct of
// IRMA's condiscon): any one of its options suffices (IRMA's disjunction).
type Requirement struct {
	// Label is what the Yivi app shows for the item, by language: keys are
	// two-letter lowercase ISO 639-1 codes, such as "en" and "nl", the
	// languages of the Yivi app, which shows the one of its own language.
	// Any such code is accepted, so that a new app language needs no new
	// gateway. Texts are not empty, at most MaxLabelLength bytes, without
	// control characters. Optional.
	Label map[string]string `json:"label,omitempty"`

	// Options are the alternatives, at least one.
	Options []Conjunction `json:"options,omitempty"`
}

// Conjunction is attributes disclosed together, in one go from one wallet
// (IRMA's inner conjunction). It has at least one attribute and none twice.
type Conjunction []AttributeRequest

// AttributeRequest asks for one attribute, possibly with a required value.
type AttributeRequest struct {
	// Type is the attribute type identifier,
	// scheme.issuer.credential.attribute, such as
	// "pbdf.sidn-pbdf.email.email".
	Type string `json:"type"`

	// Value, if set, is the value the disclosed attribute must have: its IRMA
	// raw value, compared byte for byte (no case folding, no trimming). It
	// must not be empty. Default: any value.
	Value *string `json:"value,omitempty"`
}

// Validate checks p against the trusted schemes in conf: that it has at least
// one requirement, that every requirement has options and every option
// attributes, within the limits of this package; that every attribute type
// exists in conf and can be disclosed, no option names an attribute twice,
// and no option mixes two credential types that are not singletons (irmago
// refuses such requests); that required values and labels are not empty, and
// label languages are two lowercase letters. It reports every problem at once
// (joined with errors.Join), each naming its requirement and option, counted
// from 1. Validate does not modify p or conf.
func (p Policy) Validate(conf *irma.Configuration) error {
	if conf == nil {
		return errors.New("no IRMA configuration to check the policy against")
	}
	if len(p.Requirements) == 0 {
		return errors.New("no requirements: a policy must require at least one attribute")
	}
	var errs []error
	if len(p.Requirements) > MaxRequirements {
		errs = append(errs, fmt.Errorf("%d requirements: at most %d allowed", len(p.Requirements), MaxRequirements))
	}
	for i, r := range p.Requirements {
		for _, err := range r.validate(conf) {
			errs = append(errs, fmt.Errorf("requirement %d: %w", i+1, err))
		}
	}
	if err := p.validateRevocation(conf); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validate returns the problems of r, each without the requirement's index.
func (r Requirement) validate(conf *irma.Configuration) []error {
	var errs []error
	for _, lang := range slices.Sorted(maps.Keys(r.Label)) {
		if err := checkLabel(lang, r.Label[lang]); err != nil {
			errs = append(errs, fmt.Errorf("label %q: %w", lang, err))
		}
	}
	switch {
	case len(r.Options) == 0:
		errs = append(errs, errors.New("no options: a requirement needs at least one attribute"))
	case len(r.Options) > MaxOptions:
		errs = append(errs, fmt.Errorf("%d options: at most %d allowed", len(r.Options), MaxOptions))
	}
	for j, c := range r.Options {
		for _, err := range c.validate(conf) {
			errs = append(errs, fmt.Errorf("option %d: %w", j+1, err))
		}
	}
	return errs
}

// validate returns the problems of c, each without the option's index.
func (c Conjunction) validate(conf *irma.Configuration) []error {
	var errs []error
	switch {
	case len(c) == 0:
		// IRMA reads an empty option as "this item is optional": a policy
		// must never make a requirement optional by accident.
		return []error{errors.New("empty: an option needs at least one attribute")}
	case len(c) > MaxAttributes:
		errs = append(errs, fmt.Errorf("%d attributes: at most %d allowed", len(c), MaxAttributes))
	}
	seen := make(map[string]int, len(c))
	var nonSingletons []irma.CredentialTypeIdentifier
	for _, a := range c {
		seen[a.Type]++
		if n := seen[a.Type]; n > 1 {
			if n == 2 { // once per attribute, however often it repeats
				errs = append(errs, fmt.Errorf("attribute %q: named twice", a.Type))
			}
			continue
		}
		if a.Value != nil && *a.Value == "" {
			errs = append(errs, fmt.Errorf("attribute %q: empty required value", a.Type))
		}
		if err := checkAttributeID(a.Type); err != nil {
			errs = append(errs, fmt.Errorf("attribute %q: %w", a.Type, err))
			continue
		}
		ct, err := lookUp(conf, irma.NewAttributeTypeIdentifier(a.Type))
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %q: %w", a.Type, err))
			continue
		}
		if id := ct.Identifier(); !ct.IsSingleton && !slices.Contains(nonSingletons, id) {
			nonSingletons = append(nonSingletons, id)
		}
	}
	if len(nonSingletons) > 1 {
		// irmago's AttributeConDisCon.Validate refuses this when the server
		// starts the session: better to say so when the config loads.
		errs = append(errs, fmt.Errorf("credential types %s and %s are both non-singleton: IRMA allows at most one non-singleton credential type per option",
			nonSingletons[0], nonSingletons[1]))
	}
	return errs
}

// lookUp finds the credential type of attribute id in conf, or says which
// part of id conf does not know.
func lookUp(conf *irma.Configuration, id irma.AttributeTypeIdentifier) (*irma.CredentialType, error) {
	credID := id.CredentialTypeIdentifier()
	issuerID := credID.IssuerIdentifier()
	schemeID := issuerID.SchemeManagerIdentifier()
	if conf.SchemeManagers[schemeID] == nil {
		if serr, ok := conf.DisabledSchemeManagers[schemeID]; ok && serr != nil {
			return nil, fmt.Errorf("scheme %q is disabled: %w", schemeID, serr)
		}
		return nil, fmt.Errorf("unknown scheme %q", schemeID)
	}
	if conf.Issuers[issuerID] == nil {
		return nil, fmt.Errorf("unknown issuer %q in scheme %q", issuerID.Name(), schemeID)
	}
	ct := conf.CredentialTypes[credID]
	if ct == nil {
		return nil, fmt.Errorf("unknown credential type %q of issuer %q", credID.Name(), issuerID)
	}
	at := conf.AttributeTypes[id]
	if at == nil || !ct.ContainsAttribute(id) {
		return nil, fmt.Errorf("unknown attribute %q in credential type %q", id.Name(), credID)
	}
	if at.RevocationAttribute {
		return nil, fmt.Errorf("the revocation attribute of credential type %q cannot be disclosed", credID)
	}
	return ct, nil
}

// checkLabel checks one translation of a label.
func checkLabel(lang, text string) error {
	if len(lang) != 2 || !isLower(lang[0]) || !isLower(lang[1]) {
		return errors.New("language must be a two-letter lowercase code such as en or nl")
	}
	switch {
	case strings.TrimSpace(text) == "":
		return errors.New("empty text")
	case len(text) > MaxLabelLength:
		return fmt.Errorf("text of %d bytes: at most %d allowed", len(text), MaxLabelLength)
	case !utf8.ValidString(text):
		return errors.New("text is not valid UTF-8")
	case strings.IndexFunc(text, unicode.IsControl) >= 0:
		return errors.New("text holds control characters")
	}
	return nil
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// checkAttributeID checks the syntax of an attribute type identifier: four
// dot-separated non-empty parts of ASCII letters, digits, '_' and '-'. IRMA
// also knows three-part identifiers (a whole credential); a policy does not
// use them, because what they disclose is not a value.
func checkAttributeID(id string) error {
	parts := strings.Split(id, ".")
	if len(parts) != 4 {
		return fmt.Errorf("want 4 dot-separated parts, scheme.issuer.credential.attribute, found %d", len(parts))
	}
	for i, part := range parts {
		if part == "" {
			return fmt.Errorf("part %d is empty", i+1)
		}
		for k := 0; k < len(part); k++ {
			if !isIDByte(part[k]) {
				r, _ := utf8.DecodeRuneInString(part[k:])
				return fmt.Errorf("part %d holds %q: only letters, digits, '_' and '-' are allowed", i+1, r)
			}
		}
	}
	return nil
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// AttributeTypes returns every attribute type that p names, once each, in
// order of first appearance: what a login under p may reveal.
func (p Policy) AttributeTypes() []irma.AttributeTypeIdentifier {
	var ids []irma.AttributeTypeIdentifier
	seen := map[string]bool{}
	for _, r := range p.Requirements {
		for _, c := range r.Options {
			for _, a := range c {
				if !seen[a.Type] {
					seen[a.Type] = true
					ids = append(ids, irma.NewAttributeTypeIdentifier(a.Type))
				}
			}
		}
	}
	return ids
}

// DisclosureRequest returns the IRMA disclosure request for p: one
// disjunction per requirement, in order, with its label. Every attribute is
// asked with notNull, so that the Yivi app does not offer a credential whose
// optional attribute is empty: such a disclosure would prove nothing that p
// can accept. Within an option, attributes of the same credential type are
// put next to each other, otherwise keeping their order: the IRMA server
// starts a session without that, but wallets refuse the request
// (irma.DisclosureRequest.Validate).
// The request shares no memory with p. Call Validate first: the request of an
// invalid policy is refused by the IRMA server, or asks for nothing.
func (p Policy) DisclosureRequest() *irma.DisclosureRequest {
	req := irma.NewDisclosureRequest()
	for i, r := range p.Requirements {
		discon := make(irma.AttributeDisCon, 0, len(r.Options))
		for _, c := range r.Options {
			discon = append(discon, c.attributeCon())
		}
		req.Disclose = append(req.Disclose, discon)
		if len(r.Label) > 0 {
			req.Labels[i] = irma.TranslatedString(maps.Clone(r.Label))
		}
	}
	return req
}

// attributeCon converts c to IRMA's form, grouping attributes by credential
// type in order of first appearance.
func (c Conjunction) attributeCon() irma.AttributeCon {
	con := make(irma.AttributeCon, 0, len(c))
	done := make([]bool, len(c))
	for i := range c {
		if done[i] {
			continue
		}
		cred := irma.NewAttributeTypeIdentifier(c[i].Type).CredentialTypeIdentifier()
		for j := i; j < len(c); j++ {
			id := irma.NewAttributeTypeIdentifier(c[j].Type)
			if done[j] || id.CredentialTypeIdentifier() != cred {
				continue
			}
			done[j] = true
			ar := irma.AttributeRequest{Type: id, NotNull: true}
			if c[j].Value != nil {
				v := *c[j].Value
				ar.Value = &v
			}
			con = append(con, ar)
		}
	}
	return con
}

// clone returns a deep copy of r.
func (r Requirement) clone() Requirement {
	out := Requirement{Label: maps.Clone(r.Label)}
	if r.Options != nil {
		out.Options = make([]Conjunction, len(r.Options))
	}
	for i, c := range r.Options {
		if c == nil {
			continue
		}
		out.Options[i] = make(Conjunction, len(c))
		for j, a := range c {
			out.Options[i][j] = AttributeRequest{Type: a.Type}
			if a.Value != nil {
				v := *a.Value
				out.Options[i][j].Value = &v
			}
		}
	}
	return out
}
