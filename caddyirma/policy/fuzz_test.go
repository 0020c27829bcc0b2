package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	irma "github.com/privacybydesign/irmago/irma"
)

// FuzzParseRequirement checks that ParseRequirement never panics, stays within its limits, and
// that whatever it accepts prints back to an expression that parses to the same requirement.
func FuzzParseRequirement(f *testing.F) {
	for _, seed := range []string{
		// valid
		over18 + "=yes",
		email + " or pbdf.sidn-pbdf.email.email",
		fullname + " and " + email + " or pbdf.gemeente.personalData.fullname and pbdf.sidn-pbdf.email.email",
		fullname + `="Alice Demo"`,
		fullname + `="say \"hi\" \\o/ a=b"`,
		fullname + "=Zoë\tand\n" + club + "=C:\\dir",
		fullname + "=\"a\u00a0b\"",
		"  " + email + "  ",
		// invalid
		"",
		"   ",
		"or " + email,
		email + " and",
		email + " or or " + email,
		email + " AND " + fullname,
		"caddy-demo.gateway.person",
		"caddy-demo..person.email",
		over18 + "=",
		over18 + `=""`,
		fullname + `="Alice`,
		fullname + `="a\nb"`,
		fullname + `="Alice"x`,
		fullname + "=a=b",
		email + " " + fullname,
		email + "=\xff",
		strings.Repeat(email+" or ", MaxOptions) + email,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		r, err := ParseRequirement(expr)
		if err != nil {
			if !reflect.DeepEqual(r, Requirement{}) {
				t.Fatalf("ParseRequirement(%q) returned %#v with error %v", expr, r, err)
			}
			return
		}
		if len(r.Options) == 0 || len(r.Options) > MaxOptions || r.Label != nil {
			t.Fatalf("ParseRequirement(%q) = %#v", expr, r)
		}
		for _, c := range r.Options {
			if len(c) == 0 || len(c) > MaxAttributes {
				t.Fatalf("ParseRequirement(%q): option of %d attributes", expr, len(c))
			}
			for _, a := range c {
				if err := checkAttributeID(a.Type); err != nil {
					t.Fatalf("ParseRequirement(%q): id %q: %v", expr, a.Type, err)
				}
				if a.Value != nil && (*a.Value == "" || !utf8.ValidString(*a.Value)) {
					t.Fatalf("ParseRequirement(%q): value %q", expr, *a.Value)
				}
			}
		}
		s := r.String()
		if len(s) > len(expr) {
			t.Fatalf("String() %q is longer than the expression %q", s, expr)
		}
		back, err := ParseRequirement(s)
		if err != nil {
			t.Fatalf("ParseRequirement(%q) of String() of %q: %v", s, expr, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip of %q through %q:\n got %#v\nwant %#v", expr, s, back, r)
		}
	})
}

// FuzzPolicyJSON feeds arbitrary JSON configuration through everything a handler does with a
// policy. Nothing may panic, and a policy that Validate accepts must give a request that irmago
// accepts too.
func FuzzPolicyJSON(f *testing.F) {
	_, conf := loadScheme(f)
	for _, seed := range []string{
		`{"requirements":[{"options":[[{"type":"` + email + `"}]]}]}`,
		`{"requirements":[{"label":{"en":"Adult?","nl":"Volwassen?"},"options":[[{"type":"` + over18 + `","value":"yes"}]]},` +
			`{"options":[[{"type":"` + fullname + `"},{"type":"` + club + `"},{"type":"` + email + `"}],[{"type":"` + level + `","value":"gold"}]]}]}`,
		`{"requirements":[{"options":[[]]}]}`,
		`{"requirements":[{"options":[null]}]}`,
		`{"requirements":[{}]}`,
		`{"requirements":[]}`,
		`{}`,
		`null`,
		`{"requirements":[{"label":{"EN":""},"options":[[{"type":""},{"type":"a.b.c"},{"type":"pbdf.x.y.z","value":""}]]}]}`,
		`{"requirements":[{"options":[[{"type":"` + email + `"},{"type":"` + email + `"}]]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Policy
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		valid := p.Validate(conf) == nil
		req := p.DisclosureRequest()
		if valid {
			if err := req.Validate(); err != nil {
				t.Fatalf("Validate accepted %s, irmago refuses its request: %v", data, err)
			}
			if err := req.Disclose.Validate(conf); err != nil {
				t.Fatalf("Validate accepted %s, irmago refuses its request: %v", data, err)
			}
		}
		_ = p.AttributeTypes()
		for _, r := range p.Requirements {
			_ = r.String()
		}

		// The attributes of every first option, with their required values.
		a := Attributes{}
		for _, r := range p.Requirements {
			if len(r.Options) == 0 {
				continue
			}
			for _, ar := range r.Options[0] {
				v := "x"
				if ar.Value != nil {
					v = *ar.Value
				}
				a[irma.NewAttributeTypeIdentifier(ar.Type)] = v
			}
		}
		for _, attrs := range []Attributes{nil, {}, a} {
			satisfied := p.SatisfiedBy(attrs)
			missing := p.Missing(attrs)
			if satisfied != (len(p.Requirements) > 0 && len(missing.Requirements) == 0) {
				t.Fatalf("policy %s, attributes %v: SatisfiedBy %v but Missing %#v", data, attrs, satisfied, missing)
			}
			if len(missing.Requirements) > 0 && missing.SatisfiedBy(attrs) {
				t.Fatalf("policy %s: Missing(%v) is satisfied by it", data, attrs)
			}
		}
	})
}
