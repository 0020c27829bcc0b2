package sessionpage

import (
	"fmt"
	"strings"

	irma "github.com/privacybydesign/irmago/irma"
)

// Asks is what a session asks of the visitor and gives them, for the page
// to say before the Yivi app does: the items to disclose, the credentials
// to receive, the message to sign. It holds the operator's words (labels,
// required values, issued values, the message) and the scheme's names,
// never a value of the visitor's.
type Asks struct {
	// Disclose are the items to show, each satisfied by any one of its
	// options.
	Disclose []AskItem
	// Issue are the credentials the visitor receives.
	Issue []AskCredential
	// Message is the statement to sign ("" for none).
	Message string
}

// AskItem is one item to disclose: the operator's label, if it has one,
// else its options.
type AskItem struct {
	Label   irma.TranslatedString
	Options [][]AskAttribute
}

// AskAttribute is one attribute, with the value it must have (disclosure)
// or will have (issuance), if any.
type AskAttribute struct {
	Name, Credential, Issuer irma.TranslatedString
	Value                    *string
}

// AskCredential is a credential to be issued.
type AskCredential struct {
	Name, Issuer irma.TranslatedString
	Attributes   []AskAttribute
}

// DescribeRequest says what req asks in the words of the schemes in conf:
// a disclosure, a signature or an issuance request, as the gateway starts
// it. Attributes that conf does not know are named by their identifier.
func DescribeRequest(conf *irma.Configuration, req irma.SessionRequest) *Asks {
	a := &Asks{}
	if req == nil {
		return a
	}
	disclosure := req.Disclosure()
	for i, discon := range disclosure.Disclose {
		item := AskItem{Label: disclosure.Labels[i]}
		for _, con := range discon {
			var option []AskAttribute
			for _, attr := range con {
				ask := describeAttribute(conf, attr.Type)
				if attr.Value != nil {
					v := *attr.Value
					ask.Value = &v
				}
				option = append(option, ask)
			}
			item.Options = append(item.Options, option)
		}
		a.Disclose = append(a.Disclose, item)
	}
	switch r := req.(type) {
	case *irma.SignatureRequest:
		a.Message = r.Message
	case *irma.IssuanceRequest:
		for _, cred := range r.Credentials {
			a.Issue = append(a.Issue, describeCredential(conf, cred))
		}
	}
	return a
}

func describeCredential(conf *irma.Configuration, cred *irma.CredentialRequest) AskCredential {
	id := cred.CredentialTypeID
	c := AskCredential{Name: named(id.String())}
	if conf != nil {
		if ct := conf.CredentialTypes[id]; ct != nil {
			c.Name = ct.Name
			for _, at := range ct.AttributeTypes {
				if at.RandomBlind || at.RevocationAttribute {
					continue
				}
				v, ok := cred.Attributes[at.ID]
				if !ok {
					continue
				}
				attr := AskAttribute{Name: at.Name}
				attr.Value = &v
				c.Attributes = append(c.Attributes, attr)
			}
		}
		if iss := conf.Issuers[id.IssuerIdentifier()]; iss != nil {
			c.Issuer = iss.Name
		}
	}
	return c
}

func describeAttribute(conf *irma.Configuration, id irma.AttributeTypeIdentifier) AskAttribute {
	a := AskAttribute{Name: named(id.String())}
	if conf == nil {
		return a
	}
	if at := conf.AttributeTypes[id]; at != nil {
		a.Name = at.Name
	} else if id.IsCredential() {
		a.Name = nil // the credential itself: its name says it
	}
	cred := id.CredentialTypeIdentifier()
	if id.IsCredential() {
		cred = irma.NewCredentialTypeIdentifier(id.String())
	}
	if ct := conf.CredentialTypes[cred]; ct != nil {
		a.Credential = ct.Name
		if a.Name == nil {
			a.Name = ct.Name
		}
	}
	if iss := conf.Issuers[cred.IssuerIdentifier()]; iss != nil {
		a.Issuer = iss.Name
	}
	if a.Name == nil {
		a.Name = named(id.String())
	}
	return a
}

// named is a name in no language but the identifier's.
func named(id string) irma.TranslatedString { return irma.TranslatedString{"en": id} }

// in returns s in lang, else in English, else in any language it has.
func in(s irma.TranslatedString, lang string) string {
	if v := s[lang]; v != "" {
		return v
	}
	if v := s["en"]; v != "" {
		return v
	}
	for _, v := range s {
		return v
	}
	return ""
}

// askLine is one item of the page's list, in one language.
type askLine struct {
	Text   string   // the item: its label, or its options
	Detail []string // for an issued credential: its attributes and values
}

// ItemWords is an item to disclose in words: as the page lists it, and
// each of its options.
type ItemWords struct {
	// Text is the line of the page: the item's label, or else its options.
	Text string
	// Options are the options, each its attributes with their credential
	// and issuer.
	Options []string
}

// DiscloseWords returns the items to disclose as the page lists them in
// lang (English if the page has no lang).
func (a *Asks) DiscloseWords(lang string) []ItemWords {
	lang, text := pageText(lang, "common")
	items := make([]ItemWords, 0, len(a.Disclose))
	for _, item := range a.Disclose {
		var w ItemWords
		for _, option := range item.Options {
			var attrs []string
			for _, attr := range option {
				attrs = append(attrs, attr.describe(lang, true))
			}
			w.Options = append(w.Options, strings.Join(attrs, ", "))
		}
		w.Text = strings.Join(w.Options, text["asksor"])
		if label := in(item.Label, lang); label != "" {
			w.Text = label
		}
		items = append(items, w)
	}
	return items
}

// lines renders a in lang for the page.
func (a *Asks) lines(lang string) (disclose, issue []askLine) {
	for _, item := range a.DiscloseWords(lang) {
		disclose = append(disclose, askLine{Text: item.Text})
	}
	for _, cred := range a.Issue {
		line := askLine{Text: in(cred.Name, lang)}
		if issuer := in(cred.Issuer, lang); issuer != "" {
			line.Text = fmt.Sprintf("%s (%s)", line.Text, issuer)
		}
		for _, attr := range cred.Attributes {
			line.Detail = append(line.Detail, attr.describe(lang, false))
		}
		issue = append(issue, line)
	}
	return disclose, issue
}

// describe is the attribute in words: its name, the value it must have
// or gets, and (withSource) its credential and issuer.
func (a AskAttribute) describe(lang string, withSource bool) string {
	s := in(a.Name, lang)
	if a.Value != nil {
		s += ": " + *a.Value
	}
	if !withSource {
		return s
	}
	var source []string
	for _, name := range []irma.TranslatedString{a.Credential, a.Issuer} {
		if v := in(name, lang); v != "" && v != in(a.Name, lang) {
			source = append(source, v)
		}
	}
	if len(source) > 0 {
		s += " (" + strings.Join(source, ", ") + ")"
	}
	return s
}
