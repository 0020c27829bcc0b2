package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError is a mistake in a requirement expression, at a byte position
// counted from 1.
type SyntaxError struct {
	// Pos is the byte position of the mistake, counted from 1.
	Pos int
	// Msg says what is wrong there.
	Msg string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("position %d: %s", e.Pos, e.Msg)
}

// ParseRequirement parses a requirement expression, the compact form of a
// Requirement used in the Caddyfile:
//
//	caddy-demo.gateway.person.over18=yes
//	caddy-demo.gateway.person.email or pbdf.sidn-pbdf.email.email
//	caddy-demo.gateway.person.fullname="Alice Demo" and caddy-demo.gateway.person.email
//
// Attributes are named by their type identifier,
// scheme.issuer.credential.attribute (four non-empty parts of ASCII letters,
// digits, '_' and '-'). "and" joins attributes disclosed together, "or"
// separates alternatives, and "and" binds tighter than "or"; there are no
// parentheses. The keywords are lowercase and stand between ASCII
// whitespace. "id=value" requires the attribute to have exactly that value,
// never empty. A value may be bare if it consists of visible characters
// other than '"' and '='; otherwise it is quoted, "like this", with \" and
// \\ the only escapes. In a Caddyfile, put an expression with quotes in
// backticks, so that Caddy's lexer keeps them.
//
// The expression is at most MaxExpressionLength bytes of UTF-8, with at most
// MaxOptions options of at most MaxAttributes attributes each. An error at a
// place in the expression is a *SyntaxError naming the position; an empty,
// overlong or non-UTF-8 expression is a plain error. ParseRequirement checks
// syntax only: Policy.Validate checks the attributes against the schemes.
// The result has no label.
func ParseRequirement(expr string) (Requirement, error) {
	if len(expr) > MaxExpressionLength {
		return Requirement{}, fmt.Errorf("expression of %d bytes: at most %d allowed", len(expr), MaxExpressionLength)
	}
	if !utf8.ValidString(expr) {
		return Requirement{}, errors.New("expression is not valid UTF-8")
	}
	p := parser{s: expr}
	r, err := p.requirement()
	if err != nil {
		return Requirement{}, err
	}
	return r, nil
}

// parser reads one requirement expression.
type parser struct {
	s   string
	pos int // byte offset of the next unread byte
}

// errorf returns a *SyntaxError at byte offset off.
func (p *parser) errorf(off int, format string, args ...any) error {
	return &SyntaxError{Pos: off + 1, Msg: fmt.Sprintf(format, args...)}
}

// requirement parses the whole expression:
//
//	requirement = option { "or" option }
//	option      = attribute { "and" attribute }
//	attribute   = id [ "=" value ]
func (p *parser) requirement() (Requirement, error) {
	p.skipSpace()
	if p.pos == len(p.s) {
		return Requirement{}, errors.New("empty expression: name at least one attribute")
	}
	var r Requirement
	var option Conjunction
	for {
		start := p.pos
		a, err := p.attribute()
		if err != nil {
			return Requirement{}, err
		}
		if len(option) == MaxAttributes {
			return Requirement{}, p.errorf(start, "more than %d attributes in one option", MaxAttributes)
		}
		option = append(option, a)

		p.skipSpace()
		if p.pos == len(p.s) {
			r.Options = append(r.Options, option)
			return r, nil
		}
		opPos := p.pos
		word := p.word()
		switch word {
		case "and":
		case "or":
			if len(r.Options) == MaxOptions-1 {
				return Requirement{}, p.errorf(opPos, "more than %d options", MaxOptions)
			}
			r.Options = append(r.Options, option)
			option = nil
		default:
			if strings.EqualFold(word, "and") || strings.EqualFold(word, "or") {
				return Requirement{}, p.errorf(opPos, "%q: keywords are lowercase, \"and\" and \"or\"", word)
			}
			return Requirement{}, p.errorf(opPos, "unexpected %q after an attribute: want \"and\", \"or\" or the end", word)
		}
		p.skipSpace()
		if p.pos == len(p.s) {
			return Requirement{}, p.errorf(opPos, "dangling %q: an attribute must follow it", word)
		}
	}
}

