package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	irma "github.com/privacybydesign/irmago/irma"
)

func TestRevocationOption(t *testing.T) {
	_, conf := loadScheme(t)
	var p Policy
	if err := json.Unmarshal([]byte(`{"requirements":[{"options":[[{"type":"caddy-demo.gateway.staff.role"}],[{"type":"caddy-demo.gateway.person.email"}]]}],"revocation":{"max_age":"5m"}}`), &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(conf); err != nil {
		t.Fatal(err)
	}
	if got := p.RevocationMaxAge(); got != 5*time.Minute {
		t.Fatalf("max age %s", got)
	}
	staff := irma.NewCredentialTypeIdentifier("caddy-demo.gateway.staff")
	if got := p.RevocableTypes(conf); len(got) != 1 || got[0] != staff {
		t.Fatalf("revocable types %v", got)
	}
	if m := p.Missing(Attributes{}); m.Revocation != p.Revocation {
		t.Fatal("Missing drops the revocation option")
	}
	req := p.DisclosureRequest()
	AskNonRevocation(req, p.RevocableTypes(conf))
	if len(req.Revocation) != 1 || req.Revocation[staff] == nil {
		t.Fatalf("revocation asked: %v", req.Revocation)
	}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil || !strings.Contains(string(b), `"max_age":"5m0s"`) {
		t.Fatalf("%s %v", b, err)
	}
	var n Policy
	if err := json.Unmarshal([]byte(`{"revocation":{"max_age":60000000000}}`), &n); err != nil || n.RevocationMaxAge() != time.Minute {
		t.Fatalf("nanoseconds: %v %v", n.RevocationMaxAge(), err)
	}
	if (Policy{Revocation: &Revocation{}}).RevocationMaxAge() != DefaultRevocationMaxAge || (Policy{}).RevocationMaxAge() != 0 {
		t.Fatal("defaults")
	}
	for body, want := range map[string]string{
		`{"requirements":[{"options":[[{"type":"caddy-demo.gateway.person.email"}]]}],"revocation":{}}`:              "none of the policy's credential types supports revocation",
		`{"requirements":[{"options":[[{"type":"caddy-demo.gateway.staff.role"}]]}],"revocation":{"max_age":"10s"}}`: "at least 1m",
	} {
		var bad Policy
		if err := json.Unmarshal([]byte(body), &bad); err != nil {
			t.Fatal(err)
		}
		if err := bad.Validate(conf); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"revocation":{"max_age":"soon"}}`), &n); err == nil {
		t.Error("a max age of soon")
	}
}
