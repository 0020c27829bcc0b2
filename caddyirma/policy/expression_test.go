package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	fullname = "caddy-demo.gateway.person.fullname"
	email    = "caddy-demo.gateway.person.email"
	over18   = "caddy-demo.gateway.person.over18"
	club     = "caddy-demo.gateway.membership.club"
	level    = "caddy-demo.gateway.membership.level"
)

// attr and val build AttributeRequests for the tables.
func attr(id string) AttributeRequest { return AttributeRequest{Type: id} }

func val(id, v string) AttributeRequest { return AttributeRequest{Type: id, Value: &v} }

// req builds a Requirement from options.
func req(options ...Conjunction) Requirement { return Requirement{Options: options} }

func TestParseRequirement(t *testing.T) {
	tests := []struct {
		expr string
		want Requirement
	}{
		{over18 + "=yes", req(Conjunction{val(over18, "yes")})},
		{email, req(Conjunction{attr(email)})},
		{"  \t" + email + "\n", req(Conjunction{attr(email)})},
		{email + " or pbdf.sidn-pbdf.email.email", req(Conjunction{attr(email)}, Conjunction{attr("pbdf.sidn-pbdf.email.email")})},
		{
			fullname + " and " + email + " or pbdf.gemeente.personalData.fullname and pbdf.sidn-pbdf.email.email",
			req(Conjunction{attr(fullname), attr(email)}, Conjunction{attr("pbdf.gemeente.personalData.fullname"), attr("pbdf.sidn-pbdf.email.email")}),
		},
		{fullname + `="Alice Demo"`, req(Conjunction{val(fullname, "Alice Demo")})},
		{fullname + `="a=b"`, req(Conjunction{val(fullname, "a=b")})},
		{fullname + `="say \"hi\" \\o/"`, req(Conjunction{val(fullname, `say "hi" \o/`)})},
		{fullname + `="and"`, req(Conjunction{val(fullname, "and")})},
		{fullname + `=or`, req(Conjunction{val(fullname, "or")})},
		{fullname + `=Zoë`, req(Conjunction{val(fullname, "Zoë")})},
		{fullname + `=C:\dir`, req(Conjunction{val(fullname, `C:\dir`)})},
		{fullname + "=\"line\nbreak\"", req(Conjunction{val(fullname, "line\nbreak")})},
		{level + "=gold\tand\t" + club + "=Caddy\nor " + over18, req(Conjunction{val(level, "gold"), val(club, "Caddy")}, Conjunction{attr(over18)})},
		{"A_b-1.x.Y.z_9", req(Conjunction{attr("A_b-1.x.Y.z_9")})},
		{email + " and " + email, req(Conjunction{attr(email), attr(email)})}, // syntax only: Validate refuses
		{strings.Repeat(email+" or ", MaxOptions-1) + email, req(repeat(Conjunction{attr(email)}, MaxOptions)...)},
		{strings.Repeat(email+" and ", MaxAttributes-1) + email, req(repeat(attr(email), MaxAttributes))},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := ParseRequirement(tt.expr)
			if err != nil {
				t.Fatalf("ParseRequirement(%q): %v", tt.expr, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRequirement(%q)\n got %#v\nwant %#v", tt.expr, got, tt.want)
			}
			checkRoundTrip(t, got)
		})
	}
}

// repeat returns n copies of x.
func repeat[T any](x T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = x
	}
	return out
}

