package policy

import (
	"maps"
	"slices"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
)

// Source is what one option of a requirement takes, named as the schemes
// name it: its attributes, and the credential types they come from, with
// their issuers and schemes.
type Source struct {
	// Attributes are the option's attributes, grouped by credential type as
	// in the disclosure request.
	Attributes []AttributeInWords `json:"attributes"`
	// Credentials are the credential types that the attributes come from:
	// a wallet needs one of each.
	Credentials []CredentialInWords `json:"credentials"`
}

// AttributeInWords is an attribute type with its name in the scheme.
type AttributeInWords struct {
	// ID is the attribute type identifier.
	ID string `json:"id"`
	// Name is its name in the scheme, or else its last part.
	Name string `json:"name"`
	// Value is the value it must have; nil: any.
	Value *string `json:"value,omitempty"`
}

// Named is an identifier with its name in the scheme.
type Named struct {
	// ID is the identifier, such as a credential type's.
	ID string `json:"id"`
	// Name is its name in the scheme, or else ID.
	Name string `json:"name"`
}

// CredentialInWords is a credential type with its name, its issuer and
// its scheme.
type CredentialInWords struct {
	Named
	// Issuer is the issuer of the credential type.
	Issuer Named `json:"issuer"`
	// Scheme is the scheme of the issuer.
	Scheme Named `json:"scheme"`
}

// Sources returns what p asks, per requirement and option, with the names
// of conf in language lang (English if a name has no lang, an identifier if
// it has no name). Call Validate first: what conf does not know is named by
// its identifier.
func (p Policy) Sources(conf *irma.Configuration, lang string) [][]Source {
	sources := make([][]Source, 0, len(p.Requirements))
	for _, r := range p.Requirements {
		var options []Source
		for _, c := range r.Options {
			options = append(options, c.source(conf, lang))
		}
		sources = append(sources, options)
	}
	return sources
}

// source returns what c takes.
func (c Conjunction) source(conf *irma.Configuration, lang string) Source {
	var s Source
	for _, ar := range c.attributeCon() {
		if cred := ar.Type.CredentialTypeIdentifier(); len(s.Credentials) == 0 || s.Credentials[len(s.Credentials)-1].ID != cred.String() {
			s.Credentials = append(s.Credentials, credentialInWords(conf, cred, lang))
		}
		a := AttributeInWords{ID: ar.Type.String(), Name: ar.Type.Name(), Value: ar.Value}
		if at := conf.AttributeTypes[ar.Type]; at != nil {
			a.Name = nameOr(at.Name, lang, a.Name)
		}
		s.Attributes = append(s.Attributes, a)
	}
	return s
}

// credentialInWords names credential type id, its issuer and its scheme.
func credentialInWords(conf *irma.Configuration, id irma.CredentialTypeIdentifier, lang string) CredentialInWords {
	issuer := id.IssuerIdentifier()
	scheme := issuer.SchemeManagerIdentifier()
	c := CredentialInWords{
		Named:  Named{ID: id.String(), Name: id.String()},
		Issuer: Named{ID: issuer.String(), Name: issuer.String()},
		Scheme: Named{ID: scheme.String(), Name: scheme.String()},
	}
	if ct := conf.CredentialTypes[id]; ct != nil {
		c.Name = nameOr(ct.Name, lang, c.Name)
	}
	if is := conf.Issuers[issuer]; is != nil {
		c.Issuer.Name = nameOr(is.Name, lang, c.Issuer.Name)
	}
	if sm := conf.SchemeManagers[scheme]; sm != nil {
		c.Scheme.Name = nameOr(sm.Name, lang, c.Scheme.Name)
	}
	return c
}

// SchemesInWords returns the schemes of conf, by identifier, with their
// names in lang (English if a name has no lang).
func SchemesInWords(conf *irma.Configuration, lang string) []Named {
	var schemes []Named
	for id, sm := range conf.SchemeManagers {
		schemes = append(schemes, Named{ID: id.String(), Name: nameOr(sm.Name, lang, id.String())})
	}
	slices.SortFunc(schemes, func(a, b Named) int { return strings.Compare(a.ID, b.ID) })
	return schemes
}

// nameOr returns name in lang, else in English, else in the first
// language in alphabetical order; fallback if name has no text.
func nameOr(name irma.TranslatedString, lang, fallback string) string {
	for _, l := range append([]string{lang, "en"}, slices.Sorted(maps.Keys(name))...) {
		if name[l] != "" {
			return name[l]
		}
	}
	return fallback
}