// attribute parses id [ "=" value ] at p.pos, which is not whitespace.
func (p *parser) attribute() (AttributeRequest, error) {
	start := p.pos
	for p.pos < len(p.s) && !isSpace(p.s[p.pos]) && p.s[p.pos] != '=' && p.s[p.pos] != '"' {
		p.pos++
	}
	id := p.s[start:p.pos]
	switch {
	case id == "":
		return AttributeRequest{}, p.errorf(start, "%q where an attribute id belongs", p.s[start])
	case id == "and" || id == "or":
		return AttributeRequest{}, p.errorf(start, "%q where an attribute id belongs", id)
	}
	if err := checkAttributeID(id); err != nil {
		return AttributeRequest{}, p.errorf(start, "malformed attribute id %q: %v", id, err)
	}
	a := AttributeRequest{Type: id}
	if p.pos == len(p.s) || isSpace(p.s[p.pos]) {
		return a, nil
	}
	if p.s[p.pos] == '"' {
		return AttributeRequest{}, p.errorf(p.pos, "quote right after attribute id %q: want id=\"value\"", id)
	}
	eq := p.pos // at '='
	p.pos++
	var v string
	switch {
	case p.pos == len(p.s) || isSpace(p.s[p.pos]):
		return AttributeRequest{}, p.errorf(eq, "empty value after '=' for %q", id)
	case p.s[p.pos] == '"':
		var err error
		if v, err = p.quoted(); err != nil {
			return AttributeRequest{}, err
		}
		if v == "" {
			return AttributeRequest{}, p.errorf(eq, "empty value after '=' for %q", id)
		}
		if p.pos < len(p.s) && !isSpace(p.s[p.pos]) {
			return AttributeRequest{}, p.errorf(p.pos, "unexpected %q after a quoted value: want whitespace", p.s[p.pos])
		}
	default:
		vstart := p.pos
		for p.pos < len(p.s) && !isSpace(p.s[p.pos]) {
			r, size := utf8.DecodeRuneInString(p.s[p.pos:])
			if !isBareRune(r) {
				return AttributeRequest{}, p.errorf(p.pos, "%q in an unquoted value: quote the value, as id=\"...\"", r)
			}
			p.pos += size
		}
		v = p.s[vstart:p.pos]
	}
	a.Value = &v
	return a, nil
}

// quoted parses a quoted value at p.pos, which is '"'.
func (p *parser) quoted() (string, error) {
	open := p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; c {
		case '"':
			p.pos++
			return b.String(), nil
		case '\\':
			if p.pos+1 == len(p.s) {
				return "", p.errorf(open, "unterminated quote")
			}
			if n := p.s[p.pos+1]; n != '"' && n != '\\' {
				_, size := utf8.DecodeRuneInString(p.s[p.pos+1:])
				return "", p.errorf(p.pos, "unknown escape %q: only \\\" and \\\\ are allowed", p.s[p.pos:p.pos+1+size])
			}
			b.WriteByte(p.s[p.pos+1])
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", p.errorf(open, "unterminated quote")
}

// word reads up to the next whitespace.
func (p *parser) word() string {
	start := p.pos
	for p.pos < len(p.s) && !isSpace(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && isSpace(p.s[p.pos]) {
		p.pos++
	}
}

// isSpace reports whether c separates tokens. Only ASCII whitespace does:
// other Unicode spaces are rejected where they appear, rather than silently
// splitting or joining tokens.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isBareRune reports whether r may appear in an unquoted value: a visible
// character that cannot be mistaken for a separator or a quote.
func isBareRune(r rune) bool {
	return r != '"' && r != '=' && unicode.IsGraphic(r) && !unicode.IsSpace(r)
}

// String returns r as an expression: for any r that ParseRequirement
// returned, ParseRequirement parses it back to r. The label is not part of an
// expression and is left out.
func (r Requirement) String() string {
	var b strings.Builder
	for i, c := range r.Options {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString(c.String())
	}
	return b.String()
}

// String returns c in the syntax of ParseRequirement: its attributes joined
// with "and".
func (c Conjunction) String() string {
	var b strings.Builder
	for j, a := range c {
		if j > 0 {
			b.WriteString(" and ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// String returns a in the syntax of ParseRequirement: id or id=value, the
// value quoted if it needs to be.
func (a AttributeRequest) String() string {
	if a.Value == nil {
		return a.Type
	}
	return a.Type + "=" + quoteValue(*a.Value)
}

// quoteValue writes v bare if ParseRequirement reads it back bare, and quoted
// otherwise, so that the shortest form is used and String never makes an
// expression longer than the one it was parsed from.
func quoteValue(v string) string {
	bare := v != ""
	for _, r := range v {
		if !isBareRune(r) {
			bare = false
			break
		}
	}
	if bare && utf8.ValidString(v) {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
