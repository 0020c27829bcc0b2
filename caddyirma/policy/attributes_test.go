package policy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	irma "github.com/privacybydesign/irmago/irma"
	"github.com/privacybydesign/irmago/irma/server"
)

// disclosed builds a DisclosedAttribute as irmago reports it.
func disclosed(id string, value *string, status irma.AttributeProofStatus) *irma.DisclosedAttribute {
	return &irma.DisclosedAttribute{Identifier: irma.NewAttributeTypeIdentifier(id), RawValue: value, Status: status}
}

func present(id, value string) *irma.DisclosedAttribute {
	return disclosed(id, &value, irma.AttributeProofStatusPresent)
}

// done returns a successful disclosure result with the given items.
func done(items ...[]*irma.DisclosedAttribute) *server.SessionResult {
	return &server.SessionResult{
		Token:       "token",
		Status:      irma.ServerStatusDone,
		Type:        irma.ActionDisclosing,
		ProofStatus: irma.ProofStatusValid,
		Disclosed:   items,
	}
}

// with returns done(items...) changed by f.
func with(f func(*server.SessionResult), items ...[]*irma.DisclosedAttribute) *server.SessionResult {
	res := done(items...)
	f(res)
	return res
}

// attrs builds Attributes from id, value pairs.
func attrs(kv ...string) Attributes {
	a := Attributes{}
	for i := 0; i < len(kv); i += 2 {
		a[irma.NewAttributeTypeIdentifier(kv[i])] = kv[i+1]
	}
	return a
}

func TestFromResult(t *testing.T) {
	alice := "alice@example.com"
	item := []*irma.DisclosedAttribute{present(email, alice)}
	valid := []struct {
		name string
		res  *server.SessionResult
		want Attributes
	}{
		{"one", done(item), attrs(email, alice)},
		{"several items", done(
			[]*irma.DisclosedAttribute{present(fullname, "Alice Demo"), present(email, alice)},
			[]*irma.DisclosedAttribute{present(over18, "yes")},
		), attrs(fullname, "Alice Demo", email, alice, over18, "yes")},
		{"empty value", done([]*irma.DisclosedAttribute{present(club, "")}), attrs(club, "")},
		{"NULL optional skipped", done(item, []*irma.DisclosedAttribute{disclosed(club, nil, irma.AttributeProofStatusNull)}), attrs(email, alice)},
		{"same value twice", done(item, []*irma.DisclosedAttribute{present(email, alice)}), attrs(email, alice)},
		{"empty item", done(item, nil), attrs(email, alice)},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromResult(tt.res)
			if err != nil {
				t.Fatalf("FromResult: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("FromResult = %v, want %v", got, tt.want)
			}
		})
	}

	invalid := []struct {
		name string
		res  *server.SessionResult
		want string
	}{
		{"nil", nil, "no session result"},
		{"initialized", with(func(r *server.SessionResult) { r.Status = irma.ServerStatusInitialized; r.ProofStatus = "" }, item), `session status "INITIALIZED"`},
		{"connected", with(func(r *server.SessionResult) { r.Status = irma.ServerStatusConnected }, item), `session status "CONNECTED"`},
		{"cancelled", with(func(r *server.SessionResult) { r.Status = irma.ServerStatusCancelled }, item), `session status "CANCELLED"`},
		{"timeout", with(func(r *server.SessionResult) { r.Status = irma.ServerStatusTimeout }, item), `session status "TIMEOUT"`},
		{"no status", with(func(r *server.SessionResult) { r.Status = "" }, item), `session status ""`},
		{"error", with(func(r *server.SessionResult) { r.Err = &irma.RemoteError{ErrorName: "SOMETHING"} }, item), "session failed: SOMETHING"},
		{"signing", with(func(r *server.SessionResult) { r.Type = irma.ActionSigning }, item), `session type "signing"`},
		{"issuing", with(func(r *server.SessionResult) { r.Type = irma.ActionIssuing }, item), `session type "issuing"`},
		{"no type", with(func(r *server.SessionResult) { r.Type = "" }, item), `session type ""`},
		{"invalid proof", with(func(r *server.SessionResult) { r.ProofStatus = irma.ProofStatusInvalid }, item), `proof status "INVALID"`},
		{"expired", with(func(r *server.SessionResult) { r.ProofStatus = irma.ProofStatusExpired }, item), `proof status "EXPIRED"`},
		{"missing attributes", with(func(r *server.SessionResult) { r.ProofStatus = irma.ProofStatusMissingAttributes }, item), `proof status "MISSING_ATTRIBUTES"`},
		{"unmatched request", with(func(r *server.SessionResult) { r.ProofStatus = irma.ProofStatusUnmatchedRequest }, item), `proof status "UNMATCHED_REQUEST"`},
		{"no proof status", with(func(r *server.SessionResult) { r.ProofStatus = "" }, item), `proof status ""`},
		{"nothing disclosed", done(), "no attributes disclosed"},
		{"only NULL", done([]*irma.DisclosedAttribute{disclosed(club, nil, irma.AttributeProofStatusNull)}), "no attributes disclosed"},
		{"nil attribute", done(item, []*irma.DisclosedAttribute{nil}), "disclosed item 2, attribute 1: missing"},
		{"extra", done(item, []*irma.DisclosedAttribute{disclosed(club, new("x"), irma.AttributeProofStatusExtra)}), `status "EXTRA": want "PRESENT"`},
		{"no attribute status", done([]*irma.DisclosedAttribute{disclosed(email, new("x"), "")}), `status "": want "PRESENT"`},
		{"present without value", done([]*irma.DisclosedAttribute{disclosed(email, nil, irma.AttributeProofStatusPresent)}), "status PRESENT without a value"},
		{"NULL with value", done([]*irma.DisclosedAttribute{disclosed(email, new("x"), irma.AttributeProofStatusNull)}), "status NULL with a value"},
		{"credential, not attribute", done([]*irma.DisclosedAttribute{present("caddy-demo.gateway.person", "present")}), "want 4 dot-separated parts"},
		{"malformed id", done([]*irma.DisclosedAttribute{present("caddy-demo.gateway.person.e mail", "x")}), `part 4 holds ' '`},
		{"conflicting duplicates", done(item, []*irma.DisclosedAttribute{present(email, "mallory@example.com")}), "disclosed twice with different values"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromResult(tt.res)
			if err == nil {
				t.Fatalf("FromResult = %v, want an error", got)
			}
			if got != nil {
				t.Errorf("FromResult returned %v with its error", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "mallory") || strings.Contains(err.Error(), "alice") {
				t.Errorf("error %q holds an attribute value", err)
			}
		})
	}
}

