package demoscheme

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path"
)

// The identifiers in the scheme: attribute <SchemeID>.gateway.person.email and so on.
const (
	CredentialPerson     = "person"
	CredentialMembership = "membership"
	// CredentialStaff is the revocable credential type: the gateway, as its
	// revocation authority, can revoke one it issued by its revocation key.
	CredentialStaff = "staff"

	AttributeFullname = "fullname"
	AttributeEmail    = "email"
	AttributeOver18   = "over18"
	AttributeClub     = "club"
	AttributeLevel    = "level"
	AttributeName     = "name"
	AttributeRole     = "role"
)

// translated is an IRMA translated string as it appears in scheme XML.
type translated struct {
	EN string `xml:"en"`
	NL string `xml:"nl"`
}

var languages = []string{"en", "nl"}

// The XML shapes below carry exactly the elements irmago reads (irma/descriptions.go), in the
// versions it requires (scheme 7, issuer and credential type 4).

type schemeXML struct {
	XMLName         xml.Name   `xml:"SchemeManager"`
	Version         int        `xml:"version,attr"`
	ID              string     `xml:"Id"`
	URL             string     `xml:"Url"`
	Demo            bool       `xml:"Demo"`
	Name            translated `xml:"Name"`
	Description     translated `xml:"Description"`
	TimestampServer string     `xml:"TimestampServer"`
	// irmago's field is tagged lowercase "contact"; its own test schemes write <Contact>,
	// which it silently ignores.
	Contact   string   `xml:"contact"`
	Languages []string `xml:"Languages>Language"`
}

type issuerXML struct {
	XMLName        xml.Name   `xml:"Issuer"`
	Version        int        `xml:"version,attr"`
	ID             string     `xml:"ID"`
	Name           translated `xml:"Name"`
	SchemeManager  string     `xml:"SchemeManager"`
	ContactAddress string     `xml:"ContactAddress"`
	ContactEMail   string     `xml:"ContactEMail,omitempty"`
	Languages      []string   `xml:"Languages>Language"`
}

type credentialXML struct {
	XMLName       xml.Name       `xml:"IssueSpecification"`
	Version       int            `xml:"version,attr"`
	Name          translated     `xml:"Name"`
	Singleton     bool           `xml:"ShouldBeSingleton"`
	SchemeManager string         `xml:"SchemeManager"`
	IssuerID      string         `xml:"IssuerID"`
	CredentialID  string         `xml:"CredentialID"`
	Description   translated     `xml:"Description"`
	Attributes    []attributeXML `xml:"Attributes>Attribute"`
	// RevocationServers are where wallets and verifiers fetch revocation
	// updates; irmago wants them exactly when an attribute is the
	// revocation attribute.
	RevocationServers []string `xml:"RevocationServers>RevocationServer,omitempty"`
	Languages         []string `xml:"Languages>Language"`
}

// attributeXML is an attribute type; the revocation attribute is one with only
// revocation="true" (irmago refuses it with an id).
type attributeXML struct {
	ID          string      `xml:"id,attr,omitempty"`
	Revocation  bool        `xml:"revocation,attr,omitempty"`
	Name        *translated `xml:"Name"`
	Description *translated `xml:"Description"`
}

type credentialSpec struct {
	id          string
	name        translated
	description translated
	singleton   bool
	logo        color.RGBA
	attributes  []attributeXML
	// revocable: names the revocation server, and has the revocation
	// attribute, which irmaserver fills in at issuance and is never disclosed.
	revocable bool
}

// credentials is the scheme's content. The names say "demo" so nobody mistakes these
// credentials for real ones; they are self-asserted test data.
var credentials = []credentialSpec{
	{
		id:          CredentialPerson,
		name:        translated{"Demo person", "Demo-persoon"},
		description: translated{"Test personal data issued by a Caddy IRMA demo gateway. Nobody has checked it.", "Testpersoonsgegevens uitgegeven door een Caddy IRMA-demogateway. Niemand heeft ze gecontroleerd."},
		singleton:   true,
		logo:        color.RGBA{0x1f, 0x6f, 0xb2, 0xff},
		attributes: []attributeXML{
			{AttributeFullname, false, &translated{"Full name", "Volledige naam"}, &translated{"Your full name", "Uw volledige naam"}},
			{AttributeEmail, false, &translated{"Email address", "E-mailadres"}, &translated{"Your email address", "Uw e-mailadres"}},
			{AttributeOver18, false, &translated{"Over 18", "Ouder dan 18"}, &translated{"Whether you are 18 or older: yes or no", "Of u 18 jaar of ouder bent: yes of no"}},
		},
	},
	{
		id:          CredentialMembership,
		name:        translated{"Demo membership", "Demo-lidmaatschap"},
		description: translated{"A test membership issued by a Caddy IRMA demo gateway.", "Een testlidmaatschap uitgegeven door een Caddy IRMA-demogateway."},
		logo:        color.RGBA{0xd9, 0x77, 0x06, 0xff},
		attributes: []attributeXML{
			{AttributeClub, false, &translated{"Club", "Club"}, &translated{"The club you are a member of", "De club waarvan u lid bent"}},
			{AttributeLevel, false, &translated{"Level", "Niveau"}, &translated{"Your membership level, for example gold", "Uw lidmaatschapsniveau, bijvoorbeeld goud"}},
		},
	},
	{
		id:          CredentialStaff,
		name:        translated{"Demo staff pass", "Demo-personeelspas"},
		description: translated{"A revocable test staff pass issued by a Caddy IRMA demo gateway, which can revoke it.", "Een intrekbare testpersoneelspas uitgegeven door een Caddy IRMA-demogateway, die hem kan intrekken."},
		logo:        color.RGBA{0x7c, 0x3a, 0xed, 0xff},
		revocable:   true,
		attributes: []attributeXML{
			{AttributeName, false, &translated{"Name", "Naam"}, &translated{"The name on the pass", "De naam op de pas"}},
			{AttributeRole, false, &translated{"Role", "Rol"}, &translated{"Your role, for example admin", "Uw rol, bijvoorbeeld admin"}},
			{Revocation: true},
		},
	},
}

