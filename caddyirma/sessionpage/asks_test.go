package sessionpage

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

func demoConf(t *testing.T) *irma.Configuration {
	t.Helper()
	s := testscheme.New(t, "http://127.0.0.1:1/timestamp")
	conf, err := irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.ParseFolder(); err != nil {
		t.Fatal(err)
	}
	return conf
}

// listed renders p and returns the text of its list items and of the
// sentence before them, tags removed.
func listed(t *testing.T, p Page) (intro string, items []string) {
	t.Helper()
	w := httptest.NewRecorder()
	if err := RenderStart(w, 200, p); err != nil {
		t.Fatal(err)
	}
	body := w.Body.String()
	if m := regexp.MustCompile(`<p id="asks">([^<]*)</p>`).FindStringSubmatch(body); m != nil {
		intro = m[1]
	}
	for _, m := range regexp.MustCompile(`<li>([^<]*)`).FindAllStringSubmatch(body, -1) {
		items = append(items, m[1])
	}
	return intro, items
}

// TestPageListsWhatItAsks: the page names the site and lists what the
// session asks, in the visitor's language: the operator's label where it
// has one, else the scheme's names of the attribute, its credential and
// issuer; alternatives joined by "or"; required values; for an issuance,
// the credentials with the values they get; for a signature, the message.
// Everything the operator wrote is escaped.
func TestPageListsWhatItAsks(t *testing.T) {
	conf := demoConf(t)
	id := func(s string) irma.AttributeTypeIdentifier {
		return irma.NewAttributeTypeIdentifier("caddy-demo.gateway." + s)
	}
	yes := "yes"
	login := irma.NewDisclosureRequest()
	login.Disclose = irma.AttributeConDisCon{
		{{{Type: id("person.email")}}, {{Type: id("membership.club")}}},
		{{{Type: id("person.over18"), Value: &yes}}},
		{{{Type: id("person.fullname")}}},
	}
	login.Labels = map[int]irma.TranslatedString{2: {"en": "Your <b>name</b>", "nl": "Uw <b>naam</b>"}}

	for _, tc := range []struct {
		lang, intro string
		items       []string
	}{
		{"en", "example.com asks you to show with the Yivi app:", []string{
			"Email address (Demo person, Caddy IRMA demo issuer), or Club (Demo membership, Caddy IRMA demo issuer)",
			"Over 18: yes (Demo person, Caddy IRMA demo issuer)",
			"Your &lt;b&gt;name&lt;/b&gt;",
		}},
		{"nl", "example.com vraagt u met de Yivi-app te laten zien:", []string{
			"E-mailadres (Demo-persoon, Caddy IRMA-demo-uitgever), of Club (Demo-lidmaatschap, Caddy IRMA-demo-uitgever)",
			"Ouder dan 18: yes (Demo-persoon, Caddy IRMA-demo-uitgever)",
			"Uw &lt;b&gt;naam&lt;/b&gt;",
		}},
	} {
		intro, items := listed(t, Page{Kind: KindLogin, Lang: tc.lang, Site: "example.com", Request: login, Schemes: conf})
		if intro != tc.intro || strings.Join(items, "\n") != strings.Join(tc.items, "\n") {
			t.Errorf("%s: %q\n  %s", tc.lang, intro, strings.Join(items, "\n  "))
		}
	}

	issue := irma.NewIssuanceRequest([]*irma.CredentialRequest{{
		CredentialTypeID: irma.NewCredentialTypeIdentifier("caddy-demo.gateway.membership"),
		Attributes:       map[string]string{"club": "<Chess & Go>", "level": "gold"},
	}})
	issue.Disclose = irma.AttributeConDisCon{{{{Type: id("person.email")}}}}
	intro, items := listed(t, Page{Kind: KindIssue, Lang: "en", Site: "example.com", Request: issue, Schemes: conf})
	want := []string{"Demo membership (Caddy IRMA demo issuer)", "Club: &lt;Chess &amp; Go&gt;", "Level: gold", "Email address (Demo person, Caddy IRMA demo issuer)"}
	if intro != "example.com gives you these cards for your Yivi app:" || strings.Join(items, "\n") != strings.Join(want, "\n") {
		t.Errorf("issuance: %q\n  %s", intro, strings.Join(items, "\n  "))
	}

	sign := irma.NewSignatureRequest("I agree to <all> terms.", id("person.email"))
	w := httptest.NewRecorder()
	if err := RenderStart(w, 200, Page{Kind: KindSign, Lang: "nl", Site: "example.com", Request: sign, Schemes: conf}); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{
		"example.com vraagt u deze verklaring te ondertekenen met de Yivi-app:",
		`<blockquote class="message">I agree to &lt;all&gt; terms.</blockquote>`, "<p>Met:</p>", "<li>E-mailadres (Demo-persoon",
	} {
		if !strings.Contains(w.Body.String(), part) {
			t.Errorf("the signing page lacks %q", part)
		}
	}

	// Without a site, or without what it asks, the page says it in general words.
	if intro, items := listed(t, Page{Kind: KindLogin, Lang: "en", Request: login, Schemes: conf}); intro != "" || len(items) != 0 {
		t.Errorf("without a site: %q %v", intro, items)
	}
	// An attribute the schemes do not know is named by its identifier.
	unknown := irma.NewDisclosureRequest(irma.NewAttributeTypeIdentifier("other.issuer.cred.attr"))
	if _, items := listed(t, Page{Kind: KindLogin, Lang: "en", Site: "example.com", Request: unknown, Schemes: conf}); len(items) != 1 || items[0] != "other.issuer.cred.attr" {
		t.Errorf("an unknown attribute: %v", items)
	}
}

func TestSiteName(t *testing.T) {
	for host, want := range map[string]string{
		"example.com": "example.com", "example.com:8443": "example.com", "[::1]:80": "::1", "127.0.0.1:8080": "127.0.0.1", "": "",
	} {
		if got := SiteName(host); got != want {
			t.Errorf("SiteName(%q) = %q, want %q", host, got, want)
		}
	}
}
