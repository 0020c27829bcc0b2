package caddyirma

import (
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	irma "github.com/privacybydesign/irmago/irma"

	"github.com/caddy-irma/caddy-irma/caddyirma/requestor"
)

// checkRevocationKeys checks that each credential of a revocable type has
// a revocation key, and the app is the type's revocation authority; and
// that no other credential has one.
func (h *Issue) checkRevocationKeys() error {
	conf := h.app.Configuration()
	for _, c := range h.Credentials {
		id := irma.NewCredentialTypeIdentifier(c.Type)
		switch {
		case !revocable(conf, id) && c.RevocationKey != "":
			return fmt.Errorf("irma_issue: credential %q: revocation_key: the credential type does not support revocation", c.Type)
		case !revocable(conf, id):
		case c.RevocationKey == "":
			return fmt.Errorf("irma_issue: credential %q: revocation_key is required: the credential type is revocable", c.Type)
		default:
			if err := h.app.revocationAuthority(id); err != nil {
				return fmt.Errorf("irma_issue: credential %q: %w", c.Type, err)
			}
		}
	}
	return nil
}

// setRevocationKey puts the credential's revocation key, its placeholders
// replaced, in cr. The key is not in errors, which are logged.
func (c *CredentialSpec) setRevocationKey(cr *irma.CredentialRequest, repl *caddy.Replacer) error {
	if c.RevocationKey == "" {
		return nil
	}
	key := strings.TrimSpace(repl.ReplaceAll(c.RevocationKey, ""))
	switch {
	case key == "":
		return fmt.Errorf("irma_issue: credential %q: the revocation key has no value for this request", c.Type)
	}
	if err := requestor.CheckRevocationKey(key); err != nil {
		return fmt.Errorf("irma_issue: credential %q: the revocation key: %w", c.Type, err)
	}
	cr.RevocationKey = key
	return nil
}

// parseCredential parses a credential block of irma_issue.
func parseCredential(d *caddyfile.Dispenser) (CredentialSpec, error) {
	var c CredentialSpec
	if err := oneArg(d, &c.Type); err != nil {
		return c, err
	}
	c.Attributes = map[string]string{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "match" {
			args := d.RemainingArgs()
			if len(args) != 2 {
				return c, d.Errf("irma_issue: credential %q: match takes an attribute and a pattern", c.Type)
			}
			if _, dup := c.Match[args[0]]; dup {
				return c, d.Errf("irma_issue: credential %q: match %q given twice", c.Type, args[0])
			}
			if c.Match == nil {
				c.Match = map[string]string{}
			}
			c.Match[args[0]] = args[1]
			continue
		}
		var v string
		if err := oneArg(d, &v); err != nil {
			return c, err
		}
		if name == "revocation_key" {
			if c.RevocationKey != "" {
				return c, d.Errf("irma_issue: credential %q: revocation_key given twice", c.Type)
			}
			c.RevocationKey = v
			continue
		}
		if name == "validity" {
			if c.Validity != 0 {
				return c, d.Errf("irma_issue: credential %q: validity given twice", c.Type)
			}
			if err := durationArg(d, "validity", v, &c.Validity); err != nil {
				return c, err
			}
			continue
		}
		if _, dup := c.Attributes[name]; dup {
			return c, d.Errf("irma_issue: credential %q: attribute %q given twice", c.Type, name)
		}
		c.Attributes[name] = v
	}
	return c, nil
}
