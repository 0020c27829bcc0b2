package policy

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
	"github.com/privacybydesign/irmago/irma/server/irmaserver"
	"github.com/sirupsen/logrus"

	"github.com/caddy-irma/caddy-irma/caddyirma/demoscheme"
	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/testscheme"
)

func TestMain(m *testing.M) {
	irma.Logger.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// loadScheme makes the test scheme and parses it as the gateway does.
func loadScheme(t testing.TB) (*demoscheme.Scheme, *irma.Configuration) {
	t.Helper()
	s := testscheme.New(t, "http://localhost/irma/timestamp")
	conf, err := irma.NewConfiguration(s.SchemesPath, irma.ConfigurationOptions{})
	if err != nil {
		t.Fatalf("irma.NewConfiguration: %v", err)
	}
	t.Cleanup(func() {
		if conf.Scheduler != nil {
			conf.Scheduler.Stop()
		}
	})
	if err := conf.ParseFolder(); err != nil {
		t.Fatalf("ParseFolder: %v", err)
	}
	if len(conf.DisabledSchemeManagers) > 0 {
		t.Fatalf("disabled schemes: %v", conf.DisabledSchemeManagers)
	}
	return s, conf
}

// mustParse parses a policy of one requirement per expression.
func mustParse(t testing.TB, exprs ...string) Policy {
	t.Helper()
	var p Policy
	for _, e := range exprs {
		r, err := ParseRequirement(e)
		if err != nil {
			t.Fatalf("ParseRequirement(%q): %v", e, err)
		}
		p.Requirements = append(p.Requirements, r)
	}
	return p
}

func TestValidate(t *testing.T) {
	_, conf := loadScheme(t)
	labelled := func(label map[string]string, expr string) Policy {
		p := mustParse(t, expr)
		p.Requirements[0].Label = label
		return p
	}
	valid := map[string]Policy{
		"one attribute":           mustParse(t, email),
		"value":                   mustParse(t, over18+"=yes"),
		"alternatives":            mustParse(t, fullname+" and "+email+" or "+club+" and "+level+"=gold"),
		"one non-singleton":       mustParse(t, fullname+" and "+club+" and "+email),
		"several requirements":    mustParse(t, over18+"=yes", email, club+` or `+level),
		"labels":                  labelled(map[string]string{"en": "Your email", "nl": "Uw e-mailadres", "de": "Ihre E-Mail"}, email),
		"most requirements":       {Requirements: repeat(req(Conjunction{attr(email)}), MaxRequirements)},
		"most options":            {Requirements: []Requirement{req(repeat(Conjunction{attr(email)}, MaxOptions)...)}},
		"longest label":           labelled(map[string]string{"en": strings.Repeat("x", MaxLabelLength)}, email),
		"same attribute, options": mustParse(t, email+" or "+email+"=a@example.com"),
	}
	for name, p := range valid {
		t.Run(name, func(t *testing.T) {
			if err := p.Validate(conf); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}

	tests := []struct {
		name string
		p    Policy
		want []string // each in the error
	}{
		{"no requirements", Policy{}, []string{"no requirements"}},
		{"empty requirements", Policy{Requirements: []Requirement{}}, []string{"no requirements"}},
		{"too many requirements", Policy{Requirements: repeat(req(Conjunction{attr(email)}), MaxRequirements+1)}, []string{"33 requirements: at most 32"}},
		{"no options", Policy{Requirements: []Requirement{{}}}, []string{"requirement 1: no options"}},
		{"too many options", Policy{Requirements: []Requirement{req(repeat(Conjunction{attr(email)}, MaxOptions+1)...)}}, []string{"requirement 1: 33 options: at most 32"}},
		{"empty option", Policy{Requirements: []Requirement{req(Conjunction{attr(email)}, Conjunction{})}}, []string{"requirement 1: option 2: empty"}},
		{"nil option", Policy{Requirements: []Requirement{req(nil)}}, []string{"requirement 1: option 1: empty"}},
		{"too many attributes", Policy{Requirements: []Requirement{req(repeat(attr(email), MaxAttributes+1))}}, []string{"33 attributes: at most 32", "named twice"}},
		{"unknown scheme", mustParse(t, "pbdf.sidn-pbdf.email.email"), []string{`requirement 1: option 1: attribute "pbdf.sidn-pbdf.email.email": unknown scheme "pbdf"`}},
		{"unknown issuer", mustParse(t, "caddy-demo.nobody.person.email"), []string{`unknown issuer "nobody" in scheme "caddy-demo"`}},
		{"unknown credential type", mustParse(t, "caddy-demo.gateway.passport.number"), []string{`unknown credential type "passport" of issuer "caddy-demo.gateway"`}},
		{"unknown attribute", mustParse(t, "caddy-demo.gateway.person.age"), []string{`unknown attribute "age" in credential type "caddy-demo.gateway.person"`}},
		{"attribute of another credential", mustParse(t, "caddy-demo.gateway.membership.email"), []string{`unknown attribute "email" in credential type "caddy-demo.gateway.membership"`}},
		{"three-part id", Policy{Requirements: []Requirement{req(Conjunction{attr("caddy-demo.gateway.person")})}}, []string{"want 4 dot-separated parts"}},
		{"malformed id", Policy{Requirements: []Requirement{req(Conjunction{attr("caddy-demo.gateway.person.e mail")})}}, []string{`part 4 holds ' '`}},
		{"empty id", Policy{Requirements: []Requirement{req(Conjunction{attr("")})}}, []string{`attribute "": want 4 dot-separated parts`}},
		{"twice in an option", mustParse(t, email+" and "+fullname+" and "+email+"=a@example.com"), []string{`option 1: attribute "` + email + `": named twice`}},
		{"empty value", Policy{Requirements: []Requirement{req(Conjunction{val(email, "")})}}, []string{"empty required value"}},
		{"label language uppercase", labelled(map[string]string{"EN": "Email"}, email), []string{`requirement 1: label "EN": language must be a two-letter lowercase code`}},
		{"label language three letters", labelled(map[string]string{"eng": "Email"}, email), []string{`label "eng": language`}},
		{"label language empty", labelled(map[string]string{"": "Email"}, email), []string{`label "": language`}},
		{"label empty", labelled(map[string]string{"en": " "}, email), []string{`label "en": empty text`}},
		{"label too long", labelled(map[string]string{"nl": strings.Repeat("x", MaxLabelLength+1)}, email), []string{`label "nl": text of 257 bytes`}},
		{"label control character", labelled(map[string]string{"en": "a\nb"}, email), []string{"control characters"}},
		{"label not UTF-8", labelled(map[string]string{"en": "a\xffb"}, email), []string{"not valid UTF-8"}},
		{
			"all errors at once",
			Policy{Requirements: []Requirement{
				req(Conjunction{attr(email)}),
				{Label: map[string]string{"xx": ""}, Options: []Conjunction{{attr("pbdf.gemeente.personalData.fullname")}, {}, {attr(fullname), attr("x.y.z")}}},
			}},
			[]string{
				`requirement 2: label "xx": empty text`,
				`requirement 2: option 1: attribute "pbdf.gemeente.personalData.fullname": unknown scheme "pbdf"`,
				"requirement 2: option 2: empty",
				`requirement 2: option 3: attribute "x.y.z": want 4`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate(conf)
			if err == nil {
				t.Fatal("Validate accepted the policy")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", got, len(tt.want), err)
			}
		})
	}

	if err := mustParse(t, email).Validate(nil); err == nil {
		t.Error("Validate(nil) accepted the policy")
	}
}

// TestValidateSchemeDetails covers what the test scheme lacks, on changed copies of it.
func TestValidateSchemeDetails(t *testing.T) {
	t.Run("two non-singletons", func(t *testing.T) {
		_, conf := loadScheme(t)
		conf.CredentialTypes[irma.NewCredentialTypeIdentifier("caddy-demo.gateway.person")].IsSingleton = false
		p := mustParse(t, club+" and "+email+" and "+level)
		err := p.Validate(conf)
		want := "credential types caddy-demo.gateway.membership and caddy-demo.gateway.person are both non-singleton"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate: %v, want %q", err, want)
		}
		// irmago agrees.
		if err := p.DisclosureRequest().Disclose.Validate(conf); err == nil {
			t.Error("irmago accepted two non-singletons in one option")
		}
	})
	t.Run("revocation attribute", func(t *testing.T) {
		_, conf := loadScheme(t)
		conf.AttributeTypes[irma.NewAttributeTypeIdentifier(email)].RevocationAttribute = true
		err := mustParse(t, email).Validate(conf)
		if err == nil || !strings.Contains(err.Error(), "the revocation attribute of credential type \"caddy-demo.gateway.person\" cannot be disclosed") {
			t.Fatalf("Validate: %v", err)
		}
	})
	t.Run("disabled scheme", func(t *testing.T) {
		_, conf := loadScheme(t)
		id := irma.NewSchemeManagerIdentifier("caddy-demo")
		delete(conf.SchemeManagers, id)
		conf.DisabledSchemeManagers[id] = &irma.SchemeManagerError{Scheme: "caddy-demo", Status: irma.SchemeManagerStatusInvalidSignature, Err: errors.New("bad signature")}
		err := mustParse(t, email).Validate(conf)
		if err == nil || !strings.Contains(err.Error(), `scheme "caddy-demo" is disabled`) || !strings.Contains(err.Error(), "bad signature") {
			t.Fatalf("Validate: %v", err)
		}
	})
}

func TestDisclosureRequest(t *testing.T) {
	p := mustParse(t,
		fullname+" and "+club+" and "+email+"=alice@example.com or "+level+"=gold",
		over18+"=yes",
	)
	p.Requirements[0].Label = map[string]string{"en": "Who are you?", "nl": "Wie bent u?"}
	got := p.DisclosureRequest()

	ptr := func(s string) *string { return &s }
	id := irma.NewAttributeTypeIdentifier
	want := &irma.DisclosureRequest{
		BaseRequest: irma.BaseRequest{LDContext: irma.LDContextDisclosureRequest},
		Disclose: irma.AttributeConDisCon{
			{
				// The person attributes are grouped, as irmago requires.
				{{Type: id(fullname), NotNull: true}, {Type: id(email), Value: ptr("alice@example.com"), NotNull: true}, {Type: id(club), NotNull: true}},
				{{Type: id(level), Value: ptr("gold"), NotNull: true}},
			},
			{{{Type: id(over18), Value: ptr("yes"), NotNull: true}}},
		},
		Labels: map[int]irma.TranslatedString{0: {"en": "Who are you?", "nl": "Wie bent u?"}},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("DisclosureRequest()\n got %s\nwant %s", g, w)
	}

	// The request shares nothing with the policy.
	*got.Disclose[0][0][1].Value = "mallory@example.com"
	got.Labels[0]["en"] = "changed"
	if v := *p.Requirements[0].Options[0][2].Value; v != "alice@example.com" {
		t.Errorf("changing the request changed the policy's value to %q", v)
	}
	if l := p.Requirements[0].Label["en"]; l != "Who are you?" {
		t.Errorf("changing the request changed the policy's label to %q", l)
	}

	if err := (Policy{}).DisclosureRequest().Validate(); err == nil {
		t.Error("irmago accepted the request of an empty policy")
	}
}

// TestIRMAServerAcceptsRequests has irmago's own server start sessions for the requests of valid
// policies: the shape is what irmago and the Yivi app expect.
func TestIRMAServerAcceptsRequests(t *testing.T) {
	s, conf := loadScheme(t)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv, err := irmaserver.New(&server.Configuration{
		URL:                   "http://localhost/irma/",
		SchemesPath:           s.SchemesPath,
		IssuerPrivateKeysPath: s.PrivateKeysPath,
		RevocationSettings:    testscheme.RevocationSettings(s),
		DisableSchemesUpdate:  true,
		Logger:                quiet,
	})
	if err != nil {
		t.Fatalf("irmaserver.New: %v", err)
	}
	t.Cleanup(srv.Stop)

	policies := map[string]Policy{
		"one attribute":   mustParse(t, email),
		"value":           mustParse(t, over18+"=yes"),
		"quoted value":    mustParse(t, fullname+`="Alice \"Al\" Demo"`),
		"alternatives":    mustParse(t, fullname+" and "+email+" or "+club+" and "+level+"=gold"),
		"mixed, grouped":  mustParse(t, fullname+" and "+club+" and "+email),
		"several":         mustParse(t, over18+"=yes", email+" or "+club, level),
		"most options":    {Requirements: []Requirement{req(repeat(Conjunction{attr(email)}, MaxOptions)...)}},
		"labels":          {Requirements: []Requirement{{Label: map[string]string{"en": "Email", "nl": "E-mail"}, Options: []Conjunction{{attr(email)}}}, req(Conjunction{attr(club)})}},
		"label on second": {Requirements: []Requirement{req(Conjunction{attr(club)}), {Label: map[string]string{"en": "Email"}, Options: []Conjunction{{attr(email)}}}}},
	}
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			if err := p.Validate(conf); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			req := p.DisclosureRequest()
			if err := req.Validate(); err != nil {
				t.Fatalf("irma DisclosureRequest.Validate: %v", err)
			}
			if err := req.Disclose.Validate(conf); err != nil {
				t.Fatalf("irma AttributeConDisCon.Validate: %v", err)
			}
			// What a wallet does with the request it receives.
			b, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := irma.UnmarshalValidate(b, new(irma.DisclosureRequest)); err != nil {
				t.Fatalf("irma.UnmarshalValidate of %s: %v", b, err)
			}
			qr, token, _, err := srv.StartSession(req, nil, "")
			if err != nil {
				t.Fatalf("StartSession: %v", err)
			}
			if qr == nil || token == "" {
				t.Fatalf("StartSession: qr %v, token %q", qr, token)
			}
			if err := srv.CancelSession(token); err != nil {
				t.Errorf("CancelSession: %v", err)
			}
		})
	}

	// Without the grouping that DisclosureRequest does, irmago's server still starts the session,
	// but a wallet refuses the request (irmaclient validates it as below).
	ungrouped := irma.NewDisclosureRequest()
	ungrouped.Disclose = irma.AttributeConDisCon{{{
		{Type: irma.NewAttributeTypeIdentifier(fullname)},
		{Type: irma.NewAttributeTypeIdentifier(club)},
		{Type: irma.NewAttributeTypeIdentifier(email)},
	}}}
	if err := ungrouped.Validate(); err == nil {
		t.Error("irmago accepted an option with the attributes of one credential type apart")
	}
}

func TestAttributeTypes(t *testing.T) {
	p := mustParse(t, email+" or "+fullname+" and "+email, club+" and "+over18+"=yes")
	got := p.AttributeTypes()
	want := []irma.AttributeTypeIdentifier{
		irma.NewAttributeTypeIdentifier(email),
		irma.NewAttributeTypeIdentifier(fullname),
		irma.NewAttributeTypeIdentifier(club),
		irma.NewAttributeTypeIdentifier(over18),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AttributeTypes() = %v, want %v", got, want)
	}
	if got := (Policy{}).AttributeTypes(); len(got) != 0 {
		t.Errorf("AttributeTypes() of an empty policy = %v", got)
	}
}

// TestPolicyJSON checks the JSON form that Caddy's config carries.
func TestPolicyJSON(t *testing.T) {
	p := mustParse(t, email+" or "+over18+"=yes")
	p.Requirements[0].Label = map[string]string{"en": "Email"}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"requirements":[{"label":{"en":"Email"},"options":[[{"type":"` + email + `"}],[{"type":"` + over18 + `","value":"yes"}]]}]}`
	if string(b) != want {
		t.Fatalf("json.Marshal = %s\nwant %s", b, want)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("JSON round trip: got %#v, want %#v", back, p)
	}
}