// maxAttributes is the most attributes of any credential type; an issuer key needs two more
// bases than that (the secret key and the metadata attribute).
func maxAttributes() int {
	n := 0
	for _, c := range credentials {
		n = max(n, len(c.attributes))
	}
	return n
}

// renderFiles returns the scheme's signed content files (everything but timestamp, index,
// index.sig and pk.pem), keyed by slash-separated path relative to the scheme folder. The output
// depends only on its arguments, so comparing it with the disk tells whether a scheme is current.
func renderFiles(id, schemeURL, timestampServer, revocationServer string, publicKeyXML []byte) (map[string][]byte, error) {
	files := make(map[string][]byte)
	add := func(name string, v any) error {
		b, err := xml.MarshalIndent(v, "", "\t")
		if err != nil {
			return fmt.Errorf("render %s: %w", name, err)
		}
		files[name] = append(append([]byte(xml.Header), b...), '\n')
		return nil
	}

	// Demo stays false. irmago's <Demo> means "the private keys are public": for a demo scheme,
	// every scheme update (an IRMA server with updates on, or a wallet) also tries to download
	// sk.pem and each issuer's PrivateKeys/<n>.xml from <Url> (schemes.go,
	// downloadDemoPrivateKeys). It would also skip the safe-prime check of issuer private keys
	// and demand "Demo " before every name. We want none of that; being unofficial shows in the
	// names instead.
	if err := add("description.xml", schemeXML{
		Version:         7,
		ID:              id,
		URL:             schemeURL,
		Name:            translated{"Caddy IRMA demo scheme", "Caddy IRMA-demoschema"},
		Description:     translated{"A local scheme generated by a caddy-irma gateway for demonstrations and tests. Its credentials prove nothing.", "Een lokaal schema, gemaakt door een caddy-irma-gateway voor demonstraties en tests. De credentials bewijzen niets."},
		TimestampServer: timestampServer,
		Contact:         contactURL,
		Languages:       languages,
	}); err != nil {
		return nil, err
	}

	iss := IssuerID
	if err := add(path.Join(iss, "description.xml"), issuerXML{
		Version:        4,
		ID:             iss,
		Name:           translated{"Caddy IRMA demo issuer", "Caddy IRMA-demo-uitgever"},
		SchemeManager:  id,
		ContactAddress: contactURL,
		Languages:      languages,
	}); err != nil {
		return nil, err
	}
	logo, err := renderLogo(color.RGBA{0x0f, 0x76, 0x6e, 0xff})
	if err != nil {
		return nil, err
	}
	files[path.Join(iss, "logo.png")] = logo
	files[path.Join(iss, "PublicKeys", fmt.Sprintf("%d.xml", keyCounter))] = publicKeyXML

	for _, c := range credentials {
		dir := path.Join(iss, "Issues", c.id)
		var revocationServers []string
		if c.revocable {
			revocationServers = []string{revocationServer}
		}
		if err := add(path.Join(dir, "description.xml"), credentialXML{
			Version:           4,
			Name:              c.name,
			Singleton:         c.singleton,
			SchemeManager:     id,
			IssuerID:          iss,
			CredentialID:      c.id,
			Description:       c.description,
			Attributes:        c.attributes,
			Languages:         languages,
			RevocationServers: revocationServers,
		}); err != nil {
			return nil, err
		}
		logo, err := renderLogo(c.logo)
		if err != nil {
			return nil, err
		}
		files[path.Join(dir, "logo.png")] = logo
	}
	return files, nil
}

// renderLogo draws a plain square. Wallets show a logo per issuer and credential type, and
// irmago warns for each missing one; a deterministic image keeps the scheme byte-stable.
func renderLogo(c color.RGBA) ([]byte, error) {
	const size = 64
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("render logo: %w", err)
	}
	return buf.Bytes(), nil
}