func TestSatisfiedByAndMissing(t *testing.T) {
	adult := over18 + "=yes"
	gold := level + "=gold"
	contact := fullname + " and " + email + " or " + club
	tests := []struct {
		name    string
		p       Policy
		a       Attributes
		missing []int // indices of the requirements still missing
	}{
		{"one, present", mustParse(t, email), attrs(email, "a@example.com"), nil},
		{"one, absent", mustParse(t, email), attrs(fullname, "Alice"), []int{0}},
		{"one, nothing", mustParse(t, email), nil, []int{0}},
		{"value right", mustParse(t, adult), attrs(over18, "yes"), nil},
		{"value wrong", mustParse(t, adult), attrs(over18, "no"), []int{0}},
		{"value differs in case", mustParse(t, adult), attrs(over18, "Yes"), []int{0}},
		{"value differs in space", mustParse(t, adult), attrs(over18, "yes "), []int{0}},
		{"value empty", mustParse(t, adult), attrs(over18, ""), []int{0}},
		{"quoted value right", mustParse(t, fullname+`="Alice Demo"`), attrs(fullname, "Alice Demo"), nil},
		{"any value, even empty", mustParse(t, club), attrs(club, ""), nil},
		{"first alternative", mustParse(t, contact), attrs(fullname, "Alice", email, "a@example.com"), nil},
		{"second alternative", mustParse(t, contact), attrs(club, "Caddy"), nil},
		{"half of a conjunction", mustParse(t, contact), attrs(fullname, "Alice"), []int{0}},
		{"value in an alternative", mustParse(t, gold+" or "+club+"=Caddy"), attrs(level, "silver", club, "Caddy"), nil},
		{"values wrong in both", mustParse(t, gold+" or "+club+"=Caddy"), attrs(level, "silver", club, "Nginx"), []int{0}},
		{"several, all met", mustParse(t, adult, contact, gold), attrs(over18, "yes", club, "Caddy", level, "gold"), nil},
		{"several, first and last missing", mustParse(t, adult, contact, gold), attrs(over18, "no", club, "Caddy"), []int{0, 2}},
		{"several, middle missing", mustParse(t, adult, contact, gold), attrs(over18, "yes", level, "gold", email, "a@example.com"), []int{1}},
		{"several, nothing", mustParse(t, adult, contact, gold), Attributes{}, []int{0, 1, 2}},
		{"extra attributes", mustParse(t, email), attrs(email, "a@example.com", club, "Caddy"), nil},
		{"no requirements", Policy{}, attrs(email, "a@example.com"), nil},
		{"no options", Policy{Requirements: []Requirement{{}}}, attrs(email, "a@example.com"), []int{0}},
		{"empty option", Policy{Requirements: []Requirement{req(Conjunction{})}}, attrs(email, "a@example.com"), []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantSatisfied := len(tt.missing) == 0 && len(tt.p.Requirements) > 0
			if got := tt.p.SatisfiedBy(tt.a); got != wantSatisfied {
				t.Errorf("SatisfiedBy = %v, want %v", got, wantSatisfied)
			}
			var want Policy
			for _, i := range tt.missing {
				want.Requirements = append(want.Requirements, tt.p.Requirements[i])
			}
			if got := tt.p.Missing(tt.a); !reflect.DeepEqual(got, want) {
				t.Errorf("Missing = %#v, want %#v", got, want)
			}
		})
	}
}