func TestParseRequirementErrors(t *testing.T) {
	long := strings.Repeat(" ", MaxExpressionLength-len(email)) + email
	tests := []struct {
		name, expr string
		pos        int    // 0: not a SyntaxError
		want       string // in the message
	}{
		{"empty", "", 0, "empty expression"},
		{"blank", " \t\n ", 0, "empty expression"},
		{"too long", long + " ", 0, "at most 4096"},
		{"not UTF-8", email + "=\xff", 0, "not valid UTF-8"},
		{"leading or", "or " + email, 1, `"or" where an attribute id belongs`},
		{"leading and", " and " + email, 2, `"and" where an attribute id belongs`},
		{"dangling and", email + " and", len(email) + 2, `dangling "and"`},
		{"dangling or", email + " or  ", len(email) + 2, `dangling "or"`},
		{"and or", email + " and or " + email, len(email) + 6, `"or" where an attribute id belongs`},
		{"or or", email + " or or " + email, len(email) + 5, `"or" where an attribute id belongs`},
		{"uppercase keyword", email + " AND " + fullname, len(email) + 2, "lowercase"},
		{"garbage after attribute", email + " " + fullname, len(email) + 2, `unexpected "caddy-demo.gateway.person.fullname"`},
		{"three parts", "caddy-demo.gateway.person", 1, "want 4 dot-separated parts"},
		{"five parts", email + ".x", 1, "found 5"},
		{"empty part", "caddy-demo..person.email", 1, "part 2 is empty"},
		{"trailing dot", "caddy-demo.gateway.person.", 1, "part 4 is empty"},
		{"bad character", "caddy-demo.gate*way.person.email", 1, `part 2 holds '*'`},
		{"unicode in id", "caddy-demo.gateway.persön.email", 1, `part 3 holds 'ö'`},
		{"unicode space", email + "\u00a0or " + fullname, 1, "malformed attribute id"},
		{"id after operator", email + " or x.y", len(email) + 5, `malformed attribute id "x.y"`},
		{"leading =", "=yes", 1, `'=' where an attribute id belongs`},
		{"leading quote", `"` + email + `"`, 1, `'"' where an attribute id belongs`},
		{"empty value", over18 + "=", len(over18) + 1, "empty value"},
		{"empty value before space", over18 + "= and " + email, len(over18) + 1, "empty value"},
		{"empty quoted value", over18 + `=""`, len(over18) + 1, "empty value"},
		{"quote after id", over18 + `"yes"`, len(over18) + 1, "quote right after attribute id"},
		{"unterminated quote", fullname + `="Alice`, len(fullname) + 2, "unterminated quote"},
		{"unterminated after escape", fullname + `="Alice\"`, len(fullname) + 2, "unterminated quote"},
		{"backslash at end", fullname + `="Alice\`, len(fullname) + 2, "unterminated quote"},
		{"unknown escape", fullname + `="a\nb"`, len(fullname) + 4, `unknown escape "\\n"`},
		{"garbage after quote", fullname + `="Alice"x`, len(fullname) + 9, `unexpected 'x' after a quoted value`},
		{"= in bare value", fullname + "=a=b", len(fullname) + 3, `'=' in an unquoted value`},
		{"quote in bare value", fullname + `=a"b"`, len(fullname) + 3, `'"' in an unquoted value`},
		{"control in bare value", fullname + "=a\x00b", len(fullname) + 3, `'\x00' in an unquoted value`},
		{"too many options", strings.Repeat(email+" or ", MaxOptions) + email, (MaxOptions-1)*(len(email)+4) + len(email) + 2, "more than 32 options"},
		{"too many attributes", strings.Repeat(email+" and ", MaxAttributes) + email, MaxAttributes*(len(email)+5) + 1, "more than 32 attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRequirement(tt.expr)
			if err == nil {
				t.Fatalf("ParseRequirement(%q) = %#v, want an error", tt.expr, r)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var serr *SyntaxError
			switch {
			case tt.pos == 0 && errors.As(err, &serr):
				t.Errorf("error %q: a SyntaxError, want a plain error", err)
			case tt.pos != 0 && !errors.As(err, &serr):
				t.Errorf("error %q: not a SyntaxError", err)
			case tt.pos != 0 && serr.Pos != tt.pos:
				t.Errorf("error %q: position %d, want %d", err, serr.Pos, tt.pos)
			}
		})
	}
}

// TestLongestExpression checks the length limit is inclusive.
func TestLongestExpression(t *testing.T) {
	expr := strings.Repeat(" ", MaxExpressionLength-len(email)) + email
	if _, err := ParseRequirement(expr); err != nil {
		t.Fatalf("expression of %d bytes: %v", len(expr), err)
	}
}

func TestRequirementString(t *testing.T) {
	tests := []struct {
		r    Requirement
		want string
	}{
		{req(Conjunction{attr(email)}), email},
		{req(Conjunction{val(over18, "yes")}), over18 + "=yes"},
		{req(Conjunction{attr(fullname), attr(email)}, Conjunction{attr(club)}), fullname + " and " + email + " or " + club},
		{req(Conjunction{val(fullname, "Alice Demo")}), fullname + `="Alice Demo"`},
		{req(Conjunction{val(fullname, `a"b\c=d`)}), fullname + `="a\"b\\c=d"`},
		{req(Conjunction{val(fullname, `C:\dir`)}), fullname + `=C:\dir`},
		{req(Conjunction{val(fullname, "Zoë")}), fullname + `=Zoë`},
		{req(Conjunction{val(fullname, "a\u00a0b")}), fullname + "=\"a\u00a0b\""},
		{req(Conjunction{val(fullname, "")}), fullname + `=""`},
		{Requirement{Label: map[string]string{"en": "Your email"}, Options: []Conjunction{{attr(email)}}}, email},
		{Requirement{}, ""},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// checkRoundTrip checks that r.String() parses back to r.
func checkRoundTrip(t *testing.T, r Requirement) {
	t.Helper()
	s := r.String()
	back, err := ParseRequirement(s)
	if err != nil {
		t.Fatalf("ParseRequirement(%q) of String(): %v", s, err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip through %q:\n got %#v\nwant %#v", s, back, r)
	}
}
