package policy

import (
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
)

// TestSourcesWithoutScheme: what the schemes do not name is named by its
// identifier; attributes are grouped by credential type, as in the
// disclosure request.
func TestSourcesWithoutScheme(t *testing.T) {
	r, err := ParseRequirement("a.b.c.d=1 and a.b.x.y and a.b.c.e or a.b.x.y")
	if err != nil {
		t.Fatal(err)
	}
	sources := Policy{Requirements: []Requirement{r}}.Sources(&irma.Configuration{}, "en")
	if len(sources) != 1 || len(sources[0]) != 2 {
		t.Fatalf("sources %+v: want 1 requirement of 2 options", sources)
	}
	first := sources[0][0]
	var got []string
	for _, a := range first.Attributes {
		got = append(got, a.Name)
	}
	if len(got) != 3 || got[0] != "d" || got[1] != "e" || got[2] != "y" || *first.Attributes[0].Value != "1" {
		t.Errorf("option 1: attributes %v", got)
	}
	if c := first.Credentials; len(c) != 2 || c[0].ID != "a.b.c" || c[1].Name != "a.b.x" || c[1].Issuer.ID != "a.b" || c[1].Scheme.Name != "a" {
		t.Errorf("option 1: credentials %+v", c)
	}
}