// TestStepUp walks a step-up login: what Missing asks, once disclosed and merged, satisfies the
// policy.
func TestStepUp(t *testing.T) {
	p := mustParse(t, email, over18+"=yes", club+" or "+level+"=gold")
	p.Requirements[1].Label = map[string]string{"en": "Are you an adult?"}
	first := attrs(email, "a@example.com", level, "gold")
	if p.SatisfiedBy(first) {
		t.Fatal("satisfied before the step-up")
	}
	m := p.Missing(first)
	if len(m.Requirements) != 1 || m.Requirements[0].String() != over18+"=yes" || m.Requirements[0].Label["en"] != "Are you an adult?" {
		t.Fatalf("Missing = %#v", m)
	}
	// Missing copies: changing it leaves p alone.
	m.Requirements[0].Label["en"] = "changed"
	*m.Requirements[0].Options[0][0].Value = "no"
	if p.Requirements[1].Label["en"] != "Are you an adult?" || *p.Requirements[1].Options[0][0].Value != "yes" {
		t.Fatal("changing Missing's result changed the policy")
	}
	second := attrs(over18, "yes")
	if !p.SatisfiedBy(first.Merge(second)) {
		t.Fatal("not satisfied after the step-up")
	}
}

func TestMerge(t *testing.T) {
	a := attrs(email, "old@example.com", club, "Caddy")
	b := attrs(email, "new@example.com", over18, "yes")
	got := a.Merge(b)
	want := attrs(email, "new@example.com", club, "Caddy", over18, "yes")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(a, attrs(email, "old@example.com", club, "Caddy")) || !reflect.DeepEqual(b, attrs(email, "new@example.com", over18, "yes")) {
		t.Fatal("Merge changed its operands")
	}
	if got := Attributes(nil).Merge(nil); got == nil || len(got) != 0 {
		t.Errorf("nil.Merge(nil) = %#v, want an empty map", got)
	}
	if got := a.Conflicts(b); !slices.Equal(got, []irma.AttributeTypeIdentifier{irma.NewAttributeTypeIdentifier(email)}) {
		t.Errorf("Conflicts = %v", got)
	}
	if got := a.Conflicts(attrs(email, "old@example.com", level, "gold")); len(got) != 0 {
		t.Errorf("Conflicts without conflicts = %v", got)
	}
}
